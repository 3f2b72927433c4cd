//! Reading `notify.<env>` and the notifier's consumer state.

use shared::Env;
use shared::nats::{ETL_STREAM, NOTIFY_STREAM, Stores};
use test_support::{EventLog, stored_count, wait_consumed};

use super::WAIT;

/// Reads `notify.<env>` from the start of the stream: run notifications, staleness alerts and
/// email reports, as JSON (what any subscriber sees).
pub struct NotifyReader {
    subject: String,
    messages: EventLog,
}

impl NotifyReader {
    pub async fn open(stores: &Stores, env: &Env) -> Self {
        let subject = shared::subjects::notify(env);
        let messages = EventLog::open(&stores.js, NOTIFY_STREAM, subject.clone()).await;
        Self { subject, messages }
    }

    pub async fn next(&mut self) -> serde_json::Value {
        self.next_within(WAIT).await
    }

    /// The next message, or a panic if none comes within `timeout`.
    pub async fn next_within(&mut self, timeout: std::time::Duration) -> serde_json::Value {
        self.messages.next_event(&self.subject, timeout).await
    }
}

/// How many messages the NOTIFY stream holds for `env`.
pub async fn notify_count(stores: &Stores, env: &Env) -> usize {
    stored_count(&stores.js, NOTIFY_STREAM, &shared::subjects::notify(env)).await
}

/// Waits until the env's consumer has every event acknowledged: none left to deliver, none
/// awaiting an ack or a redelivery. Panics if that does not happen in time.
pub async fn wait_all_acknowledged(stores: &Stores, env: &Env) {
    let scope: shared::EnvScope = env.as_str().parse().unwrap();
    let durable = notifier::consumer_name(&scope);
    wait_consumed(&stores.js, ETL_STREAM, &durable, WAIT).await;
}
