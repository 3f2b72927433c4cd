//! The notifier: tells people about every run, by email and on `notify.<env>`.
//!
//! It consumes `etl.<env>.loaded` and `etl.<env>.failed.*` for the envs of `ETL_ENVS` (durable
//! consumer `notifier-<scope>`), and for each event emails a multipart text + HTML message to the
//! env's recipients and publishes a [`shared::events::Notification`] on `notify.<env>` whose
//! `text` is the email's plain text. It also warns when a source's newest upstream commit is older
//! than `STALE_AFTER` ([`stale::StaleAlert`], once per stale commit). The staleness alert is a
//! separate event type on the same subject, not a `Notification` (whose `status` is a run's
//! outcome): readers tell them apart by `status` (run) versus `alert: "stale"`.
//!
//! # Files
//!
//! - [`config`]: settings, recipient routing by env (`EMAIL_TO` for prod, `EMAIL_TO_<ENV>` for
//!   the others), SMTP URL and credentials.
//! - [`compose`]: subject, text and HTML of a run's email and its notification, from the event
//!   alone; [`doc`] writes the text and HTML parts side by side; [`format`] escapes and formats.
//! - [`handler`]: one event → email + notification → ack / retry; [`mailer`] sends over SMTP and
//!   sorts failures into transient and permanent; [`ledger`] is the KV record of what was sent.
//! - [`stale`]: staleness alerts, checked on each loaded run and every `STALE_CHECK_INTERVAL`.
//!
//! # Delivery guarantee
//!
//! Each run (identified by its run id, or [`shared::events::Failed::id`] for a failed
//! extraction) is emailed **at least once and, barring a crash, exactly once**, and published on
//! `notify.<env>` once (message id `notify:<env>:<id>`, and the record below beyond the stream's
//! de-duplication window):
//!
//! - Before sending, the notifier looks for the run's record (KV `etl-state`, key
//!   [`shared::store::notified_key`]); a redelivered or re-published event that finds one is not
//!   emailed again. The record is written right after the mail server accepts the email, before
//!   the notification is published and the event acknowledged.
//! - If the notifier is killed between the server's acceptance and that record, the event is
//!   redelivered and the email **sent a second time** — at most one duplicate per such crash,
//!   never none. Both copies carry the same `Message-ID`, so many mail clients show one.
//! - While the mail server is down or answers 4xx, the event is redelivered after a growing delay
//!   (up to `SMTP_RETRY_MAX`) for as long as it takes — the consumer has no delivery limit — and
//!   other events and envs proceed meanwhile. The notification is published once the email's
//!   fate is known, so `emailed` is true to what happened.
//! - A permanent refusal (5xx, an address the server rejects) is not retried: it is logged and the
//!   notification is published with `emailed: false` and the server's answer in `email_note`.
//! - With no recipients for the env, or `NOTIFY_UNCHANGED=nats` (the default) for a run that
//!   changed nothing, no email is sent; the notification is published all the same.

pub mod compose;
pub mod config;
pub mod doc;
pub mod format;
pub mod handler;
pub mod ledger;
pub mod mailer;
pub mod stale;

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use shared::consumer::{self, ConsumerSpec};
use shared::{Shutdown, nats, subjects};

pub use config::Config;
pub use stale::StaleAlert;

/// The durable consumer's name for a scope.
pub fn consumer_name(scope: &shared::EnvScope) -> String {
    format!("notifier-{}", scope.label())
}

/// Runs the notifier until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!("notifier starting: {}", config.summary());
    let client = nats::connect(&config.nats, "notifier", &shutdown).await?;
    let stores = nats::setup(client).await?;
    let mailer = mailer::Mailer::new(&config.smtp, config.from.clone())?;
    let ledger = Arc::new(ledger::Ledger::new(stores.state.clone()));

    let stale = config.stale_after.map(|stale_after| {
        Arc::new(stale::StaleWatch {
            stores: stores.clone(),
            ledger: ledger.clone(),
            mailer: mailer.clone(),
            routes: config.routes.clone(),
            dashboard_url: config.dashboard_url.clone(),
            stale_after,
            lock: tokio::sync::Mutex::new(()),
        })
    });
    // The periodic check stops with the service, or when the consumer gives up; the caller's
    // shutdown token is not ours to trigger.
    let stop_periodic = Shutdown::new();
    let periodic = stale.clone().map(|watch| {
        let (outer, stop) = (shutdown.clone(), stop_periodic.clone());
        tokio::spawn(async move {
            outer.wait().await;
            stop.trigger();
        });
        let scope = config.scope.clone();
        let (interval, retry_max, stop) = (
            config.stale_check_interval,
            config.smtp.retry_max,
            stop_periodic.clone(),
        );
        tokio::spawn(async move { watch.run_periodic(&scope, interval, retry_max, &stop).await })
    });

    let handler = Arc::new(handler::Handler {
        stores: stores.clone(),
        ledger,
        mailer,
        routes: config.routes.clone(),
        dashboard_url: config.dashboard_url.clone(),
        unchanged: config.unchanged,
        retry_max: config.smtp.retry_max,
        stale,
    });
    let mut filters = subjects::filters(&config.scope, "etl.{env}.loaded");
    filters.extend(subjects::filters(&config.scope, "etl.{env}.failed.*"));
    let mut spec = ConsumerSpec::new(nats::ETL_STREAM, consumer_name(&config.scope), filters);
    // An email must wait out a mail server outage of any length rather than be dropped: no
    // delivery limit. Sending takes at most SMTP_TIMEOUT per connection step; leave room for it.
    spec.max_deliver = -1;
    spec.ack_wait = Duration::from_secs(60).max(config.smtp.timeout * 4);

    let result = consumer::serve(
        &stores.js,
        "notifier",
        "emails and notify.<env> for every run",
        &config.scope.label(),
        &spec,
        &shutdown,
        |delivery| {
            let handler = handler.clone();
            async move { handler.handle(delivery).await }
        },
    )
    .await
    .context("the notifier's consumer stopped");
    if let Some(periodic) = periodic {
        stop_periodic.trigger();
        let _ = periodic.await;
    }
    tracing::info!("notifier stopped");
    result
}
