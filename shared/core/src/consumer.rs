//! The one place where a handler's result becomes ack, nak-with-delay or term.
//!
//! A service describes its durable pull consumer in a [`ConsumerSpec`] and hands [`run`] a
//! handler that returns an [`Outcome`]. Messages are handled one at a time, in order; the work
//! is acknowledged only after the handler says it is durable. On shutdown the loop stops taking
//! messages, lets the one in hand finish, and returns.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_nats::HeaderMap;
use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::nats::{backoff, extract_trace_context};
use crate::shutdown::Shutdown;

/// What became of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Done and durable.
    Ack,
    /// A transient failure: deliver again after `delay`.
    Retry { delay: Duration, reason: String },
    /// A permanent failure (already reported by the handler): never deliver again.
    Reject { reason: String },
}

/// A durable pull consumer of one stream.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: String,
    pub durable: String,
    pub filters: Vec<String>,
    /// Longer than the worst-case handling time: after it, the server delivers again.
    pub ack_wait: Duration,
    /// Deliveries before the server gives up; -1 for no limit.
    pub max_deliver: i64,
}

impl ConsumerSpec {
    /// Defaults that suit the pipeline's stages: a minute to handle a message, ten deliveries.
    /// Retries are spaced by the handler's `Outcome::Retry` delay (a NAK with delay). No server
    /// `backoff` list is set: the server would take its first entry as the ack wait.
    pub fn new(stream: &str, durable: impl Into<String>, filters: Vec<String>) -> Self {
        Self {
            stream: stream.to_owned(),
            durable: durable.into(),
            filters,
            ack_wait: Duration::from_secs(60),
            max_deliver: 10,
        }
    }

    fn config(&self) -> pull::Config {
        let (filter_subject, filter_subjects) = match self.filters.as_slice() {
            [one] => (one.clone(), Vec::new()),
            many => (String::new(), many.to_vec()),
        };
        pull::Config {
            durable_name: Some(self.durable.clone()),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.ack_wait,
            max_deliver: self.max_deliver,
            filter_subject,
            filter_subjects,
            max_ack_pending: 100,
            ..Default::default()
        }
    }
}

/// One delivered message, as a handler sees it.
#[derive(Debug)]
pub struct Delivery {
    pub subject: String,
    pub payload: bytes::Bytes,
    pub headers: Option<HeaderMap>,
    /// 1 on first delivery.
    pub delivered: i64,
    /// True when a `Retry` now would exceed `max_deliver`: report the failure instead.
    pub last_attempt: bool,
}

/// Counters a service reports (NATS service stats, `etl status`).
#[derive(Debug, Default)]
pub struct Stats {
    pub processed: AtomicU64,
    pub failed: AtomicU64,
    pub redelivered: AtomicU64,
}

impl Stats {
    pub fn snapshot(&self) -> (u64, u64, u64) {
        (
            self.processed.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.redelivered.load(Ordering::Relaxed),
        )
    }
}

#[derive(Debug, thiserror::Error)]
#[error("consumer {durable} on stream {stream}: {source}")]
pub struct ConsumerError {
    pub stream: String,
    pub durable: String,
    pub source: async_nats::Error,
}

/// Consumes until `shutdown`, handling each message with `handler`. Broker hiccups (a deleted
/// consumer, missed heartbeats, a restart) are logged and the consumer is declared again.
pub async fn run<H, Fut>(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
    stats: Arc<Stats>,
    shutdown: &Shutdown,
    mut handler: H,
) -> Result<(), ConsumerError>
where
    H: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let mut messages = match open(js, spec).await {
            Ok(messages) => {
                failures = 0;
                messages
            }
            Err(source) => {
                failures += 1;
                tracing::warn!(durable = %spec.durable, error = %source, "cannot open consumer, retrying");
                if failures > 30 {
                    return Err(ConsumerError {
                        stream: spec.stream.clone(),
                        durable: spec.durable.clone(),
                        source,
                    });
                }
                tokio::select! {
                    _ = tokio::time::sleep(backoff(failures, Duration::from_millis(200), Duration::from_secs(5))) => {}
                    _ = shutdown.wait() => {}
                }
                continue;
            }
        };
        loop {
            let next = tokio::select! {
                next = messages.next() => next,
                _ = shutdown.wait() => return Ok(()),
            };
            let message = match next {
                Some(Ok(message)) => message,
                Some(Err(err)) => {
                    tracing::warn!(durable = %spec.durable, error = %err, "consumer stream error, reopening");
                    break;
                }
                None => break,
            };
            handle(message, spec, &stats, &mut handler).await;
        }
    }
    Ok(())
}

