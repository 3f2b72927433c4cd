//! Reading `notify.<env>` and the notifier's consumer state.

use std::time::Duration;

use async_nats::jetstream::consumer::pull;
use futures::{StreamExt, TryStreamExt};
use shared::Env;
use shared::nats::Stores;

use super::WAIT;

/// Reads `notify.<env>` from the start of the stream.
pub struct NotifyReader {
    messages: pull::Ordered,
}

impl NotifyReader {
    pub async fn open(stores: &Stores, env: &Env) -> Self {
        let stream = stores
            .js
            .get_stream(shared::nats::NOTIFY_STREAM)
            .await
            .unwrap();
        let consumer = stream
            .create_consumer(pull::OrderedConfig {
                filter_subject: shared::subjects::notify(env),
                ..Default::default()
            })
            .await
            .unwrap();
        Self {
            messages: consumer.messages().await.unwrap(),
        }
    }

    pub async fn next(&mut self) -> serde_json::Value {
        let message = tokio::time::timeout(WAIT, self.messages.next())
            .await
            .expect("a message on notify.<env> in time")
            .expect("stream open")
            .expect("message");
        serde_json::from_slice(&message.payload).unwrap()
    }
}

/// How many messages the NOTIFY stream holds for `env`.
pub async fn notify_count(stores: &Stores, env: &Env) -> usize {
    let stream = stores
        .js
        .get_stream(shared::nats::NOTIFY_STREAM)
        .await
        .unwrap();
    let subject = shared::subjects::notify(env);
    let counts: Vec<(String, usize)> = stream
        .info_with_subjects(&subject)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    counts
        .iter()
        .filter(|(s, _)| *s == subject)
        .map(|(_, n)| n)
        .sum()
}

/// Waits (bounded) until the env's consumer has every event acknowledged: none left to deliver,
/// none awaiting an ack or a redelivery. Panics if that does not happen in time.
pub async fn wait_all_acknowledged(stores: &Stores, env: &Env) {
    let scope: shared::EnvScope = env.as_str().parse().unwrap();
    let stream = stores
        .js
        .get_stream(shared::nats::ETL_STREAM)
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let info = stream
            .consumer_info(notifier::consumer_name(&scope))
            .await
            .unwrap();
        if info.num_pending == 0 && info.num_ack_pending == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events still unfinished: {} pending, {} awaiting ack",
            info.num_pending,
            info.num_ack_pending
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
