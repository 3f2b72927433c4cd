//! `etl runs show RUN_ID`: everything known about one run — its row in `etl_runs` (counts,
//! warnings, timings, failure), its events in stream `ETL` in order with the time each was
//! stored (the extractions it was made of, transformed, loaded or failed), the values it changed
//! (`us_daily_changes`), and on `notify.<env>` its notification and what became of its email.
//!
//! The run's events are found by reading the env's subjects of `ETL` and `NOTIFY` from the start
//! with an ordered consumer (both streams keep days, not years, of a few events per run).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::{self, ErrorCode, consumer::pull};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;
use shared::events::{InputRef, Trigger};
use shared::message::{self, Event};
use shared::nats::{ETL_STREAM, NOTIFY_STREAM};
use shared::{Env, subjects};

use crate::runs::one_line;
use crate::{Connections, db, say};

/// How long reading waits for the next stored message the server said is there.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The most change rows shown; `changes_total` counts them all.
pub const MAX_CHANGES: i64 = 1000;

/// `etl runs show --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub env: String,
    pub run_id: String,
    /// The run's row of `etl_runs`, column by column (absent while the run is in flight, or
    /// when it never reached the loader).
    pub run: Option<serde_json::Value>,
    /// Its events in the order the streams stored them.
    pub events: Vec<RunEvent>,
    pub changes: Vec<Change>,
    pub changes_total: i64,
    /// The `notify.<env>` notification about the run.
    pub notification: Option<serde_json::Value>,
    /// What became of its email (the notifier's report).
    pub email: Option<serde_json::Value>,
}

/// One stored event of the run.
#[derive(Debug, Clone, Serialize)]
pub struct RunEvent {
    /// When the stream stored it.
    pub at: DateTime<Utc>,
    pub stream: String,
    pub sequence: u64,
    pub subject: String,
    /// `extracted`, `transformed`, `loaded`, `failed`, `notification`, `email_report`.
    pub kind: String,
    /// One line about it.
    pub summary: String,
    /// The event's body.
    pub event: serde_json::Value,
}

/// One value the run changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Change {
    /// The row's key in a keyed dataset (`Harris, Texas`); `None` for `us`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    pub date: NaiveDate,
    pub field: String,
    pub old: Option<i64>,
    pub new: Option<i64>,
}

impl RunReport {
    /// Whether anything at all is known about the run.
    pub fn found(&self) -> bool {
        self.run.is_some() || !self.events.is_empty()
    }

    /// `succeeded`, `failed`, `superseded`, or `in flight` while no outcome is recorded.
    pub fn status(&self) -> &str {
        if let Some(status) = self
            .run
            .as_ref()
            .and_then(|run| run.get("status"))
            .and_then(|status| status.as_str())
        {
            return status;
        }
        if self.events.iter().any(|event| event.kind == "failed") {
            "failed"
        } else {
            "in flight"
        }
    }
}

