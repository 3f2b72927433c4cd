//! A service's metrics listener: `GET /metrics` (Prometheus text), `GET /livez` (the process
//! answers) and `GET /readyz` (200 when every need of [`super::Readiness`] is met, else 503 with
//! a short JSON reason). Small bounds: it serves a scraper and a probe, not the public.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::net::TcpListener;

use super::Metrics;
use super::serve::{Limits, serve};
use crate::shutdown::Shutdown;

/// A scrape and a probe or two at a time; anything more waits in the backlog.
const LIMITS: Limits = Limits {
    header_timeout: Duration::from_secs(5),
    max_connections: 16,
};

/// The content type of the Prometheus text exposition format.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not listen on {addr} (METRICS_ADDR): {source}")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// Binds `addr` and serves until `shutdown` or the returned stop token; returns the bound address.
pub(super) async fn start(
    metrics: Metrics,
    addr: SocketAddr,
    shutdown: &Shutdown,
) -> Result<(SocketAddr, Shutdown, tokio::task::JoinHandle<()>), StartError> {
    let bind_error = |source| StartError::Bind { addr, source };
    let listener = TcpListener::bind(addr).await.map_err(bind_error)?;
    let bound = listener.local_addr().map_err(bind_error)?;
    let stop = Shutdown::new();
    let (outer, inner) = (shutdown.clone(), stop.clone());
    let task = tokio::spawn(async move {
        // Stops with the service, or alone when the service finishes for another reason.
        tokio::select! {
            () = serve(listener, router(metrics), &LIMITS, inner.clone()) => {}
            () = async {
                outer.wait().await;
                inner.trigger();
                std::future::pending::<()>().await
            } => {}
        }
    });
    Ok((bound, stop, task))
}

/// The three routes, for this service's [`Metrics`].
pub fn router(metrics: Metrics) -> Router {
    Router::new()
        .route("/metrics", get(render))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .with_state(metrics)
}

/// `GET /metrics`: the Prometheus text of `metrics` (any router whose state yields a [`Metrics`]).
pub async fn render(State(metrics): State<Metrics>) -> Response {
    match metrics.render() {
        Ok(text) => no_store(([(CONTENT_TYPE, TEXT_FORMAT)], text).into_response()),
        Err(err) => {
            tracing::warn!(error = %err, "could not render the metrics");
            no_store(StatusCode::INTERNAL_SERVER_ERROR.into_response())
        }
    }
}

/// The process answers: nothing else is checked (a restart would not mend a broker outage).
pub async fn livez() -> Response {
    no_store(axum::Json(serde_json::json!({ "status": "ok" })).into_response())
}

async fn readyz(State(metrics): State<Metrics>) -> Response {
    let report = metrics.readiness().check().await;
    let status = if report.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::json!({
        "status": if report.ready { "ready" } else { "not_ready" },
        "checks": report.checks,
    });
    no_store((status, axum::Json(body)).into_response())
}

/// Middleware recording `http.server.request.duration` by route pattern (axum's
/// [`MatchedPath`], so `/api/v1/runs?limit=5` is `/api/v1/runs` and an unknown path is
/// `unmatched`: a client cannot make new series). Add it with `Router::layer` so the route is
/// known when it runs.
pub async fn track_requests(
    State(metrics): State<Metrics>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |path| path.as_str().to_owned());
    // Per the HTTP conventions, a method outside the known set is `_OTHER`.
    let method: &'static str = match *request.method() {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::PATCH => "PATCH",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "_OTHER",
    };
    let started = Instant::now();
    let response = next.run(request).await;
    metrics.record().http_request(
        &route,
        method,
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
