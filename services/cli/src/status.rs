//! `etl status`: the pipeline as NATS sees it — every running service with its counters (NATS
//! micro-service `STATS`), the streams, each stage's durable consumer and its lag, the extractor's
//! sources that are failing or backing off (its per-source trouble in KV) — and the latest run of
//! each env in PostgreSQL.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use shared::nats::{DEAD_STREAM, ETL_STREAM, NOTIFY_STREAM, STATE_BUCKET};
use shared::service::Counters;
use shared::store::TROUBLE_KEY_SUFFIX;

use crate::exit::{self, Unreachable};
use crate::{Connections, say};

/// Everything `etl status` found; `--json` prints it as is (`services/cli/schema/status.schema.json`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct StatusReport {
    /// No problem: NATS and PostgreSQL answer, every expected service answers, every stream is
    /// there.
    pub healthy: bool,
    /// What makes it unhealthy, one sentence each.
    pub problems: Vec<String>,
    /// Worth a look, but not unhealthy: failing sources, latest runs that failed.
    pub warnings: Vec<String>,
    pub nats: Component,
    pub postgres: Component,
    pub services: Vec<ServiceStatus>,
    /// Expected services (`--expect`) that did not answer.
    pub missing_services: Vec<String>,
    pub sources: Vec<SourceStatus>,
    pub streams: Vec<StreamStatus>,
    pub envs: Vec<EnvStatus>,
}

/// NATS or PostgreSQL.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Component {
    pub reachable: bool,
    /// Where it was looked for (no credentials).
    pub address: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ServiceStatus {
    pub name: String,
    pub id: String,
    pub version: String,
    pub processed: u64,
    pub failed: u64,
    pub redelivered: u64,
}

#[derive(Debug, Clone, Serialize)]
pub struct SourceStatus {
    /// `<env>.<source>`.
    pub source: String,
    pub kind: String,
    pub reason: String,
    pub since: DateTime<Utc>,
    pub failures: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    pub reported: bool,
}

