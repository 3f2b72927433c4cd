//! `etl smoke`: proves a running stack works end to end, after the smoke test of the original
//! challenge write-up. In env `test`, with a few lines of dummy data, it
//!
//! 1. removes whatever an earlier smoke run left behind (so a failed run cannot spoil the next),
//! 2. subscribes to `notify.test` *before* starting the run,
//! 3. stores the dummy payloads and publishes them as extracted, exactly as the extractor does,
//! 4. waits for the run's notification and checks it (succeeded, 3 new days) and the table,
//! 5. reports what became of the run's email when the notifier says so in time (an email is not
//!    needed to pass: the stack may have no recipients, or a slow mail server),
//! 6. removes its test data again, and reports.
//!
//! Each smoke run is a forced run with its own id, so repeating it is never mistaken for a
//! duplicate of the previous one.

use std::collections::HashMap;
use std::process::ExitCode;
use std::time::Duration;

use futures::StreamExt;
use shared::events::{
    EmailFate, EmailReport, Extracted, Notification, RunStatus, SCHEMA_VERSION, Trigger,
    TriggerKind, UpstreamRef,
};
use shared::ids::{CommitSha, Digest, RunId};
use shared::message::{self, Event};
use shared::nats::{RAW_BUCKET, Stores};
use shared::{Env, Source, run_id, store, subjects};

use crate::{Connections, db, say};

/// The env the smoke test runs in; nothing else uses it.
pub const SMOKE_ENV: &str = "test";

/// Three NYT days…
pub const DUMMY_NYT: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,1,0\n2020-01-24,2,0\n";
/// …and JHU's US rows for the same days, with another country's row that must be ignored.
pub const DUMMY_JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-01-22,Afghanistan,,0,0,0\n2020-01-22,US,,1,0,0\n2020-01-23,US,,1,0,0\n2020-01-24,US,,2,0,0\n";
pub const EXPECTED_DAYS: u64 = 3;

/// What happened, step by step.
#[derive(Debug, Default)]
pub struct SmokeReport {
    pub steps: Vec<String>,
    pub notification: Option<Notification>,
    /// What became of the run's email, when the notifier reported it within the timeout.
    pub email: Option<EmailReport>,
    pub failure: Option<String>,
}

impl SmokeReport {
    pub fn passed(&self) -> bool {
        self.failure.is_none()
    }
}

