//! What a stream stores for an env, read in order from the first message: nothing published
//! before the test started reading is missed, and nothing the stream de-duplicated is seen.

use std::time::Duration;

use async_nats::jetstream::{self, Message, consumer::pull};
use futures::StreamExt;
use serde::de::DeserializeOwned;
use shared::Env;
use shared::events::Notification;
use shared::nats::NOTIFY_STREAM;

/// How long a run may take from the first event to its notification.
const RUN_WITHIN: Duration = Duration::from_secs(60);

/// An ordered consumer on one stream's `filter`.
pub struct EventLog {
    filter: String,
    messages: pull::Ordered,
}

impl EventLog {
    pub async fn open(js: &jetstream::Context, stream: &str, filter: String) -> Self {
        let messages = js
            .get_stream(stream)
            .await
            .unwrap_or_else(|err| panic!("stream {stream}: {err}"))
            .create_consumer(pull::OrderedConfig {
                filter_subject: filter.clone(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|err| panic!("an ordered consumer on {filter}: {err}"))
            .messages()
            .await
            .unwrap_or_else(|err| panic!("reading {filter}: {err}"));
        Self { filter, messages }
    }

    /// The next message, if one comes within `timeout`.
    pub async fn next_within(&mut self, timeout: Duration) -> Option<Message> {
        let message = tokio::time::timeout(timeout, self.messages.next())
            .await
            .ok()?
            .unwrap_or_else(|| panic!("the consumer on {} ended", self.filter));
        Some(message.unwrap_or_else(|err| panic!("reading {}: {err}", self.filter)))
    }

    /// The next message on `subject` (others are skipped), or a panic naming it after `timeout`.
    pub async fn next_on(&mut self, subject: &str, timeout: Duration) -> Message {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self
                .next_within(left)
                .await
                .unwrap_or_else(|| panic!("no message on {subject} within {timeout:?}"));
            if message.subject.as_str() == subject {
                return message;
            }
        }
    }

    /// The next event on `subject`, decoded.
    pub async fn next_event<T: DeserializeOwned>(&mut self, subject: &str, timeout: Duration) -> T {
        let message = self.next_on(subject, timeout).await;
        serde_json::from_slice(&message.payload).unwrap_or_else(|err| {
            panic!(
                "the message on {subject} is not the expected event ({err}): {}",
                String::from_utf8_lossy(&message.payload)
            )
        })
    }
}

/// Run notifications on `notify.<env>`, in order from the first (staleness alerts and other
/// messages on the subject are skipped).
pub struct Notifications(EventLog);

impl Notifications {
    pub async fn open(js: &jetstream::Context, env: &Env) -> Self {
        Self(EventLog::open(js, NOTIFY_STREAM, shared::subjects::notify(env)).await)
    }

    /// The next run notification, if one comes within `timeout`.
    pub async fn within(&mut self, timeout: Duration) -> Option<Notification> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let message = self.0.next_within(left).await?;
            if let Ok(notification) = serde_json::from_slice(&message.payload) {
                return Some(notification);
            }
        }
    }

    /// The next run notification, or a panic naming what was awaited after a minute (a whole run
    /// of the pipeline).
    pub async fn next(&mut self, what: &str) -> Notification {
        self.within(RUN_WITHIN).await.unwrap_or_else(|| {
            panic!("no notification within {RUN_WITHIN:?} while waiting for {what}")
        })
    }

    /// Asserts that no further run notification arrives within `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        if let Some(notification) = self.within(quiet).await {
            panic!("unexpected notification: {notification:?}");
        }
    }
}
