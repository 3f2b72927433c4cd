//! The loader: applies each transformed run to PostgreSQL and announces the result.
//!
//! It consumes `etl.<env>.transformed` and `etl.<env>.failed.{extract,transform}` (a durable
//! consumer per env scope). A run's curated dataset is read from `etl-curated` and applied to the
//! env's schema in one transaction; `etl.<env>.loaded` reports what changed, and every run,
//! succeeded or failed, is recorded in `etl_runs`.
//!
//! - [`config`]: the settings read from the environment;
//! - [`migrate`]: the versioned SQL files of `migrations/`, applied per env schema at start and
//!   when an env is first seen;
//! - [`apply`]: one run in one transaction (lock, already loaded?, diff, rule 7, the SQL,
//!   `etl_runs`, commit);
//! - `write`: the run's SQL (binary COPY into staging, insert / update / delete, corrections)
//!   and the check of its row counts;
//! - [`runs`]: the `etl_runs` rows, and a succeeded run's event rebuilt from its row;
//! - [`db`]: the pool, schema names, lock keys, transient errors, reading stored rows;
//! - `handler`: what becomes of each message (ack, retry, or a reported failure);
//! - [`error`]: why a load failed, and whether that is worth retrying.

pub mod apply;
pub mod config;
pub mod db;
pub mod error;
mod handler;
pub mod migrate;
pub mod runs;
mod write;

use shared::consumer::{self, ConsumerSpec};
use shared::nats::{self, NatsError};
use shared::{Shutdown, subjects};

pub use config::Config;

/// The subjects the loader consumes, per env token.
const FILTERS: [&str; 3] = [
    "etl.{env}.transformed",
    "etl.{env}.failed.extract",
    "etl.{env}.failed.transform",
];

/// Runs the loader until `shutdown`: connects to NATS, migrates the schemas of the envs it
/// serves (waiting for PostgreSQL if need be), then loads runs one at a time.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!(database = %db::describe(&config.database), scope = %config.scope.label(), "loader starting");
    let client = match nats::connect(&config.nats, "loader", &shutdown).await {
        Ok(client) => client,
        Err(NatsError::ShutDown) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let stores = nats::setup(client).await?;
    let pool = db::pool(&config.database);
    let mut spec = ConsumerSpec::new(
        nats::ETL_STREAM,
        format!("loader-{}", config.scope.label()),
        FILTERS
            .iter()
            .flat_map(|pattern| subjects::filters(&config.scope, pattern))
            .collect(),
    );
    // A committed run must be announced, and PostgreSQL may be down for long: a transient error is
    // retried (spaced by the handler's delays) for as long as it takes, never given up on.
    spec.max_deliver = -1;
    let envs = config.scope.label();
    let handler = handler::Handler::new(stores.clone(), pool, config);
    handler.migrate_at_start(&shutdown).await?;
    if shutdown.is_triggered() {
        return Ok(());
    }
    tracing::info!(durable = %spec.durable, filters = ?spec.filters, "loader consuming");
    let handler = &handler;
    consumer::serve(
        &stores.js,
        "loader",
        "applies each run to PostgreSQL in one transaction",
        &envs,
        &spec,
        &shutdown,
        move |delivery| handler.handle(delivery),
    )
    .await?;
    tracing::info!("loader stopped");
    Ok(())
}
