//! Every NATS subject of the contract, named in one place: [`Subject`] builds each one and reads
//! a received one back, so services dispatch on a type, never on string suffixes.
//!
//! `etl.<env>.trigger` is request-reply and `etl.<env>.progress.<source>` a download's progress
//! (both core NATS, not stored); `etl.<env>.{extracted.<source>, transformed,
//! loaded, failed.<stage>}` are captured by the `ETL` stream, `etl.<env>.dead.<stage>` by `DEAD`
//! and `notify.<env>` by `NOTIFY`.

use std::fmt;

use crate::env::{Env, EnvScope};
use crate::events::Stage;
use crate::source::Source;

/// The env token of a dead letter whose message's subject named no valid env.
pub const UNKNOWN_ENV_TOKEN: &str = "_";

/// A subject of the contract.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Subject {
    Trigger(Env),
    Extracted(Env, Source),
    Progress(Env, Source),
    Transformed(Env),
    Loaded(Env),
    Failed(Env, Stage),
    /// `None`: the dead message's subject named no valid env.
    Dead(Option<Env>, Stage),
    Notify(Env),
}

impl Subject {
    /// Reads a subject back; `None` for anything that is not exactly one of the contract's.
    pub fn parse(subject: &str) -> Option<Subject> {
        let tokens: Vec<&str> = subject.split('.').collect();
        let env = |token: &str| Env::new(token).ok();
        Some(match tokens.as_slice() {
            ["notify", e] => Subject::Notify(env(e)?),
            ["etl", e, "trigger"] => Subject::Trigger(env(e)?),
            ["etl", e, "extracted", s] => Subject::Extracted(env(e)?, s.parse().ok()?),
            ["etl", e, "progress", s] => Subject::Progress(env(e)?, s.parse().ok()?),
            ["etl", e, "transformed"] => Subject::Transformed(env(e)?),
            ["etl", e, "loaded"] => Subject::Loaded(env(e)?),
            ["etl", e, "failed", s] => Subject::Failed(env(e)?, Stage::parse(s)?),
            ["etl", e, "dead", s] => {
                let env = if *e == UNKNOWN_ENV_TOKEN {
                    None
                } else {
                    Some(env(e)?)
                };
                Subject::Dead(env, Stage::parse(s)?)
            }
            _ => return None,
        })
    }

    pub fn env(&self) -> Option<&Env> {
        match self {
            Subject::Trigger(env)
            | Subject::Extracted(env, _)
            | Subject::Progress(env, _)
            | Subject::Transformed(env)
            | Subject::Loaded(env)
            | Subject::Failed(env, _)
            | Subject::Notify(env) => Some(env),
            Subject::Dead(env, _) => env.as_ref(),
        }
    }
}

impl fmt::Display for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Subject::Trigger(env) => write!(f, "etl.{env}.trigger"),
            Subject::Extracted(env, source) => write!(f, "etl.{env}.extracted.{source}"),
            Subject::Progress(env, source) => write!(f, "etl.{env}.progress.{source}"),
            Subject::Transformed(env) => write!(f, "etl.{env}.transformed"),
            Subject::Loaded(env) => write!(f, "etl.{env}.loaded"),
            Subject::Failed(env, stage) => write!(f, "etl.{env}.failed.{}", stage.as_str()),
            Subject::Dead(env, stage) => {
                let env = env.as_ref().map_or(UNKNOWN_ENV_TOKEN, Env::as_str);
                write!(f, "etl.{env}.dead.{}", stage.as_str())
            }
            Subject::Notify(env) => write!(f, "notify.{env}"),
        }
    }
}

pub fn trigger(env: &Env) -> String {
    Subject::Trigger(env.clone()).to_string()
}

pub fn extracted(env: &Env, source: &Source) -> String {
    Subject::Extracted(env.clone(), source.clone()).to_string()
}

pub fn progress(env: &Env, source: &Source) -> String {
    Subject::Progress(env.clone(), source.clone()).to_string()
}

pub fn transformed(env: &Env) -> String {
    Subject::Transformed(env.clone()).to_string()
}

pub fn loaded(env: &Env) -> String {
    Subject::Loaded(env.clone()).to_string()
}

pub fn failed(env: &Env, stage: Stage) -> String {
    Subject::Failed(env.clone(), stage).to_string()
}

pub fn dead(env: Option<&Env>, stage: Stage) -> String {
    Subject::Dead(env.cloned(), stage).to_string()
}

pub fn notify(env: &Env) -> String {
    Subject::Notify(env.clone()).to_string()
}

