//! The one consumer loop of every pipeline stage: decode, hand over, settle.
//!
//! A service describes its durable pull consumer in a [`ConsumerSpec`] and hands [`run`] a
//! handler that receives a decoded, checked [`Delivery`] and returns `Ok(())` once its work is
//! durable, or a classified [`Failure`]. Messages are handled one at a time, in order, each asked
//! for only once the one before is settled. While a handler works, the message is kept with
//! progress acks, so the server's ack wait can be short (a killed stage's message is taken up
//! again within seconds) without a slow handler losing its message to another worker; a handler
//! that passes its stage's deadline is stopped and its message retried. A message that cannot be
//! decoded never reaches the handler: it is reported and dead-lettered at once. [`crate::settle`] decides the rest. On shutdown the loop stops
//! taking messages, lets the one in hand finish, and returns. [`serve`] also records how each
//! message was settled, its stage's time on it and the consumer's lag in the service's
//! [`crate::metrics`], whose readiness then needs the connection and the consumer.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind, consumer::pull};
use futures::StreamExt;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::events::{FailureKind, Stage};
use crate::message::{self, Event};
use crate::metrics::Metrics;
use crate::metrics::instruments::Settled;
use crate::nats::{backoff, extract_trace_context};
use crate::settle::{self, Decision, Failure, GivenUp};
use crate::shutdown::Shutdown;
use crate::subjects;

/// A durable pull consumer of one stream, and the stage it feeds.
#[derive(Debug, Clone)]
pub struct ConsumerSpec {
    pub stream: String,
    pub durable: String,
    pub filters: Vec<String>,
    /// The stage that reports the failures of these messages.
    pub stage: Stage,
    /// How long the server waits for an ack or a progress ack before delivering again. Progress
    /// acks go out every third of it, so it only bounds how soon a crashed stage's message is
    /// taken up again.
    pub ack_wait: Duration,
    /// The longest a handler may work on one message; past it, the message is retried.
    pub deadline: Duration,
    /// Deliveries before the message is given up on (reported and dead-lettered).
    pub max_deliver: i64,
}