pub async fn run(
    connections: &Connections,
    env: &Env,
    run_id: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = collect(connections, env, run_id).await?;
    if !report.found() {
        anyhow::bail!("env {env} has no run {run_id} (see `etl runs --env {env}`)");
    }
    if json {
        crate::output::json(&report);
    } else {
        print(&report);
    }
    Ok(if report.status() == "failed" {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

pub async fn collect(
    connections: &Connections,
    env: &Env,
    run_id: &str,
) -> anyhow::Result<RunReport> {
    let (pg, nats) = tokio::join!(
        connections.connect_db(),
        connections.connect_nats("etl-runs")
    );
    let (pg, nats) = (pg?, nats?);
    let mut report = RunReport {
        env: env.to_string(),
        run_id: run_id.to_owned(),
        run: None,
        events: Vec::new(),
        changes: Vec::new(),
        changes_total: 0,
        notification: None,
        email: None,
    };
    if db::schema_exists(&pg, env).await? {
        let sql = format!("SELECT row_to_json(r) FROM \"{env}\".etl_runs r WHERE run_id = $1");
        report.run = pg
            .query_opt(&sql, &[&run_id])
            .await
            .context("reading etl_runs")?
            .map(|row| row.try_get(0))
            .transpose()?;
        // The changes table of the run's dataset; the key as people write it, most specific
        // part first.
        let dataset = report
            .run
            .as_ref()
            .and_then(|run| run.get("dataset"))
            .and_then(|d| d.as_str())
            .and_then(dataset::keyed::Spec::by_name);
        let (key, table) = match dataset {
            Some(spec) => {
                let parts: Vec<&str> = spec.keys.iter().rev().copied().collect();
                (
                    format!("concat_ws(', ', {})", parts.join(", ")),
                    spec.changes_table,
                )
            }
            None => ("NULL::text".to_owned(), "us_daily_changes"),
        };
        let sql = format!(
            "SELECT date, field, old_value, new_value, count(*) OVER (), {key} \
             FROM \"{env}\".{table} WHERE run_id = $1 ORDER BY date, 6, field LIMIT $2"
        );
        for row in pg
            .query(&sql, &[&run_id, &MAX_CHANGES])
            .await
            .with_context(|| format!("reading {table}"))?
        {
            report.changes_total = row.try_get(4)?;
            report.changes.push(Change {
                key: row.try_get(5)?,
                date: row.try_get(0)?,
                field: row.try_get(1)?,
                old: row.try_get(2)?,
                new: row.try_get(3)?,
            });
        }
    }

    let js = jetstream::new(nats);
    let mut extracted = Vec::new();
    let mut inputs: Option<(Vec<InputRef>, Trigger)> = None;
    for stored in read_stream(&js, ETL_STREAM, format!("etl.{env}.>")).await? {
        let Ok(event) = message::decode(&stored.subject, &stored.payload) else {
            continue;
        };
        let (kind, summary) = match &event {
            Event::Extracted(e) => {
                extracted.push((stored, e.clone()));
                continue;
            }
            Event::Transformed(e) if e.run_id.as_str() == run_id => {
                inputs = Some((e.inputs.clone(), e.trigger.clone()));
                (
                    "transformed",
                    format!(
                        "{} rows from {} to {}, {} warnings",
                        e.rows,
                        e.first_date,
                        e.last_date,
                        e.warnings.len()
                    ),
                )
            }
            Event::Loaded(e) if e.run_id.as_str() == run_id => (
                "loaded",
                format!(
                    "inserted {}, updated {}, unchanged {}, removed {}, revised {}",
                    e.counts.inserted,
                    e.counts.updated,
                    e.counts.unchanged,
                    e.counts.removed,
                    e.counts.revised
                ),
            ),
            Event::Failed(e) if e.run_id.as_ref().is_some_and(|id| id.as_str() == run_id) => (
                "failed",
                format!(
                    "{} failed: {}: {}",
                    e.stage.as_str(),
                    e.kind.as_str(),
                    one_line(&e.reason)
                ),
            ),
            _ => continue,
        };
        report.events.push(RunEvent::of(&stored, kind, summary)?);
    }
    let inputs = inputs.or_else(|| inputs_of_row(report.run.as_ref()));
    if let Some((inputs, trigger)) = inputs {
        for (stored, event) in extracted {
            if is_input(&event, &inputs, &trigger) {
                let summary = format!(
                    "{} at {} ({} bytes)",
                    event.source, event.upstream.commit_sha, event.object.bytes
                );
                report
                    .events
                    .push(RunEvent::of(&stored, "extracted", summary)?);
            }
        }
    }

    for stored in read_stream(&js, NOTIFY_STREAM, subjects::notify(env)).await? {
        let Ok(event) = message::decode(&stored.subject, &stored.payload) else {
            continue;
        };
        match &event {
            Event::Notification(n) if n.run_id.as_str() == run_id => {
                let summary = format!("{} (email {})", n.subject, n.email.as_str());
                let entry = RunEvent::of(&stored, "notification", summary)?;
                report.notification = Some(entry.event.clone());
                report.events.push(entry);
            }
            Event::EmailReport(e) if e.about.as_str() == run_id => {
                let mut summary = format!(
                    "email {} to {} recipient(s)",
                    e.email.as_str(),
                    e.recipients
                );
                if let Some(note) = &e.email_note {
                    summary.push_str(": ");
                    summary.push_str(&one_line(note));
                }
                let entry = RunEvent::of(&stored, "email_report", summary)?;
                report.email = Some(entry.event.clone());
                report.events.push(entry);
            }
            _ => {}
        }
    }
    report
        .events
        .sort_by(|a, b| a.at.cmp(&b.at).then(a.sequence.cmp(&b.sequence)));
    Ok(report)
}

/// The inputs and trigger recorded in the run's row, when its transformed event is gone.
fn inputs_of_row(run: Option<&serde_json::Value>) -> Option<(Vec<InputRef>, Trigger)> {
    let run = run?;
    let inputs = serde_json::from_value(run.get("inputs")?.clone()).ok()?;
    let trigger = serde_json::from_value(run.get("trigger")?.clone()).ok()?;
    Some((inputs, trigger))
}

/// Whether an extraction is one of the run's inputs: the same payload at the same commit, and
/// for a forced run the same trigger (each forced run re-publishes its inputs).
fn is_input(event: &shared::events::Extracted, inputs: &[InputRef], trigger: &Trigger) -> bool {
    let same_payload = inputs.iter().any(|input| {
        input.source == event.source
            && input.object.sha256 == event.object.sha256
            && input.upstream.commit_sha == event.upstream.commit_sha
    });
    let same_trigger = if trigger.force {
        event.trigger.id == trigger.id
    } else {
        !event.trigger.force
    };
    same_payload && same_trigger
}

impl RunEvent {
    fn of(stored: &Stored, kind: &str, summary: String) -> anyhow::Result<Self> {
        Ok(Self {
            at: stored.at,
            stream: stored.stream.to_owned(),
            sequence: stored.sequence,
            subject: stored.subject.clone(),
            kind: kind.to_owned(),
            summary,
            event: serde_json::from_slice(&stored.payload)?,
        })
    }
}

/// A message as a stream stored it.
#[derive(Debug, Clone)]
pub struct Stored {
    pub stream: &'static str,
    pub sequence: u64,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub payload: bytes::Bytes,
}

/// Every message of `stream` on `filter`, oldest first (none when the stream does not exist).
pub async fn read_stream(
    js: &jetstream::Context,
    stream: &'static str,
    filter: String,
) -> anyhow::Result<Vec<Stored>> {
    let handle = match js.get_stream(stream).await {
        Ok(handle) => handle,
        // Declared by every service at start: none has run yet, so there are no events.
        Err(err)
            if matches!(err.kind(), GetStreamErrorKind::JetStream(e)
                if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(Vec::new());
        }
        Err(err) => return Err(err).with_context(|| format!("reading stream {stream}")),
    };
    let consumer = handle
        .create_consumer(pull::OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .with_context(|| format!("reading stream {stream}"))?;
    let mut pending = consumer.cached_info().num_pending;
    let mut stored = Vec::new();
    if pending == 0 {
        return Ok(stored);
    }
    let mut messages = consumer.messages().await?;
    while pending > 0 {
        let message = match tokio::time::timeout(READ_TIMEOUT, messages.next()).await {
            Ok(Some(message)) => message.map_err(|err| anyhow::anyhow!(err))?,
            Ok(None) => anyhow::bail!("reading stream {stream}: the ordered consumer ended"),
            // Messages removed while we read (an env cleaned up) are counted but never come.
            Err(_) => break,
        };
        let info = message.info().map_err(|err| anyhow::anyhow!(err))?;
        pending = info.pending;
        let at =
            DateTime::from_timestamp(info.published.unix_timestamp(), info.published.nanosecond())
                .unwrap_or_default();
        stored.push(Stored {
            stream,
            sequence: info.stream_sequence,
            at,
            subject: message.subject.to_string(),
            payload: message.payload.clone(),
        });
    }
    Ok(stored)
}

fn print(report: &RunReport) {
    say!(
        "run {} in env {}: {}",
        report.run_id,
        report.env,
        report.status()
    );
    if let Some(run) = report.run.as_ref().and_then(|run| run.as_object()) {
        // The row's columns in the table's order, the bulky ones below.
        for (column, value) in run {
            if matches!(
                column.as_str(),
                "run_id" | "inputs" | "warnings" | "timings" | "dropped"
            ) || value.is_null()
            {
                continue;
            }
            let text = match value {
                serde_json::Value::String(text) => one_line(text),
                other => other.to_string(),
            };
            say!("  {column:<18} {text}");
        }
        if let Some(timings) = run.get("timings").and_then(|t| t.as_array()) {
            let steps: Vec<String> = timings
                .iter()
                .filter_map(|step| {
                    let step = step.as_array()?;
                    Some(format!("{} {} ms", step.first()?.as_str()?, step.get(1)?))
                })
                .collect();
            if !steps.is_empty() {
                say!("  {:<18} {}", "timings", steps.join(", "));
            }
        }
        if let Some(warnings) = run.get("warnings").and_then(|w| w.as_array()) {
            for warning in warnings {
                say!("  warning: {}", warning.as_str().unwrap_or_default());
            }
        }
    } else {
        say!("  (no row in {}.etl_runs yet)", report.env);
    }
    say!("events:");
    let first = report.events.first().map(|event| event.at);
    for event in &report.events {
        let elapsed = first
            .map(|first| (event.at - first).num_milliseconds() as f64 / 1000.0)
            .unwrap_or_default();
        say!(
            "  {}  +{elapsed:>7.3}s  {:<12} {}",
            event.at.format("%Y-%m-%d %H:%M:%S%.3f"),
            event.kind,
            event.summary
        );
    }
    if report.changes_total > 0 {
        say!("changes ({}):", report.changes_total);
        let show = |v: Option<i64>| v.map_or_else(|| "not reported".to_owned(), |v| v.to_string());
        for change in &report.changes {
            let key = change
                .key
                .as_ref()
                .map_or_else(String::new, |key| format!("{key}  "));
            say!(
                "  {key}{} {}: {} -> {}",
                change.date,
                change.field,
                show(change.old),
                show(change.new)
            );
        }
        if report.changes_total > report.changes.len() as i64 {
            say!(
                "  … and {} more",
                report.changes_total - report.changes.len() as i64
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::events::{ObjectRef, SCHEMA_VERSION, TriggerKind, UpstreamRef};
    use shared::ids::{CommitSha, Digest, TriggerId};
    use shared::source::Source;

    fn extracted(sha: &str, trigger: Trigger) -> shared::events::Extracted {
        shared::events::Extracted {
            dataset: shared::Dataset::US,
            dataset_sources: Vec::new(),
            schema_version: SCHEMA_VERSION,
            env: Env::prod(),
            source: Source::NYT,
            upstream: UpstreamRef {
                repo: "r".into(),
                path: "p".into(),
                commit_sha: CommitSha::new("a".repeat(40)).unwrap(),
                commit_time: DateTime::from_timestamp(0, 0).unwrap(),
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: "n".into(),
                sha256: Digest::of(sha.as_bytes()),
                bytes: 1,
            },
            trigger,
            fetched_at: DateTime::from_timestamp(0, 0).unwrap(),
        }
    }

    #[test]
    fn an_extraction_is_an_input_only_with_its_payload_and_trigger() {
        let commit = Trigger::new(TriggerKind::Commit);
        let forced = Trigger::forced(TriggerKind::Manual, TriggerId::new("t1").unwrap());
        let event = extracted("x", commit.clone());
        let inputs = vec![InputRef {
            source: Source::NYT,
            upstream: event.upstream.clone(),
            object: event.object.clone(),
        }];
        assert!(is_input(&event, &inputs, &commit));
        assert!(!is_input(&extracted("y", commit.clone()), &inputs, &commit));
        // A forced run's inputs are its own re-publication, not the first extraction.
        assert!(!is_input(&event, &inputs, &forced));
        assert!(is_input(&extracted("x", forced.clone()), &inputs, &forced));
        assert!(!is_input(&extracted("x", forced), &inputs, &commit));
    }
}
