//! One type per event body of the contract (DESIGN.md, "Subjects"). All are JSON with a
//! `schema_version`; readers ignore fields they do not know, so fields can be added.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::env::Env;
use crate::ids::{CommitSha, Digest, RunId, TriggerId};
use crate::source::{Dataset, Source};

pub const SCHEMA_VERSION: u32 = 1;

/// The most corrections an event carries; the full list is always in `us_daily_changes`.
pub const MAX_CORRECTIONS_IN_EVENT: usize = 1000;

/// The commit a payload was read at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpstreamRef {
    /// `owner/repo`.
    pub repo: String,
    pub path: String,
    pub commit_sha: CommitSha,
    pub commit_time: DateTime<Utc>,
    /// Every commit this payload stands for, newest first, when several landed between two polls
    /// (the newest is `commit_sha`). Empty when only `commit_sha` is covered.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub covered_commits: Vec<CommitSha>,
}

/// An object in a JetStream object store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    pub bucket: String,
    pub name: String,
    pub sha256: Digest,
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
    pub id: Option<TriggerId>,
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

    pub fn forced(kind: TriggerKind, id: TriggerId) -> Self {
        Self {
            kind,
            id: Some(id),
            force: true,
        }
    }
}

/// `etl.<env>.extracted.<source>`: a new raw payload is in `etl-raw`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extracted {
    pub schema_version: u32,
    pub env: Env,
    /// The dataset the payload belongs to (`us` in events written before datasets existed).
    #[serde(default = "Dataset::us")]
    pub dataset: Dataset,
    pub source: Source,
    /// Every source of the dataset, in the order its transform reads them: a run is made of the
    /// latest payload of each. Empty in events written before datasets existed (`us`: NYT, JHU).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub dataset_sources: Vec<Source>,
    pub upstream: UpstreamRef,
    pub object: ObjectRef,
    pub trigger: Trigger,
    pub fetched_at: DateTime<Utc>,
}

impl Extracted {
    pub fn input(&self) -> InputRef {
        InputRef {
            source: self.source.clone(),
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
    #[serde(default = "Dataset::us")]
    pub dataset: Dataset,
    pub run_id: RunId,
    /// Where the run stands among the env's runs; the loader never applies an earlier one over a
    /// later one.
    pub order: RunOrder,
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
    /// A keyed dataset's change against the run its transform compared with (see [`Delta`]);
    /// `None` for `us`, and for a keyed run without a previous one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<Delta>,
}

/// The rows a keyed run changes against its base, the previous run the transformer curated: the
/// loader applies them when its table holds exactly the base, and reconciles from the whole
/// curated dataset otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delta {
    pub base_run_id: RunId,
    /// COPY-ready CSV objects in `etl-curated` (the keyed contract): the new or changed rows
    /// (`date,<key>,fips,cases,deaths,new_cases,new_deaths`), the rows that left
    /// (`date,<key>`) and one line per revised value (`date,<key>,field,old_value,new_value`).
    pub rows: ObjectRef,
    pub removed: ObjectRef,
    pub changes: ObjectRef,
    /// What the delta does, by the counting rules of DESIGN.md.
    pub counts: Counts,
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
    /// The key of a keyed dataset's row, as people write it (`Harris, Texas`); `None` for `us`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
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
    #[serde(default = "Dataset::us")]
    pub dataset: Dataset,
    pub run_id: RunId,
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
    pub const ALL: [Stage; 4] = [Stage::Extract, Stage::Transform, Stage::Load, Stage::Notify];

    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Extract => "extract",
            Stage::Transform => "transform",
            Stage::Load => "load",
            Stage::Notify => "notify",
        }
    }

    pub fn parse(token: &str) -> Option<Stage> {
        Stage::ALL.into_iter().find(|stage| stage.as_str() == token)
    }
}

/// Where a run stands among its env's runs, from facts every host agrees on: the newest upstream
/// commit time among its inputs, then the JetStream sequence of the extracted event that started
/// it (a forced re-run of the same commits comes later). No host's clock is involved.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct RunOrder {
    pub upstream_time: DateTime<Utc>,
    pub sequence: u64,
}

impl RunOrder {
    /// The order of a run of `inputs`, started by the extracted event at stream `sequence`.
    pub fn of(inputs: &[InputRef], sequence: u64) -> Self {
        let upstream_time = inputs
            .iter()
            .map(|input| input.upstream.commit_time)
            .max()
            .unwrap_or(DateTime::UNIX_EPOCH);
        Self {
            upstream_time,
            sequence,
        }
    }
}

