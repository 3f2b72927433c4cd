//! Metrics and probes of every service, over real HTTP: after a real run through the pipeline
//! (fake GitHub, real NATS, PostgreSQL and SMTP) each service's `/metrics` carries its series with
//! the run's values; a service's `/readyz` follows its NATS server down and back up.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etl_tests::fake_github::FakeGithub;
use shared::config::Vars;
use shared::events::RunStatus;
use test_support::stack::{self, Identity, as_identity};
use test_support::{Running, TestEnv, eventually};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::processes::Process;
use crate::support::{emails_for, pipeline_vars, upstream_commits};

const NYT: &str = "date,cases,deaths\n\
2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,210,5\n2020-03-04,300,8\n";

const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,100,5,2\n2020-03-02,US,,150,7,3\n2020-03-03,US,,210,8,5\n2020-03-04,US,,300,12,8\n";

const SERIES_WITHIN: Duration = Duration::from_secs(30);

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_service_exports_its_series_with_the_values_of_a_real_run() {
    let test = TestEnv::new("metrics").await;
    let env = test.env.clone();
    let e = env.as_str();
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    github.add_many(upstream_commits(NYT, JHU));
    let vars = pipeline_vars(&env, &github);
    let mut notifications = test.notifications().await;
    let (services, addrs) = start_pipeline(&vars);
    let dashboard = start_dashboard(&env).await;
    let [extractor, transformer, loader, notifier] = addrs;

    let run = notifications.next("the run").await;
    assert_eq!(run.status, RunStatus::Succeeded, "{}", run.text);
    assert_eq!(run.counts.inserted, 4);
    assert_eq!(emails_for(&env, 1, Duration::from_secs(10)).await.len(), 1);

    // Every service is alive and ready, and says what it checked.
    for (name, addr) in [
        ("extractor", extractor),
        ("transformer", transformer),
        ("loader", loader),
        ("notifier", notifier),
    ] {
        let (status, _) = get(addr, "/livez").await.expect("livez answers");
        assert_eq!(status, 200, "{name} /livez");
        let body = eventually(
            &format!("{name} ready"),
            SERIES_WITHIN,
            move || async move {
                get(addr, "/readyz")
                    .await
                    .filter(|(status, _)| *status == 200)
                    .map(|(_, body)| body)
            },
        )
        .await;
        assert!(body.contains(r#""nats":"ok""#), "{name}: {body}");
    }
    let (_, body) = get(loader, "/readyz").await.unwrap();
    assert!(
        body.contains(r#""postgres":"ok""#) && body.contains(r#""consumer":"ok""#),
        "{body}"
    );

    // The extractor: both sources extracted once, GitHub's answers and budget.
    let extract = [("stage", "extract"), ("env", e), ("outcome", "ok")];
    let count = "covid_etl_stage_duration_seconds_count";
    let text = scrape_when(extractor, count, &extract, 2.0).await;
    assert_eq!(
        value(&text, "covid_etl_stage_duration_seconds_count", &extract),
        Some(2.0)
    );
    let raw_ok = [("endpoint", "raw"), ("status", "200")];
    assert_eq!(
        value(&text, "covid_etl_github_requests_total", &raw_ok),
        Some(2.0)
    );
    let api_ok = [("endpoint", "api"), ("status", "200")];
    assert!(value(&text, "covid_etl_github_requests_total", &api_ok) >= Some(2.0));
    assert!(value(&text, "covid_etl_github_rate_limit_remaining", &[]) > Some(0.0));
    assert!(value(&text, "covid_etl_github_rate_limit_limit", &[]) > Some(0.0));
    let reset = value(&text, "covid_etl_github_rate_limit_reset_time_seconds", &[]);
    assert!(reset > Some(now() - 3600.0), "{reset:?}");
    assert!(text.contains("# TYPE covid_etl_github_requests_total counter"));

    // The transformer: both extracted events handled, its lag drained.
    let transform = format!("transformer-{e}");
    let consumer = [("consumer", transform.as_str()), ("stage", "transform")];
    let processed = "covid_etl_messages_processed_total";
    let text = scrape_when(transformer, processed, &consumer, 2.0).await;
    assert_eq!(
        value(&text, "covid_etl_messages_processed_total", &consumer),
        Some(2.0)
    );
    let transformed = [("stage", "transform"), ("env", e), ("outcome", "ok")];
    assert_eq!(
        value(
            &text,
            "covid_etl_stage_duration_seconds_count",
            &transformed
        ),
        Some(2.0)
    );
    assert!(text.contains("# TYPE covid_etl_stage_duration_seconds histogram"));
    eventually(
        "the transformer's lag reported as 0",
        SERIES_WITHIN,
        move || async move {
            let text = scrape(transformer).await;
            (value(&text, "covid_etl_consumer_pending", &consumer) == Some(0.0)).then_some(())
        },
    )
    .await;

    // The loader: one successful run, its rows as the run counted them, its freshness.
    let load = format!("loader-{e}");
    let loader_consumer = [("consumer", load.as_str()), ("stage", "load")];
    let text = scrape_when(loader, processed, &loader_consumer, 1.0).await;
    let succeeded = [("dataset", "us"), ("env", e), ("status", "succeeded")];
    assert_eq!(value(&text, "covid_etl_runs_total", &succeeded), Some(1.0));
    for (change, count) in [
        ("inserted", run.counts.inserted),
        ("updated", run.counts.updated),
        ("removed", run.counts.removed),
    ] {
        let labels = [("dataset", "us"), ("env", e), ("change", change)];
        assert_eq!(
            value(&text, "covid_etl_rows_total", &labels),
            Some(count as f64),
            "{change}"
        );
    }
    let us = [("dataset", "us"), ("env", e)];
    let age = value(&text, "covid_etl_last_success_age_seconds", &us).expect("an age");
    assert!((0.0..120.0).contains(&age), "{age}");
    let at = value(&text, "covid_etl_last_success_time_seconds", &us).expect("a time");
    assert!((now() - at).abs() < 120.0, "{at}");
    assert_eq!(
        value(&text, "covid_etl_run_duration_seconds_count", &us),
        Some(1.0)
    );

    // The notifier: the one email, the one loaded event.
    let notify = format!("notifier-{e}");
    let notifier_consumer = [("consumer", notify.as_str()), ("stage", "notify")];
    let text = scrape_when(notifier, processed, &notifier_consumer, 1.0).await;
    assert_eq!(value(&text, "covid_etl_emails_sent_total", &[]), Some(1.0));
    assert_eq!(
        value(
            &text,
            "covid_etl_emails_failed_total",
            &[("kind", "transient")]
        ),
        None
    );
    assert_eq!(
        value(
            &text,
            "covid_etl_messages_processed_total",
            &notifier_consumer
        ),
        Some(1.0)
    );

    // The dashboard: latency by route pattern, never by raw path.
    let (status, _) = get(dashboard.1, "/api/v1/runs?limit=1").await.unwrap();
    assert_eq!(status, 200);
    let (status, _) = get(dashboard.1, "/no/such/page-123").await.unwrap();
    assert_eq!(status, 404);
    let text = scrape(dashboard.1).await;
    let runs = [
        ("http_route", "/api/v1/runs"),
        ("http_request_method", "GET"),
        ("http_response_status_code", "200"),
    ];
    assert_eq!(
        value(&text, "http_server_request_duration_seconds_count", &runs),
        Some(1.0)
    );
    assert!(!text.contains("page-123"), "a raw path became a label");

    // A message no stage can read: dead-lettered by the transformer, a failed run for the loader.
    test.stores
        .js
        .publish(format!("etl.{e}.extracted.nyt"), "not json".into())
        .await
        .expect("published")
        .await
        .expect("stored");
    eventually(
        "the dead letter counted",
        SERIES_WITHIN,
        move || async move {
            let text = scrape(transformer).await;
            (value(&text, "covid_etl_messages_dead_lettered_total", &consumer) == Some(1.0))
                .then_some(())
        },
    )
    .await;
    let failed = [("dataset", "us"), ("env", e), ("status", "failed")];
    eventually(
        "the failed run counted",
        SERIES_WITHIN,
        move || async move {
            let text = scrape(loader).await;
            (value(&text, "covid_etl_runs_total", &failed) == Some(1.0)).then_some(())
        },
    )
    .await;
    let text = scrape(transformer).await;
    assert_eq!(
        value(&text, "covid_etl_messages_failed_total", &consumer),
        Some(1.0)
    );

    futures::future::join_all(services.into_iter().map(Running::stop)).await;
    dashboard.0.stop().await;
    // Stopped, the listeners are gone.
    assert!(get(loader, "/livez").await.is_none());
    test.clean_up().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_is_not_ready_while_its_nats_server_is_down_and_ready_once_it_is_back() {
    let env = test_support::unique_env("ready");
    let nats = NatsServer::start().await;
    let metrics_addr = free_addr();
    let mut vars = Vars::default();
    vars.set("NATS_URL", nats.url())
        .set("ETL_ENVS", env.as_str())
        .set("METRICS_ADDR", metrics_addr.to_string());
    let config = transformer::Config::from_vars(&vars).expect("config");
    let service = Running::spawn("transformer", |shutdown| transformer::run(config, shutdown));
    let ready = move || async move {
        get(metrics_addr, "/readyz")
            .await
            .filter(|(status, _)| *status == 200)
    };
    eventually("ready with its NATS server up", SERIES_WITHIN, ready).await;

    let nats = nats.stop().await;
    let (status, body) = eventually(
        "not ready with NATS down",
        SERIES_WITHIN,
        move || async move {
            get(metrics_addr, "/readyz")
                .await
                .filter(|(status, _)| *status == 503)
        },
    )
    .await;
    assert_eq!(status, 503);
    assert!(body.contains(r#""nats":"not connected""#), "{body}");
    assert!(body.contains(r#""status":"not_ready""#), "{body}");
    // Short fixed words: no address, no broker text.
    assert!(
        !body.contains("127.0.0.1") && !body.contains(&nats.port.to_string()),
        "{body}"
    );
    let (status, _) = get(metrics_addr, "/livez").await.expect("alive");
    assert_eq!(status, 200, "liveness does not depend on NATS");

    let nats = nats.restart().await;
    let (_, body) = eventually(
        "ready again once NATS is back",
        Duration::from_secs(60),
        ready,
    )
    .await;
    assert!(body.contains(r#""consumer":"ok""#), "{body}");

    service.stop().await;
    nats.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_an_otlp_endpoint_the_same_instruments_are_pushed_over_otlp() {
    let test = TestEnv::new("otlpmetrics").await;
    let receiver = MetricsReceiver::start().await;
    let mut vars = test.vars();
    vars.set("OTEL_EXPORTER_OTLP_ENDPOINT", &receiver.url)
        .set("OTEL_METRIC_EXPORT_INTERVAL", "300");
    let logs = tempfile::tempdir().unwrap();
    let transformer = Process::spawn("transformer", &vars, logs.path());
    let durable = format!("transformer-{}", test.env);
    let found = eventually("the consumer's lag pushed over OTLP", SERIES_WITHIN, || {
        let found = receiver.find("transformer", "covid_etl.consumer.pending", &durable);
        async move { found }
    })
    .await;
    assert_eq!(found, 0, "nothing is pending for a fresh env");
    transformer.terminate().await;
    test.clean_up().await;
}

/// Starts the transformer, loader, notifier and extractor as the pipeline does
/// ([`test_support::Pipeline`]), each with a metrics listener of its own.
fn start_pipeline(vars: &Vars) -> (Vec<Running>, [SocketAddr; 4]) {
    let addrs = [free_addr(), free_addr(), free_addr(), free_addr()];
    let vars_of = |identity, addr: SocketAddr| {
        let mut vars = as_identity(vars, identity);
        vars.set("METRICS_ADDR", addr.to_string());
        vars
    };
    let extractor = extractor::Config::from_vars(&vars_of(Identity::Extractor, addrs[0])).unwrap();
    let transformer =
        transformer::Config::from_vars(&vars_of(Identity::Transformer, addrs[1])).unwrap();
    let loader = loader::Config::from_vars(&vars_of(Identity::Loader, addrs[2])).unwrap();
    let notifier = notifier::Config::from_vars(&vars_of(Identity::Notifier, addrs[3])).unwrap();
    let services = vec![
        Running::spawn("transformer", |s| transformer::run(transformer, s)),
        Running::spawn("loader", |s| loader::run(loader, s)),
        Running::spawn("notifier", |s| notifier::run(notifier, s)),
        Running::spawn("extractor", |s| extractor::run(extractor, s)),
    ];
    (services, addrs)
}

async fn start_dashboard(env: &shared::Env) -> (Running, SocketAddr) {
    let mut vars = stack::vars_for(Identity::Dashboard, env);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0");
    let config = dashboard::Config::from_vars(&vars).expect("dashboard config");
    let app = dashboard::Application::build(config)
        .await
        .expect("dashboard binds");
    let addr = app.local_addr();
    let running = Running::spawn("dashboard", |shutdown| async move {
        app.run_until(shutdown).await?;
        Ok(())
    });
    (running, addr)
}

/// `GET path` over HTTP/1.1: the status and the body; `None` when nothing answers.
async fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await.ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut answer = Vec::new();
        stream.read_to_end(&mut answer).await.ok()?;
        let answer = String::from_utf8(answer).ok()?;
        let (head, body) = answer.split_once("\r\n\r\n")?;
        let status = head.split(' ').nth(1)?.parse().ok()?;
        Some((status, body.to_owned()))
    };
    tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .ok()
        .flatten()
}

/// The service's metrics once sample `name` with `labels` reads `expected` (counters are
/// recorded when a message is settled, a moment after its effects are visible).
async fn scrape_when(
    addr: SocketAddr,
    name: &str,
    labels: &[(&str, &str)],
    expected: f64,
) -> String {
    let what = format!("{name} {labels:?} = {expected}");
    eventually(&what, SERIES_WITHIN, || async move {
        let text = scrape(addr).await;
        (value(&text, name, labels) == Some(expected)).then_some(text)
    })
    .await
}

async fn scrape(addr: SocketAddr) -> String {
    let (status, text) = get(addr, "/metrics").await.expect("/metrics answers");
    assert_eq!(status, 200, "{text}");
    text
}

/// The value of the sample `name` whose labels include `labels`.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .filter_map(|line| line.rsplit_once(' '))
        .find(|(series, _)| {
            let (series_name, series_labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (*series, ""),
            };
            series_name == name
                && labels.iter().all(|(k, v)| {
                    series_labels
                        .split(',')
                        .any(|l| l == format!("{k}=\"{v}\""))
                })
        })
        .and_then(|(_, value)| value.parse().ok())
}

fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// A NATS server of the test's own (JetStream on, no auth), stopped and started again on the
/// same port and store.
struct NatsServer {
    port: u16,
    store: tempfile::TempDir,
    child: tokio::process::Child,
}

impl NatsServer {
    async fn start() -> Self {
        let port = free_addr().port();
        let store = tempfile::tempdir().expect("a store folder");
        let child = Self::spawn(port, &store);
        Self::wait_listening(port).await;
        Self { port, store, child }
    }

    fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The binary `scripts/stack.sh` installs, or `NATS_SERVER_BIN`, or one on the PATH.
    fn binary() -> PathBuf {
        if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
            return PathBuf::from(path);
        }
        let installed = stack::stack_dir().join("venv/bin/nats-server");
        if installed.exists() {
            return installed;
        }
        PathBuf::from("nats-server")
    }

    fn spawn(port: u16, store: &tempfile::TempDir) -> tokio::process::Child {
        tokio::process::Command::new(Self::binary())
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd"])
            .arg(store.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server starts (run scripts/stack.sh up, or set NATS_SERVER_BIN)")
    }

    async fn wait_listening(port: u16) {
        eventually(
            "nats-server listening",
            Duration::from_secs(10),
            move || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
                    .map(drop)
            },
        )
        .await;
    }

    /// Stops the server (its store stays) and waits for it to exit.
    async fn stop(mut self) -> Stopped {
        let _ = self.child.kill().await;
        Stopped {
            port: self.port,
            store: self.store,
        }
    }
}

struct Stopped {
    port: u16,
    store: tempfile::TempDir,
}

impl Stopped {
    async fn restart(self) -> NatsServer {
        let child = NatsServer::spawn(self.port, &self.store);
        NatsServer::wait_listening(self.port).await;
        NatsServer {
            port: self.port,
            store: self.store,
            child,
        }
    }
}

/// A gauge point pushed over OTLP: service.name, metric name, `consumer` attribute, value.
type Point = (String, String, String, i64);
type Points = std::sync::Arc<std::sync::Mutex<Vec<Point>>>;

/// A real OTLP/HTTP receiver of metrics: keeps every gauge point of every export request.
struct MetricsReceiver {
    url: String,
    points: Points,
}

impl MetricsReceiver {
    async fn start() -> Self {
        use axum::body::Bytes;
        use axum::extract::State;
        use opentelemetry_proto::tonic::collector::metrics::v1::ExportMetricsServiceRequest;
        use opentelemetry_proto::tonic::common::v1::{KeyValue, any_value::Value};
        use opentelemetry_proto::tonic::metrics::v1::{metric::Data, number_data_point};
        use prost::Message;

        fn text(attributes: &[KeyValue], key: &str) -> String {
            attributes
                .iter()
                .find(|kv| kv.key == key)
                .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                    Value::StringValue(s) => Some(s.clone()),
                    _ => None,
                })
                .unwrap_or_default()
        }
        async fn receive(State(points): State<Points>, body: Bytes) -> &'static str {
            let request = ExportMetricsServiceRequest::decode(body).expect("an OTLP request");
            let mut points = points.lock().unwrap();
            for resource in request.resource_metrics {
                let attributes = resource.resource.map(|r| r.attributes).unwrap_or_default();
                let service = text(&attributes, "service.name");
                for metric in resource.scope_metrics.into_iter().flat_map(|s| s.metrics) {
                    let Some(Data::Gauge(gauge)) = metric.data else {
                        continue;
                    };
                    for point in gauge.data_points {
                        let value = match point.value {
                            Some(number_data_point::Value::AsInt(v)) => v,
                            // An unsigned gauge arrives as an integer; a float is rounded.
                            Some(number_data_point::Value::AsDouble(v)) => v as i64,
                            None => continue,
                        };
                        let consumer = text(&point.attributes, "consumer");
                        points.push((service.clone(), metric.name.clone(), consumer, value));
                    }
                }
            }
            ""
        }

        let points: Points = std::sync::Arc::default();
        let app = axum::Router::new()
            .route("/v1/metrics", axum::routing::post(receive))
            .with_state(points.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, points }
    }

    /// The last value pushed by `service` for gauge `metric` of `consumer`.
    fn find(&self, service: &str, metric: &str, consumer: &str) -> Option<i64> {
        self.points
            .lock()
            .unwrap()
            .iter()
            .rev()
            .find(|(s, m, c, _)| s == service && m == metric && c == consumer)
            .map(|(_, _, _, value)| *value)
    }
}
