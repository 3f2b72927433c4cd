//! Every series covid-etl exports, and the one call that records into each.
//!
//! OpenTelemetry names (dotted, unit apart) become Prometheus names by the compatibility rules:
//! `covid_etl.runs` is `covid_etl_runs_total`, `covid_etl.stage.duration` (unit `s`) is
//! `covid_etl_stage_duration_seconds_{bucket,sum,count}`. Label values are few and fixed (envs,
//! stages, consumers, HTTP statuses): nothing a client controls becomes a label.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, ObservableGauge};

/// Bounds of the pipeline's duration histograms, in seconds: a stage takes from milliseconds
/// (a notification) to minutes (a large download).
const STAGE_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0,
];

/// The bounds the HTTP semantic conventions recommend for `http.server.request.duration`.
const HTTP_BOUNDS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Each env's last successful run, read by the freshness gauges when they are collected.
/// The last success per (env, dataset).
type LastSuccess = Arc<Mutex<HashMap<(String, String), SystemTime>>>;

/// How a consumed message was settled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Settled {
    /// Acknowledged: its work is durable.
    Processed,
    /// Negatively acknowledged with a delay: it will be delivered again.
    Retried,
    /// Given up on and reported on `etl.<env>.failed.<stage>`.
    Failed,
    /// Given up on, reported, and its body kept on `etl.<env>.dead.<stage>`.
    DeadLettered,
}

/// The instruments of one service.
pub struct Instruments {
    runs: Counter<u64>,
    run_duration: Histogram<f64>,
    stage_duration: Histogram<f64>,
    rows: Counter<u64>,
    last_success: LastSuccess,
    _last_success_time: ObservableGauge<f64>,
    _last_success_age: ObservableGauge<f64>,
    messages_processed: Counter<u64>,
    messages_retried: Counter<u64>,
    messages_failed: Counter<u64>,
    messages_dead_lettered: Counter<u64>,
    consumer_pending: Gauge<u64>,
    consumer_ack_pending: Gauge<u64>,
    github_requests: Counter<u64>,
    github_limit: Gauge<u64>,
    github_remaining: Gauge<u64>,
    github_reset: Gauge<f64>,
    emails_sent: Counter<u64>,
    emails_failed: Counter<u64>,
    http_duration: Histogram<f64>,
}

