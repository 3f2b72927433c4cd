//! The covid-etl dashboard: a read-only view of one env's data (`ETL_ENV`).
//!
//! It reads the env's PostgreSQL schema (`us_daily`, `us_daily_changes`, `etl_runs`, written by
//! the loader) and listens to `etl.<env>.loaded` / `etl.<env>.failed.*` on NATS, and serves:
//!
//! - `/` — the page: charts (uPlot, vendored), freshness badge, corrections and runs tables;
//!   its files are in `assets/` and [`assets`] compiles them in;
//! - `/api/v1/us/daily`, `/api/v1/us/changes`, `/api/v1/runs`, `/api/v1/meta` — JSON (and CSV)
//!   answered by [`api`], with the series logic in [`daily`], parameter checks in [`params`],
//!   ETag / Last-Modified handling in [`cache`] and the SQL in [`db`];
//! - `/api/v1/states/…`, `/api/v1/counties/…` — the keyed datasets (a state's or a county's
//!   series, every key on a date), in [`keyed`], reusing [`daily`]'s parameters and shaping;
//! - `/api/v1/events` — Server-Sent Events fed by NATS ([`live`]);
//! - `/healthz`, `/readyz` ([`health`]).
//!
//! [`app::Application`] binds and serves through [`serve`] (HTTP/1.1 with a header-read timeout
//! and a connection bound); [`limits`] holds the per-request and per-client limits; [`run`] is
//! what `main` calls.

pub mod api;
pub mod app;
pub mod assets;
pub mod cache;
pub mod config;
pub mod daily;
pub mod db;
pub mod error;
pub mod health;
pub mod keyed;
pub mod limits;
pub mod live;
pub mod params;
pub mod serve;

pub use app::Application;
pub use config::Config;

/// Serves the dashboard until `shutdown`.
pub async fn run(config: Config, shutdown: shared::Shutdown) -> anyhow::Result<()> {
    let app = Application::build(config).await?;
    app.run_until(shutdown).await?;
    Ok(())
}
