//! Connecting to NATS, declaring the JetStream resources, and publishing events.
//!
//! Every service calls [`connect`] and then [`setup`], whichever starts first: declaring a stream,
//! object store or bucket that already exists with the same settings is a no-op.

use std::str::FromStr;
use std::time::Duration;

use async_nats::jetstream::{self, kv, object_store, stream};
use async_nats::{Client, HeaderMap};
use opentelemetry::propagation::{Extractor, Injector};
use serde::Serialize;
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::config::{NatsAuth, NatsConfig};
use crate::message::Publish;
use crate::shutdown::Shutdown;
use crate::subjects;

pub const ETL_STREAM: &str = "ETL";
pub const DEAD_STREAM: &str = "DEAD";
pub const NOTIFY_STREAM: &str = "NOTIFY";
pub const RAW_BUCKET: &str = "etl-raw";
pub const CURATED_BUCKET: &str = "etl-curated";
pub const STATE_BUCKET: &str = "etl-state";

/// How long JetStream remembers a `Nats-Msg-Id`: a retried publish within it is not a second
/// event. Beyond it, idempotence comes from the run id (loader and notifier records).
pub const DUPLICATE_WINDOW: Duration = Duration::from_secs(60 * 60);

/// The message-id header; async-nats header names are case-sensitive, so it is spelled once.
pub const MSG_ID_HEADER: &str = "Nats-Msg-Id";

#[derive(Debug, thiserror::Error)]
pub enum NatsError {
    #[error("could not connect to NATS at {url}: {source}")]
    Connect {
        url: String,
        source: async_nats::ConnectError,
    },
    #[error("could not read the NATS credentials file {path}: {source}")]
    Credentials {
        path: String,
        source: std::io::Error,
    },
    #[error("shut down before NATS was reachable")]
    ShutDown,
    #[error("could not declare JetStream {what} `{name}`: {source}")]
    Declare {
        what: &'static str,
        name: String,
        source: async_nats::Error,
    },
    #[error("could not publish to {subject}: {source}")]
    Publish {
        subject: String,
        source: async_nats::Error,
    },
    #[error("could not encode the event for {subject}: {source}")]
    Encode {
        subject: String,
        source: serde_json::Error,
    },
    #[error("could not publish to {subject}: header {name} cannot hold {value:?}")]
    Header {
        subject: String,
        name: &'static str,
        value: String,
    },
}

/// Connects, retrying the first connection with capped, jittered backoff until `shutdown`: a
/// service may start before the broker does.
pub async fn connect(
    config: &NatsConfig,
    name: &str,
    shutdown: &Shutdown,
) -> Result<Client, NatsError> {
    let mut attempt: u32 = 0;
    loop {
        let options = options(config, name).await?;
        let servers = servers(&config.url).map_err(|err| NatsError::Connect {
            url: redact_url(&config.url),
            source: async_nats::ConnectError::with_source(
                async_nats::ConnectErrorKind::ServerParse,
                err,
            ),
        })?;
        match options.connect(servers).await {
            Ok(client) => {
                tracing::info!(url = %redact_url(&config.url), "connected to NATS");
                return Ok(client);
            }
            Err(source) => {
                attempt += 1;
                let delay = backoff(attempt, Duration::from_millis(200), Duration::from_secs(5));
                tracing::warn!(url = %redact_url(&config.url), error = %source, attempt, ?delay, "NATS not reachable yet, retrying");
                if attempt >= 3 && shutdown.is_triggered() {
                    return Err(NatsError::Connect {
                        url: redact_url(&config.url),
                        source,
                    });
                }
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = shutdown.wait() => return Err(NatsError::ShutDown),
                }
            }
        }
    }
}

