//! The HTTP server loop of every listener covid-etl opens (the dashboard's and each service's
//! metrics endpoint): HTTP/1.1 over hyper with a header-read timeout (axum's own `serve` has
//! none, so a client that sends its request head slowly, or never, would hold a connection for
//! ever), a bound on open connections, each request tagged with its peer's address (axum's
//! `ConnectInfo`), and a graceful shutdown.
//!
//! HTTP/1.1 only: browsers speak HTTP/2 only over TLS, which a reverse proxy in front terminates.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use axum::extract::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tower::ServiceExt;

use crate::shutdown::Shutdown;

/// The bounds of one listener.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// How long a client may take to send its request head.
    pub header_timeout: Duration,
    /// Connections served at once; more wait in the kernel's backlog.
    pub max_connections: usize,
}

/// How long to pause accepting after an accept error (out of file descriptors, typically), so
/// the loop does not spin while connections close.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Serves `router` on `listener` until `shutdown`, then stops accepting, lets requests in
/// flight finish, and returns once every connection has closed or [`SHUTDOWN_GRACE`] has passed.
pub async fn serve(listener: TcpListener, router: Router, limits: &Limits, shutdown: Shutdown) {
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let graceful = GracefulShutdown::new();
    loop {
        // At the connection limit, wait for one to close before accepting another: new ones
        // queue in the kernel's backlog instead of costing a task each.
        let permit = tokio::select! {
            _ = shutdown.wait() => break,
            permit = Arc::clone(&connections).acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break,
            },
        };
        let (stream, peer) = tokio::select! {
            _ = shutdown.wait() => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    tracing::warn!(error = %err, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                    continue;
                }
            },
        };
        let router = router.clone();
        // Every request carries its peer's address, as axum's `ConnectInfo`.
        let service = hyper::service::service_fn(move |mut request: Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request.map(axum::body::Body::new))
        });
        let connection = http.serve_connection(io(stream), service);
        let connection = graceful.watch(connection);
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                // Header timeouts and clients going away end up here; neither is the server's
                // fault.
                tracing::debug!(%peer, error = %err, "connection ended with an error");
            }
            drop(permit);
        });
    }
    drop(listener);
    // A client that stops reading its answer would otherwise hold the shutdown for ever.
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(grace = ?SHUTDOWN_GRACE, "connections still open at shutdown were dropped");
    }
}

/// How long shutdown waits for connections in progress to finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

fn io(stream: TcpStream) -> TokioIo<TcpStream> {
    // Small answers and event-stream lines go out at once.
    let _ = stream.set_nodelay(true);
    TokioIo::new(stream)
}
