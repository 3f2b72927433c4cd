//! One type per event body of the contract (DESIGN.md, "Subjects"). All are JSON with a
//! `schema_version`; readers ignore fields they do not know, so fields can be added.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::source::Source;

pub const SCHEMA_VERSION: u32 = 1;

/// The most corrections an event carries; the full list is always in `us_daily_changes`.
pub const MAX_CORRECTIONS_IN_EVENT: usize = 1000;

/// The commit a payload was read at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRef {
    /// `owner/repo`.
    pub repo: String,
    pub path: String,
    pub commit_sha: String,
    pub commit_time: DateTime<Utc>,
    /// Every commit this payload stands for, newest first, when several landed between two polls
    /// (the newest is `commit_sha`). Empty when only `commit_sha` is covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covered_commits: Vec<String>,
}

/// An object in a JetStream object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub name: String,
    pub sha256: String,
    pub bytes: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerKind {
    /// A new upstream commit was seen by polling.
    Commit,
    /// First start with empty state.
    Initial,
    /// The daily schedule (`DAILY_RUN_AT`).
    Daily,
    /// `etl trigger`.
    Manual,
    /// `etl smoke`.
    Smoke,
}

impl TriggerKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Commit => "commit",
            TriggerKind::Initial => "initial",
            TriggerKind::Daily => "daily",
            TriggerKind::Manual => "manual",
            TriggerKind::Smoke => "smoke",
        }
    }
}

/// Why a run happened. A forced trigger carries an `id` that becomes part of the run's identity,
/// so it is a new run even when the inputs did not change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trigger {
    pub kind: TriggerKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default)]
    pub force: bool,
}

impl Trigger {
    pub fn new(kind: TriggerKind) -> Self {
        Self {
            kind,
            id: None,
            force: false,
        }
    }

    pub fn forced(kind: TriggerKind, id: impl Into<String>) -> Self {
        Self {
            kind,
            id: Some(id.into()),
            force: true,
        }
    }
}

/// `etl.<env>.extracted.<source>`: a new raw payload is in `etl-raw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    pub schema_version: u32,
    pub env: Env,
    pub source: Source,
    pub upstream: UpstreamRef,
    pub object: ObjectRef,
    pub trigger: Trigger,
    pub fetched_at: DateTime<Utc>,
}

impl Extracted {
    pub fn input(&self) -> InputRef {
        InputRef {
            source: self.source,
            upstream: self.upstream.clone(),
            object: self.object.clone(),
        }
    }
}

/// One input of a run: which payload of which source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputRef {
    pub source: Source,
    pub upstream: UpstreamRef,
    pub object: ObjectRef,
}

/// Days the inner join dropped because only one source has them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dropped {
    pub only_nyt: u64,
    pub only_jhu: u64,
    /// The dropped dates themselves, at most [`Dropped::MAX_DATES`] of each.
    #[serde(default)]
    pub only_nyt_dates: Vec<NaiveDate>,
    #[serde(default)]
    pub only_jhu_dates: Vec<NaiveDate>,
}

impl Dropped {
    pub const MAX_DATES: usize = 20;
}

/// Milliseconds spent in each step of a stage, in order.
pub type Timings = Vec<(String, u64)>;

/// `etl.<env>.transformed`: the curated dataset of a run is in `etl-curated`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transformed {
    pub schema_version: u32,
    pub env: Env,
    pub run_id: String,
    pub trigger: Trigger,
    pub inputs: Vec<InputRef>,
    pub object: ObjectRef,
    pub rows: u64,
    pub first_date: NaiveDate,
    pub last_date: NaiveDate,
    pub dropped: Dropped,
    pub warnings: Vec<String>,
    #[serde(default)]
    pub timings: Timings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Field {
    Cases,
    Deaths,
    Recovered,
}

impl Field {
    pub const ALL: [Field; 3] = [Field::Cases, Field::Deaths, Field::Recovered];

    pub fn as_str(self) -> &'static str {
        match self {
            Field::Cases => "cases",
            Field::Deaths => "deaths",
            Field::Recovered => "recovered",
        }
    }
}

/// One upstream value that changed: `old` → `new` (`None` is "not reported").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub date: NaiveDate,
    pub field: Field,
    pub old: Option<i64>,
    pub new: Option<i64>,
}

/// What a run did to `us_daily`, as DESIGN.md counts it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub revised: u64,
}