impl SourceStatus {
    /// What the extractor keeps in KV about a failing `source`, as `etl status` shows it.
    fn of(source: &str, t: SourceTrouble) -> SourceStatus {
        SourceStatus {
            source: source.to_owned(),
            kind: t.kind,
            reason: t.reason,
            since: t.since,
            failures: t.failures,
            until: t.until,
            reported: t.reported.is_some(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StreamStatus {
    pub name: String,
    pub available: bool,
    pub messages: u64,
    pub bytes: u64,
    pub consumers: Vec<ConsumerStatus>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ConsumerStatus {
    pub name: String,
    /// Messages not yet delivered (`num_pending`).
    pub lag: u64,
    pub in_flight: usize,
    pub redelivered: usize,
}

#[derive(Debug, Clone, Serialize)]
pub struct EnvStatus {
    pub env: String,
    /// The env's latest run, of any dataset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latest_run: Option<LatestRun>,
    /// The latest run of each dataset, by dataset name.
    pub latest_runs: Vec<LatestRun>,
}

#[derive(Debug, Clone, Serialize)]
pub struct LatestRun {
    pub run_id: String,
    pub dataset: String,
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<DateTime<Utc>>,
}

impl StatusReport {
    /// 0 healthy, 1 unhealthy, 3 when NATS or PostgreSQL cannot be reached.
    pub fn exit_code(&self) -> u8 {
        if !self.nats.reachable || !self.postgres.reachable {
            exit::UNREACHABLE
        } else if self.healthy {
            exit::OK
        } else {
            exit::FAILED
        }
    }
}

pub async fn run(
    connections: &Connections,
    expect: &[String],
    json: bool,
) -> anyhow::Result<ExitCode> {
    let report = collect(connections, expect).await;
    if json {
        crate::output::json(&report);
    } else {
        print(&report);
    }
    Ok(ExitCode::from(report.exit_code()))
}

/// Asks NATS and PostgreSQL (at the same time, each within the connect timeout) and judges.
pub async fn collect(connections: &Connections, expect: &[String]) -> StatusReport {
    let mut report = StatusReport {
        nats: Component {
            address: shared::nats::redact_url(&connections.nats.url),
            ..Component::default()
        },
        postgres: Component {
            address: crate::db::target(connections.database_url.config()),
            ..Component::default()
        },
        ..StatusReport::default()
    };
    let (nats, postgres) = tokio::join!(
        connections.connect_nats("etl-status"),
        connections.connect_db()
    );
    match nats {
        Ok(client) => {
            report.nats.reachable = true;
            if let Err(err) = nats_status(&client, expect, &mut report).await {
                report.problems.push(format!(
                    "NATS: could not read the pipeline's state: {err:#}"
                ));
            }
        }
        Err(err) => {
            // A server that answers and refuses (an unknown key, say) is up: unhealthy, not 3.
            report.nats.reachable = err.downcast_ref::<Unreachable>().is_none();
            report.problems.push(problem("NATS", &err));
            report.nats.error = Some(format!("{err:#}"));
        }
    }
    match postgres {
        Ok(client) => {
            report.postgres.reachable = true;
            if let Err(err) = latest_runs(&client, &mut report).await {
                report
                    .problems
                    .push(format!("PostgreSQL: could not read the runs: {err:#}"));
            }
        }
        Err(err) => {
            report.postgres.reachable = err.downcast_ref::<Unreachable>().is_none();
            report.problems.push(problem("PostgreSQL", &err));
            report.postgres.error = Some(format!("{err:#}"));
        }
    }
    report.healthy = report.problems.is_empty();
    report
}

/// One line about a connection to `what` that failed: down, or up and refusing.
fn problem(what: &str, err: &anyhow::Error) -> String {
    match err.downcast_ref::<Unreachable>() {
        Some(Unreachable::Nats { reason, .. } | Unreachable::Postgres { reason, .. }) => {
            format!("{what} is down: {reason}")
        }
        None => format!("{what} refused the connection: {err:#}"),
    }
}

async fn nats_status(
    client: &async_nats::Client,
    expect: &[String],
    report: &mut StatusReport,
) -> anyhow::Result<()> {
    report.services = services(client).await?;
    for name in expect.iter().filter(|name| !name.trim().is_empty()) {
        if !report.services.iter().any(|s| &s.name == name) {
            report.missing_services.push(name.clone());
            report
                .problems
                .push(format!("service {name} does not answer"));
        }
    }
    let js = async_nats::jetstream::new(client.clone());
    match source_trouble(&js).await {
        Ok(sources) => report.sources = sources,
        Err(err) => report
            .warnings
            .push(format!("extractor sources: state not available ({err})")),
    }
    for source in &report.sources {
        report.warnings.push(format!(
            "source {} is failing: {} ({})",
            source.source, source.kind, source.reason
        ));
    }
    // DEAD's message count is the number of dead letters waiting for `etl dead`.
    for name in [ETL_STREAM, NOTIFY_STREAM, DEAD_STREAM] {
        let status = match stream_status(&js, name).await {
            Ok(status) => status,
            Err(err) => {
                report
                    .problems
                    .push(format!("stream {name} is not available ({err})"));
                StreamStatus {
                    name: name.to_owned(),
                    available: false,
                    messages: 0,
                    bytes: 0,
                    consumers: Vec::new(),
                    error: Some(err.to_string()),
                }
            }
        };
        report.streams.push(status);
    }
    Ok(())
}

async fn stream_status(
    js: &async_nats::jetstream::Context,
    name: &str,
) -> Result<StreamStatus, async_nats::Error> {
    let mut stream = js.get_stream(name).await?;
    let info = stream.info().await?;
    let (messages, bytes) = (info.state.messages, info.state.bytes);
    let consumers: Vec<_> = stream.consumers().try_collect().await?;
    Ok(StreamStatus {
        name: name.to_owned(),
        available: true,
        messages,
        bytes,
        consumers: consumers
            .into_iter()
            .map(|consumer| ConsumerStatus {
                name: consumer.name,
                lag: consumer.num_pending,
                in_flight: consumer.num_ack_pending,
                redelivered: consumer.num_redelivered,
            })
            .collect(),
        error: None,
    })
}

async fn latest_runs(
    client: &tokio_postgres::Client,
    report: &mut StatusReport,
) -> anyhow::Result<()> {
    let schemas = client
        .query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'etl_runs' ORDER BY 1",
            &[],
        )
        .await?;
    for schema in schemas {
        let env: String = schema.get(0);
        // The schema name is an env's (validated by the loader when it made it); quoted anyway.
        let sql = format!(
            "SELECT DISTINCT ON (of_dataset) run_id, of_dataset, status, finished_at \
             FROM (SELECT run_id, status, started_at, finished_at, \
                          coalesce(to_jsonb(r)->>'dataset', 'us') AS of_dataset \
                   FROM \"{}\".etl_runs r) runs \
             ORDER BY of_dataset, coalesce(finished_at, started_at) DESC NULLS LAST",
            env.replace('"', "\"\"")
        );
        let latest_runs: Vec<LatestRun> = client
            .query(&sql, &[])
            .await?
            .iter()
            .map(|row| LatestRun {
                run_id: row.get(0),
                dataset: row.get(1),
                status: row.get(2),
                finished_at: row.get(3),
            })
            .collect();
        for run in latest_runs.iter().filter(|run| run.status == "failed") {
            report.warnings.push(format!(
                "env {env}: the latest {} run {} failed",
                run.dataset, run.run_id
            ));
        }
        let latest_run = latest_runs
            .iter()
            .max_by_key(|run| run.finished_at)
            .cloned();
        report.envs.push(EnvStatus {
            env,
            latest_run,
            latest_runs,
        });
    }
    Ok(())
}

fn print(report: &StatusReport) {
    if report.healthy {
        say!("status: healthy");
    } else {
        say!("status: UNHEALTHY: {}", report.problems.join("; "));
    }
    say!(
        "NATS {}: {}",
        report.nats.address,
        if report.nats.reachable { "up" } else { "DOWN" }
    );
    say!(
        "PostgreSQL {}: {}",
        report.postgres.address,
        if report.postgres.reachable {
            "up"
        } else {
            "DOWN"
        }
    );
    if report.nats.reachable {
        if report.services.is_empty() {
            say!("services: none answered (is the pipeline running?)");
        }
        for service in &report.services {
            say!(
                "service {:<12} {} v{}  processed {:>5}  failed {:>3}  redelivered {:>3}",
                service.name,
                service.id,
                service.version,
                service.processed,
                service.failed,
                service.redelivered
            );
        }
        for name in &report.missing_services {
            say!("service {name:<12} NOT ANSWERING");
        }
        if report.sources.is_empty() {
            say!("extractor sources: none failing or backing off");
        }
        for source in &report.sources {
            say!("{}", describe_trouble(source, Utc::now()));
        }
        for stream in &report.streams {
            match &stream.error {
                Some(err) => say!("stream {}: not available ({err})", stream.name),
                None => say!(
                    "stream {}: {} messages, {} bytes",
                    stream.name,
                    stream.messages,
                    stream.bytes
                ),
            }
            for consumer in &stream.consumers {
                say!(
                    "  consumer {:<28} lag {:>5}  in flight {:>3}  redelivered {:>3}",
                    consumer.name,
                    consumer.lag,
                    consumer.in_flight,
                    consumer.redelivered
                );
            }
        }
    }
    for env in &report.envs {
        if env.latest_runs.is_empty() {
            say!("env {}: no runs yet", env.env);
        }
        for run in &env.latest_runs {
            say!(
                "env {}: latest {} run {} {} at {} UTC",
                env.env,
                run.dataset,
                run.run_id,
                run.status,
                run.finished_at
                    .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_default()
            );
        }
    }
}

/// Asks every micro-service for its stats; the answers that arrive within a moment.
async fn services(client: &async_nats::Client) -> anyhow::Result<Vec<ServiceStatus>> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SRV.STATS", inbox, "".into())
        .await?;
    client.flush().await?;

    let mut services = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(750);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        let Ok(stats) = serde_json::from_slice::<async_nats::service::Stats>(&message.payload)
        else {
            continue;
        };
        let counters = stats
            .endpoints
            .first()
            .and_then(|endpoint| endpoint.data.clone())
            .and_then(|data| serde_json::from_value::<Counters>(data).ok())
            .unwrap_or_default();
        services.push(ServiceStatus {
            name: stats.name,
            id: stats.id,
            version: stats.version,
            processed: counters.processed,
            failed: counters.failed,
            redelivered: counters.redelivered,
        });
    }
    services.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    Ok(services)
}

/// What the extractor keeps in `etl-state` under `<env>.<source>.trouble` while a source fails
/// (its `trouble.rs`); only the fields shown here.
#[derive(Debug, Deserialize)]
struct SourceTrouble {
    kind: String,
    reason: String,
    since: DateTime<Utc>,
    failures: u32,
    #[serde(default)]
    until: Option<DateTime<Utc>>,
    #[serde(default)]
    reported: Option<serde_json::Value>,
}

/// Every source the extractor holds off or sees failing, in every env.
async fn source_trouble(js: &async_nats::jetstream::Context) -> anyhow::Result<Vec<SourceStatus>> {
    let kv = js.get_key_value(STATE_BUCKET).await?;
    // Listed by subject, so only these records are read, however many keys the bucket holds.
    let prefix = format!("$KV.{STATE_BUCKET}.");
    let stream = js.get_stream(format!("KV_{STATE_BUCKET}")).await?;
    let subjects: Vec<(String, usize)> = stream
        .info_with_subjects(format!("{prefix}*.*.{TROUBLE_KEY_SUFFIX}"))
        .await?
        .try_collect()
        .await?;
    let mut keys: Vec<String> = subjects
        .into_iter()
        .filter_map(|(subject, _)| subject.strip_prefix(&prefix).map(str::to_owned))
        .collect();
    keys.sort();
    let mut sources = Vec::new();
    for key in keys {
        // A deleted record (the source works again) reads as none.
        let Some(bytes) = kv.get(key.clone()).await? else {
            continue;
        };
        let Some(source) = key.strip_suffix(&format!(".{TROUBLE_KEY_SUFFIX}")) else {
            continue;
        };
        let status = match serde_json::from_slice::<SourceTrouble>(&bytes) {
            Ok(t) => SourceStatus::of(source, t),
            Err(err) => SourceStatus {
                source: source.to_owned(),
                kind: "unreadable".to_owned(),
                reason: format!("unreadable state ({err})"),
                since: Utc::now(),
                failures: 0,
                until: None,
                reported: false,
            },
        };
        sources.push(status);
    }
    Ok(sources)
}

/// `source prod.nyt: forbidden since …, backing off until … (in 27 min), reported` and the
/// reason on a second line.
fn describe_trouble(t: &SourceStatus, now: DateTime<Utc>) -> String {
    let time = |at: DateTime<Utc>| at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let checks = match t.failures {
        0 => String::new(),
        1 => ", 1 failed check".to_owned(),
        n => format!(", {n} failed checks in a row"),
    };
    let wait = match t.until {
        Some(until) if until > now => {
            let seconds = (until - now).num_seconds();
            let left = if seconds < 60 {
                format!("{seconds} s")
            } else {
                // Rounded up; `i64::div_ceil` is not stable.
                format!("{} min", (seconds + 59) / 60)
            };
            format!(", backing off until {} (in {left})", time(until))
        }
        _ => ", retried with the next poll".to_owned(),
    };
    let reported = if t.reported { ", reported" } else { "" };
    format!(
        "source {}: {} since {}{checks}{wait}{reported}\n    {}",
        t.source,
        t.kind,
        time(t.since),
        t.reason
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    #[test]
    fn a_backing_off_source_says_until_when_and_why() {
        let trouble: SourceTrouble = serde_json::from_str(
            r#"{"kind":"forbidden","reason":"GitHub refused access to nytimes/covid-19-data","since":"2026-03-01T10:00:00Z","failures":2,"until":"2026-03-01T10:30:00Z","reported":{"kind":"forbidden","at":"2026-03-01T10:00:00Z"}}"#,
        )
        .unwrap();
        let now = "2026-03-01T10:03:30Z".parse().unwrap();
        assert_eq!(
            describe_trouble(&SourceStatus::of("prod.nyt", trouble), now),
            "source prod.nyt: forbidden since 2026-03-01 10:00:00 UTC, 2 failed checks in a row, \
             backing off until 2026-03-01 10:30:00 UTC (in 27 min), reported\n    \
             GitHub refused access to nytimes/covid-19-data"
        );
    }

    #[test]
    fn a_back_off_that_is_over_or_absent_waits_for_the_next_poll() {
        let trouble = SourceTrouble {
            kind: "rate_limited".into(),
            reason: "GitHub's rate limit holds every request".into(),
            since: at(0),
            failures: 0,
            until: Some(at(60)),
            reported: None,
        };
        let trouble = SourceStatus::of("test.jhu", trouble);
        let soon = describe_trouble(&trouble, at(15));
        assert!(soon.contains("(in 45 s)"), "{soon}");
        let line = describe_trouble(&trouble, at(120));
        assert!(
            line.starts_with("source test.jhu: rate_limited since 1970-01-01 00:00:00 UTC, retried with the next poll\n"),
            "{line}"
        );
    }
}