impl ConsumerSpec {
    /// Defaults that suit the pipeline's stages: a 10 s ack wait kept alive by progress acks, a
    /// minute's deadline per message, ten deliveries (about ten minutes of retries with the
    /// backoff of [`settle::retry_delay`]). No server `backoff` list is set: the server would
    /// take its first entry as the ack wait.
    pub fn new(
        stream: &str,
        durable: impl Into<String>,
        stage: Stage,
        filters: Vec<String>,
    ) -> Self {
        Self {
            stream: stream.to_owned(),
            durable: durable.into(),
            filters,
            stage,
            ack_wait: Duration::from_secs(10),
            deadline: Duration::from_secs(60),
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

    fn progress_interval(&self) -> Duration {
        (self.ack_wait / 3).max(Duration::from_millis(100))
    }
}

/// One delivered message, decoded and checked, as a handler sees it.
#[derive(Debug)]
pub struct Delivery {
    pub subject: String,
    pub event: Event,
    /// 1 on first delivery.
    pub delivered: u64,
    /// True when a transient failure now would be given up on rather than retried.
    pub last_attempt: bool,
    /// The message's sequence in its stream: with the upstream commit time, it orders runs.
    pub stream_sequence: u64,
}

/// Counters a service reports (NATS service stats, `etl status`), and the service's metrics
/// when it has them.
#[derive(Debug, Default)]
pub struct Stats {
    pub processed: AtomicU64,
    pub failed: AtomicU64,
    pub redelivered: AtomicU64,
    pub dead_lettered: AtomicU64,
    pub metrics: Option<Metrics>,
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
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let mut failures: u32 = 0;
    while !shutdown.is_triggered() {
        let consumer = match open(js, spec).await {
            Ok(consumer) => {
                failures = 0;
                consumer
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
                next = next_message(&consumer) => next,
                _ = shutdown.wait() => return Ok(()),
            };
            match next {
                Ok(Some(message)) => handle(js, message, spec, &stats, &mut handler).await,
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(durable = %spec.durable, error = %err, "consumer error, reopening");
                    break;
                }
            }
        }
    }
    Ok(())
}

/// How long one request for the next message waits on the server before it is asked again.
const NEXT_MESSAGE_WAIT: Duration = Duration::from_secs(5);

async fn open(
    js: &jetstream::Context,
    spec: &ConsumerSpec,
) -> Result<jetstream::consumer::Consumer<pull::Config>, async_nats::Error> {
    let stream = js.get_stream(&spec.stream).await?;
    // `create_consumer` is create-or-update, so a changed spec is applied on the next start.
    Ok(stream.create_consumer(spec.config()).await?)
}

/// The next message, asked for only now that the one before is settled; `None` when none came
/// within [`NEXT_MESSAGE_WAIT`]. Nothing is fetched ahead: a message waiting in this client's
/// buffer would have its ack wait run out while the one before it was in hand (no progress acks
/// go out for it), and be delivered again, its deliveries used up, while never handled.
async fn next_message(
    consumer: &jetstream::consumer::Consumer<pull::Config>,
) -> Result<Option<jetstream::Message>, async_nats::Error> {
    let mut batch = consumer
        .batch()
        .max_messages(1)
        .expires(NEXT_MESSAGE_WAIT)
        .messages()
        .await?;
    batch.next().await.transpose()
}

async fn handle<H, Fut>(
    js: &jetstream::Context,
    message: jetstream::Message,
    spec: &ConsumerSpec,
    stats: &Stats,
    handler: &mut H,
) where
    H: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let (delivered, stream_sequence) = message
        .info()
        .map(|info| (info.delivered.max(1) as u64, info.stream_sequence))
        .unwrap_or((1, 0));
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
        nats.sequence = stream_sequence,
        trace_id = tracing::field::Empty,
    );
    // Per the messaging conventions, the consumer span links to the producer's context; as each
    // message is handled alone, we also make it the parent so one change reads as one trace.
    let parent = extract_trace_context(message.headers.as_ref());
    let _ = span.set_parent(parent);
    crate::telemetry::record_trace_id(&span);

    // A `max_deliver` of -1 (or 0) means no limit: there is no last attempt.
    let last_attempt = spec.max_deliver > 0 && delivered >= spec.max_deliver as u64;
    let started = Instant::now();
    let decoded = message::decode(&subject, &message.payload);
    let result = match &decoded {
        Ok(event) => {
            let delivery = Delivery {
                subject: subject.clone(),
                event: event.clone(),
                delivered,
                last_attempt,
                stream_sequence,
            };
            let work = keep_in_hand(&message, spec, handler(delivery));
            work.instrument(span.clone()).await
        }
        Err(err) => Err(Failure::permanent(FailureKind::Malformed, err.to_string())),
    };

    let elapsed = started.elapsed();
    let (ack, settled) = match settle::decide(result, delivered, last_attempt) {
        Decision::Ack => {
            stats.processed.fetch_add(1, Ordering::Relaxed);
            (AckKind::Ack, Settled::Processed)
        }
        Decision::Retry(delay) => {
            tracing::warn!(parent: &span, %subject, delivered, ?delay, "will retry");
            (AckKind::Nak(Some(delay)), Settled::Retried)
        }
        Decision::GiveUp(failure) => {
            let subject_env = subjects::env_of(&subject);
            let given_up = GivenUp {
                stage: spec.stage,
                consumer: &spec.durable,
                subject: &subject,
                // The subject's env, not the body's: a body may claim any env.
                env: subject_env.as_ref(),
                event: decoded.as_ref().ok(),
                payload: &message.payload,
                stream_sequence,
                delivered,
            };
            match settle::give_up(js, &given_up, &failure)
                .instrument(span.clone())
                .await
            {
                Ok(()) => {
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    if failure.transient || failure.kind.is_dead_letter() {
                        stats.dead_lettered.fetch_add(1, Ordering::Relaxed);
                        (AckKind::Term, Settled::DeadLettered)
                    } else {
                        (AckKind::Term, Settled::Failed)
                    }
                }
                // Unreported, the failure would be silent: deliver it again and report then.
                Err(err) if !last_attempt => {
                    tracing::warn!(parent: &span, %subject, error = %err, "could not report a failure, will retry");
                    (
                        AckKind::Nak(Some(settle::retry_delay(delivered))),
                        Settled::Retried,
                    )
                }
                Err(err) => {
                    tracing::error!(parent: &span, %subject, error = %err, reason = %failure.reason, "could not report a failure on the last delivery");
                    (AckKind::Term, Settled::Failed)
                }
            }
        }
    };
    if let Some(metrics) = &stats.metrics {
        record(metrics, spec, &subject, settled, elapsed);
    }
    if let Err(err) = message.ack_with(ack).await {
        // The server will deliver it again after ack_wait; handlers are idempotent.
        tracing::warn!(%subject, error = %err, "could not acknowledge");
    }
}

