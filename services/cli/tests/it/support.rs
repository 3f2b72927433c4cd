//! Dead messages made the way a stage makes them, in an env of the test's own
//! (`test_support::TestEnv`), and the `etl` binary.

use std::process::Output;

use async_nats::HeaderMap;
use async_nats::jetstream::message::PublishMessage;
use shared::events::Stage;
use shared::settle::{self, Failure, GivenUp};
use test_support::stack;

pub use test_support::TestEnv;

/// A trace context a publisher would have put on the message; a retry must keep it.
pub const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

/// What the dead-letter tests do in their env.
pub trait DeadLetters {
    fn subject(&self) -> String;
    async fn publish_original(&self, payload: &[u8]) -> u64;
    async fn give_up(&self, stage: Stage, sequence: u64, payload: &[u8], failure: &Failure);
}

impl DeadLetters for TestEnv {
    fn subject(&self) -> String {
        shared::subjects::transformed(&self.env)
    }

    /// Stores `payload` on `etl.<env>.transformed` as a publisher would (with a message id and a
    /// trace context), and returns its `ETL` sequence.
    async fn publish_original(&self, payload: &[u8]) -> u64 {
        let mut headers = HeaderMap::new();
        headers.insert(
            async_nats::header::NATS_MESSAGE_ID,
            format!("original:{}", uuid::Uuid::new_v4()).as_str(),
        );
        headers.insert("traceparent", TRACEPARENT);
        let message = PublishMessage::build()
            .payload(payload.to_vec().into())
            .headers(headers);
        self.stores
            .js
            .send_publish(self.subject(), message)
            .await
            .expect("published")
            .await
            .expect("stored")
            .sequence
    }

    /// Has the settle step give up on the message at `sequence` as `stage` would: its failure
    /// report and its dead letter are published exactly as a stage's consumer publishes them.
    async fn give_up(&self, stage: Stage, sequence: u64, payload: &[u8], failure: &Failure) {
        let subject = self.subject();
        let consumer = format!("{}-test", stage.as_str());
        let message = GivenUp {
            stage,
            consumer: &consumer,
            subject: &subject,
            env: Some(&self.env),
            event: None,
            payload,
            stream_sequence: sequence,
            delivered: 1,
        };
        settle::give_up(&self.stores.js, &message, failure)
            .await
            .expect("the failure is reported");
    }
}

/// Runs the `etl` binary with the stack's addresses.
pub async fn etl(args: &[&str]) -> Output {
    etl_with(args, &[]).await
}

/// Runs the `etl` binary with the stack's addresses and `vars` laid over them.
pub async fn etl_with(args: &[&str], vars: &[(&str, &str)]) -> Output {
    let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"));
    command
        .args(args)
        .env("NATS_URL", stack::nats_url())
        .env("RUST_LOG", "warn")
        .env_remove("ETL_ENV")
        .env_remove("ETL_CONNECT_TIMEOUT")
        .kill_on_drop(true);
    for (name, value) in vars {
        command.env(name, value);
    }
    command.output().await.expect("etl runs")
}

/// The process's exit code (`None` when a signal ended it).
pub fn code(output: &Output) -> Option<i32> {
    output.status.code()
}

/// Stdout parsed as one JSON document.
pub fn json(output: &Output) -> serde_json::Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
        panic!(
            "stdout is not one JSON document ({err}):\n{}\nstderr: {}",
            stdout(output),
            stderr(output)
        )
    })
}

pub fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

pub fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}
