//! The extractor against the fake GitHub and the real NATS: polling, faults, restarts, triggers.
//! Request counts come from the fake's log; each test runs in an env of its own.

mod faults;
mod polling;
mod replicas;
mod support;
mod triggers;