/// Records how a message was settled and how long its stage spent on it.
fn record(
    metrics: &Metrics,
    spec: &ConsumerSpec,
    subject: &str,
    settled: Settled,
    elapsed: Duration,
) {
    let stage = spec.stage.as_str();
    metrics.record().message(&spec.durable, stage, settled);
    let env = subjects::env_of(subject);
    let env = env.as_ref().map_or("unknown", |env| env.as_str());
    let outcome = match settled {
        Settled::Processed => "ok",
        Settled::Retried => "retried",
        Settled::Failed | Settled::DeadLettered => "failed",
    };
    metrics.record().stage(stage, env, outcome, elapsed);
}

/// Runs `work` while telling the server, every third of the ack wait, that the message is still
/// in hand; stops it at the stage's deadline.
async fn keep_in_hand<F>(
    message: &jetstream::Message,
    spec: &ConsumerSpec,
    work: F,
) -> Result<(), Failure>
where
    F: std::future::Future<Output = Result<(), Failure>>,
{
    let mut work = std::pin::pin!(tokio::time::timeout(spec.deadline, work));
    let mut progress = tokio::time::interval(spec.progress_interval());
    progress.tick().await; // the first tick is immediate
    loop {
        tokio::select! {
            result = &mut work => {
                return result.unwrap_or_else(|_| Err(Failure::transient(
                    FailureKind::Timeout,
                    format!("the {} stage had no result within its deadline of {:?}", spec.stage.as_str(), spec.deadline),
                )));
            }
            _ = progress.tick() => {
                if let Err(err) = message.ack_with(AckKind::Progress).await {
                    tracing::debug!(error = %err, "could not send a progress ack");
                }
            }
        }
    }
}

/// [`run`], with the service registered as a NATS micro-service (named `name`, reporting the
/// consumer's counters, `envs` in its metadata) for as long as it consumes; its messages, stage
/// durations and lag are recorded in `metrics`, whose readiness needs the NATS connection
/// (`nats`) and the durable consumer (`consumer`).
#[allow(clippy::too_many_arguments)]
pub async fn serve<H, Fut>(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    envs: &str,
    spec: &ConsumerSpec,
    metrics: &Metrics,
    shutdown: &Shutdown,
    handler: H,
) -> Result<(), ConsumerError>
where
    H: FnMut(Delivery) -> Fut,
    Fut: std::future::Future<Output = Result<(), Failure>>,
{
    let stats = Arc::new(Stats {
        metrics: Some(metrics.clone()),
        ..Stats::default()
    });
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
    metrics.readiness().set_nats(&js.client());
    metrics
        .readiness()
        .set_consumer(js, &spec.stream, &spec.durable);
    let stop_lag = Shutdown::new();
    let lag = tokio::spawn(crate::metrics::lag::watch(
        js.clone(),
        spec.stream.clone(),
        spec.durable.clone(),
        spec.stage.as_str(),
        metrics.clone(),
        stop_lag.clone(),
    ));
    let result = run(js, spec, stats, shutdown, handler).await;
    stop_lag.trigger();
    let _ = lag.await;
    crate::service::deregister(registration, shutdown).await;
    result
}
