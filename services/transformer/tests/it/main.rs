//! The transformer's integration tests, in one binary.

mod service;
mod store;
