//! Metrics and probes: the OpenTelemetry instruments every service records into, and the HTTP
//! listener (`METRICS_ADDR`) that serves them with the service's liveness and readiness.
//!
//! One [`Metrics`] per running service (a test runs several in one process, each with its own):
//! an OpenTelemetry meter provider read by two readers, a Prometheus registry rendered as text on
//! `GET /metrics` (names after the OpenTelemetry → Prometheus rules: `_total` on counters, the
//! unit as a suffix, histograms as `_bucket` / `_sum` / `_count`) and, when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, a periodic OTLP export of the same instruments
//! ([`configure`], which `telemetry::init` calls).
//!
//! - [`instruments`] names every series and records into it;
//! - [`probe`] is the readiness a service builds up as it connects (`GET /readyz`), and
//!   [`lag`] reads a consumer's pending counts from the server;
//! - [`endpoint`] binds `METRICS_ADDR` and answers `/metrics`, `/livez` and `/readyz`;
//! - [`serve`] is the bounded HTTP/1.1 server loop it runs on (the dashboard's too);
//! - [`addr`] reads `METRICS_ADDR`, with a default per service so all run on one machine.

pub mod addr;
pub mod endpoint;
pub mod instruments;
pub mod lag;
pub mod probe;
pub mod serve;

use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::InstrumentationScope;
use opentelemetry::metrics::MeterProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig as _};
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

pub use addr::METRICS_ADDR;
pub use endpoint::StartError;
pub use instruments::Instruments;
pub use probe::Readiness;

use crate::shutdown::Shutdown;
use crate::telemetry::OtlpMetrics;

/// One service's instruments, their readers and its readiness. Cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    inner: Arc<Inner>,
}

