//! The server: its shared state, its routes and the layers around them, and [`Application`],
//! which binds first (so a test can ask for port 0 and read the real port back) and serves until
//! shutdown (through [`crate::serve`]).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::{FromRef, Request};
use axum::http::HeaderValue;
use axum::middleware::{from_fn_with_state, map_response};
use axum::response::Response;
use axum::routing::get;
use shared::metrics::{Metrics, endpoint};
use shared::{Env, Shutdown};
use tokio::net::TcpListener;
use tower_http::compression::CompressionLayer;
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::TraceLayer;

use crate::cache::BodyCache;
use crate::config::{Config, Limits};
use crate::db::Db;
use crate::keyed::query::KeyedDb;
use crate::limits::{self, RequestLimit};
use crate::live::Live;
use crate::{api, assets, health, keyed, live};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    /// The keyed datasets (`states`, `counties`), through the same pool.
    pub keyed: KeyedDb,
    pub env: Env,
    pub live: Arc<Live>,
    pub bodies: Arc<BodyCache>,
    /// The keyed routes' bodies, apart: a county list is ≈450 KB and its date/state vary.
    pub keyed_bodies: Arc<BodyCache>,
    /// Ends the live event streams, which would otherwise hold graceful shutdown open forever.
    pub shutdown: Shutdown,
    /// Request durations by route, served on `/metrics`.
    pub metrics: Metrics,
}

impl FromRef<AppState> for Metrics {
    fn from_ref(state: &AppState) -> Metrics {
        state.metrics.clone()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen on {addr} (DASHBOARD_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("the HTTP server stopped: {0}")]
    Serve(#[from] std::io::Error),
}

/// A bound, not yet serving dashboard.
pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    config: Config,
}

impl Application {
    /// Binds `DASHBOARD_ADDR`. PostgreSQL and NATS are reached lazily, so the dashboard starts
    /// (and `/readyz` says what is missing) while either is down.
    pub async fn build(config: Config) -> Result<Self, StartError> {
        let listener = TcpListener::bind(config.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: config.addr,
            source,
        })?;
        Ok(Self {
            listener,
            addr,
            config,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Serves until `shutdown`, then lets requests in flight finish and closes event streams.
    pub async fn run_until(self, shutdown: Shutdown) -> Result<(), ServeError> {
        let Application {
            listener,
            addr,
            config,
        } = self;
        let limits = &config.limits;
        let live = Arc::new(Live::new(limits.max_streams, limits.max_streams_per_client));
        let db = Db::new(config.database(), &config.env);
        let state = AppState {
            keyed: KeyedDb::new(db.clone(), &config.env),
            db,
            env: config.env.clone(),
            live: Arc::clone(&live),
            bodies: Arc::new(BodyCache::new()),
            keyed_bodies: Arc::new(BodyCache::with_capacity(keyed::routes::BODY_CACHE_ENTRIES)),
            shutdown: shutdown.clone(),
            metrics: Metrics::new("dashboard"),
        };
        let metrics = state.metrics.clone();
        let feed =
            tokio::spawn(live.feed(config.nats.clone(), config.env.clone(), shutdown.clone()));
        tracing::info!(%addr, env = %config.env, ?limits, "dashboard listening");
        crate::serve::serve(listener, router(state, limits), limits, shutdown).await;
        // The feed stops on the same shutdown; a panic in it is a bug worth surfacing in the log.
        if let Err(err) = feed.await {
            tracing::error!(error = %err, "the live event feed ended abnormally");
        }
        metrics.finish().await;
        tracing::info!("dashboard stopped");
        Ok(())
    }
}

/// The routes, inside out: the request time limit (not on the live event stream, which is meant
/// to stay open), gzip (the event stream excepted: tower-http leaves `text/event-stream` alone,
/// so its events are not held in a compressor's buffer), the bound on requests at once, the
/// security headers, and a request id (`x-request-id`, kept from the client or made) that tags
/// every log line of the request and is sent back, so a failure the client sees as a generic
/// message can be found in the log.
pub fn router(state: AppState, limits: &Limits) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/healthz", get(health::healthz))
        .route("/livez", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(endpoint::render))
        .route("/api/v1/us/daily", get(api::daily))
        .route("/api/v1/us/changes", get(api::changes))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/meta", get(api::meta))
        .route("/api/v1/states/daily", get(keyed::routes::states_daily))
        .route("/api/v1/states/latest", get(keyed::routes::states_latest))
        .route("/api/v1/counties/daily", get(keyed::routes::counties_daily))
        .route(
            "/api/v1/counties/latest",
            get(keyed::routes::counties_latest),
        )
        .fallback(api::not_found)
        .layer(from_fn_with_state(
            limits.request_timeout,
            limits::time_limit,
        ))
        .route("/api/v1/events", get(live::events))
        // Inside the routes' layers, where the route's pattern is known; the event stream is
        // timed to its first byte.
        .layer(from_fn_with_state(
            state.metrics.clone(),
            endpoint::track_requests,
        ))
        .layer(CompressionLayer::new())
        .layer(from_fn_with_state(
            RequestLimit::new(limits.max_requests),
            limits::limit_requests,
        ))
        .layer(map_response(security_headers))
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(TraceLayer::new_for_http().make_span_with(request_span))
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

fn request_span(request: &Request) -> tracing::Span {
    let id = request
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info_span!(
        "request",
        method = %request.method(),
        uri = %request.uri(),
        request_id = %id,
    )
}

/// The page loads only its own scripts, styles and data, and may not be framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; style-src 'self'; \
    script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        "content-security-policy",
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    headers.insert("referrer-policy", HeaderValue::from_static("no-referrer"));
    response
}
