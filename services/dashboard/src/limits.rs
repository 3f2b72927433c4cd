//! What one client, or all of them, may hold of the dashboard: requests answered at once (503
//! beyond), how long one may take (503 after), and live event streams, in all and per client
//! address ([`StreamSlots`]). Refusals are short plain-text answers; the header-read timeout and
//! the connection bound are the server loop's ([`crate::serve`]).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::header::{CONTENT_TYPE, RETRY_AFTER};
use axum::http::{HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// A short plain-text answer, for refusals (no JSON: a client that is refused may not be the
/// page).
pub fn plain(status: StatusCode, message: &'static str) -> Response {
    let mut response = (status, message).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
        headers.insert(RETRY_AFTER, HeaderValue::from_static("5"));
    }
    response
}

/// The bound on requests answered at once.
#[derive(Clone)]
pub struct RequestLimit(Arc<Semaphore>);

impl RequestLimit {
    pub fn new(max: usize) -> Self {
        Self(Arc::new(Semaphore::new(max)))
    }
}

/// Middleware: a request beyond the bound is answered 503 at once rather than queued. A live
/// event stream counts only until its response starts; streams have their own bound.
pub async fn limit_requests(
    State(limit): State<RequestLimit>,
    request: Request,
    next: Next,
) -> Response {
    let Ok(_permit) = limit.0.try_acquire() else {
        tracing::warn!(
            path = request.uri().path(),
            "too many requests at once; refused"
        );
        return plain(
            StatusCode::SERVICE_UNAVAILABLE,
            "the dashboard is busy; try again shortly\n",
        );
    };
    next.run(request).await
}

/// Middleware: a request not answered within the time is answered 503 (and its work dropped).
pub async fn time_limit(State(timeout): State<Duration>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    match tokio::time::timeout(timeout, next.run(request)).await {
        Ok(response) => response,
        Err(_) => {
            tracing::warn!(path, ?timeout, "request not answered in time; gave up");
            plain(
                StatusCode::SERVICE_UNAVAILABLE,
                "the request took too long; try again shortly\n",
            )
        }
    }
}

/// Live event streams: at most `total` open, and at most `per_client` from one client address.
pub struct StreamSlots {
    total: Arc<Semaphore>,
    max_total: usize,
    per_client: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// Why a stream was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum StreamRefused {
    #[error("this client already has {0} live event streams open")]
    Client(usize),
    #[error("{0} live event streams are open, the most allowed")]
    Total(usize),
}

/// One open stream; dropping it (the stream ends or its client goes away) frees the slot.
pub struct StreamSlot {
    slots: Arc<StreamSlots>,
    client: IpAddr,
    _permit: OwnedSemaphorePermit,
}

impl StreamSlots {
    pub fn new(total: usize, per_client: usize) -> Self {
        Self {
            total: Arc::new(Semaphore::new(total)),
            max_total: total,
            per_client,
            open: Mutex::new(HashMap::new()),
        }
    }

    /// A slot for a stream from `peer`, or why not.
    pub fn take(self: &Arc<Self>, peer: IpAddr) -> Result<StreamSlot, StreamRefused> {
        let client = client_key(peer);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.get(&client).copied().unwrap_or(0);
        if count >= self.per_client {
            return Err(StreamRefused::Client(self.per_client));
        }
        let permit = Arc::clone(&self.total)
            .try_acquire_owned()
            .map_err(|_| StreamRefused::Total(self.max_total))?;
        open.insert(client, count + 1);
        Ok(StreamSlot {
            slots: Arc::clone(self),
            client,
            _permit: permit,
        })
    }

    /// Streams open from `peer`'s client address.
    pub fn open_from(&self, peer: IpAddr) -> usize {
        let open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        open.get(&client_key(peer)).copied().unwrap_or(0)
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        let mut open = self.slots.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.client) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.client);
            }
        }
    }
}

/// Who counts as one client: an IPv4 address, or an IPv6 /64 (one host usually has a whole
/// /64 to pick addresses from).
fn client_key(peer: IpAddr) -> IpAddr {
    match peer.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(v4),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6) & !u128::from(u64::MAX);
            IpAddr::V6(Ipv6Addr::from(bits))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn each_client_gets_its_own_share_and_a_closed_stream_frees_its_slot() {
        let slots = Arc::new(StreamSlots::new(3, 2));
        let a1 = slots.take(ip("10.0.0.1")).unwrap();
        let _a2 = slots.take(ip("10.0.0.1")).unwrap();
        assert_eq!(
            slots.take(ip("10.0.0.1")).err(),
            Some(StreamRefused::Client(2))
        );
        let _b1 = slots.take(ip("10.0.0.2")).unwrap();
        assert_eq!(
            slots.take(ip("10.0.0.3")).err(),
            Some(StreamRefused::Total(3))
        );
        drop(a1);
        assert_eq!(slots.open_from(ip("10.0.0.1")), 1);
        let _a3 = slots.take(ip("10.0.0.1")).unwrap();
    }

    #[test]
    fn an_ipv6_host_is_one_client_across_its_64_and_mapped_ipv4_is_ipv4() {
        let slots = Arc::new(StreamSlots::new(10, 1));
        let _first = slots.take(ip("2001:db8:1:2::1")).unwrap();
        assert!(slots.take(ip("2001:db8:1:2:ffff::9")).is_err());
        assert!(slots.take(ip("2001:db8:1:3::1")).is_ok());
        let _v4 = slots.take(ip("192.0.2.7")).unwrap();
        assert!(slots.take(ip("::ffff:192.0.2.7")).is_err());
    }
}