/// Subjects stored by the `ETL` stream. The trigger subject is left out on purpose: were it
/// captured, the stream's publish-ack would answer `etl trigger`'s request before the extractor.
pub const ETL_STREAM_SUBJECTS: [&str; 4] = [
    "etl.*.extracted.*",
    "etl.*.transformed",
    "etl.*.loaded",
    "etl.*.failed.*",
];

pub const DEAD_STREAM_SUBJECTS: [&str; 1] = ["etl.*.dead.*"];

pub const NOTIFY_STREAM_SUBJECTS: [&str; 1] = ["notify.>"];

/// Consumer filters: what a stage consumes, for each env of its scope (`*` when it serves all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Filter {
    /// `etl.<env>.extracted.*`
    Extracted,
    /// `etl.<env>.transformed`
    Transformed,
    /// `etl.<env>.loaded`
    Loaded,
    /// `etl.<env>.failed.*`
    Failed,
    /// `etl.<env>.dead.*`
    Dead,
    /// `notify.<env>`
    Notify,
}

impl Filter {
    fn subject(self, token: &str) -> String {
        match self {
            Filter::Extracted => format!("etl.{token}.extracted.*"),
            Filter::Transformed => format!("etl.{token}.transformed"),
            Filter::Loaded => format!("etl.{token}.loaded"),
            Filter::Failed => format!("etl.{token}.failed.*"),
            Filter::Dead => format!("etl.{token}.dead.*"),
            Filter::Notify => format!("notify.{token}"),
        }
    }
}

/// The filter subjects of `filters` for each env of `scope`.
pub fn filters(scope: &EnvScope, filters: &[Filter]) -> Vec<String> {
    filters
        .iter()
        .flat_map(|filter| {
            scope
                .subject_tokens()
                .into_iter()
                .map(move |token| filter.subject(&token))
        })
        .collect()
}

/// Reads the env out of any `etl.<env>.…` or `notify.<env>` subject.
pub fn env_of(subject: &str) -> Option<Env> {
    subject
        .split('.')
        .nth(1)
        .and_then(|token| Env::new(token).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_follow_the_contract() {
        let env = Env::new("test").unwrap();
        assert_eq!(trigger(&env), "etl.test.trigger");
        assert_eq!(extracted(&env, &Source::JHU), "etl.test.extracted.jhu");
        assert_eq!(progress(&env, &Source::NYT), "etl.test.progress.nyt");
        assert_eq!(transformed(&env), "etl.test.transformed");
        assert_eq!(loaded(&env), "etl.test.loaded");
        assert_eq!(failed(&env, Stage::Transform), "etl.test.failed.transform");
        assert_eq!(dead(Some(&env), Stage::Load), "etl.test.dead.load");
        assert_eq!(dead(None, Stage::Load), "etl._.dead.load");
        assert_eq!(notify(&env), "notify.test");
    }

    #[test]
    fn every_subject_reads_back_as_itself() {
        let env = Env::new("e2e_1").unwrap();
        for subject in [
            Subject::Trigger(env.clone()),
            Subject::Extracted(env.clone(), Source::NYT),
            Subject::Progress(env.clone(), Source::JHU),
            Subject::Transformed(env.clone()),
            Subject::Loaded(env.clone()),
            Subject::Failed(env.clone(), Stage::Extract),
            Subject::Dead(Some(env.clone()), Stage::Notify),
            Subject::Dead(None, Stage::Transform),
            Subject::Notify(env.clone()),
        ] {
            assert_eq!(Subject::parse(&subject.to_string()), Some(subject));
        }
    }

    #[test]
    fn foreign_and_malformed_subjects_are_not_ours() {
        for subject in [
            "etl",
            "etl.prod",
            "etl.prod.loaded.extra",
            "etl.Prod.loaded",
            "etl.public.loaded",
            "etl.prod.extracted.Cdc",
            "etl.prod.failed.publish",
            "etl._.loaded",
            "notify.prod.x",
            "other.prod.loaded",
        ] {
            assert_eq!(Subject::parse(subject), None, "{subject}");
        }
    }

    #[test]
    fn filters_expand_the_scope() {
        let scope: EnvScope = "a,b".parse().unwrap();
        assert_eq!(
            filters(&scope, &[Filter::Loaded, Filter::Failed]),
            vec![
                "etl.a.loaded",
                "etl.b.loaded",
                "etl.a.failed.*",
                "etl.b.failed.*"
            ]
        );
        assert_eq!(
            filters(&EnvScope::All, &[Filter::Loaded]),
            vec!["etl.*.loaded"]
        );
    }
}
