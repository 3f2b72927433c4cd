//! `etl smoke`: proves a running stack works end to end, after the smoke test of the original
//! challenge write-up. In env `test`, with a few lines of dummy data of one dataset, it
//!
//! 1. removes whatever an earlier smoke run left behind (so a failed run cannot spoil the next),
//! 2. subscribes to `notify.test` *before* starting the run,
//! 3. stores the dummy payloads and publishes them as extracted, exactly as the extractor does,
//! 4. waits for the run's notification and checks it (succeeded, the rows it must have inserted)
//!    and the dataset's table,
//! 5. reports what became of the run's email when the notifier says so in time (an email is not
//!    needed to pass: the stack may have no recipients, or a slow mail server),
//! 6. removes its test data again, and reports.
//!
//! Each smoke run is a forced run with its own id, so repeating it is never mistaken for a
//! duplicate of the previous one.
//!
//! The extractor takes no part: the smoke publishes what it would. So `DATASETS`, which only
//! chooses the datasets the extractor polls, does not matter: a `counties` smoke passes on a stack
//! whose extractor polls `us` alone, since the transformer, loader and notifier take every dataset
//! they know. A stage that gives up on one of the smoke's messages before the run has an id (a
//! transformer that does not know the dataset, say) reports a failure that no notification of the
//! run follows; the smoke watches `etl.test.failed.*` for it and fails at once with its reason
//! rather than wait out the timeout.
//!
//! - `us`: the `us` dataset's dummy NYT and JHU files and its checks;
//! - `keyed`: the dummy files of `states` and `counties` and their checks;
//! - `payload`: a dummy file stored as the extractor stores a download;
//! - `wait`: what the smoke awaits on `notify.test` and `etl.test.failed.*`.

mod keyed;
mod payload;
mod us;
mod wait;

use std::process::ExitCode;
use std::time::Duration;

use shared::events::{EmailFate, EmailReport, Notification, RunStatus, Trigger, TriggerKind};
use shared::nats::Stores;
use shared::{Env, subjects};

pub use crate::export::Dataset;
use crate::{Connections, db, say};
pub use keyed::{COUNTIES, Dummy, STATES};
pub use us::{DUMMY_JHU, DUMMY_NYT, EXPECTED_DAYS};
use wait::{Messages, Outcome};

/// The env the smoke test runs in; nothing else uses it.
pub const SMOKE_ENV: &str = "test";

/// What happened, step by step.
#[derive(Debug, Default)]
pub struct SmokeReport {
    /// The dataset whose run was tested.
    pub dataset: shared::Dataset,
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
            "dataset": report.dataset,
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

/// The dataset's name in events and tables.
fn shared_dataset(dataset: Dataset) -> shared::Dataset {
    match dataset {
        Dataset::Us => shared::Dataset::US,
        Dataset::States => shared::Dataset::STATES,
        Dataset::Counties => shared::Dataset::COUNTIES,
    }
}

/// The dummy files of a keyed dataset; `None` for `us`.
fn keyed_dummy(dataset: Dataset) -> Option<&'static Dummy> {
    match dataset {
        Dataset::Us => None,
        Dataset::States => Some(&STATES),
        Dataset::Counties => Some(&COUNTIES),
    }
}

pub async fn run(connections: &Connections, dataset: Dataset, timeout: Duration) -> SmokeReport {
    let mut report = SmokeReport {
        dataset: shared_dataset(dataset),
        ..SmokeReport::default()
    };
    let env = Env::new(SMOKE_ENV).expect("the smoke env name is valid");
    let outcome = async {
        let client = connections.connect_nats("etl-smoke").await?;
        let stores = shared::nats::setup(client.clone(), connections.nats.replicas).await?;
        let pg = connections.connect_db().await?;

        clean_up(&stores, &pg, &env).await?;
        report.steps.push(format!("cleared env {env}"));

        let result = exercise(&client, &stores, &pg, &env, dataset, timeout, &mut report).await;
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
    dataset: Dataset,
    timeout: Duration,
    report: &mut SmokeReport,
) -> anyhow::Result<()> {
    let mut messages = Messages::subscribe(client, env).await?;
    report
        .steps
        .push(format!("subscribed to {}", subjects::notify(env)));

    let trigger = Trigger::forced(TriggerKind::Smoke, crate::trigger::new_trigger_id());
    let published = match keyed_dummy(dataset) {
        None => us::publish(stores, env, &trigger).await?,
        Some(dummy) => dummy.publish(stores, env, &trigger).await?,
    };
    let run_id = published.run_id;
    report
        .steps
        .push(format!("{}; waiting for run {run_id}", published.what));

    let deadline = tokio::time::Instant::now() + timeout;
    let notification = match messages.outcome(&run_id, &trigger, deadline).await? {
        Outcome::Notified(notification) => *notification,
        Outcome::GaveUp(failed) => anyhow::bail!(
            "the {} stage gave up on the smoke's {} before its run began: {}",
            failed.stage.as_str(),
            failed
                .source
                .as_ref()
                .map_or_else(|| "event".to_owned(), |source| format!("{source} payload")),
            failed.reason
        ),
        Outcome::TimedOut => anyhow::bail!(
            "no notification for run {run_id} on notify.{env} within {timeout:?}: are the transformer, loader and notifier running?"
        ),
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
    let checked = match keyed_dummy(dataset) {
        None => us::check(&notification, pg, env).await?,
        Some(dummy) => dummy.check(&notification, pg, env).await?,
    };
    report.steps.push(checked);

    report.steps.push(match notification.email {
        EmailFate::Pending => match messages.email(&run_id, deadline).await? {
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

/// Removes everything env `test` holds: the rows of every dataset's tables, its runs, its events,
/// its KV keys and its objects. Nothing of any other env is touched: every name involved carries
/// the env.
pub async fn clean_up(
    stores: &Stores,
    pg: &tokio_postgres::Client,
    env: &Env,
) -> anyhow::Result<()> {
    if db::schema_exists(pg, env).await? {
        // Rows only: the schema and its migrations stay, as the loader expects them.
        let mut sql = format!(
            "BEGIN; DELETE FROM \"{env}\".us_daily_changes; DELETE FROM \"{env}\".us_daily; DELETE FROM \"{env}\".etl_runs;"
        );
        if keyed::tables_exist(pg, env).await? {
            sql.push_str(&keyed::clear_tables_sql(env));
        }
        sql.push_str(" COMMIT;");
        pg.batch_execute(&sql).await?;
    }
    // Its events, keys (`test.<source>.latest`, `test.<dataset>.curated`…) and objects too, so
    // that a consumer created later for all envs does not replay them. The services' consumers
    // stay: they are running.
    shared::cleanup::purge_env(stores, env).await?;
    Ok(())
}