async fn open(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<pull::Stream, async_nats::Error> {
    let stream = js.get_stream(&spec.stream).await?;
    // `create_consumer` is create-or-update, so a changed spec is applied on the next start.
    let consumer: jetstream::consumer::Consumer<pull::Config> =
        stream.create_consumer(spec.config()).await?;
    Ok(consumer
        .stream()
        .max_messages_per_batch(10)
        .heartbeat(Duration::from_secs(5))
        .expires(Duration::from_secs(30))
        .messages()
        .await?)
}

async fn handle<H, Fut>(
    message: jetstream::Message,
    spec: &ConsumerSpec,
    stats: &Stats,
    handler: &mut H,
) where
    H: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let delivered = message.info().map(|info| info.delivered).unwrap_or(1);
    if delivered > 1 {
        stats.redelivered.fetch_add(1, Ordering::Relaxed);
    }
    let subject = message.subject.to_string();
    let span = tracing::info_span!(
        "process",
        otel.name = %format!("process {subject}"),
        otel.kind = "consumer",
        messaging.system = "nats",
        messaging.operation.type = "process",
        messaging.destination.name = %subject,
        messaging.consumer.group.name = %spec.durable,
        nats.delivered = delivered,
        trace_id = tracing::field::Empty,
    );
    // Per the messaging conventions, the consumer span links to the producer's context; as each
    // message is handled alone, we also make it the parent so one change reads as one trace.
    let parent = extract_trace_context(message.headers.as_ref());
    let _ = span.set_parent(parent);
    crate::telemetry::record_trace_id(&span);

    let delivery = Delivery {
        subject: subject.clone(),
        payload: message.payload.clone(),
        headers: message.headers.clone(),
        delivered,
        // A `max_deliver` of -1 (or 0) means no limit: there is no last attempt.
        last_attempt: spec.max_deliver > 0 && delivered >= spec.max_deliver,
    };
    let outcome = handler(delivery).instrument(span.clone()).await;
    let ack = match &outcome {
        Outcome::Ack => {
            stats.processed.fetch_add(1, Ordering::Relaxed);
            AckKind::Ack
        }
        Outcome::Retry { delay, reason } => {
            tracing::warn!(parent: &span, %subject, delivered, ?delay, %reason, "will retry");
            AckKind::Nak(Some(*delay))
        }
        Outcome::Reject { reason } => {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(parent: &span, %subject, %reason, "rejected for good");
            AckKind::Term
        }
    };
    if let Err(err) = message.ack_with(ack).await {
        // The server will deliver it again after ack_wait; handlers are idempotent.
        tracing::warn!(%subject, error = %err, "could not acknowledge");
    }
}

/// [`run`], with the service registered as a NATS micro-service (named `name`, reporting the
/// consumer's counters, `envs` in its metadata) for as long as it consumes.
pub async fn serve<H, Fut>(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    envs: &str,
    spec: &ConsumerSpec,
    shutdown: &Shutdown,
    handler: H,
) -> Result<(), ConsumerError>
where
    H: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Outcome>,
{
    let stats = Arc::new(Stats::default());
    let registration = crate::service::register(
        &js.client(),
        name,
        description,
        envs,
        stats.clone(),
        shutdown.clone(),
    )
    .await
    .map_err(|source| ConsumerError {
        stream: spec.stream.clone(),
        durable: spec.durable.clone(),
        source,
    })?;
    let result = run(js, spec, stats, shutdown, handler).await;
    crate::service::deregister(registration, shutdown).await;
    result
}
