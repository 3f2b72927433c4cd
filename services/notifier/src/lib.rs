//! The notifier: tells people about every run, by email and on `notify.<env>`.
//!
//! It consumes `etl.<env>.loaded` and `etl.<env>.failed.*` for the envs of `ETL_ENVS` (durable
//! consumer `notifier-<scope>`). For each event it publishes a [`shared::events::Notification`] on
//! `notify.<env>` at once — machine subscribers (`etl smoke`, dashboards) never wait on the mail
//! server — then emails a multipart text + HTML message to the env's recipients, and once the
//! email's fate is known publishes it as a [`shared::events::EmailReport`] on the same subject.
//! The notification's `text` is the email's plain text. It also warns when a source's newest
//! upstream commit is older than `STALE_AFTER` ([`shared::events::StaleAlert`], once per stale
//! commit, through the same steps). Readers of `notify.<env>` tell the three apart by `status`
//! (a run), `alert: "stale"` and `report: "email"`.
//!
//! # Files
//!
//! - [`config`]: settings, recipient routing by env (`EMAIL_TO` for prod, `EMAIL_TO_<ENV>` for
//!   the others), SMTP URL and credentials.
//! - [`compose`]: subject, text and HTML of a run's email and its notification, from the event
//!   alone; [`doc`] writes the text and HTML parts side by side; [`format`] escapes and formats.
//! - [`notice`]: the one sequence every notice goes through (publish, email, record, report);
//!   [`ledger`] is its KV record; [`mailer`] sends over SMTP and sorts failures into transient
//!   and permanent.
//! - [`handler`]: one event → its notice → `Ok` or a classified failure; [`consumer`] is the
//!   consumer it runs in, and how long an email may wait for the mail server.
//! - [`stale`]: staleness alerts, checked on each loaded run and every `STALE_CHECK_INTERVAL`.
//!
//! # Delivery guarantee
//!
//! Each run (identified by its run id, or [`shared::events::Failed::id`] for a failure without
//! one) is published on `notify.<env>` once and emailed **at least once and, barring a crash,
//! exactly once**; the email's fate is published once. The message ids are deterministic
//! ([`shared::message::Publish`]) and the notice's record (KV `etl-state`, key
//! [`shared::store::notified_key`]) carries the guarantee past the stream's de-duplication window:
//!
//! - The notification goes out first, with `email: "pending"` when recipients are due an email
//!   and `"skipped"` (and why, in `email_note`) when not; the record then says it is published.
//!   A redelivered or re-published event that finds the record does only the steps that remain.
//! - The email is its own step. While the mail server is down or answers 4xx, the event is put
//!   back after a growing delay (up to `SMTP_RETRY_MAX`) and other events and envs proceed; each
//!   redelivery finds the notification published and tries only the email. The server's answer is
//!   recorded the moment it comes, then published as an `EmailReport` (`sent`, or `refused` with
//!   the server's answer).
//! - If the notifier is killed between the server's acceptance and that record, the event is
//!   redelivered and the email **sent a second time** — at most one duplicate per such crash,
//!   never none. Both copies carry the same `Message-ID`, so many mail clients show one.
//! - A permanent refusal (5xx, an address the server rejects) is not retried.
//! - An outage is waited out for an hour ([`consumer`]); past that the settle step gives the
//!   email up (`etl.<env>.failed.notify`, published but not emailed, and a dead letter from which
//!   the event can be published again; the notice then resumes at its email).
//! - With no recipients for the env, or `NOTIFY_UNCHANGED=nats` (the default) for a run that
//!   changed nothing, no email is sent and no report follows the notification.

pub mod compose;
pub mod config;
pub mod consumer;
pub mod doc;
pub mod format;
pub mod handler;
pub mod ledger;
pub mod mailer;
pub mod notice;
pub mod stale;

use std::sync::Arc;

use anyhow::Context;
use shared::lease::{Lease, replica_name};
use shared::metrics::Metrics;
use shared::{Shutdown, nats};

pub use config::Config;

/// The durable consumer's name for a scope.
pub fn consumer_name(scope: &shared::EnvScope) -> String {
    format!("notifier-{}", scope.label())
}

/// Runs the notifier until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = Metrics::new("notifier");
    metrics.readiness().expect(&["nats", "consumer"]);
    metrics.serve(config.metrics_addr, &shutdown).await?;
    let result = notify(config, &metrics, shutdown).await;
    metrics.finish().await;
    result
}

async fn notify(config: Config, metrics: &Metrics, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!("notifier starting: {}", config.summary());
    let client = nats::connect(&config.nats, "notifier", &shutdown).await?;
    let stores = nats::setup(client, config.nats.replicas).await?;
    let mailer =
        mailer::Mailer::new(&config.smtp, config.from.clone())?.with_metrics(metrics.clone());
    let ledger = ledger::Ledger::new(stores.state.clone());
    let notices = Arc::new(notice::Notices::new(stores.js.clone(), ledger, mailer));

    // The staleness check stops with the service, or when the consumer gives up; the caller's
    // shutdown token is not ours to trigger.
    let stop_stale = Shutdown::new();
    {
        let (outer, stop) = (shutdown.clone(), stop_stale.clone());
        tokio::spawn(async move {
            outer.wait().await;
            stop.trigger();
        });
    }
    // Of several notifiers serving the same envs, the holder of this lease checks staleness.
    let (stale, keeper) = match config.stale_after {
        None => (None, None),
        Some(stale_after) => {
            let lease = Lease::new(
                stores.state.clone(),
                stale::lease_key(&config.scope),
                replica_name("notifier"),
                config.lease_period,
            );
            let (standing, keeper) = shared::lease::keep(lease, stop_stale.clone()).await;
            let watch = Arc::new(stale::StaleWatch {
                stores: stores.clone(),
                notices: notices.clone(),
                routes: config.routes.clone(),
                dashboard_url: config.dashboard_url.clone(),
                stale_after,
                standing,
                lock: tokio::sync::Mutex::new(()),
            });
            (Some(watch), Some(keeper))
        }
    };
    let periodic = stale.clone().map(|watch| {
        let scope = config.scope.clone();
        let (interval, retry_max, stop) = (
            config.stale_check_interval,
            config.smtp.retry_max,
            stop_stale.clone(),
        );
        tokio::spawn(async move { watch.run_periodic(&scope, interval, retry_max, &stop).await })
    });

    let handler = Arc::new(handler::Handler {
        notices,
        routes: config.routes.clone(),
        dashboard_url: config.dashboard_url.clone(),
        unchanged: config.unchanged,
        retry_max: config.smtp.retry_max,
        stale,
    });
    let spec = consumer::spec(&config.scope, &config.smtp);
    tracing::info!(
        max_deliver = spec.max_deliver,
        deadline = ?spec.deadline,
        "an email waits out a mail server outage of {:?}",
        config.smtp.give_up_after
    );

    let result = shared::consumer::serve(
        &stores.js,
        "notifier",
        "emails and notify.<env> for every run",
        &config.scope.label(),
        &spec,
        metrics,
        &shutdown,
        |delivery| {
            let handler = handler.clone();
            async move { handler.handle(delivery).await }
        },
    )
    .await
    .context("the notifier's consumer stopped");
    stop_stale.trigger();
    if let Some(periodic) = periodic {
        let _ = periodic.await;
    }
    // The keeper gives the lease up, so another notifier takes over at once.
    if let Some(keeper) = keeper {
        let _ = keeper.await;
    }
    tracing::info!("notifier stopped");
    result
}