/// The connection options of `config` for a client named `name`: its identity, TLS, its own
/// inbox prefix (see [`inbox_prefix`]), reconnection with jittered backoff and logged events.
/// [`connect`] uses them; a caller that needs the connection's events (a test watching for the
/// server's permission errors) may replace the event callback.
pub async fn options(
    config: &NatsConfig,
    name: &str,
) -> Result<async_nats::ConnectOptions, NatsError> {
    let options = match &config.auth {
        NatsAuth::None => async_nats::ConnectOptions::new(),
        NatsAuth::Nkey(seed) => async_nats::ConnectOptions::new().nkey(seed.expose().to_owned()),
        NatsAuth::CredsFile(path) => async_nats::ConnectOptions::new()
            .credentials_file(path)
            .await
            .map_err(|source| NatsError::Credentials {
                path: path.clone(),
                source,
            })?,
        NatsAuth::UserPassword { user, password } => async_nats::ConnectOptions::new()
            .user_and_password(user.clone(), password.expose().to_owned()),
        NatsAuth::Token(token) => {
            async_nats::ConnectOptions::new().token(token.expose().to_owned())
        }
    };
    let mut options = options;
    if let Some(ca_file) = &config.tls.ca_file {
        options = options.add_root_certificates(ca_file.clone());
    }
    if config.tls.required {
        // async-nats builds its TLS configuration with the process's default provider; ring is
        // the one every binary installs. Idempotent.
        crate::install_crypto_provider();
        options = options.require_tls(true);
    }
    Ok(options
        .name(name)
        .custom_inbox_prefix(inbox_prefix(name))
        .connection_timeout(Duration::from_secs(5))
        // Jittered so that many services reconnecting after a broker restart do not do so in step.
        .reconnect_delay_callback(|attempts| {
            backoff(
                attempts as u32,
                Duration::from_millis(100),
                Duration::from_secs(4),
            )
        })
        .event_callback(|event| async move {
            match event {
                async_nats::Event::Connected => tracing::info!("NATS connection (re)established"),
                async_nats::Event::Disconnected => {
                    tracing::warn!("NATS connection lost, reconnecting")
                }
                other => tracing::debug!(event = %other, "NATS event"),
            }
        }))
}

/// `_INBOX.<name>`: each service's replies (JetStream API answers, pulled messages, object
/// chunks) arrive under a prefix of its own, so a locked-down server can let it subscribe to its
/// own inbox only (scripts/nats-auth.sh). A name that is not one subject token gets `_INBOX`.
pub fn inbox_prefix(name: &str) -> String {
    let token = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if token {
        format!("_INBOX.{name}")
    } else {
        "_INBOX".to_owned()
    }
}

/// Exponential backoff from `base`, capped at `max`, with up to 50 % random jitter added.
pub fn backoff(attempt: u32, base: Duration, max: Duration) -> Duration {
    let exp = base.saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let capped = exp.min(max);
    let jitter = rand::random_range(0.0..0.5);
    capped.mul_f64(1.0 + jitter)
}

/// The servers of a `NATS_URL` (one, or a cluster's comma-separated).
pub fn servers(url: &str) -> Result<Vec<async_nats::ServerAddr>, std::io::Error> {
    url.split(',').map(|server| server.trim().parse()).collect()
}

/// The URL (or comma-separated URLs) without any user or password in it, for logs: the one
/// redaction `--check-config` uses too.
pub fn redact_url(url: &str) -> String {
    crate::config::cli::redact_url(url)
}

/// The JetStream handles every service works with.
#[derive(Clone)]
pub struct Stores {
    pub js: jetstream::Context,
    pub raw: object_store::ObjectStore,
    pub curated: object_store::ObjectStore,
    pub state: kv::Store,
}

