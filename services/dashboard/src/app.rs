//! The server: its shared state, its routes, and [`Application`], which binds first (so a test
//! can ask for port 0 and read the real port back) and serves until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::http::HeaderValue;
use axum::middleware::map_response;
use axum::response::Response;
use axum::routing::get;
use shared::{Env, Shutdown};
use tokio::net::TcpListener;
use tower_http::trace::TraceLayer;

use crate::cache::BodyCache;
use crate::config::Config;
use crate::db::Db;
use crate::live::Live;
use crate::{api, assets, health, live};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub env: Env,
    pub live: Arc<Live>,
    pub bodies: Arc<BodyCache>,
    /// Ends the live event streams, which would otherwise hold graceful shutdown open forever.
    pub shutdown: Shutdown,
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
        let live = Arc::new(Live::default());
        let state = AppState {
            db: Db::new(config.pg_config(), &config.env),
            env: config.env.clone(),
            live: Arc::clone(&live),
            bodies: Arc::new(BodyCache::new()),
            shutdown: shutdown.clone(),
        };
        let feed =
            tokio::spawn(live.feed(config.nats.clone(), config.env.clone(), shutdown.clone()));
        tracing::info!(%addr, env = %config.env, "dashboard listening");
        let served = axum::serve(listener, router(state))
            .with_graceful_shutdown(async move { shutdown.wait().await })
            .await;
        // The feed stops on the same shutdown; a panic in it is a bug worth surfacing in the log.
        if let Err(err) = feed.await {
            tracing::error!(error = %err, "the live event feed ended abnormally");
        }
        tracing::info!("dashboard stopped");
        Ok(served?)
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/", get(assets::index))
        .route("/assets/{name}", get(assets::asset))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/api/v1/us/daily", get(api::daily))
        .route("/api/v1/us/changes", get(api::changes))
        .route("/api/v1/runs", get(api::runs))
        .route("/api/v1/meta", get(api::meta))
        .route("/api/v1/events", get(live::events))
        .fallback(api::not_found)
        .layer(map_response(security_headers))
        .layer(TraceLayer::new_for_http())
        .with_state(state)
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
