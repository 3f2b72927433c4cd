//! The dashboard's HTTP server: the bounded server loop every covid-etl listener uses
//! ([`shared::metrics::serve`]: HTTP/1.1 with a header-read timeout, a bound on open
//! connections, each request tagged with its peer's address for the per-client stream limit, and
//! a graceful shutdown), with the dashboard's own limits.

use axum::Router;
use shared::Shutdown;
use tokio::net::TcpListener;

use crate::config::Limits;

/// Serves `router` on `listener` until `shutdown`, then stops accepting, lets requests in
/// flight finish, and returns once every connection has closed or the grace period has passed.
pub async fn serve(listener: TcpListener, router: Router, limits: &Limits, shutdown: Shutdown) {
    let bounds = shared::metrics::serve::Limits {
        header_timeout: limits.header_timeout,
        max_connections: limits.max_connections,
    };
    shared::metrics::serve::serve(listener, router, &bounds, shutdown).await;
}
