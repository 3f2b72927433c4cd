//! Live updates: a core NATS subscription to `etl.<env>.loaded` and `etl.<env>.failed.*` feeds a
//! broadcast channel, and `GET /api/v1/events` streams it to each browser as Server-Sent Events.
//!
//! A core subscription (not a JetStream consumer) is right here: a page that is not open has no
//! use for the events it missed, and on (re)connecting it reads the current state from the API.

use std::convert::Infallible;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use async_nats::connection::State as ConnectionState;
use axum::Extension;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderValue, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;
use serde::Serialize;
use shared::Dataset;
use shared::config::NatsConfig;
use shared::events::{Failed, FailureKind, Loaded, Stage};
use shared::ids::RunId;
use shared::message::{self, Event as Received};
use shared::subjects::{self, Filter};
use shared::{Env, EnvScope};
use tokio::sync::broadcast;

use crate::app::AppState;
use crate::limits::{StreamRefused, StreamSlots, plain};

const CHANNEL_CAPACITY: usize = 64;
const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How long a browser waits before reconnecting a dropped stream.
const RECONNECT_AFTER: Duration = Duration::from_secs(3);

/// What a page is told.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum LiveEvent {
    Loaded(LoadedSummary),
    Failed(FailedSummary),
}

impl LiveEvent {
    fn name(&self) -> &'static str {
        match self {
            LiveEvent::Loaded(_) => "loaded",
            LiveEvent::Failed(_) => "failed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LoadedSummary {
    /// `us`, `states` or `counties`: which part of the page to refresh.
    pub dataset: Dataset,
    pub run_id: RunId,
    pub trigger: &'static str,
    pub inserted: u64,
    pub updated: u64,
    pub unchanged: u64,
    pub removed: u64,
    pub revised: u64,
    pub corrections_total: u64,
    pub rows: u64,
    pub first_date: NaiveDate,
    pub last_date: NaiveDate,
    pub duration_ms: u64,
}

impl From<Loaded> for LoadedSummary {
    fn from(e: Loaded) -> Self {
        Self {
            dataset: e.dataset,
            run_id: e.run_id,
            trigger: e.trigger.kind.as_str(),
            inserted: e.counts.inserted,
            updated: e.counts.updated,
            unchanged: e.counts.unchanged,
            removed: e.counts.removed,
            revised: e.counts.revised,
            corrections_total: e.corrections_total,
            rows: e.rows,
            first_date: e.first_date,
            last_date: e.last_date,
            duration_ms: e.duration_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailedSummary {
    pub run_id: Option<RunId>,
    pub stage: Stage,
    pub kind: FailureKind,
    pub reason: String,
    pub failed_at: DateTime<Utc>,
}

impl From<Failed> for FailedSummary {
    fn from(e: Failed) -> Self {
        Self {
            run_id: e.run_id,
            stage: e.stage,
            kind: e.kind,
            reason: e.reason,
            failed_at: e.failed_at,
        }
    }
}

/// The shared side of live updates: the channel, the NATS client once connected, and the bounds
/// on open streams (each holds a connection and a little memory).
pub struct Live {
    events: broadcast::Sender<LiveEvent>,
    nats: OnceLock<async_nats::Client>,
    subscribed: std::sync::atomic::AtomicBool,
    streams: Arc<StreamSlots>,
}

impl Live {
    /// At most `max_streams` open streams, `per_client` of them from one client address.
    pub fn new(max_streams: usize, per_client: usize) -> Self {
        Self {
            events: broadcast::channel(CHANNEL_CAPACITY).0,
            nats: OnceLock::new(),
            subscribed: std::sync::atomic::AtomicBool::new(false),
            streams: Arc::new(StreamSlots::new(max_streams, per_client)),
        }
    }
}

/// How the NATS side is doing, for `/readyz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum NatsStatus {
    /// Subscribed and connected.
    Ok,
    Connecting,
    Disconnected,
}

impl Live {
    pub fn nats_status(&self) -> NatsStatus {
        match self.nats.get() {
            None => NatsStatus::Connecting,
            Some(_) if !self.subscribed.load(std::sync::atomic::Ordering::Acquire) => {
                NatsStatus::Connecting
            }
            Some(client) if client.connection_state() == ConnectionState::Connected => {
                NatsStatus::Ok
            }
            Some(_) => NatsStatus::Disconnected,
        }
    }

    /// Connects (retrying until `shutdown`), subscribes, and forwards events until `shutdown`.
    pub async fn feed(self: Arc<Self>, config: NatsConfig, env: Env, shutdown: shared::Shutdown) {
        let client = match shared::nats::connect(&config, "dashboard", &shutdown).await {
            Ok(client) => client,
            Err(err) => {
                tracing::info!(error = %err, "live updates stopped before NATS was reachable");
                return;
            }
        };
        let _ = self.nats.set(client.clone());
        // `etl.<env>.loaded` and `etl.<env>.failed.*`.
        let filters = subjects::filters(
            &EnvScope::Only(vec![env.clone()]),
            &[Filter::Loaded, Filter::Failed],
        );
        let subscriptions = async {
            let mut subscribed = Vec::with_capacity(filters.len());
            for filter in &filters {
                subscribed.push(client.subscribe(filter.clone()).await?);
            }
            // The server has the subscriptions once a flush round-trip returns: only then is
            // the dashboard ready to pass on events.
            client.flush().await?;
            Ok::<_, async_nats::Error>(futures::stream::select_all(subscribed))
        };
        let mut messages = match subscriptions.await {
            Ok(messages) => messages,
            Err(err) => {
                tracing::error!(error = %err, "could not subscribe to run events; the page will not update live");
                return;
            }
        };
        self.subscribed
            .store(true, std::sync::atomic::Ordering::Release);
        tracing::info!(subjects = %filters.join(", "), "passing run events to live pages");
        loop {
            let message = tokio::select! {
                _ = shutdown.wait() => break,
                message = messages.next() => match message {
                    Some(message) => message,
                    None => break,
                },
            };
            if let Some(event) = decode(&message.subject, &message.payload) {
                // An error only means no page is listening.
                let _ = self.events.send(event);
            }
        }
        if let Err(err) = client.drain().await {
            tracing::debug!(error = %err, "NATS drain at shutdown");
        }
    }
}

/// What a page is told about a message: a loaded or failed run. A message the stages would not
/// act on (see [`message::decode`]) is logged and skipped, so a page never shows what the
/// pipeline refused.
fn decode(subject: &str, payload: &[u8]) -> Option<LiveEvent> {
    match message::decode(subject, payload) {
        Ok(Received::Loaded(loaded)) => Some(LiveEvent::Loaded((*loaded).into())),
        Ok(Received::Failed(failed)) => Some(LiveEvent::Failed((*failed).into())),
        Ok(other) => {
            tracing::debug!(subject, env = ?other.env(), "not a run event; ignored");
            None
        }
        Err(err) => {
            tracing::warn!(subject, error = %err, "ignoring a run event that does not decode");
            None
        }
    }
}

/// `GET /api/v1/events`: `hello` first, then `loaded` and `failed` as runs land, `resync` when
/// this stream fell behind (the page should re-read everything), and keep-alive comments.
/// A client at its share of streams is answered 429, and anyone 503 when all are taken.
pub async fn events(
    State(state): State<AppState>,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Response {
    // Served outside `crate::serve` (no peer known), all clients share one share.
    let client = peer.map_or(
        IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        |Extension(ConnectInfo(addr))| addr.ip(),
    );
    let permit = match state.live.streams.take(client) {
        Ok(permit) => permit,
        Err(refused) => {
            tracing::warn!(%client, %refused, "live event stream refused");
            return match refused {
                StreamRefused::Client(_) => plain(
                    StatusCode::TOO_MANY_REQUESTS,
                    "too many live event streams from your address; close one and try again\n",
                ),
                StreamRefused::Total(_) => plain(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "too many live event streams are open; try again later\n",
                ),
            };
        }
    };
    // Subscribed before the response starts, so an event that lands after the browser sees the
    // stream open is never missed.
    let receiver = state.live.events.subscribe();
    let hello = Event::default()
        .event("hello")
        .retry(RECONNECT_AFTER)
        .json_data(
            serde_json::json!({ "env": state.env.as_str(), "nats": state.live.nats_status() }),
        )
        .expect("hello serialises");
    let updates = futures::stream::unfold(
        (receiver, state.shutdown.clone(), permit),
        |(mut receiver, shutdown, permit)| async move {
            let event = tokio::select! {
                // Ending the stream on shutdown lets the server's graceful shutdown finish.
                _ = shutdown.wait() => return None,
                received = receiver.recv() => match received {
                    Ok(event) => Event::default()
                        .event(event.name())
                        .json_data(&event)
                        .expect("run events serialise"),
                    Err(broadcast::error::RecvError::Lagged(missed)) => Event::default()
                        .event("resync")
                        .data(format!("{{\"missed\":{missed}}}")),
                    Err(broadcast::error::RecvError::Closed) => return None,
                },
            };
            Some((Ok::<_, Infallible>(event), (receiver, shutdown, permit)))
        },
    );
    let stream = futures::stream::once(async { Ok::<_, Infallible>(hello) }).chain(updates);
    let mut response = Sse::new(stream)
        .keep_alive(KeepAlive::new().interval(KEEP_ALIVE))
        .into_response();
    // Tells reverse proxies (nginx) not to buffer the stream.
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_that_do_not_parse_are_skipped() {
        assert_eq!(decode("etl.t.loaded", b"{\"run_id\": 1}"), None);
        assert_eq!(decode("etl.t.failed.load", b"not json"), None);
    }

    #[test]
    fn a_failure_keeps_its_reason() {
        let failed = serde_json::json!({
            "schema_version": 1, "env": "t", "run_id": "r1", "stage": "transform",
            "kind": "invalid_data", "reason": "nyt line 3: bad date", "inputs": [],
            "failed_at": "2024-01-01T00:00:00Z"
        });
        let event = decode("etl.t.failed.transform", failed.to_string().as_bytes()).unwrap();
        let LiveEvent::Failed(summary) = event else {
            panic!("expected a failure")
        };
        assert_eq!(summary.reason, "nyt line 3: bad date");
        assert_eq!(summary.stage, Stage::Transform);
        assert_eq!(summary.kind, FailureKind::InvalidData);
        assert_eq!(
            serde_json::to_value(&summary).unwrap()["kind"],
            "invalid_data",
            "pages read the kind as a word"
        );
    }

    #[test]
    fn an_event_for_another_env_than_its_subject_is_skipped() {
        let failed = serde_json::json!({
            "schema_version": 1, "env": "other", "run_id": "r1", "stage": "load",
            "kind": "internal", "reason": "x", "inputs": [],
            "failed_at": "2024-01-01T00:00:00Z"
        });
        assert_eq!(
            decode("etl.t.failed.load", failed.to_string().as_bytes()),
            None
        );
    }
}
