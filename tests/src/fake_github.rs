//! A fake GitHub for tests and demos: the commits API, the contents API and the raw host, over
//! real HTTP on 127.0.0.1, holding per repository and path a list of commits that a test adds to
//! while the fake runs.
//!
//! It behaves like GitHub where the extractor depends on it: commits newest first, `Link` paging,
//! a strong ETag per URL and state with `304` on `If-None-Match` (not charged), `x-ratelimit-*`
//! headers, raw files pinned to a commit. It logs every request, so tests assert what was asked,
//! and it can be told to misbehave ([`Fault`]) for the next N answers of an endpoint.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use etl_tests::fake_github::{Endpoint, Fault, FakeGithub};
//! let github = FakeGithub::start().await?;
//! github.add_commit("nytimes/covid-19-data", "us.csv", "date,cases,deaths\n2020-01-21,1,0");
//! github.inject(Endpoint::Commits, Fault::ServerError, 2);
//! // point the extractor at github.api_url() and github.raw_url()
//! # Ok(()) }
//! ```
//!
//! Files: `history.rs` (the commits and the request budget), `routes.rs` (the HTTP answers),
//! `faults.rs` (the misbehaving answers), `replay.rs` (loading a folder of real versions for the
//! `fake-github` binary), `demo.rs` (the built-in synthetic history of `fake-github --demo`).

pub mod demo;
mod faults;
mod history;
pub mod replay;
mod routes;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{Request, State};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{get, post};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use history::{FakeCommit, git_blob_sha};

/// Which of the fake's answers a fault or a logged request concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `GET /repos/{o}/{r}/commits`
    Commits,
    /// `GET /repos/{o}/{r}/contents/{path}`
    Contents,
    /// `GET {raw}/{o}/{r}/{sha}/{path}`
    Raw,
    /// Anything else (replay control, unknown paths).
    Other,
}

/// A way to misbehave, for the next N answers of an endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// `500` with a JSON error.
    ServerError,
    /// The primary rate limit: `403`, `x-ratelimit-remaining: 0`, reset `reset_in` from now.
    RateLimited { reset_in: Duration },
    /// A secondary rate limit: `429` with `retry-after`.
    TooManyRequests { retry_after: u64 },
    /// A secondary rate limit as GitHub often sends it: `403`, budget left, no `retry-after`, only
    /// the body says so.
    SecondaryLimit,
    /// A `403` that is no rate limit: access denied (`Resource not accessible by integration`).
    Forbidden,
    /// Contents: the `403` GitHub gives for a file it will not serve through that API, with
    /// `errors[].code` `too_large`.
    TooLarge,
    /// Raw: `Content-Length` of the whole file, then half of it and the connection ends.
    TruncatedBody,
    /// Raw: no `Content-Length`, the body cut right after a newline in the middle of the file.
    CutAtLineEnd,
    /// Raw: same length, one digit changed.
    Altered,
    /// `200` with an HTML error page, `text/html`.
    Html,
    /// `200` with an HTML error page labelled `text/plain`.
    HtmlAsText,
    /// Raw: a body that never ends, no `Content-Length`.
    Endless,
    /// Raw: the whole file, but only once `delay` has passed (a slow download).
    Slow { delay: Duration },
}

/// One request the fake answered.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    pub at: Instant,
    pub at_utc: DateTime<Utc>,
    pub endpoint: Endpoint,
    pub method: String,
    /// Path and query, as sent.
    pub uri: String,
    pub status: u16,
    pub if_none_match: bool,
    /// The bearer token the client sent, which tells two clients apart.
    pub token: Option<String>,
    /// The `x-ratelimit-reset` sent with the answer (epoch seconds).
    pub rate_reset: Option<i64>,
    /// The `retry-after` sent with the answer (seconds).
    pub retry_after: Option<u64>,
}

/// A commit to add; unset fields get a generated sha, the current time and a stock message.
#[derive(Debug, Clone)]
pub struct NewCommit {
    pub repo: String,
    pub path: String,
    pub content: Bytes,
    pub sha: Option<String>,
    pub time: Option<DateTime<Utc>>,
    pub message: Option<String>,
}

impl NewCommit {
    pub fn new(repo: &str, path: &str, content: impl Into<Bytes>) -> NewCommit {
        NewCommit {
            repo: repo.to_owned(),
            path: path.to_owned(),
            content: content.into(),
            sha: None,
            time: None,
            message: None,
        }
    }
}

pub(crate) struct Inner {
    pub(crate) state: Mutex<history::State>,
    pub(crate) api_url: String,
    pub(crate) raw_url: String,
    /// Bumped on every logged request, so waiters wake.
    logged: watch::Sender<usize>,
}

