//! The notifier's integration tests, in one binary: what people receive, delivery guarantees and
//! staleness alerts.

mod delivery;
mod emails;
mod stale;
mod support;
