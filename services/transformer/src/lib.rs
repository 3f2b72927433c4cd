//! The transformer: turns the latest raw payloads of a dataset's sources into a run's curated
//! dataset.
//!
//! It consumes `etl.<env>.extracted.<source>` (a durable consumer per env scope). For `us`, once
//! both sources have a payload, it reads them from `etl-raw` (checking each against the digest its
//! event announced, under a deadline), applies DESIGN.md's transform (the `dataset` crate),
//! stores the result as Parquet in `etl-curated` — once per run: a second transform of a run
//! finds the object there and leaves it — and publishes `etl.<env>.transformed` with the run's
//! own message id. A failure goes back, classified, to the consumer's settle step
//! (`shared::settle`), which retries it or reports it on `etl.<env>.failed.transform`.
//!
//! - [`config`]: the settings read from the environment, and the injectable clock;
//! - `handler`: what happens to one extracted event (skip, wait, run);
//! - `run`: the transform of one `us` run, step by step, with its timings;
//! - `keyed`: a run of a keyed dataset (`states`, `counties`): every source of the dataset read
//!   together, the full curated Parquet plus a delta against the dataset's last curated run
//!   (KV `<env>.<dataset>.curated`), which the loader applies;
//! - `steps`: step timings, shared by both;
//! - `error`: why a run did not finish, and its failure kind and whether it may pass.

pub mod config;
mod error;
mod handler;
mod keyed;
mod run;
mod steps;

use shared::Shutdown;
use shared::consumer::{self, ConsumerSpec};
use shared::events::Stage;
use shared::metrics::Metrics;
use shared::nats::{self, NatsError};
use shared::subjects::{self, Filter};

pub use config::{Clock, Config};

/// Runs the transformer until `shutdown`: connects to NATS, declares the JetStream resources and
/// consumes extracted events of the configured envs.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = Metrics::new("transformer");
    metrics.readiness().expect(&["nats", "consumer"]);
    metrics.serve(config.metrics_addr, &shutdown).await?;
    let result = consume(config, &metrics, shutdown).await;
    metrics.finish().await;
    result
}

async fn consume(config: Config, metrics: &Metrics, shutdown: Shutdown) -> anyhow::Result<()> {
    let client = match nats::connect(&config.nats, "transformer", &shutdown).await {
        Ok(client) => client,
        Err(NatsError::ShutDown) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let stores = nats::setup(client, config.nats.replicas).await?;
    let spec = ConsumerSpec {
        deadline: config.deadline(),
        ..ConsumerSpec::new(
            nats::ETL_STREAM,
            format!("transformer-{}", config.scope.label()),
            Stage::Transform,
            subjects::filters(&config.scope, &[Filter::Extracted]),
        )
    };
    tracing::info!(durable = %spec.durable, filters = ?spec.filters, "transformer consuming");
    let envs = config.scope.label();
    let handler = handler::Handler::new(stores.clone(), config);
    let handler = &handler;
    consumer::serve(
        &stores.js,
        "transformer",
        "validates and merges the upstream payloads of a run",
        &envs,
        &spec,
        metrics,
        &shutdown,
        move |delivery| handler.handle(delivery),
    )
    .await?;
    tracing::info!("transformer stopped");
    Ok(())
}