/// Prints the report (as one JSON document with `json`) and turns it into the exit code.
pub fn print(report: &SmokeReport, json: bool) -> ExitCode {
    if json {
        crate::output::json(&serde_json::json!({
            "passed": report.passed(),
            "steps": report.steps,
            "failure": report.failure,
            "notification": report.notification,
            "email": report.email,
        }));
    } else {
        for step in &report.steps {
            say!("smoke: {step}");
        }
        if let Some(notification) = &report.notification {
            say!("\n{}\n\n{}", notification.subject, notification.text);
        }
        match &report.failure {
            None => say!("smoke: PASSED"),
            Some(reason) => say!("smoke: FAILED: {reason}"),
        }
    }
    if report.passed() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

pub async fn run(connections: &Connections, timeout: Duration) -> SmokeReport {
    let mut report = SmokeReport::default();
    let env = Env::new(SMOKE_ENV).expect("the smoke env name is valid");
    let outcome = async {
        let client = connections.connect_nats("etl-smoke").await?;
        let stores = shared::nats::setup(client.clone(), connections.nats.replicas).await?;
        let pg = connections.connect_db().await?;

        clean_up(&stores, &pg, &env).await?;
        report.steps.push(format!("cleared env {env}"));

        let result = exercise(&client, &stores, &pg, &env, timeout, &mut report).await;
        // Clean up whatever the outcome, so the next smoke run starts from nothing.
        let cleaned = clean_up(&stores, &pg, &env).await;
        result?;
        cleaned?;
        report
            .steps
            .push(format!("removed the test data of env {env}"));
        anyhow::Ok(())
    }
    .await;
    if let Err(err) = outcome {
        report.failure = Some(format!("{err:#}"));
    }
    report
}

async fn exercise(
    client: &async_nats::Client,
    stores: &Stores,
    pg: &tokio_postgres::Client,
    env: &Env,
    timeout: Duration,
    report: &mut SmokeReport,
) -> anyhow::Result<()> {
    let mut messages = client.subscribe(subjects::notify(env)).await?;
    client.flush().await?;
    report
        .steps
        .push(format!("subscribed to {}", subjects::notify(env)));

    let trigger = Trigger::forced(TriggerKind::Smoke, crate::trigger::new_trigger_id());
    let nyt = publish_dummy(stores, env, Source::NYT, DUMMY_NYT, &trigger).await?;
    let jhu = publish_dummy(stores, env, Source::JHU, DUMMY_JHU, &trigger).await?;
    let run_id = run_id::of_inputs(env, &nyt, &jhu, &trigger);
    report.steps.push(format!(
        "published dummy NYT and JHU payloads; waiting for run {run_id}"
    ));

    let deadline = tokio::time::Instant::now() + timeout;
    let notification = loop {
        let Some(event) = next_event(&mut messages, deadline).await? else {
            anyhow::bail!(
                "no notification for run {run_id} on notify.{env} within {timeout:?}: are the transformer, loader and notifier running?"
            );
        };
        match event {
            Event::Notification(notification) if notification.run_id == run_id => {
                break *notification;
            }
            _ => continue,
        }
    };
    report.notification = Some(notification.clone());
    report.steps.push(format!(
        "received the notification: {}",
        notification.subject
    ));

    if notification.status != RunStatus::Succeeded {
        anyhow::bail!(
            "the run failed: {}",
            notification.reason.as_deref().unwrap_or("no reason given")
        );
    }
    if notification.counts.inserted != EXPECTED_DAYS {
        anyhow::bail!(
            "the run inserted {} days, expected {EXPECTED_DAYS}",
            notification.counts.inserted
        );
    }
    let stored = db::stored_rows(pg, env).await?;
    if stored.len() as u64 != EXPECTED_DAYS {
        anyhow::bail!(
            "{env}.us_daily holds {} rows, expected {EXPECTED_DAYS}",
            stored.len()
        );
    }
    report.steps.push(format!(
        "{env}.us_daily holds the {EXPECTED_DAYS} expected days"
    ));

    report.steps.push(match notification.email {
        EmailFate::Pending => match wait_email(&mut messages, &run_id, deadline).await? {
            Some(email) => {
                let step = describe_email(&email);
                report.email = Some(email);
                step
            }
            None => format!("the run's email was still being sent after {timeout:?}"),
        },
        fate => format!("email: {} (no email was due)", fate.as_str()),
    });
    Ok(())
}

/// The next event on `notify.<env>` before `deadline`, `None` past it. A message that does not
/// decode is skipped: it is not the one awaited.
async fn next_event(
    messages: &mut async_nats::Subscriber,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<Event>> {
    loop {
        let message = match tokio::time::timeout_at(deadline, messages.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => anyhow::bail!("the NATS subscription ended"),
            Err(_) => return Ok(None),
        };
        match message::decode(&message.subject, &message.payload) {
            Ok(event) => return Ok(Some(event)),
            Err(err) => tracing::debug!(error = %err, "skipping a message that does not decode"),
        }
    }
}

/// The report on the email about `run_id`, if it comes before `deadline`.
async fn wait_email(
    messages: &mut async_nats::Subscriber,
    run_id: &RunId,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Option<EmailReport>> {
    while let Some(event) = next_event(messages, deadline).await? {
        if let Event::EmailReport(email) = event
            && email.about == *run_id
        {
            return Ok(Some(*email));
        }
    }
    Ok(None)
}

fn describe_email(email: &EmailReport) -> String {
    let mut line = format!(
        "email: {} ({} recipient{})",
        email.email.as_str(),
        email.recipients,
        if email.recipients == 1 { "" } else { "s" }
    );
    if let Some(note) = &email.email_note {
        line.push_str(": ");
        line.push_str(note);
    }
    line
}

async fn publish_dummy(
    stores: &Stores,
    env: &Env,
    source: Source,
    content: &str,
    trigger: &Trigger,
) -> anyhow::Result<Extracted> {
    let sha256 = Digest::of(content.as_bytes());
    let location = source
        .default_location()
        .expect("the smoke test's sources are NYT and JHU");
    // A commit id must be hex; the payload's own digest stands in for the commit it was read at.
    let commit_sha = CommitSha::new(&sha256.as_str()[..40])?;
    let now = chrono::Utc::now();
    let metadata = HashMap::from([
        ("repo".to_owned(), "smoke-test".to_owned()),
        ("path".to_owned(), location.path.clone()),
        ("commit_sha".to_owned(), commit_sha.to_string()),
        ("commit_time".to_owned(), now.to_rfc3339()),
        ("fetched_at".to_owned(), now.to_rfc3339()),
    ]);
    let name = store::raw_object_name(env, &source, &sha256);
    let object =
        store::put_object(&stores.raw, RAW_BUCKET, &name, content.as_bytes(), metadata).await?;
    let event = Extracted {
        dataset: shared::Dataset::US,
        dataset_sources: Vec::new(),
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        source,
        upstream: UpstreamRef {
            repo: "smoke-test".to_owned(),
            path: location.path,
            commit_sha,
            commit_time: now,
            covered_commits: Vec::new(),
        },
        object,
        trigger: trigger.clone(),
        fetched_at: now,
    };
    store::record_extracted(stores, &event).await?;
    Ok(event)
}

/// Removes everything env `test` holds: its rows, its events, its KV keys and its objects. Nothing
/// of any other env is touched: every name involved carries the env.
pub async fn clean_up(
    stores: &Stores,
    pg: &tokio_postgres::Client,
    env: &Env,
) -> anyhow::Result<()> {
    if db::schema_exists(pg, env).await? {
        // Rows only: the schema and its migrations stay, as the loader expects them.
        pg.batch_execute(&format!(
            "BEGIN; DELETE FROM \"{env}\".us_daily_changes; DELETE FROM \"{env}\".us_daily; DELETE FROM \"{env}\".etl_runs; COMMIT;"
        ))
        .await?;
    }
    // Its events, keys and objects too, so that a consumer created later for all envs does not
    // replay them. The services' consumers stay: they are running.
    shared::cleanup::purge_env(stores, env).await?;
    Ok(())
}