/// Why a stage failed, as a machine word (`kind` in events, `etl_runs.kind`, metrics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Upstream data broke a transform rule (DESIGN.md rules 1 to 6).
    InvalidData,
    /// Rule 7: the run would remove too many stored dates.
    SuspiciousRemoval,
    /// A payload over `MAX_PAYLOAD_BYTES`, or a stored object over its stage's limit.
    TooLarge,
    /// A download ended before its announced or expected length.
    Truncated,
    /// The bytes are not the blob upstream reports for the path at that commit.
    Integrity,
    /// An HTML page where a CSV file was expected.
    NotCsv,
    /// Upstream refused access (a 403 that is not a rate limit).
    Forbidden,
    /// The message is not a valid event for its subject: not JSON, a wrong schema version, an
    /// invalid identifier, an env that differs from the subject's, a foreign object name.
    Malformed,
    /// A stored object the event names is not there.
    MissingObject,
    /// A stored object is not what the event promised (digest, size or content).
    CorruptObject,
    /// A stage's deadline passed with the message in hand.
    Timeout,
    /// What was needed (GitHub, PostgreSQL, NATS, the mail server) stayed unavailable through
    /// every delivery.
    Unavailable,
    /// The event contradicts its own data (announced rows differ from the stored dataset's).
    InconsistentEvent,
    /// The database did something other than what the diff predicted.
    CountMismatch,
    /// A bug: a panic or an error that should not happen.
    Internal,
    /// A kind this version does not know (sent by a newer one).
    #[serde(other)]
    Other,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::InvalidData => "invalid_data",
            FailureKind::SuspiciousRemoval => "suspicious_removal",
            FailureKind::TooLarge => "too_large",
            FailureKind::Truncated => "truncated",
            FailureKind::Integrity => "integrity",
            FailureKind::NotCsv => "not_csv",
            FailureKind::Forbidden => "forbidden",
            FailureKind::Malformed => "malformed",
            FailureKind::MissingObject => "missing_object",
            FailureKind::CorruptObject => "corrupt_object",
            FailureKind::Timeout => "timeout",
            FailureKind::Unavailable => "unavailable",
            FailureKind::InconsistentEvent => "inconsistent_event",
            FailureKind::CountMismatch => "count_mismatch",
            FailureKind::Internal => "internal",
            FailureKind::Other => "other",
        }
    }

    /// Whether a message that failed this way is kept as a dead letter, to be retried by hand
    /// once the cause is fixed. Bad upstream data is an answer, not a stuck message: the run is
    /// failed and reported, and the next upstream change makes a new run.
    pub fn is_dead_letter(self) -> bool {
        !matches!(
            self,
            FailureKind::InvalidData
                | FailureKind::SuspiciousRemoval
                | FailureKind::TooLarge
                | FailureKind::Truncated
                | FailureKind::Integrity
                | FailureKind::NotCsv
                | FailureKind::Forbidden
        )
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `etl.<env>.failed.<stage>`: a run (or an extraction) failed; nothing stored was changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    pub schema_version: u32,
    pub env: Env,
    #[serde(default = "Dataset::us")]
    pub dataset: Dataset,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    pub stage: Stage,
    pub kind: FailureKind,
    /// One human sentence naming the source, the line or field, and the problem.
    pub reason: String,
    pub inputs: Vec<InputRef>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trigger: Option<Trigger>,
    /// The source an extraction failed for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<Source>,
    /// What sets this failure apart from others of its source and kind when there is no run: the
    /// commit that was refused, or the message that could not be handled. Failures with the same
    /// cause are one failure (reported and notified once).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
    pub failed_at: DateTime<Utc>,
}

impl Failed {
    /// The identity of this failure for de-duplication: the run, or else a hash of what sets it
    /// apart. Everything hashed is fixed in the published event, so a redelivery keeps the id.
    pub fn id(&self) -> RunId {
        if let Some(run_id) = &self.run_id {
            return run_id.clone();
        }
        let inputs: Vec<&str> = self
            .inputs
            .iter()
            .map(|i| i.upstream.commit_sha.as_str())
            .collect();
        // Without a cause, the moment tells two failures apart.
        let cause = match &self.cause {
            Some(cause) => cause.clone(),
            None => self.failed_at.timestamp_micros().to_string(),
        };
        // `us` failures keep the ids they had before datasets existed.
        let scope = if self.dataset.is_us() {
            self.env.to_string()
        } else {
            format!("{}/{}", self.env, self.dataset)
        };
        let key = format!(
            "{}|{}|{}|{}|{}|{}|{}",
            scope,
            self.stage.as_str(),
            self.kind.as_str(),
            self.source.as_ref().map_or("", Source::as_str),
            self.trigger
                .as_ref()
                .and_then(|t| t.id.as_ref())
                .map_or("", TriggerId::as_str),
            cause,
            inputs.join(","),
        );
        RunId::new(&crate::hash::sha256_hex(key.as_bytes())[..24]).expect("hex digits are a run id")
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Succeeded,
    Failed,
}

/// What became of the email about a run or an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailFate {
    /// It is being sent; an [`EmailReport`] follows on `notify.<env>` when its fate is known.
    Pending,
    /// The mail server accepted it.
    Sent,
    /// The mail server refused it for good.
    Refused,
    /// None was due: no recipients for the env, or the policy says NATS only.
    Skipped,
}