/// Declares streams `ETL`, `NOTIFY` and `DEAD`, object stores `etl-raw` and `etl-curated` and the
/// KV bucket `etl-state`, idempotently, each with `replicas` copies (`NATS_REPLICAS`). One that
/// already exists with fewer copies is left as it is and named in a warning: scaling up changes a
/// stream's configuration, which only the operator may do (`etl setup`, [`scale_up`]).
pub async fn setup(client: Client, replicas: usize) -> Result<Stores, NatsError> {
    let js = jetstream::new(client);
    for (name, description, subjects) in STREAMS {
        declare_stream(&js, name, description, subjects, replicas).await?;
    }
    let raw = declare_object_store(&js, RAW_BUCKET, "raw upstream payloads", replicas).await?;
    let curated =
        declare_object_store(&js, CURATED_BUCKET, "curated datasets (Parquet)", replicas).await?;
    let state = declare_kv(&js, replicas).await?;
    for (stream, has) in replica_counts(&js).await? {
        if has < replicas {
            tracing::warn!(
                stream,
                replicas = has,
                wanted = replicas,
                "a stream has fewer replicas than NATS_REPLICAS: run `etl setup` as the operator \
                 to scale it up"
            );
        }
    }
    Ok(Stores {
        js,
        raw,
        curated,
        state,
    })
}

/// The pipeline's streams: name, description, subjects.
const STREAMS: [(&str, &str, &[&str]); 3] = [
    (
        ETL_STREAM,
        "covid-etl pipeline events",
        &subjects::ETL_STREAM_SUBJECTS,
    ),
    (
        NOTIFY_STREAM,
        "covid-etl run notifications",
        &subjects::NOTIFY_STREAM_SUBJECTS,
    ),
    (
        DEAD_STREAM,
        "covid-etl messages a stage gave up on (dead letters)",
        &subjects::DEAD_STREAM_SUBJECTS,
    ),
];

/// Every stream behind the pipeline's resources: the three streams, the two object stores' and
/// the bucket's.
fn all_streams() -> Vec<String> {
    let mut names: Vec<String> = STREAMS
        .iter()
        .map(|(name, ..)| (*name).to_owned())
        .collect();
    names.push(format!("OBJ_{RAW_BUCKET}"));
    names.push(format!("OBJ_{CURATED_BUCKET}"));
    names.push(format!("KV_{STATE_BUCKET}"));
    names
}

/// Each stream of the pipeline with its replica count.
pub async fn replica_counts(js: &jetstream::Context) -> Result<Vec<(String, usize)>, NatsError> {
    let mut counts = Vec::new();
    for name in all_streams() {
        let mut stream = js
            .get_stream(&name)
            .await
            .map_err(|err| NatsError::Declare {
                what: "stream",
                name: name.clone(),
                source: err.into(),
            })?;
        let info = stream.info().await.map_err(|err| NatsError::Declare {
            what: "stream",
            name: name.clone(),
            source: err.into(),
        })?;
        counts.push((name, info.config.num_replicas.max(1)));
    }
    Ok(counts)
}

/// Raises every stream of the pipeline with fewer than `replicas` copies to `replicas`, in place
/// (JetStream copies the data to the new replicas); never lowers one. Returns what it changed, as
/// `(stream, from, to)`. Needs the operator's permissions.
pub async fn scale_up(
    js: &jetstream::Context,
    replicas: usize,
) -> Result<Vec<(String, usize, usize)>, NatsError> {
    let mut changed = Vec::new();
    for (name, has) in replica_counts(js).await? {
        if has >= replicas {
            continue;
        }
        let update = |source: async_nats::Error| NatsError::Declare {
            what: "stream",
            name: name.clone(),
            source,
        };
        let mut stream = js
            .get_stream(&name)
            .await
            .map_err(|err| update(err.into()))?;
        let info = stream.info().await.map_err(|err| update(err.into()))?;
        let config = stream::Config {
            num_replicas: replicas,
            ..info.config.clone()
        };
        js.update_stream(config)
            .await
            .map_err(|err| update(err.into()))?;
        tracing::info!(stream = %name, from = has, to = replicas, "stream scaled up");
        changed.push((name, has, replicas));
    }
    Ok(changed)
}

