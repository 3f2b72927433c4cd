//! `etl status`: the pipeline as NATS sees it — every running service with its counters (NATS
//! micro-service `STATS`), the streams, each stage's durable consumer and its lag, the extractor's
//! sources that are failing or backing off (its per-source trouble in KV) — and the latest run of
//! each env in PostgreSQL.

use std::process::ExitCode;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use shared::nats::{DEAD_STREAM, ETL_STREAM, NOTIFY_STREAM, STATE_BUCKET};
use shared::service::Counters;
use shared::store::TROUBLE_KEY_SUFFIX;

use crate::{Connections, db};

pub async fn run(connections: &Connections) -> anyhow::Result<ExitCode> {
    let client = connections.connect_nats("etl-status").await?;
    print_services(&client).await?;
    let js = async_nats::jetstream::new(client);
    if let Err(err) = print_source_trouble(&js).await {
        println!("extractor sources: state not available ({err})");
    }
    // DEAD's message count is the number of dead letters waiting for `etl dead`.
    for name in [ETL_STREAM, NOTIFY_STREAM, DEAD_STREAM] {
        let mut stream = match js.get_stream(name).await {
            Ok(stream) => stream,
            Err(err) => {
                println!("stream {name}: not available ({err})");
                continue;
            }
        };
        let info = stream.info().await?;
        println!(
            "stream {name}: {} messages, {} bytes",
            info.state.messages, info.state.bytes
        );
        let consumers: Vec<_> = stream.consumers().try_collect().await?;
        for consumer in consumers {
            println!(
                "  consumer {:<28} lag {:>5}  in flight {:>3}  redelivered {:>3}",
                consumer.name,
                consumer.num_pending,
                consumer.num_ack_pending,
                consumer.num_redelivered
            );
        }
    }

    match db::connect(&connections.database_url).await {
        Ok(client) => print_latest_runs(&client).await?,
        Err(err) => println!("PostgreSQL: {err}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn print_latest_runs(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let schemas = client
        .query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'etl_runs' ORDER BY 1",
            &[],
        )
        .await?;
    for schema in schemas {
        let env: String = schema.get(0);
        let sql = format!(
            "SELECT run_id, status, coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') \
             FROM \"{env}\".etl_runs ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST LIMIT 1"
        );
        match client.query_opt(&sql, &[]).await? {
            Some(row) => println!(
                "env {env}: latest run {} {} at {} UTC",
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2)
            ),
            None => println!("env {env}: no runs yet"),
        }
    }
    Ok(())
}

/// Asks every micro-service for its stats and prints the answers that arrive within a moment.
async fn print_services(client: &async_nats::Client) -> anyhow::Result<()> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SRV.STATS", inbox, "".into())
        .await?;
    client.flush().await?;

    let mut services = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(750);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if let Ok(stats) = serde_json::from_slice::<async_nats::service::Stats>(&message.payload) {
            services.push(stats);
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    if services.is_empty() {
        println!("services: none answered (is the pipeline running?)");
    }
    for service in services {
        let counters = service
            .endpoints
            .first()
            .and_then(|endpoint| endpoint.data.clone())
            .and_then(|data| serde_json::from_value::<Counters>(data).ok())
            .unwrap_or_default();
        println!(
            "service {:<12} {} v{}  processed {:>5}  failed {:>3}  redelivered {:>3}",
            service.name,
            service.id,
            service.version,
            counters.processed,
            counters.failed,
            counters.redelivered
        );
    }
    Ok(())
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
async fn print_source_trouble(js: &async_nats::jetstream::Context) -> anyhow::Result<()> {
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
    let mut lines = Vec::new();
    for key in keys {
        // A deleted record (the source works again) reads as none.
        let Some(bytes) = kv.get(key.clone()).await? else {
            continue;
        };
        let Some(source) = key.strip_suffix(&format!(".{TROUBLE_KEY_SUFFIX}")) else {
            continue;
        };
        match serde_json::from_slice::<SourceTrouble>(&bytes) {
            Ok(trouble) => lines.push(describe_trouble(source, &trouble, Utc::now())),
            Err(err) => lines.push(format!("source {source}: unreadable state ({err})")),
        }
    }
    if lines.is_empty() {
        println!("extractor sources: none failing or backing off");
    }
    for line in lines {
        println!("{line}");
    }
    Ok(())
}

/// `source prod.nyt: forbidden since …, backing off until … (in 27 min), reported` and the
/// reason on a second line.
fn describe_trouble(source: &str, t: &SourceTrouble, now: DateTime<Utc>) -> String {
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
    let reported = if t.reported.is_some() {
        ", reported"
    } else {
        ""
    };
    format!(
        "source {source}: {} since {}{checks}{wait}{reported}\n    {}",
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
            describe_trouble("prod.nyt", &trouble, now),
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
        let soon = describe_trouble("test.jhu", &trouble, at(15));
        assert!(soon.contains("(in 45 s)"), "{soon}");
        let line = describe_trouble("test.jhu", &trouble, at(120));
        assert!(
            line.starts_with("source test.jhu: rate_limited since 1970-01-01 00:00:00 UTC, retried with the next poll\n"),
            "{line}"
        );
    }
}
