//! The core library every covid-etl service uses.
//!
//! - [`env`] and [`source`]: the two names that scope everything (an environment such as `prod`,
//!   and an upstream source, `nyt` or `jhu`).
//! - [`subjects`] names every NATS subject (and reads one back); [`events`] holds one type per
//!   event body; [`ids`] the validated identifiers they carry; [`message`] is the one decoder from
//!   (subject, payload) to a checked event and names every event's subject and message id;
//!   [`run_id`] derives the deterministic identity of a run from its inputs.
//! - [`config`] parses environment variables into typed settings, reporting every bad value at once.
//! - [`nats`] connects, declares the JetStream streams / object stores / KV bucket idempotently,
//!   and publishes events with a deterministic `Nats-Msg-Id` and trace context;
//!   [`consumer`] runs a stage's durable pull consumer (decode, progress acks, deadline) and
//!   [`settle`] turns a handler's classified result into ack / retry / report-and-reject, with
//!   dead letters; [`store`] names and reads objects and KV state.
//! - [`service`] registers a service as a NATS micro-service with its counters; [`lease`] lets one
//!   replica of a service at a time do a job that must not run twice at once.
//! - [`metrics`] holds a service's OpenTelemetry instruments and serves them (Prometheus text)
//!   with its liveness and readiness probes on `METRICS_ADDR`.
//! - [`telemetry`] sets up logs and OpenTelemetry traces; [`shutdown`] is the token a service's
//!   `run` receives so tests and signal handlers can stop it.

pub mod cleanup;
pub mod config;
pub mod consumer;
pub mod daily;
pub mod env;
pub mod events;
pub mod hash;
pub mod ids;
pub mod lease;
pub mod message;
pub mod metrics;
pub mod nats;
pub mod postgres;
pub mod run_id;
pub mod service;
pub mod settle;
pub mod shutdown;
pub mod source;
pub mod store;
pub mod subjects;
pub mod telemetry;

pub use env::{Env, EnvScope};
pub use shutdown::Shutdown;
pub use source::{Dataset, Source};

/// Installs the process-wide rustls crypto provider.
///
/// The build carries one provider, `ring`, and no crate picks it by itself (reqwest is built with
/// `rustls-no-provider`): every `main`, and every test that opens TLS, calls this first.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
