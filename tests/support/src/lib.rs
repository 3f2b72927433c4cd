//! What every covid-etl integration test shares, so each crate's tests hold only their own
//! fixtures:
//!
//! - [`stack`]: the addresses of the stack the tests run against (NATS, PostgreSQL, SMTP), from the
//!   same variables the services read, with `scripts/stack.sh`'s defaults;
//! - [`TestEnv`]: an env of the test's own (every test isolates its subjects, objects, keys and
//!   schema) and its JetStream resources; [`clean_up`] removes what it left with the purge
//!   `etl smoke` uses too ([`shared::cleanup`]); [`migrate`] makes its schema with the loader's own
//!   migrations;
//! - [`EventLog`] and [`Notifications`]: what a stream stores for the env, read in order, each
//!   wait bounded; [`eventually`] for state that no event announces; [`mail`] for what the SMTP
//!   server received, [`smtp`] for an SMTP server of the test's own with TLS and AUTH;
//! - [`extraction`]: the extractor's part played by hand (events, raw objects, the latest
//!   extraction in KV);
//! - [`Running`] and [`Pipeline`]: services started in-process, stopped (and checked) in bounded
//!   time.

mod consumers;
mod env;
mod events;
pub mod extraction;
pub mod mail;
mod pipeline;
mod postgres;
mod running;
pub mod smtp;
pub mod stack;
mod wait;

pub use consumers::{stored_count, wait_consumed};
pub use env::{TestEnv, clean_up, stores, unique_env};
pub use events::{EventLog, Notifications};
pub use pipeline::{Pipeline, Stages};
pub use postgres::{connect, connect_to, drop_schema, migrate};
pub use running::Running;
pub use wait::eventually;

/// Returns once the server has read everything `client` sent before, its subscriptions included.
/// `Client::flush` only writes to the socket: a message published on another connection right
/// after it can still reach the server first and miss the subscription. A request nobody answers
/// is the round trip: the server says "no responders" only after reading what came before it.
/// (The operator's identity may publish anywhere; a restricted one has its own barriers.)
pub async fn round_trip(client: &async_nats::Client) {
    let answer = client
        .request("covid-etl.test.round-trip", "".into())
        .await
        .expect_err("nothing answers the round-trip subject");
    assert_eq!(
        answer.kind(),
        async_nats::RequestErrorKind::NoResponders,
        "{answer}"
    );
}

/// A port on 127.0.0.1 free right now, for a process of the test's own to bind.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port on 127.0.0.1")
}