/// A running fake; stops when dropped.
pub struct FakeGithub {
    inner: Arc<Inner>,
    tasks: Vec<JoinHandle<()>>,
}

impl FakeGithub {
    /// Starts the API and the raw host on two free ports of 127.0.0.1.
    pub async fn start() -> std::io::Result<FakeGithub> {
        Self::start_on(
            "127.0.0.1:0".parse().expect("valid"),
            "127.0.0.1:0".parse().expect("valid"),
        )
        .await
    }

    pub async fn start_on(
        api_addr: SocketAddr,
        raw_addr: SocketAddr,
    ) -> std::io::Result<FakeGithub> {
        Self::start_advertising(api_addr, raw_addr, None, None).await
    }

    /// Like [`FakeGithub::start_on`], naming itself in links (`Link`, `url`, `download_url`) by
    /// `api_url` and `raw_url` where given: the URLs its clients reach it by (behind a container
    /// network, say), rather than its listening addresses.
    pub async fn start_advertising(
        api_addr: SocketAddr,
        raw_addr: SocketAddr,
        api_url: Option<String>,
        raw_url: Option<String>,
    ) -> std::io::Result<FakeGithub> {
        let api_listener = TcpListener::bind(api_addr).await?;
        let raw_listener = TcpListener::bind(raw_addr).await?;
        let api_url = match api_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", api_listener.local_addr()?),
        };
        let raw_url = match raw_url {
            Some(url) => url.trim_end_matches('/').to_owned(),
            None => format!("http://{}", raw_listener.local_addr()?),
        };
        let inner = Arc::new(Inner {
            state: Mutex::new(history::State::new()),
            api_url,
            raw_url,
            logged: watch::channel(0).0,
        });
        let api = Router::new()
            .route("/repos/{owner}/{repo}/commits", get(routes::commits))
            .route(
                "/repos/{owner}/{repo}/contents/{*path}",
                get(routes::contents),
            )
            .route("/_replay/next", post(routes::replay_next))
            .route("/_replay/status", get(routes::replay_status))
            .layer(middleware::from_fn_with_state(
                (inner.clone(), false),
                log_request,
            ))
            .with_state(inner.clone());
        let raw = Router::new()
            .route("/{owner}/{repo}/{sha}/{*path}", get(routes::raw))
            .layer(middleware::from_fn_with_state(
                (inner.clone(), true),
                log_request,
            ))
            .with_state(inner.clone());
        let tasks = vec![
            tokio::spawn(async move {
                let _ = axum::serve(api_listener, api).await;
            }),
            tokio::spawn(async move {
                let _ = axum::serve(raw_listener, raw).await;
            }),
        ];
        Ok(FakeGithub { inner, tasks })
    }

    /// For `GITHUB_API_URL`.
    pub fn api_url(&self) -> &str {
        &self.inner.api_url
    }

    /// For `GITHUB_RAW_URL`.
    pub fn raw_url(&self) -> &str {
        &self.inner.raw_url
    }

    /// `GITHUB_API_URL` and `GITHUB_RAW_URL` pointing here.
    pub fn env_vars(&self) -> [(&'static str, String); 2] {
        [
            ("GITHUB_API_URL", self.api_url().to_owned()),
            ("GITHUB_RAW_URL", self.raw_url().to_owned()),
        ]
    }

    /// Adds a commit touching `path` with the given content, visible at once.
    pub fn add_commit(&self, repo: &str, path: &str, content: impl Into<Bytes>) -> FakeCommit {
        self.add(NewCommit::new(repo, path, content))
    }

    pub fn add(&self, commit: NewCommit) -> FakeCommit {
        self.lock().add(commit)
    }

    /// Adds several commits at once: no request sees only some of them.
    pub fn add_many(&self, commits: impl IntoIterator<Item = NewCommit>) -> Vec<FakeCommit> {
        let mut state = self.lock();
        commits.into_iter().map(|c| state.add(c)).collect()
    }

    /// The commits of `repo` touching `path`, newest first.
    pub fn commits(&self, repo: &str, path: &str) -> Vec<FakeCommit> {
        self.lock()
            .history(repo, Some(path), u64::MAX)
            .into_iter()
            .cloned()
            .collect()
    }

    /// The next `times` answers of `endpoint` misbehave as `fault`, after any queued before.
    pub fn inject(&self, endpoint: Endpoint, fault: Fault, times: usize) {
        self.queue_fault(endpoint, None, fault, times);
    }

    /// Like [`FakeGithub::inject`], for the answers about `repo` (`owner/name`) only: the other
    /// repositories are served as usual.
    pub fn inject_for(&self, endpoint: Endpoint, repo: &str, fault: Fault, times: usize) {
        self.queue_fault(endpoint, Some(repo.to_owned()), fault, times);
    }

    fn queue_fault(&self, endpoint: Endpoint, repo: Option<String>, fault: Fault, times: usize) {
        let mut state = self.lock();
        let queue = state.faults.entry(endpoint).or_default();
        queue.extend(std::iter::repeat_n(
            history::QueuedFault { repo, fault },
            times,
        ));
    }

    /// Drops every fault not yet served.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// Sets the hourly request budget and how much of it is used.
    pub fn set_rate_limit(&self, limit: u64, used: u64) {
        let mut state = self.lock();
        state.rate.limit = limit;
        state.rate.used = used.min(limit);
    }

    /// Queues replay steps: each is revealed (added) at once by [`FakeGithub::reveal_next`] or
    /// `POST /_replay/next`.
    pub fn queue_steps(&self, steps: impl IntoIterator<Item = Vec<NewCommit>>) {
        self.lock().pending.extend(steps);
    }

    pub fn reveal_next(&self) -> Option<Vec<FakeCommit>> {
        self.lock().reveal_next()
    }

    pub fn pending_steps(&self) -> usize {
        self.lock().pending.len()
    }

    /// Prints each replay reveal to stdout.
    pub fn set_verbose(&self, verbose: bool) {
        self.lock().verbose = verbose;
    }

    /// Every request answered so far, in order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.lock().log.clone()
    }

    pub fn requests_to(&self, endpoint: Endpoint) -> Vec<RequestRecord> {
        self.lock()
            .log
            .iter()
            .filter(|r| r.endpoint == endpoint)
            .cloned()
            .collect()
    }

    /// Waits until `count` requests match `filter`, for at most `timeout`; returns those requests.
    pub async fn wait_for_requests(
        &self,
        count: usize,
        timeout: Duration,
        filter: impl Fn(&RequestRecord) -> bool,
    ) -> Result<Vec<RequestRecord>, String> {
        let mut changed = self.inner.logged.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let matching: Vec<RequestRecord> = self
                .lock()
                .log
                .iter()
                .filter(|r| filter(r))
                .cloned()
                .collect();
            if matching.len() >= count {
                return Ok(matching);
            }
            if tokio::time::timeout_at(deadline, changed.changed())
                .await
                .is_err()
            {
                return Err(format!(
                    "waited {timeout:?} for {count} matching requests, saw {}; log: {:#?}",
                    matching.len(),
                    self.lock()
                        .log
                        .iter()
                        .map(|r| format!("{} {} {}", r.method, r.uri, r.status))
                        .collect::<Vec<_>>()
                ));
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, history::State> {
        self.inner.state.lock().expect("fake state lock")
    }
}

impl Drop for FakeGithub {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

/// Logs every request with its answer's status; `raw` tells the raw host's router apart.
async fn log_request(
    State((inner, raw)): State<(Arc<Inner>, bool)>,
    request: Request,
    next: Next,
) -> Response {
    let method = request.method().to_string();
    let uri = request
        .uri()
        .path_and_query()
        .map(ToString::to_string)
        .unwrap_or_default();
    let if_none_match = request
        .headers()
        .contains_key(axum::http::header::IF_NONE_MATCH);
    let token = request
        .headers()
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::to_owned);
    let path = request.uri().path().to_owned();
    let response = next.run(request).await;
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse().ok())
    };
    let rate_reset = header("x-ratelimit-reset");
    let retry_after = header("retry-after").map(|v: i64| v.unsigned_abs());
    let endpoint = classify(&path, raw);
    let record = RequestRecord {
        at: Instant::now(),
        at_utc: Utc::now(),
        endpoint,
        method,
        uri,
        status: response.status().as_u16(),
        if_none_match,
        token,
        rate_reset,
        retry_after,
    };
    let count = {
        let mut state = inner.state.lock().expect("fake state lock");
        state.log.push(record);
        state.log.len()
    };
    inner.logged.send_replace(count);
    response
}

fn classify(path: &str, raw: bool) -> Endpoint {
    if raw {
        return Endpoint::Raw;
    }
    let parts: Vec<&str> = path.split('/').collect();
    match parts.as_slice() {
        ["", "repos", _, _, "commits", ..] => Endpoint::Commits,
        ["", "repos", _, _, "contents", ..] => Endpoint::Contents,
        _ => Endpoint::Other,
    }
}