/// `etl.<env>.loaded`: a run was applied to PostgreSQL.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Loaded {
    pub schema_version: u32,
    pub env: Env,
    pub run_id: String,
    pub trigger: Trigger,
    pub inputs: Vec<InputRef>,
    #[serde(flatten)]
    pub counts: Counts,
    /// At most [`MAX_CORRECTIONS_IN_EVENT`]; `corrections_total` says how many there were.
    pub corrections: Vec<Correction>,
    pub corrections_total: u64,
    pub rows: u64,
    pub first_date: NaiveDate,
    pub last_date: NaiveDate,
    pub dropped: Dropped,
    pub warnings: Vec<String>,
    /// From the first extraction of the run's inputs to the commit of the load.
    pub duration_ms: u64,
    #[serde(default)]
    pub timings: Timings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Extract,
    Transform,
    Load,
    Notify,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Transform => "transform",
            Stage::Load => "load",
            Stage::Notify => "notify",
        }
    }
}

/// `etl.<env>.failed.<stage>`: a run (or an extraction) failed; nothing stored was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub schema_version: u32,
    pub env: Env,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    pub stage: Stage,
    /// A machine word such as `invalid_data`, `suspicious_removal`, `truncated`, `too_large`.
    pub kind: String,
    /// One human sentence naming the source, the line or field, and the problem.
    pub reason: String,
    pub inputs: Vec<InputRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The source an extraction failed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    pub failed_at: DateTime<Utc>,
}

impl Failed {
    /// The identity of this failure for de-duplication: the run, or else this very failure.
    /// Everything hashed is fixed in the published event, so a redelivery keeps the id, while
    /// two failures (another source, commit, trigger or moment) never share one.
    pub fn id(&self) -> String {
        match &self.run_id {
            Some(run_id) => run_id.clone(),
            None => {
                let inputs: Vec<&str> = self
                    .inputs
                    .iter()
                    .map(|i| i.upstream.commit_sha.as_str())
                    .collect();
                let key = format!(
                    "{}|{}|{}|{}|{}|{}|{}",
                    self.env,
                    self.stage.as_str(),
                    self.kind,
                    self.source.map_or("", Source::as_str),
                    self.trigger
                        .as_ref()
                        .and_then(|t| t.id.as_deref())
                        .unwrap_or(""),
                    self.failed_at.timestamp_micros(),
                    inputs.join(","),
                );
                crate::hash::sha256_hex(key.as_bytes())[..24].to_owned()
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

/// `notify.<env>`: what people are told about a run; `text` is the email's plain-text part.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub schema_version: u32,
    pub env: Env,
    pub run_id: String,
    pub status: RunStatus,
    pub subject: String,
    pub text: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub inputs: Vec<InputRef>,
    #[serde(default)]
    pub corrections: Vec<Correction>,
    #[serde(default)]
    pub dropped: Dropped,
    #[serde(default)]
    pub warnings: Vec<String>,
    #[serde(default)]
    pub duration_ms: u64,
    /// Whether an email was sent for it (false when no recipients are configured for the env).
    #[serde(default)]
    pub emailed: bool,
    /// Why no email went out although recipients are configured (the policy skipped it, or the
    /// mail server refused it for good).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_note: Option<String>,
}

/// Body of an `etl.<env>.trigger` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRequest {
    #[serde(default)]
    pub force: bool,
    /// Makes a forced run distinct from earlier ones; set by `etl trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

/// The extractor's answer to a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerReply {
    pub env: Env,
    /// Sources for which a new payload was extracted (or re-published, when forced).
    pub extracted: Vec<Source>,
    /// The run the trigger started, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// One human sentence: what was checked and what happens next.
    pub message: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_counts_are_flat_fields_in_json() {
        let loaded = Loaded {
            schema_version: SCHEMA_VERSION,
            env: Env::prod(),
            run_id: "r".into(),
            trigger: Trigger::new(TriggerKind::Commit),
            inputs: vec![],
            counts: Counts {
                inserted: 1,
                updated: 2,
                unchanged: 3,
                removed: 0,
                revised: 1,
            },
            corrections: vec![],
            corrections_total: 0,
            rows: 4,
            first_date: NaiveDate::from_ymd_opt(2020, 1, 22).unwrap(),
            last_date: NaiveDate::from_ymd_opt(2020, 1, 25).unwrap(),
            dropped: Dropped::default(),
            warnings: vec![],
            duration_ms: 5,
            timings: vec![],
        };
        let json = serde_json::to_value(&loaded).unwrap();
        assert_eq!(json["inserted"], 1);
        assert_eq!(json["revised"], 1);
        assert_eq!(json["env"], "prod");
        let back: Loaded = serde_json::from_value(json).unwrap();
        assert_eq!(back, loaded);
    }

    #[test]
    fn an_event_with_a_bad_env_does_not_parse() {
        let json = serde_json::json!({"force": false});
        assert!(serde_json::from_value::<TriggerRequest>(json).is_ok());
        let bad = serde_json::json!({"env": "Bad Env", "extracted": [], "message": ""});
        assert!(serde_json::from_value::<TriggerReply>(bad).is_err());
    }
}