impl EmailFate {
    pub fn as_str(self) -> &'static str {
        match self {
            EmailFate::Pending => "pending",
            EmailFate::Sent => "sent",
            EmailFate::Refused => "refused",
            EmailFate::Skipped => "skipped",
        }
    }
}

/// `notify.<env>`: what people are told about a run; `text` is the email's plain-text part.
/// Published when the run ends, before (and whatever becomes of) its email.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notification {
    pub schema_version: u32,
    pub env: Env,
    #[serde(default = "Dataset::us")]
    pub dataset: Dataset,
    pub run_id: RunId,
    pub status: RunStatus,
    pub subject: String,
    pub text: String,
    #[serde(flatten)]
    pub counts: Counts,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<Stage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<FailureKind>,
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
    /// `pending` when an email is on its way (its [`EmailReport`] follows), `skipped` when none is
    /// due.
    pub email: EmailFate,
    /// Why no email is due although recipients are configured (the policy skipped it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_note: Option<String>,
}

/// `notify.<env>`, after a [`Notification`] or [`StaleAlert`] whose email was pending: what became
/// of that email. Readers tell it apart by `report: "email"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EmailReport {
    pub schema_version: u32,
    /// Always `"email"`.
    pub report: String,
    pub env: Env,
    /// The run (or failure, or alert) the email was about.
    pub about: RunId,
    pub email: EmailFate,
    pub subject: String,
    pub recipients: usize,
    /// The mail server's answer when it refused the email.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_note: Option<String>,
    pub at: DateTime<Utc>,
}

/// `notify.<env>` when a source went stale: its newest upstream commit is older than
/// `STALE_AFTER`. Readers tell it apart from a run's [`Notification`] by `alert: "stale"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleAlert {
    pub schema_version: u32,
    /// Always `"stale"`.
    pub alert: String,
    pub env: Env,
    pub source: Source,
    /// The newest commit seen upstream, the one that is too old.
    pub upstream: UpstreamRef,
    pub age_secs: u64,
    pub stale_after_secs: u64,
    pub subject: String,
    /// The email's plain text.
    pub text: String,
    pub email: EmailFate,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_note: Option<String>,
}

impl StaleAlert {
    /// The alert's identity: one per stale commit of a source.
    pub fn id(&self) -> RunId {
        let key = format!(
            "stale|{}|{}|{}",
            self.env, self.source, self.upstream.commit_sha
        );
        RunId::new(&crate::hash::sha256_hex(key.as_bytes())[..24]).expect("hex digits are a run id")
    }
}

/// `etl.<env>.dead.<stage>` (stream `DEAD`): a message a stage gave up on — malformed, or failed
/// through every delivery. The message itself stays in the `ETL` stream at `stream_sequence`, so
/// `etl dead retry` can publish it again once the cause is fixed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    pub schema_version: u32,
    /// The env of the message's subject; `None` when the subject names no valid env (the dead
    /// letter is then on `etl._.dead.<stage>`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Env>,
    pub stage: Stage,
    /// The durable consumer that gave up.
    pub consumer: String,
    /// The message's subject, as received.
    pub subject: String,
    /// The message's sequence in the `ETL` stream.
    pub stream_sequence: u64,
    pub delivered: u64,
    pub kind: FailureKind,
    pub reason: String,
    pub payload_bytes: u64,
    /// The start of the payload, as text, for a person to look at.
    pub payload_preview: String,
    pub dead_at: DateTime<Utc>,
}

impl DeadLetter {
    /// The most payload kept in [`DeadLetter::payload_preview`].
    pub const PREVIEW_BYTES: usize = 512;

    pub fn preview(payload: &[u8]) -> String {
        let cut = payload.len().min(Self::PREVIEW_BYTES);
        String::from_utf8_lossy(&payload[..cut]).into_owned()
    }
}

/// Body of an `etl.<env>.trigger` request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerRequest {
    #[serde(default)]
    pub force: bool,
    /// Makes a forced run distinct from earlier ones; set by `etl trigger`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<TriggerId>,
}

/// The extractor's answer to a trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerReply {
    pub env: Env,
    /// Sources for which a new payload was extracted (or re-published, when forced).
    pub extracted: Vec<Source>,
    /// The run the trigger started, when one was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<RunId>,
    /// One human sentence: what was checked and what happens next.
    pub message: String,
}

/// Body of an `etl.<env>.progress.<source>` message: how far the download of one upstream file
/// has come. Sent now and then while the extractor downloads (core NATS, not stored), for
/// `etl trigger --wait` to draw a progress bar; losing one loses nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadProgress {
    pub source: Source,
    /// The upstream commit being downloaded.
    pub commit: String,
    pub received_bytes: u64,
    /// The file's size as GitHub reports it.
    pub total_bytes: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loaded_counts_are_flat_fields_in_json() {
        let loaded = Loaded {
            dataset: crate::Dataset::US,
            schema_version: SCHEMA_VERSION,
            env: Env::prod(),
            run_id: RunId::new("r").unwrap(),
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
