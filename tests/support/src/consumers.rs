//! What a stream holds, and how far a service's consumer has got through it.

use std::time::Duration;

use async_nats::jetstream;
use futures::TryStreamExt;

use crate::eventually;

/// How many messages `stream` holds on `subject` (wildcards allowed).
pub async fn stored_count(js: &jetstream::Context, stream: &str, subject: &str) -> usize {
    let stream = js
        .get_stream(stream)
        .await
        .unwrap_or_else(|err| panic!("stream {stream}: {err}"));
    let counts: Vec<(String, usize)> = stream
        .info_with_subjects(subject)
        .await
        .expect("stream info")
        .try_collect()
        .await
        .expect("stream info");
    counts.iter().map(|(_, count)| count).sum()
}

/// Waits until the durable consumer `durable` of `stream` exists and has every message stored so
/// far acknowledged: none left to deliver, none awaiting an ack or a redelivery. Panics after
/// `timeout`.
pub async fn wait_consumed(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
    timeout: Duration,
) {
    let stream = &js
        .get_stream(stream)
        .await
        .unwrap_or_else(|err| panic!("stream {stream}: {err}"));
    eventually(
        &format!("{durable} to finish every message"),
        timeout,
        move || async move {
            // Until the service has declared its consumer, this is an error: keep waiting.
            let info = stream.consumer_info(durable).await.ok()?;
            (info.num_pending == 0 && info.num_ack_pending == 0).then_some(())
        },
    )
    .await;
}
