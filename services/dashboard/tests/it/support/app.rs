//! A dashboard started in-process, and the NATS and Server-Sent Events helpers tests drive it with.

use std::time::Duration;

use chrono::NaiveDate;
use dashboard::{Application, Config};
use futures::StreamExt;
use shared::events::{Counts, Dropped, Loaded, SCHEMA_VERSION, Trigger, TriggerKind};
use shared::ids::RunId;
use shared::{Env, Shutdown};

/// A dashboard serving in-process until [`TestApp::stop`].
pub struct TestApp {
    pub base: String,
    pub http: reqwest::Client,
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<Result<(), dashboard::app::ServeError>>,
}

impl TestApp {
    /// Starts the dashboard and waits (bounded) until `/readyz` says PostgreSQL and NATS are up.
    pub async fn start(config: Config) -> Self {
        let app = Self::start_unchecked(config).await;
        app.wait_ready().await;
        app
    }

    /// Starts the dashboard without waiting for its dependencies.
    pub async fn start_unchecked(config: Config) -> Self {
        shared::install_crypto_provider();
        let application = Application::build(config)
            .await
            .expect("dashboard binds port 0");
        let addr = application.local_addr();
        let shutdown = Shutdown::new();
        let task = tokio::spawn(application.run_until(shutdown.clone()));
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .build()
            .expect("http client");
        Self {
            base: format!("http://{addr}"),
            http,
            shutdown,
            task,
        }
    }

    pub async fn wait_ready(&self) {
        let readyz = self.url("/readyz");
        test_support::eventually(
            "the dashboard to say it is ready",
            Duration::from_secs(15),
            || async {
                let response = self.http.get(&readyz).send().await.ok()?;
                (response.status() == 200).then_some(())
            },
        )
        .await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .send()
            .await
            .expect("request is answered")
    }

    /// GET and parse JSON, asserting the status.
    pub async fn json(&self, path: &str, status: u16) -> serde_json::Value {
        let response = self.get(path).await;
        let got = response.status().as_u16();
        let text = response.text().await.expect("body");
        assert_eq!(got, status, "GET {path}: {text}");
        serde_json::from_str(&text)
            .unwrap_or_else(|err| panic!("GET {path} is not JSON ({err}): {text}"))
    }

    /// Shuts down and checks the server stopped cleanly, within a bound.
    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the dashboard stops within 10 s of shutdown")
            .expect("the server task does not panic")
            .expect("the server stops cleanly");
    }
}

/// A `Loaded` event as the loader publishes it.
pub fn loaded_event(
    env: &Env,
    run_id: &str,
    first: NaiveDate,
    last: NaiveDate,
    inserted: u64,
) -> Loaded {
    Loaded {
        dataset: shared::Dataset::US,
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        run_id: RunId::new(run_id).expect("a valid run id"),
        trigger: Trigger::new(TriggerKind::Commit),
        inputs: vec![],
        counts: Counts {
            inserted,
            updated: 1,
            unchanged: 10,
            removed: 0,
            revised: 0,
        },
        corrections: vec![],
        corrections_total: 0,
        rows: 11 + inserted,
        first_date: first,
        last_date: last,
        dropped: Dropped::default(),
        warnings: vec![],
        duration_ms: 1234,
        timings: vec![],
    }
}

/// Reads Server-Sent Events from a streaming response.
pub struct SseReader {
    stream: futures::stream::BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

impl SseReader {
    pub fn new(response: reqwest::Response) -> Self {
        Self {
            stream: response.bytes_stream().boxed(),
            buffer: String::new(),
        }
    }

    /// The next event (comments and keep-alives skipped), or a panic after `within`.
    pub async fn next(&mut self, within: Duration) -> SseEvent {
        tokio::time::timeout(within, self.read())
            .await
            .unwrap_or_else(|_| panic!("no server-sent event within {within:?}"))
    }

    async fn read(&mut self) -> SseEvent {
        loop {
            while let Some(end) = self.buffer.find("\n\n") {
                let frame: String = self.buffer.drain(..end + 2).collect();
                let mut event = SseEvent {
                    event: "message".to_owned(),
                    data: String::new(),
                };
                let mut has_data = false;
                for line in frame.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.event = name.trim().to_owned();
                    } else if let Some(data) = line.strip_prefix("data:") {
                        if has_data {
                            event.data.push('\n');
                        }
                        event.data.push_str(data.strip_prefix(' ').unwrap_or(data));
                        has_data = true;
                    }
                }
                if has_data {
                    return event;
                }
            }
            let chunk = self
                .stream
                .next()
                .await
                .expect("the event stream stays open")
                .expect("stream chunk");
            self.buffer.push_str(&String::from_utf8_lossy(&chunk));
        }
    }
}
