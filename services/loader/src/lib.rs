//! The loader: applies each transformed run to PostgreSQL and announces the result.
//!
//! It consumes `etl.<env>.transformed` and every `etl.<env>.failed.<stage>` (a durable consumer
//! per env scope). A run's curated dataset is read from `etl-curated` and applied to the env's
//! schema in one transaction; `etl.<env>.loaded` reports what changed. Every run is recorded in
//! `etl_runs`: succeeded, failed (from any stage's failure report, the loader's own included) or
//! superseded (a newer run was already loaded).
//!
//! - [`config`]: the settings read from the environment;
//! - [`consumer`]: the consumer's subjects, deadline, deliveries and back-off;
//! - [`migrate`]: the versioned SQL files of `migrations/`, applied per env schema at start and
//!   when an env is first seen;
//! - [`curated`]: reading a run's dataset, bounded and checked against its event;
//! - [`apply`]: one run in one transaction (lock, already loaded?, superseded?, diff, rule 7, the
//!   SQL, `etl_runs`, commit);
//! - `write`: the run's SQL (binary COPY into staging, insert / update / delete, corrections)
//!   and the check of its row counts;
//! - [`runs`]: the `etl_runs` rows, run order, and a succeeded run's event rebuilt from its row;
//! - [`db`]: the pool, schema names, lock keys, transient errors, reading stored rows;
//! - `handler`: one delivered event in, `Ok` or a classified failure out;
//! - [`keyed`]: the keyed datasets (`states`, `counties`): a run's delta or a full reconcile from
//!   COPY-ready CSV, inside the caller's transaction;
//! - `keyed_run`: one run of a keyed dataset, as `apply` does a `us` one (its objects checked and
//!   read, run order, the delta or a reconcile, `etl_runs`, commit);
//! - [`error`]: why a load failed, its failure kind, and whether that is worth retrying.

pub mod apply;
pub mod config;
pub mod consumer;
pub mod curated;
pub mod db;
pub mod error;
mod handler;
pub mod keyed;
mod keyed_run;
pub mod migrate;
pub mod runs;
mod write;

use shared::Shutdown;
use shared::metrics::Metrics;
use shared::nats::{self, NatsError};

pub use config::Config;

/// Runs the loader until `shutdown`: connects to NATS, migrates the schemas of the envs it
/// serves (waiting for PostgreSQL if need be), then loads runs one at a time.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let metrics = Metrics::new("loader");
    metrics
        .readiness()
        .expect(&["nats", "consumer", "postgres"]);
    metrics.serve(config.metrics_addr, &shutdown).await?;
    let result = load(config, &metrics, shutdown).await;
    metrics.finish().await;
    result
}

async fn load(config: Config, metrics: &Metrics, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!(database = %db::describe(&config.database.config), scope = %config.scope.label(), "loader starting");
    let client = match nats::connect(&config.nats, "loader", &shutdown).await {
        Ok(client) => client,
        Err(NatsError::ShutDown) => return Ok(()),
        Err(err) => return Err(err.into()),
    };
    let stores = nats::setup(client, config.nats.replicas).await?;
    let pool = db::pool(&config.database);
    db::check_readiness(metrics.readiness(), &pool);
    let spec = consumer::spec(&config.scope, &config.session, config.read_deadline);
    let envs = config.scope.label();
    let handler = handler::Handler::new(stores.clone(), pool, config, metrics.clone());
    handler.migrate_at_start(&shutdown).await?;
    if shutdown.is_triggered() {
        return Ok(());
    }
    tracing::info!(durable = %spec.durable, filters = ?spec.filters, deadline = ?spec.deadline, max_deliver = spec.max_deliver, "loader consuming");
    let handler = &handler;
    shared::consumer::serve(
        &stores.js,
        "loader",
        "applies each run to PostgreSQL in one transaction",
        &envs,
        &spec,
        metrics,
        &shutdown,
        move |delivery| handler.handle(delivery),
    )
    .await?;
    tracing::info!("loader stopped");
    Ok(())
}
