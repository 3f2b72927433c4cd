//! The notifier's integration tests, in one binary: what people receive, delivery guarantees,
//! staleness alerts, and TLS with authentication to the mail server.

mod delivery;
mod emails;
mod smtp_tls;
mod stale;
mod support;
