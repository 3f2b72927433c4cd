//! The loader's integration tests, in one binary: runs applied directly to PostgreSQL, and the
//! real service driven through NATS.

mod apply;
mod keyed;
mod keyed_service;
mod service;
mod support;
