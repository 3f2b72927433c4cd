//! The transformer: turns the latest raw payloads of both sources into a run's curated dataset.
//!
//! It consumes `etl.<env>.extracted.<source>` (a durable consumer per env scope). Once both
//! sources have a payload, it reads them from `etl-raw`, applies DESIGN.md's transform (the
//! `dataset` crate), stores the result as Parquet in `etl-curated` and publishes
//! `etl.<env>.transformed`; bad data becomes `etl.<env>.failed.transform` with the reason.
//!
//! - [`config`]: the settings read from the environment;
//! - `handler`: what happens to one extracted event (skip, wait, run) and how it ends (ack,
//!   retry, or reject after reporting the failure);
//! - `run`: the transform of one run, step by step, with its timings;
//! - `error`: why a run did not finish, split into bad data and transient trouble.

pub mod config;
mod error;
mod handler;
mod run;

use shared::consumer::{self, ConsumerSpec};
use shared::nats::{self, NatsError};
use shared::{Shutdown, subjects};

pub use config::Config;

/// Runs the transformer until `shutdown`: connects to NATS, declares the JetStream resources and
/// consumes extracted events of the configured envs.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let client = match nats::connect(&config.nats, "transformer", &shutdown).await {
        Ok(client) => client,
        Err(NatsError::ShutDown) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let stores = nats::setup(client).await?;
    let spec = ConsumerSpec::new(
        nats::ETL_STREAM,
        format!("transformer-{}", config.scope.label()),
        subjects::filters(&config.scope, "etl.{env}.extracted.*"),
    );
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
        &shutdown,
        move |delivery| handler.handle(delivery),
    )
    .await?;
    tracing::info!("transformer stopped");
    Ok(())
}