struct Inner {
    service: String,
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    instruments: Instruments,
    readiness: Readiness,
    /// The listener's task and its own stop token, once [`Metrics::serve`] has bound it.
    endpoint: Mutex<Option<(Shutdown, tokio::task::JoinHandle<()>)>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics")
            .field("service", &self.inner.service)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("could not encode the metrics: {0}")]
    Encode(#[from] prometheus::Error),
    #[error("the metrics are not UTF-8: {0}")]
    Utf8(#[from] std::string::FromUtf8Error),
}

impl Metrics {
    /// The instruments of `service`, read for Prometheus and, when configured, pushed over OTLP.
    /// Nothing listens yet: [`Metrics::serve`] binds the endpoint.
    pub fn new(service: &str) -> Self {
        let registry = prometheus::Registry::new();
        let mut builder = SdkMeterProvider::builder().with_resource(resource(service));
        // `otel_scope_*` labels on every point would only repeat the one scope we have.
        match opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .build()
        {
            Ok(exporter) => builder = builder.with_reader(exporter),
            Err(err) => tracing::warn!(error = %err, "Prometheus metrics disabled"),
        }
        if let Some(reader) = otlp_reader() {
            builder = builder.with_reader(reader);
        }
        let provider = builder.build();
        let scope = InstrumentationScope::builder("covid-etl")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let instruments = Instruments::new(&provider.meter_with_scope(scope));
        Self {
            inner: Arc::new(Inner {
                service: service.to_owned(),
                provider,
                registry,
                instruments,
                readiness: Readiness::default(),
                endpoint: Mutex::new(None),
            }),
        }
    }

    pub fn service(&self) -> &str {
        &self.inner.service
    }

    /// Where every series is recorded.
    pub fn record(&self) -> &Instruments {
        &self.inner.instruments
    }

    /// What `/readyz` checks; a service adds its checks as it connects.
    pub fn readiness(&self) -> &Readiness {
        &self.inner.readiness
    }

    /// The Prometheus text exposition (format 0.0.4) of every instrument, now.
    pub fn render(&self) -> Result<String, RenderError> {
        use prometheus::Encoder as _;
        let families = self.inner.registry.gather();
        let mut out = Vec::new();
        prometheus::TextEncoder::new().encode(&families, &mut out)?;
        Ok(String::from_utf8(out)?)
    }

    /// Binds `addr` and serves `/metrics`, `/livez` and `/readyz` on it until `shutdown` or
    /// [`Metrics::finish`]; returns the bound address (port 0 picks a free one).
    pub async fn serve(
        &self,
        addr: std::net::SocketAddr,
        shutdown: &Shutdown,
    ) -> Result<std::net::SocketAddr, StartError> {
        let (bound, stop, task) = endpoint::start(self.clone(), addr, shutdown).await?;
        tracing::info!(addr = %bound, "metrics and probes listening");
        if let Ok(mut slot) = self.inner.endpoint.lock() {
            *slot = Some((stop, task));
        }
        Ok(bound)
    }

    /// Stops the listener (if [`Metrics::serve`] started one) and flushes and shuts down the
    /// readers: the last OTLP export goes out before the service returns.
    pub async fn finish(&self) {
        let endpoint = self.inner.endpoint.lock().ok().and_then(|mut e| e.take());
        if let Some((stop, task)) = endpoint {
            stop.trigger();
            let _ = task.await;
        }
        let provider = self.inner.provider.clone();
        // The OTLP exporter's blocking HTTP client must not run on a runtime thread.
        let result = tokio::task::spawn_blocking(move || provider.shutdown()).await;
        if let Ok(Err(err)) = result {
            tracing::debug!(error = %err, "the metrics readers did not shut down cleanly");
        }
    }
}

/// How this process exports metrics beyond `/metrics`, from the telemetry settings ([`configure`]).
struct Export {
    resource: opentelemetry_sdk::Resource,
    otlp: Option<OtlpMetrics>,
}

/// Set once per process by [`crate::telemetry::init`]: the variables are the process's.
static EXPORT: OnceLock<Export> = OnceLock::new();

/// Takes the resource (`service.name`, `OTEL_RESOURCE_ATTRIBUTES`…) and the OTLP metric export
/// (`OTEL_EXPORTER_OTLP_*`, `OTEL_METRICS_EXPORTER`, `OTEL_METRIC_EXPORT_INTERVAL`,
/// `OTEL_SDK_DISABLED`, all read by [`crate::telemetry::Settings`]) for every [`Metrics`] made
/// afterwards. Without it (a test running services in-process) metrics are served on `/metrics`
/// only, with a resource naming the service.
pub fn configure(settings: &crate::telemetry::Settings) {
    let _ = EXPORT.set(Export {
        resource: settings.otel_resource(),
        otlp: settings.metrics.clone(),
    });
}

fn resource(service: &str) -> opentelemetry_sdk::Resource {
    match EXPORT.get() {
        Some(export) => export.resource.clone(),
        None => opentelemetry_sdk::Resource::builder()
            .with_service_name(service.to_owned())
            .with_attribute(opentelemetry::KeyValue::new(
                "service.version",
                env!("CARGO_PKG_VERSION"),
            ))
            .build(),
    }
}

/// The OTLP push reader, when [`configure`] was given an OTLP metric export.
fn otlp_reader() -> Option<PeriodicReader<opentelemetry_otlp::MetricExporter>> {
    let otlp = EXPORT.get()?.otlp.as_ref()?;
    // The blocking client, as for traces: the periodic reader runs on its own thread, without a
    // Tokio runtime (see telemetry.rs).
    let exporter = match opentelemetry_otlp::MetricExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(otlp.endpoint.clone())
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            tracing::warn!(error = %err, "OTLP metrics export disabled");
            return None;
        }
    };
    tracing::info!(endpoint = %crate::config::cli::redact_url(&otlp.endpoint), interval = ?otlp.interval, "pushing metrics over OTLP");
    Some(
        PeriodicReader::builder(exporter)
            .with_interval(otlp.interval)
            .build(),
    )
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::instruments::Settled;
    use super::*;

    fn line<'a>(text: &'a str, start: &str) -> &'a str {
        text.lines()
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line starting {start:?} in:\n{text}"))
    }

    #[test]
    fn counters_end_in_total_and_carry_their_labels() {
        let metrics = Metrics::new("loader");
        metrics
            .record()
            .run_loaded("prod", "us", 3, 2, 1, Duration::from_secs(4));
        metrics
            .record()
            .message("loader-prod", "load", Settled::DeadLettered);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("# TYPE covid_etl_runs_total counter"),
            "{text}"
        );
        assert_eq!(
            line(&text, "covid_etl_runs_total{"),
            r#"covid_etl_runs_total{dataset="us",env="prod",status="succeeded"} 1"#
        );
        assert_eq!(
            line(&text, r#"covid_etl_rows_total{change="inserted""#),
            r#"covid_etl_rows_total{change="inserted",dataset="us",env="prod"} 3"#
        );
        assert_eq!(
            line(&text, "covid_etl_messages_dead_lettered_total{"),
            r#"covid_etl_messages_dead_lettered_total{consumer="loader-prod",stage="load"} 1"#
        );
        // A dead letter is a failure too.
        assert_eq!(
            line(&text, "covid_etl_messages_failed_total{"),
            r#"covid_etl_messages_failed_total{consumer="loader-prod",stage="load"} 1"#
        );
    }

    #[test]
    fn durations_are_histograms_in_seconds() {
        let metrics = Metrics::new("transformer");
        metrics
            .record()
            .stage("transform", "prod", "ok", Duration::from_millis(300));
        let text = metrics.render().unwrap();
        assert!(
            text.contains("# TYPE covid_etl_stage_duration_seconds histogram"),
            "{text}"
        );
        assert_eq!(
            line(
                &text,
                r#"covid_etl_stage_duration_seconds_bucket{env="prod",outcome="ok",stage="transform",le="0.25"}"#
            ),
            r#"covid_etl_stage_duration_seconds_bucket{env="prod",outcome="ok",stage="transform",le="0.25"} 0"#
        );
        assert!(line(&text, r#"covid_etl_stage_duration_seconds_bucket{env="prod",outcome="ok",stage="transform",le="0.5"}"#).ends_with(" 1"));
        assert!(line(&text, "covid_etl_stage_duration_seconds_sum{").ends_with(" 0.3"));
        assert!(line(&text, "covid_etl_stage_duration_seconds_count{").ends_with(" 1"));
    }

    #[test]
    fn gauges_carry_their_unit_and_the_age_of_the_last_success_grows() {
        let metrics = Metrics::new("loader");
        let an_hour_ago = std::time::SystemTime::now() - Duration::from_secs(3600);
        metrics.record().succeeded_at("prod", "us", an_hour_ago);
        metrics.record().github_budget(5000, 4999, 1_700_000_000);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("# TYPE covid_etl_last_success_age_seconds gauge"),
            "{text}"
        );
        let age: f64 = line(&text, "covid_etl_last_success_age_seconds{")
            .rsplit(' ')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        assert!((3600.0..3700.0).contains(&age), "{age}");
        assert_eq!(
            line(&text, "covid_etl_github_rate_limit_remaining"),
            "covid_etl_github_rate_limit_remaining 4999"
        );
        assert_eq!(
            line(&text, "covid_etl_github_rate_limit_reset_time_seconds"),
            "covid_etl_github_rate_limit_reset_time_seconds 1700000000"
        );
        assert!(
            text.contains(r#"target_info{service_name="loader""#),
            "{text}"
        );
    }

    #[test]
    fn http_durations_follow_the_semantic_conventions() {
        let metrics = Metrics::new("dashboard");
        metrics
            .record()
            .http_request("/api/v1/runs", "GET", 200, Duration::from_millis(20));
        let text = metrics.render().unwrap();
        assert!(line(&text, "http_server_request_duration_seconds_count{").contains(
            r#"http_request_method="GET",http_response_status_code="200",http_route="/api/v1/runs""#
        ));
    }
}
