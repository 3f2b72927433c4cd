//! The transformer's integration tests, in one binary.

mod keyed;
mod service;
mod store;
