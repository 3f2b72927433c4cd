//! The extractor: notices new upstream commits of the NYT and JHU files within one poll interval,
//! downloads each new version whole and exactly once into `etl-raw`, and announces it on
//! `etl.<env>.extracted.<source>`; a daily run and `etl.<env>.trigger` requests re-run on demand.
//!
//! - [`config`]: settings from environment variables.
//! - [`github`]: the HTTP client (headers, timeouts, rate-limit bookkeeping), with the rules
//!   themselves in [`ratelimit`].
//! - [`poller`]: checking one source (conditional commits request, paging back to the last commit
//!   seen, blob sha, download, store); [`download`] streams and verifies the file; [`cursor`] is the
//!   per-source state kept in KV; [`progress`] tells how far a download has come.
//! - [`cycle`]: one round over all sources and what it publishes (extracted, failed extract);
//!   [`failure`] judges a failed check (back-off, report) and [`refusal`] reads GitHub's 403/429
//!   answers; [`trouble`] is a failing source's state in KV, which `etl status` shows.
//! - [`worker`]: the loop that runs polls, triggers and the daily run ([`schedule`]);
//!   [`trigger`] serves the request-reply subject. Of several replicas of one env's extractor,
//!   only the holder of a lease in KV ([`shared::lease`]) polls and answers triggers.

pub mod config;
pub mod cursor;
pub mod cycle;
pub mod download;
pub mod error;
pub mod failure;
pub mod github;
pub mod poller;
pub mod progress;
pub mod ratelimit;
pub mod refusal;
pub mod schedule;
pub mod trigger;
pub mod trouble;
pub mod worker;

use anyhow::Context;
use shared::Env;
use shared::Shutdown;
use shared::lease::{Lease, replica_name};
use shared::metrics::Metrics;
use shared::nats::NatsError;
use tokio::sync::mpsc;

pub use config::Config;

/// Runs the extractor until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = Metrics::new("extractor");
    metrics.readiness().expect(&["nats"]);
    metrics.serve(config.metrics_addr, &shutdown).await?;
    let result = extract(config, &metrics, shutdown).await;
    metrics.finish().await;
    result
}

async fn extract(config: Config, metrics: &Metrics, shutdown: Shutdown) -> anyhow::Result<()> {
    let client = match shared::nats::connect(&config.nats, "extractor", &shutdown).await {
        Ok(client) => client,
        Err(NatsError::ShutDown) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let stores = shared::nats::setup(client.clone(), config.nats.replicas)
        .await
        .context("declaring the JetStream resources")?;
    metrics.readiness().set_nats(&client);
    let github = github::Github::new(&config)
        .context("building the HTTP client")?
        .with_metrics(metrics.clone());
    let lease = Lease::new(
        stores.state.clone(),
        lease_key(&config.env),
        replica_name("extractor"),
        config.lease_period,
    );
    let poller = poller::Poller::new(&config, github, stores)
        .await
        .context("loading the extractor's state")?;

    let (commands, requests) = mpsc::channel(8);
    let service = trigger::serve(
        client.clone(),
        config.env.clone(),
        lease.name(),
        commands,
        shutdown.clone(),
    )
    .await?;
    tracing::info!(
        env = %config.env,
        api = %config.api_url,
        poll_interval_s = config.poll_interval.as_secs_f64(),
        daily_run_at = %config.daily_run_at,
        authenticated = config.token.is_some(),
        replica = lease.name(),
        "extractor started"
    );
    let (standing, keeper) = shared::lease::keep(lease, shutdown.clone()).await;
    worker::Worker::new(
        poller,
        standing,
        config.env.clone(),
        config.poll_interval,
        config.daily_run_at,
    )
    .run(requests, shutdown)
    .await;
    // The keeper gives the lease up, so another replica takes over at once.
    let _ = keeper.await;
    let _ = service.await;
    // Let anything still buffered (trigger replies) reach the server.
    let _ = client.flush().await;
    Ok(())
}

/// The KV key of the polling lease of `env`'s extractors.
pub fn lease_key(env: &Env) -> String {
    format!("{env}.extractor.lease")
}
