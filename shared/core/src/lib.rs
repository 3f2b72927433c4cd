//! The core library every covid-etl service uses.
//!
//! - [`env`] and [`source`]: the two names that scope everything (an environment such as `prod`,
//!   and an upstream source, `nyt` or `jhu`).
//! - [`subjects`] builds every NATS subject; [`events`] holds one type per event body, and
//!   [`run_id`] derives the deterministic identity of a run from its inputs.
//! - [`config`] parses environment variables into typed settings, reporting every bad value at once.
//! - [`nats`] connects, declares the JetStream streams / object stores / KV bucket idempotently,
//!   and publishes events with a deterministic `Nats-Msg-Id` and trace context;
//!   [`consumer`] runs a durable pull consumer and maps a handler's [`consumer::Outcome`] to
//!   ack / nak-with-delay / term in one place; [`store`] names and reads objects and KV state.
//! - [`service`] registers a service as a NATS micro-service with its counters.
//! - [`telemetry`] sets up logs and OpenTelemetry traces; [`shutdown`] is the token a service's
//!   `run` receives so tests and signal handlers can stop it.

pub mod config;
pub mod consumer;
pub mod env;
pub mod events;
pub mod hash;
pub mod nats;
pub mod run_id;
pub mod service;
pub mod shutdown;
pub mod source;
pub mod store;
pub mod subjects;
pub mod telemetry;

pub use env::{Env, EnvScope};
pub use shutdown::Shutdown;
pub use source::Source;

/// Installs the process-wide rustls crypto provider.
///
/// Both `ring` and `aws-lc-rs` end up compiled into the binaries, and rustls then refuses to pick
/// one by itself; every `main` (and every test that opens TLS) calls this first.
pub fn install_crypto_provider() {
    // An error only means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}