/// Runs `declare` up to five times: two services starting together may both try to create a
/// resource, and the loser finds it on the next attempt.
async fn with_retries<T, E, F, Fut>(
    what: &'static str,
    name: &str,
    mut declare: F,
) -> Result<T, NatsError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
    E: Into<async_nats::Error>,
{
    let mut attempt = 0;
    loop {
        attempt += 1;
        match declare().await {
            Ok(value) => return Ok(value),
            Err(err) if attempt >= 5 => {
                return Err(NatsError::Declare {
                    what,
                    name: name.to_owned(),
                    source: err.into(),
                });
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn declare_stream(
    js: &jetstream::Context,
    name: &str,
    description: &str,
    subjects: &[&str],
    replicas: usize,
) -> Result<(), NatsError> {
    let config = stream::Config {
        name: name.to_owned(),
        description: Some(description.to_owned()),
        subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
        storage: stream::StorageType::File,
        duplicate_window: DUPLICATE_WINDOW,
        max_age: Duration::from_secs(30 * 24 * 3600),
        num_replicas: replicas,
        ..Default::default()
    };
    with_retries("stream", name, || js.get_or_create_stream(config.clone())).await?;
    Ok(())
}

async fn declare_object_store(
    js: &jetstream::Context,
    bucket: &str,
    description: &str,
    replicas: usize,
) -> Result<object_store::ObjectStore, NatsError> {
    with_retries("object store", bucket, || async {
        if let Ok(store) = js.get_object_store(bucket).await {
            return Ok(store);
        }
        js.create_object_store(object_store::Config {
            bucket: bucket.to_owned(),
            description: Some(description.to_owned()),
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
    })
    .await
}

async fn declare_kv(js: &jetstream::Context, replicas: usize) -> Result<kv::Store, NatsError> {
    with_retries("key-value bucket", STATE_BUCKET, || async {
        if let Ok(store) = js.get_key_value(STATE_BUCKET).await {
            return Ok(store);
        }
        js.create_key_value(kv::Config {
            bucket: STATE_BUCKET.to_owned(),
            description: "covid-etl state that survives restarts".to_owned(),
            history: 5,
            storage: stream::StorageType::File,
            num_replicas: replicas,
            ..Default::default()
        })
        .await
    })
    .await
}

/// Publishes `event` on its own subject under its own message id (see [`Publish`]). Returns
/// whether the stream saw it as a duplicate.
pub async fn publish<E: Publish>(js: &jetstream::Context, event: &E) -> Result<bool, NatsError> {
    publish_event(js, &event.subject().to_string(), &event.msg_id(), event).await
}

/// Publishes `event` as JSON to a JetStream subject with a deterministic message id and the
/// current trace context, and waits for the stream's acknowledgement. A timeout is retried with
/// the same id, which the stream de-duplicates. Returns whether the stream saw it as a duplicate.
/// Services use [`publish`]; this form is for tools and tests that need an id of their own.
pub async fn publish_event<T: Serialize>(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    event: &T,
) -> Result<bool, NatsError> {
    let payload = serde_json::to_vec(event).map_err(|source| NatsError::Encode {
        subject: subject.to_owned(),
        source,
    })?;
    let span = tracing::info_span!(
        "publish",
        otel.name = %format!("publish {subject}"),
        otel.kind = "producer",
        messaging.system = "nats",
        messaging.operation.type = "send",
        messaging.destination.name = %subject,
        messaging.message.id = %msg_id,
        messaging.message.body.size = payload.len(),
    );
    publish_payload(js, subject, msg_id, payload)
        .instrument(span)
        .await
}

async fn publish_payload(
    js: &jetstream::Context,
    subject: &str,
    msg_id: &str,
    payload: Vec<u8>,
) -> Result<bool, NatsError> {
    // Checked, never converted with a panicking `From`: a line break in an id must be an error.
    let header = |name: &'static str, value: &str| {
        async_nats::HeaderValue::from_str(value).map_err(|_| NatsError::Header {
            subject: subject.to_owned(),
            name,
            value: value.chars().take(80).collect(),
        })
    };
    let mut headers = HeaderMap::new();
    headers.insert(
        async_nats::header::NATS_MESSAGE_ID,
        header(MSG_ID_HEADER, msg_id)?,
    );
    headers.insert(
        async_nats::HeaderName::from_static("Content-Type"),
        header("Content-Type", "application/json")?,
    );
    // The consumer's span continues from this publish span.
    inject_trace_context(&mut headers);

    let mut attempt = 0;
    loop {
        attempt += 1;
        // The id is already in the headers: `PublishMessage::message_id` would convert it again.
        let publish = jetstream::message::PublishMessage::build()
            .payload(payload.clone().into())
            .headers(headers.clone());
        let result = async { js.send_publish(subject.to_owned(), publish).await?.await }.await;
        match result {
            Ok(ack) => {
                tracing::debug!(subject, msg_id, duplicate = ack.duplicate, "published");
                return Ok(ack.duplicate);
            }
            Err(err) if attempt < 5 => {
                tracing::warn!(subject, msg_id, error = %err, attempt, "publish not acknowledged, retrying with the same id");
                tokio::time::sleep(backoff(
                    attempt,
                    Duration::from_millis(100),
                    Duration::from_secs(2),
                ))
                .await;
            }
            Err(err) => {
                return Err(NatsError::Publish {
                    subject: subject.to_owned(),
                    source: err.into(),
                });
            }
        }
    }
}

/// Writes the current span's W3C trace context (`traceparent`, `tracestate`) into `headers`.
pub fn inject_trace_context(headers: &mut HeaderMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.inject_context(&context, &mut HeaderInjector(headers))
    });
}

/// Reads the trace context a publisher put in `headers`.
pub fn extract_trace_context(headers: Option<&HeaderMap>) -> opentelemetry::Context {
    let empty = HeaderMap::new();
    let headers = headers.unwrap_or(&empty);
    opentelemetry::global::get_text_map_propagator(|propagator| {
        propagator.extract(&HeaderExtractor(headers))
    })
}

struct HeaderInjector<'a>(&'a mut HeaderMap);

impl Injector for HeaderInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        // Propagators use lowercase names (`traceparent`); NATS header names are case-sensitive.
        // A value a header cannot carry is dropped: losing a trace link beats losing the message.
        if let (Ok(name), Ok(value)) = (
            async_nats::HeaderName::from_str(key),
            async_nats::HeaderValue::from_str(&value),
        ) {
            self.0.insert(name, value);
        }
    }
}

struct HeaderExtractor<'a>(&'a HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(|value| value.as_str())
    }

    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|(name, _)| name.as_ref()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let base = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        assert!(backoff(1, base, max) < Duration::from_millis(151));
        assert!(backoff(3, base, max) >= Duration::from_millis(400));
        assert!(backoff(30, base, max) <= Duration::from_millis(1500));
    }

    #[test]
    fn each_named_client_gets_an_inbox_of_its_own() {
        assert_eq!(inbox_prefix("loader"), "_INBOX.loader");
        assert_eq!(inbox_prefix("covid-etl-test"), "_INBOX.covid-etl-test");
        assert_eq!(inbox_prefix("etl smoke"), "_INBOX");
        assert_eq!(inbox_prefix("a.b"), "_INBOX");
        assert_eq!(inbox_prefix(""), "_INBOX");
    }

    #[test]
    fn urls_lose_their_credentials_in_logs() {
        assert_eq!(
            redact_url("nats://user:secret@host:4222"),
            "nats://[redacted]@host:4222"
        );
        assert_eq!(
            redact_url("tls://a:1,tls://token@b:2"),
            "tls://a:1,tls://[redacted]@b:2"
        );
        assert_eq!(redact_url("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    }
}