impl Instruments {
    pub(crate) fn new(meter: &Meter) -> Self {
        let last_success: LastSuccess = Arc::default();
        let for_time = Arc::clone(&last_success);
        let for_age = Arc::clone(&last_success);
        Self {
            runs: meter
                .u64_counter("covid_etl.runs")
                .with_description("Runs finished, by dataset, env and status (succeeded, failed, superseded)")
                .build(),
            run_duration: meter
                .f64_histogram("covid_etl.run.duration")
                .with_unit("s")
                .with_description("From a successful run's first extraction to its load's commit")
                .with_boundaries(STAGE_BOUNDS.to_vec())
                .build(),
            stage_duration: meter
                .f64_histogram("covid_etl.stage.duration")
                .with_unit("s")
                .with_description("Time a stage spent on one message (extract: one poll of one source), by stage, env and outcome")
                .with_boundaries(STAGE_BOUNDS.to_vec())
                .build(),
            rows: meter
                .u64_counter("covid_etl.rows")
                .with_description("Rows written to the dataset's table (a date of us, a (date, key) of states and counties), by dataset, env and change (inserted, updated, removed)")
                .build(),
            _last_success_time: meter
                .f64_observable_gauge("covid_etl.last_success.time")
                .with_unit("s")
                .with_description("Unix time of the last successful run this process loaded, by dataset and env")
                .with_callback(move |observer| {
                    for ((env, dataset), at) in snapshot(&for_time) {
                        observer.observe(unix_seconds(at), &labels(&env, &dataset));
                    }
                })
                .build(),
            _last_success_age: meter
                .f64_observable_gauge("covid_etl.last_success.age")
                .with_unit("s")
                .with_description("Seconds since the last successful run this process loaded, by dataset and env")
                .with_callback(move |observer| {
                    let now = SystemTime::now();
                    for ((env, dataset), at) in snapshot(&for_age) {
                        let age = now.duration_since(at).unwrap_or(Duration::ZERO);
                        observer.observe(age.as_secs_f64(), &labels(&env, &dataset));
                    }
                })
                .build(),
            last_success,
            messages_processed: meter
                .u64_counter("covid_etl.messages.processed")
                .with_description("Messages handled and acknowledged, by consumer and stage")
                .build(),
            messages_retried: meter
                .u64_counter("covid_etl.messages.retried")
                .with_description("Messages handed back for a later delivery after a transient failure, by consumer and stage")
                .build(),
            messages_failed: meter
                .u64_counter("covid_etl.messages.failed")
                .with_description("Messages given up on and reported as failed, by consumer and stage")
                .build(),
            messages_dead_lettered: meter
                .u64_counter("covid_etl.messages.dead_lettered")
                .with_description("Messages given up on and kept as dead letters, by consumer and stage")
                .build(),
            consumer_pending: meter
                .u64_gauge("covid_etl.consumer.pending")
                .with_description("Messages in the stream not yet delivered to the consumer (its lag), by consumer and stage")
                .build(),
            consumer_ack_pending: meter
                .u64_gauge("covid_etl.consumer.ack_pending")
                .with_description("Messages delivered to the consumer and not yet settled, by consumer and stage")
                .build(),
            github_requests: meter
                .u64_counter("covid_etl.github.requests")
                .with_description("Requests to GitHub, by endpoint (api, raw) and HTTP status (or error when none came back)")
                .build(),
            github_limit: meter
                .u64_gauge("covid_etl.github.rate_limit.limit")
                .with_description("GitHub API requests allowed per window, as its last answer said")
                .build(),
            github_remaining: meter
                .u64_gauge("covid_etl.github.rate_limit.remaining")
                .with_description("GitHub API requests left in the window, as its last answer said")
                .build(),
            github_reset: meter
                .f64_gauge("covid_etl.github.rate_limit.reset_time")
                .with_unit("s")
                .with_description("Unix time at which the GitHub API window resets, as its last answer said")
                .build(),
            emails_sent: meter
                .u64_counter("covid_etl.emails.sent")
                .with_description("Emails the SMTP server accepted")
                .build(),
            emails_failed: meter
                .u64_counter("covid_etl.emails.failed")
                .with_description("Email sends that failed, by kind (transient: retried; permanent)")
                .build(),
            http_duration: meter
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP requests, by route, method and status")
                .with_boundaries(HTTP_BOUNDS.to_vec())
                .build(),
        }
    }

    /// A run of `dataset` ended with `status` (`succeeded`, `failed`, `superseded`).
    pub fn run_finished(&self, env: &str, dataset: &str, status: &str) {
        self.runs.add(
            1,
            &[
                KeyValue::new("dataset", dataset.to_owned()),
                KeyValue::new("env", env.to_owned()),
                KeyValue::new("status", status.to_owned()),
            ],
        );
    }

    /// A run of `dataset` was loaded: its rows by change, its duration, and the last success (now).
    pub fn run_loaded(
        &self,
        env: &str,
        dataset: &str,
        inserted: u64,
        updated: u64,
        removed: u64,
        duration: Duration,
    ) {
        self.run_finished(env, dataset, "succeeded");
        for (change, count) in [
            ("inserted", inserted),
            ("updated", updated),
            ("removed", removed),
        ] {
            self.rows.add(
                count,
                &[
                    KeyValue::new("dataset", dataset.to_owned()),
                    KeyValue::new("env", env.to_owned()),
                    KeyValue::new("change", change),
                ],
            );
        }
        self.run_duration
            .record(duration.as_secs_f64(), &labels(env, dataset));
        self.succeeded_at(env, dataset, SystemTime::now());
    }

