//! `etl`'s integration tests, in one binary, against the stack's real NATS and PostgreSQL
//! (`scripts/stack.sh up`): each test works in an env of its own, so they run side by side with
//! each other and with the other crates' tests.

mod dead;
mod diff_keyed;
mod exit_codes;
mod run;
mod schema;
mod support;
mod trigger;
