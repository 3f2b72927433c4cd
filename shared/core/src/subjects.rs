//! Every NATS subject of the contract, built in one place.
//!
//! `etl.<env>.trigger` is request-reply (core NATS); the other `etl.` subjects are captured by the
//! `ETL` stream and `notify.<env>` by the `NOTIFY` stream.

use crate::env::{Env, EnvScope};
use crate::events::Stage;
use crate::source::Source;

pub fn trigger(env: &Env) -> String {
    format!("etl.{env}.trigger")
}

pub fn extracted(env: &Env, source: Source) -> String {
    format!("etl.{env}.extracted.{source}")
}

pub fn transformed(env: &Env) -> String {
    format!("etl.{env}.transformed")
}

pub fn loaded(env: &Env) -> String {
    format!("etl.{env}.loaded")
}

pub fn failed(env: &Env, stage: Stage) -> String {
    format!("etl.{env}.failed.{}", stage.as_str())
}

pub fn notify(env: &Env) -> String {
    format!("notify.{env}")
}

/// Subjects stored by the `ETL` stream. The trigger subject is left out on purpose: were it
/// captured, the stream's publish-ack would answer `etl trigger`'s request before the extractor.
pub const ETL_STREAM_SUBJECTS: [&str; 4] = [
    "etl.*.extracted.*",
    "etl.*.transformed",
    "etl.*.loaded",
    "etl.*.failed.*",
];

pub const NOTIFY_STREAM_SUBJECTS: [&str; 1] = ["notify.>"];

/// Consumer filters for a scope: one subject per env token, `pattern` holding `{env}`.
pub fn filters(scope: &EnvScope, pattern: &str) -> Vec<String> {
    scope
        .subject_tokens()
        .iter()
        .map(|token| pattern.replace("{env}", token))
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
        assert_eq!(extracted(&env, Source::Jhu), "etl.test.extracted.jhu");
        assert_eq!(transformed(&env), "etl.test.transformed");
        assert_eq!(loaded(&env), "etl.test.loaded");
        assert_eq!(failed(&env, Stage::Transform), "etl.test.failed.transform");
        assert_eq!(notify(&env), "notify.test");
    }

    #[test]
    fn filters_expand_the_scope() {
        let scope: EnvScope = "a,b".parse().unwrap();
        assert_eq!(
            filters(&scope, "etl.{env}.loaded"),
            vec!["etl.a.loaded", "etl.b.loaded"]
        );
        assert_eq!(
            filters(&EnvScope::All, "etl.{env}.loaded"),
            vec!["etl.*.loaded"]
        );
    }

    #[test]
    fn env_is_read_back_from_a_subject() {
        assert_eq!(env_of("etl.e2e_1.loaded"), Some(Env::new("e2e_1").unwrap()));
        assert_eq!(env_of("notify.prod"), Some(Env::prod()));
        assert_eq!(env_of("etl"), None);
    }
}
