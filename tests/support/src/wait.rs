//! Waiting, in bounded time, for state that no event announces.

use std::future::Future;
use std::time::Duration;

/// How often [`eventually`] looks again.
const RECHECK: Duration = Duration::from_millis(25);

/// Runs `check` until it returns `Some`, for at most `timeout`, and returns what it found; panics
/// naming `what` otherwise. For state nothing announces (a consumer's progress, a file in a
/// Maildir, a port that starts listening); events are awaited directly ([`crate::EventLog`]).
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "waited {timeout:?} for {what}"
        );
        tokio::time::sleep(RECHECK).await;
    }
}
