//! Readiness: what a service needs (NATS, its durable consumer, PostgreSQL), each checked live
//! when `/readyz` is asked, within [`CHECK_TIMEOUT`].
//!
//! A service names what it needs as it starts ([`Readiness::expect`]) and supplies each check
//! once it can ([`Readiness::set`]): until then the need reads `starting`, so a service is never
//! ready before it has connected. A check answers with a short fixed reason, never the broker's
//! or the database's error text (which can name hosts, users and subjects); the log has that.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::connection::State;
use async_nats::jetstream;

/// How long one check may take before it counts as failed.
pub const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// A check's answer: `Err` holds a short reason made of fixed words.
pub type CheckResult = Result<(), &'static str>;
type CheckFuture = Pin<Box<dyn Future<Output = CheckResult> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;
/// Each need by name, with its check once one is set.
type Needs = Vec<(String, Option<Check>)>;

/// The needs of one service and how to check each. Cheap to clone.
#[derive(Clone, Default)]
pub struct Readiness {
    needs: Arc<Mutex<Needs>>,
}

/// What `/readyz` answers.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Report {
    pub ready: bool,
    /// Each need, `ok` or why not.
    pub checks: BTreeMap<String, String>,
}

impl Readiness {
    /// Declares needs that are not checkable yet: they read `starting` until [`Readiness::set`].
    pub fn expect(&self, names: &[&str]) {
        if let Ok(mut needs) = self.needs.lock() {
            for name in names {
                if !needs.iter().any(|(n, _)| n == name) {
                    needs.push(((*name).to_owned(), None));
                }
            }
        }
    }

    /// Supplies (or replaces) the check of the need `name`.
    pub fn set<F, Fut>(&self, name: &str, check: F)
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = CheckResult> + Send + 'static,
    {
        let check: Check = Arc::new(move || Box::pin(check()));
        if let Ok(mut needs) = self.needs.lock() {
            match needs.iter_mut().find(|(n, _)| n == name) {
                Some((_, slot)) => *slot = Some(check),
                None => needs.push((name.to_owned(), Some(check))),
            }
        }
    }

    /// Ready while `client` is connected to its server.
    pub fn set_nats(&self, client: &async_nats::Client) {
        let client = client.clone();
        self.set("nats", move || {
            let state = client.connection_state();
            async move {
                match state {
                    State::Connected => Ok(()),
                    State::Pending | State::Disconnected => Err("not connected"),
                }
            }
        });
    }

    /// Ready while the durable consumer `durable` of `stream` exists (and so the server answers).
    pub fn set_consumer(&self, js: &jetstream::Context, stream: &str, durable: &str) {
        let (js, stream, durable) = (js.clone(), stream.to_owned(), durable.to_owned());
        self.set("consumer", move || {
            let (js, stream, durable) = (js.clone(), stream.clone(), durable.clone());
            async move {
                // Without a connection the request could only time out: say so at once.
                if js.client().connection_state() != State::Connected {
                    return Err("no connection");
                }
                consumer_info(&js, &stream, &durable)
                    .await
                    .map(|_| ())
                    .map_err(|err| match err {
                        LagError::NotFound => "not found",
                        LagError::Unreachable => "no answer",
                    })
            }
        });
    }

    /// Runs every check at once, each within [`CHECK_TIMEOUT`].
    pub async fn check(&self) -> Report {
        let needs: Vec<(String, Option<Check>)> = self
            .needs
            .lock()
            .map(|needs| Vec::clone(&needs))
            .unwrap_or_default();
        let answers =
            futures::future::join_all(needs.into_iter().map(|(name, check)| async move {
                let answer = match check {
                    None => Err("starting"),
                    Some(check) => tokio::time::timeout(CHECK_TIMEOUT, check())
                        .await
                        .unwrap_or(Err("no answer in time")),
                };
                (name, answer)
            }))
            .await;
        let ready = answers.iter().all(|(_, answer)| answer.is_ok());
        let checks = answers
            .into_iter()
            .map(|(name, answer)| (name, answer.err().unwrap_or("ok").to_owned()))
            .collect();
        Report { ready, checks }
    }
}

/// Why a consumer's state could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LagError {
    NotFound,
    Unreachable,
}

/// The consumer's info, in one request (`$JS.API.CONSUMER.INFO.<stream>.<durable>`).
pub async fn consumer_info(
    js: &jetstream::Context,
    stream: &str,
    durable: &str,
) -> Result<jetstream::consumer::Info, LagError> {
    use jetstream::stream::ConsumerErrorKind;
    let consumer: jetstream::consumer::Consumer<jetstream::consumer::pull::Config> = js
        .get_consumer_from_stream(durable, stream)
        .await
        .map_err(|err| match err.kind() {
            ConsumerErrorKind::JetStream(js_err)
                if js_err.error_code() == jetstream::ErrorCode::CONSUMER_NOT_FOUND
                    || js_err.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND =>
            {
                LagError::NotFound
            }
            _ => {
                tracing::debug!(%durable, error = %err, "readiness: no consumer info");
                LagError::Unreachable
            }
        })?;
    Ok(consumer.cached_info().clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_need_without_its_check_reads_starting_and_is_not_ready() {
        let readiness = Readiness::default();
        readiness.expect(&["nats", "postgres"]);
        readiness.set("nats", || async { Ok(()) });
        let report = readiness.check().await;
        assert!(!report.ready);
        assert_eq!(report.checks["nats"], "ok");
        assert_eq!(report.checks["postgres"], "starting");

        readiness.set("postgres", || async { Ok(()) });
        assert!(readiness.check().await.ready);
    }

    #[tokio::test(start_paused = true)]
    async fn a_check_that_hangs_fails_after_the_timeout() {
        let readiness = Readiness::default();
        readiness.set("postgres", std::future::pending);
        let report = readiness.check().await;
        assert!(!report.ready);
        assert_eq!(report.checks["postgres"], "no answer in time");
    }
}