    /// The env's last successful run finished at `at` (kept only when later than the one known).
    pub fn succeeded_at(&self, env: &str, dataset: &str, at: SystemTime) {
        if let Ok(mut last) = self.last_success.lock() {
            let entry = last
                .entry((env.to_owned(), dataset.to_owned()))
                .or_insert(at);
            if *entry < at {
                *entry = at;
            }
        }
    }

    /// A stage spent `elapsed` on one message (or, for extract, one poll of one source).
    pub fn stage(&self, stage: &str, env: &str, outcome: &str, elapsed: Duration) {
        self.stage_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("stage", stage.to_owned()),
                KeyValue::new("env", env.to_owned()),
                KeyValue::new("outcome", outcome.to_owned()),
            ],
        );
    }

    /// A consumed message was settled.
    pub fn message(&self, consumer: &str, stage: &str, settled: Settled) {
        let labels = consumer_labels(consumer, stage);
        match settled {
            Settled::Processed => self.messages_processed.add(1, &labels),
            Settled::Retried => self.messages_retried.add(1, &labels),
            Settled::Failed => self.messages_failed.add(1, &labels),
            Settled::DeadLettered => {
                self.messages_failed.add(1, &labels);
                self.messages_dead_lettered.add(1, &labels);
            }
        }
    }

    /// The consumer's lag, as the server reported it.
    pub fn consumer_lag(&self, consumer: &str, stage: &str, pending: u64, ack_pending: u64) {
        let labels = consumer_labels(consumer, stage);
        self.consumer_pending.record(pending, &labels);
        self.consumer_ack_pending.record(ack_pending, &labels);
    }

    /// A request to GitHub came back with `status` (`None`: no answer at all).
    pub fn github_request(&self, endpoint: &'static str, status: Option<u16>) {
        let status = status.map_or_else(|| "error".to_owned(), |s| s.to_string());
        self.github_requests.add(
            1,
            &[
                KeyValue::new("endpoint", endpoint),
                KeyValue::new("status", status),
            ],
        );
    }

    /// GitHub's budget from the `x-ratelimit-*` headers of its last answer.
    pub fn github_budget(&self, limit: u64, remaining: u64, reset_unix: i64) {
        self.github_limit.record(limit, &[]);
        self.github_remaining.record(remaining, &[]);
        self.github_reset.record(reset_unix as f64, &[]);
    }

    pub fn email_sent(&self) {
        self.emails_sent.add(1, &[]);
    }

    /// `transient`: the send will be tried again.
    pub fn email_failed(&self, transient: bool) {
        let kind = if transient { "transient" } else { "permanent" };
        self.emails_failed.add(1, &[KeyValue::new("kind", kind)]);
    }

    /// An HTTP request to `route` (the route's pattern, never the raw path) took `elapsed`.
    pub fn http_request(&self, route: &str, method: &str, status: u16, elapsed: Duration) {
        self.http_duration.record(
            elapsed.as_secs_f64(),
            &[
                KeyValue::new("http.route", route.to_owned()),
                KeyValue::new("http.request.method", method.to_owned()),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
    }
}

fn labels(env: &str, dataset: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("dataset", dataset.to_owned()),
        KeyValue::new("env", env.to_owned()),
    ]
}

fn consumer_labels(consumer: &str, stage: &str) -> [KeyValue; 2] {
    [
        KeyValue::new("consumer", consumer.to_owned()),
        KeyValue::new("stage", stage.to_owned()),
    ]
}

fn snapshot<K: Clone>(map: &Mutex<HashMap<K, SystemTime>>) -> Vec<(K, SystemTime)> {
    map.lock()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), *v)).collect())
        .unwrap_or_default()
}

fn unix_seconds(at: SystemTime) -> f64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}
