//! Logs and traces, set up once per process by [`init`] from [`Settings`], which are read with
//! the rest of a service's configuration (so `--help` lists them and `--check-config` checks
//! them).
//!
//! Logs go to stderr (`LOG_FORMAT=pretty` or `json`, filtered by `RUST_LOG`). Spans are exported
//! over OTLP HTTP/protobuf when an endpoint is set, with the OpenTelemetry variables meaning what
//! the specification says (sdk-environment-variables and the OTLP exporter's):
//! - `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` is used as it is; otherwise
//!   `OTEL_EXPORTER_OTLP_ENDPOINT` is a base URL to which `v1/traces` is appended. With neither
//!   set nothing is exported (the specification's default, `http://localhost:4318`, would have
//!   every service retry a collector that is not there).
//! - `OTEL_EXPORTER_OTLP_TRACES_PROTOCOL` / `OTEL_EXPORTER_OTLP_PROTOCOL`: only `http/protobuf`
//!   is built in; any other value is a configuration error.
//! - `OTEL_EXPORTER_OTLP_[TRACES_]HEADERS` and `…_TIMEOUT` (milliseconds) as the exporter reads them.
//! - `OTEL_SDK_DISABLED=true` turns all of it off; `OTEL_TRACES_EXPORTER=none` turns off traces.
//! - Metrics ([`Settings::metrics`], for the metrics module's OTLP reader) follow the same rules
//!   with `v1/metrics`, `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT`, `…_METRICS_PROTOCOL`,
//!   `OTEL_METRICS_EXPORTER` and `OTEL_METRIC_EXPORT_INTERVAL`.
//! - The resource is `OTEL_RESOURCE_ATTRIBUTES` (`key=value,…`, percent-decoded), with
//!   `service.name` from `OTEL_SERVICE_NAME` (else that list, else the binary's name) and
//!   `service.version` the crate's version (unless the list sets it), plus `telemetry.sdk.*`.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::trace::{TraceContextExt as _, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig as _, WithHttpConfig as _};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::resource::TelemetryResourceDetector;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{Parser, Secret, Var};

/// The only OTLP protocol built in.
pub const HTTP_PROTOBUF: &str = "http/protobuf";
/// The OTLP/HTTP path of traces, appended to `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const TRACES_PATH: &str = "v1/traces";
/// The OTLP/HTTP path of metrics, appended to `OTEL_EXPORTER_OTLP_ENDPOINT`.
pub const METRICS_PATH: &str = "v1/metrics";
/// How often metrics are pushed over OTLP unless `OTEL_METRIC_EXPORT_INTERVAL` says.
pub const METRIC_EXPORT_INTERVAL: Duration = Duration::from_secs(30);

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Pretty,
    Json,
}

/// Logging and OpenTelemetry settings, read by [`Settings::parse`].
#[derive(Debug, Clone)]
pub struct Settings {
    /// The binary's name (the tracer's name, and `service.name` unless set otherwise).
    pub service: String,
    /// `RUST_LOG`.
    pub log_filter: String,
    /// `LOG_FORMAT`.
    pub log_format: LogFormat,
    /// `OTEL_SDK_DISABLED=true`: no OpenTelemetry export of any signal.
    pub sdk_disabled: bool,
    /// `OTEL_EXPORTER_OTLP_ENDPOINT`, as given: the base other signals append their path to.
    pub otlp_endpoint: Option<String>,
    /// Where and how spans are exported; `None` exports none.
    pub traces: Option<OtlpTraces>,
    /// Where and how often metrics are pushed over OTLP; `None` pushes none (`/metrics` still
    /// serves them).
    pub metrics: Option<OtlpMetrics>,
    /// Every resource attribute, `service.name` and `service.version` included.
    pub resource: BTreeMap<String, String>,
    /// What is odd but allowed (the specification asks for a warning), logged at start.
    pub warnings: Vec<String>,
}

/// OTLP/HTTP span export.
#[derive(Debug, Clone)]
pub struct OtlpTraces {
    /// The full URL spans are posted to.
    pub endpoint: String,
    /// Sent with every export request; they often carry an API key.
    pub headers: Vec<(String, Secret)>,
    pub timeout: Duration,
}

/// OTLP/HTTP metric export.
#[derive(Debug, Clone)]
pub struct OtlpMetrics {
    /// The full URL metrics are posted to.
    pub endpoint: String,
    /// How often they are pushed.
    pub interval: Duration,
}

/// The variables [`Settings::parse`] reads, for the `--help` of `service`.
pub fn variables(service: &str) -> Vec<Var> {
    vec![
        Var::new(
            "RUST_LOG",
            "Which log lines are written (tracing's EnvFilter syntax, such as info or \
             loader=debug,info)",
        )
        .default_value("info"),
        Var::new("LOG_FORMAT", "Log lines as pretty text or json").default_value("pretty"),
        Var::new(
            "OTEL_SDK_DISABLED",
            "true turns all OpenTelemetry export off (logs stay)",
        )
        .default_value("false"),
        Var::new(
            "OTEL_TRACES_EXPORTER",
            "otlp exports spans when an endpoint is set; none exports none",
        )
        .default_value("otlp"),
        Var::new(
            "OTEL_EXPORTER_OTLP_ENDPOINT",
            "Base URL of the OTLP/HTTP collector (such as http://jaeger:4318); traces go to \
             <base>/v1/traces. Unset (and no signal endpoint): nothing is exported",
        )
        .url(),
        Var::new(
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
            "Full URL spans are posted to, used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
        )
        .url(),
        Var::new(
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTLP protocol; only http/protobuf is built in",
        )
        .default_value(HTTP_PROTOBUF),
        Var::new(
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTLP protocol for traces, winning over OTEL_EXPORTER_OTLP_PROTOCOL; only \
             http/protobuf is built in",
        ),
        Var::new(
            "OTEL_EXPORTER_OTLP_HEADERS",
            "Headers sent with every export, key=value,… (percent-encoded values)",
        )
        .secret(),
        Var::new(
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS",
            "Headers sent with span exports, replacing OTEL_EXPORTER_OTLP_HEADERS",
        )
        .secret(),
        Var::new(
            "OTEL_EXPORTER_OTLP_TIMEOUT",
            "Longest one export request may take, in milliseconds",
        )
        .default_value(10_000),
        Var::new(
            "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT",
            "Longest one span export may take, in milliseconds; wins over \
             OTEL_EXPORTER_OTLP_TIMEOUT",
        ),
        Var::new(
            "OTEL_METRICS_EXPORTER",
            "otlp pushes metrics when an endpoint is set; none (or prometheus alone) leaves \
             them to /metrics",
        )
        .default_value("otlp"),
        Var::new(
            "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
            "Full URL metrics are posted to, used as it is; wins over OTEL_EXPORTER_OTLP_ENDPOINT",
        )
        .url(),
        Var::new(
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
            "OTLP protocol for metrics; only http/protobuf is built in",
        ),
        Var::new(
            "OTEL_METRIC_EXPORT_INTERVAL",
            "How often metrics are pushed over OTLP, in milliseconds",
        )
        .default_value(METRIC_EXPORT_INTERVAL.as_millis()),
        Var::new(
            "OTEL_SERVICE_NAME",
            "service.name of every span; wins over service.name in OTEL_RESOURCE_ATTRIBUTES",
        )
        .default_value(service),
        Var::new(
            "OTEL_RESOURCE_ATTRIBUTES",
            "Resource attributes of every span, key=value,… (percent-encoded); service.version \
             defaults to this binary's version",
        ),
    ]
}

impl Settings {
    /// Reads the variables of [`variables`]; `service` and `version` are the binary's.
    pub fn parse(p: &mut Parser<'_>, service: &str, version: &str) -> Self {
        let mut warnings = Vec::new();

        let log_filter = p.string("RUST_LOG", "info");
        if let Err(err) = EnvFilter::try_new(&log_filter) {
            p.error(
                "RUST_LOG",
                format!(
                    "`{log_filter}` is not a log filter such as info or loader=debug,info: {err}"
                ),
            );
        }
        let log_format = match p
            .string("LOG_FORMAT", "pretty")
            .to_ascii_lowercase()
            .as_str()
        {
            "pretty" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            other => {
                p.error("LOG_FORMAT", format!("`{other}` is not pretty or json"));
                LogFormat::Pretty
            }
        };

        let sdk_disabled = match p.optional_string("OTEL_SDK_DISABLED") {
            None => false,
            Some(value) if value.eq_ignore_ascii_case("true") => true,
            Some(value) if value.eq_ignore_ascii_case("false") => false,
            Some(value) => {
                warnings.push(format!(
                    "OTEL_SDK_DISABLED: `{value}` is neither true nor false; taken as false, as \
                     the OpenTelemetry specification says"
                ));
                false
            }
        };
        let traces_exporter = p.string("OTEL_TRACES_EXPORTER", "otlp");
        let traces_wanted = match traces_exporter.as_str() {
            "otlp" => true,
            "none" => false,
            other => {
                p.error(
                    "OTEL_TRACES_EXPORTER",
                    format!("`{other}` is not supported: otlp or none"),
                );
                false
            }
        };

        for name in [
            "OTEL_EXPORTER_OTLP_PROTOCOL",
            "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
            "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
        ] {
            if let Some(protocol) = p.optional_string(name)
                && protocol != HTTP_PROTOBUF
            {
                p.error(
                    name,
                    format!(
                        "`{protocol}` is not supported: this build exports OTLP over \
                         {HTTP_PROTOBUF} only (port 4318 on most collectors)"
                    ),
                );
            }
        }

        let otlp_endpoint = endpoint(p, "OTEL_EXPORTER_OTLP_ENDPOINT");
        let traces_endpoint = endpoint(p, "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT").or_else(|| {
            otlp_endpoint
                .as_deref()
                .map(|base| signal_endpoint(base, TRACES_PATH))
        });
        let headers = match p.secret("OTEL_EXPORTER_OTLP_TRACES_HEADERS") {
            Some(raw) => headers(p, "OTEL_EXPORTER_OTLP_TRACES_HEADERS", &raw),
            None => match p.secret("OTEL_EXPORTER_OTLP_HEADERS") {
                Some(raw) => headers(p, "OTEL_EXPORTER_OTLP_HEADERS", &raw),
                None => Vec::new(),
            },
        };
        let timeout = match p.optional_string("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT") {
            Some(_) => millis(p, "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT"),
            None => millis(p, "OTEL_EXPORTER_OTLP_TIMEOUT"),
        };
        let traces = traces_endpoint
            .filter(|_| traces_wanted && !sdk_disabled)
            .map(|endpoint| OtlpTraces {
                endpoint,
                headers,
                timeout,
            });

        let metrics_exporters = p.string("OTEL_METRICS_EXPORTER", "otlp");
        let mut metrics_wanted = false;
        for exporter in metrics_exporters.split(',').map(str::trim) {
            match exporter {
                "otlp" => metrics_wanted = true,
                "prometheus" | "none" => {}
                other => p.error(
                    "OTEL_METRICS_EXPORTER",
                    format!("`{other}` is not supported: otlp, prometheus or none"),
                ),
            }
        }
        let metrics_endpoint = endpoint(p, "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT").or_else(|| {
            otlp_endpoint
                .as_deref()
                .map(|base| signal_endpoint(base, METRICS_PATH))
        });
        let interval_ms: u64 = p.parse(
            "OTEL_METRIC_EXPORT_INTERVAL",
            METRIC_EXPORT_INTERVAL
                .as_millis()
                .try_into()
                .unwrap_or(30_000),
        );
        if interval_ms == 0 {
            p.error(
                "OTEL_METRIC_EXPORT_INTERVAL",
                "must be greater than zero (milliseconds)",
            );
        }
        let metrics = metrics_endpoint
            .filter(|_| metrics_wanted && !sdk_disabled && interval_ms > 0)
            .map(|endpoint| OtlpMetrics {
                endpoint,
                interval: Duration::from_millis(interval_ms),
            });

        let mut resource = BTreeMap::new();
        if let Some(raw) = p.optional_string("OTEL_RESOURCE_ATTRIBUTES") {
            match parse_key_values(&raw) {
                Ok(pairs) => resource.extend(pairs),
                // The specification: discard the whole value, and report it.
                Err(problem) => p.error("OTEL_RESOURCE_ATTRIBUTES", problem),
            }
        }
        let name = p
            .optional_string("OTEL_SERVICE_NAME")
            .or_else(|| resource.get("service.name").cloned())
            .unwrap_or_else(|| service.to_owned());
        resource.insert("service.name".to_owned(), name);
        resource
            .entry("service.version".to_owned())
            .or_insert_with(|| version.to_owned());

        Settings {
            service: service.to_owned(),
            log_filter,
            log_format,
            sdk_disabled,
            otlp_endpoint,
            traces,
            metrics,
            resource,
            warnings,
        }
    }

    /// One line for `--check-config`: where spans go, and as what.
    pub fn summary(&self) -> String {
        let export = match (&self.traces, self.sdk_disabled) {
            (Some(traces), _) => format!(
                "exported over OTLP {HTTP_PROTOBUF} to {}",
                crate::config::cli::redact_url(&traces.endpoint)
            ),
            (None, true) => "not exported (OTEL_SDK_DISABLED=true)".to_owned(),
            (None, false) => {
                "not exported (no OTLP endpoint, or OTEL_TRACES_EXPORTER=none)".to_owned()
            }
        };
        let metrics = match &self.metrics {
            Some(metrics) => format!(
                "pushed over OTLP every {}s to {}",
                metrics.interval.as_secs_f64(),
                crate::config::cli::redact_url(&metrics.endpoint)
            ),
            None => "served on /metrics only".to_owned(),
        };
        let resource: Vec<String> = self
            .resource
            .iter()
            .map(|(key, value)| format!("{key}={value}"))
            .collect();
        format!(
            "traces: {export}; metrics: {metrics}; resource: {}",
            resource.join(",")
        )
    }

    /// The OpenTelemetry resource: `self.resource` and the SDK's `telemetry.sdk.*`.
    pub fn otel_resource(&self) -> opentelemetry_sdk::Resource {
        opentelemetry_sdk::Resource::builder_empty()
            .with_detector(Box::new(TelemetryResourceDetector))
            .with_attributes(
                self.resource
                    .iter()
                    .map(|(key, value)| KeyValue::new(key.clone(), value.clone())),
            )
            .build()
    }
}

/// An endpoint variable: an absolute http:// or https:// URL, as given. A bad one is reported
/// without its text (it may carry credentials).
fn endpoint(p: &mut Parser<'_>, name: &str) -> Option<String> {
    let raw = p.optional_string(name)?;
    match url::Url::parse(&raw) {
        Ok(url) if matches!(url.scheme(), "http" | "https") => Some(raw),
        Ok(url) => {
            p.error(
                name,
                format!("scheme `{}` is not http or https", url.scheme()),
            );
            None
        }
        Err(err) => {
            p.error(name, format!("is not a valid URL: {err}"));
            None
        }
    }
}

/// `base` with a signal's path appended, as the OTLP exporter specification says for
/// `OTEL_EXPORTER_OTLP_ENDPOINT`: `http://c:4318` → `http://c:4318/v1/traces`,
/// `http://c:4318/mypath/` → `http://c:4318/mypath/v1/traces`.
pub fn signal_endpoint(base: &str, path: &str) -> String {
    let base = base.trim();
    let path = path.trim_start_matches('/');
    if base.ends_with('/') {
        format!("{base}{path}")
    } else {
        format!("{base}/{path}")
    }
}

fn headers(p: &mut Parser<'_>, name: &str, raw: &Secret) -> Vec<(String, Secret)> {
    match parse_key_values(raw.expose()) {
        Ok(pairs) => pairs
            .into_iter()
            .map(|(key, value)| (key, Secret::new(value)))
            .collect(),
        Err(problem) => {
            p.error(name, problem);
            Vec::new()
        }
    }
}

fn millis(p: &mut Parser<'_>, name: &str) -> Duration {
    let ms: u64 = p.parse(name, 10_000);
    if ms == 0 {
        p.error(name, "must be greater than zero (milliseconds)");
        return Duration::from_secs(10);
    }
    Duration::from_millis(ms)
}

/// `key1=value1,key2=value2`, keys and values trimmed and percent-decoded (the W3C Baggage
/// form the specification gives `OTEL_RESOURCE_ATTRIBUTES` and the OTLP headers). Empty entries
/// are skipped; the problem named for a bad entry quotes no value.
pub fn parse_key_values(raw: &str) -> Result<Vec<(String, String)>, String> {
    let mut pairs = Vec::new();
    for (index, entry) in raw.split(',').enumerate() {
        let entry = entry.trim();
        if entry.is_empty() {
            continue;
        }
        let number = index + 1;
        let Some((key, value)) = entry.split_once('=') else {
            return Err(format!(
                "entry {number} has no `=` (the form is key1=value1,key2=value2)"
            ));
        };
        let key = percent_decode(key.trim())
            .ok_or_else(|| format!("entry {number} has a badly percent-encoded key"))?;
        if key.is_empty() {
            return Err(format!("entry {number} has an empty key"));
        }
        let value = percent_decode(value.trim())
            .ok_or_else(|| format!("entry {number} ({key}) has a badly percent-encoded value"))?;
        pairs.push((key, value));
    }
    Ok(pairs)
}

/// `%XX` decoded; `None` for a `%` not followed by two hex digits, or bytes that are not UTF-8.
fn percent_decode(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&byte) = bytes.get(i) {
        if byte == b'%' {
            let hex = bytes.get(i + 1..i + 3)?;
            let hex = std::str::from_utf8(hex).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(byte);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// Flushes and stops trace export when dropped: keep it alive until `main` returns.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // An unreachable collector must not fail the shutdown: log and go on.
            if let Err(err) = provider.shutdown() {
                eprintln!("trace export did not shut down cleanly: {err}");
            }
        }
    }
}

/// Sets up logging and, when configured, OTLP trace export.
pub fn init(settings: &Settings) -> TelemetryGuard {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    crate::metrics::configure(settings);

    // `Settings::parse` has checked the filter.
    let filter =
        EnvFilter::try_new(&settings.log_filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let fmt_layer = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_writer(std::io::stderr)
            .boxed(),
    };

    let provider = settings
        .traces
        .as_ref()
        .and_then(|traces| otlp_provider(settings, traces));
    let otel_layer = provider.as_ref().map(|provider| {
        tracing_opentelemetry::layer().with_tracer(provider.tracer(settings.service.clone()))
    });

    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .init();
    for warning in &settings.warnings {
        tracing::warn!("{warning}");
    }
    if let (Some(provider), Some(traces)) = (&provider, &settings.traces) {
        opentelemetry::global::set_tracer_provider(provider.clone());
        tracing::info!(endpoint = %crate::config::cli::redact_url(&traces.endpoint), "exporting traces over OTLP");
    }
    TelemetryGuard { provider }
}

fn otlp_provider(settings: &Settings, traces: &OtlpTraces) -> Option<SdkTracerProvider> {
    let headers: HashMap<String, String> = traces
        .headers
        .iter()
        .map(|(key, value)| (key.clone(), value.expose().to_owned()))
        .collect();
    // The blocking HTTP client: the batch processor runs on its own thread without a Tokio runtime.
    let exporter = match opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(traces.endpoint.clone())
        .with_timeout(traces.timeout)
        .with_headers(headers)
        .build()
    {
        Ok(exporter) => exporter,
        Err(err) => {
            eprintln!("OTLP trace export disabled: {err}");
            return None;
        }
    };
    Some(
        SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(settings.otel_resource())
            .build(),
    )
}

/// Records the span's OpenTelemetry trace id in its `trace_id` field (declared `Empty`), so log
/// lines written inside it name the trace to open in Jaeger. Does nothing without trace export.
pub fn record_trace_id(span: &tracing::Span) {
    let context = span.context();
    let span_context = context.span().span_context().clone();
    if span_context.is_valid() {
        span.record("trace_id", span_context.trace_id().to_string());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    fn settings(pairs: &[(&str, &str)]) -> Result<Settings, Vec<String>> {
        let vars = Vars::from_pairs(pairs.iter().copied());
        let mut p = Parser::new(&vars);
        let settings = Settings::parse(&mut p, "loader", "0.1.0");
        p.finish().map(|()| settings).map_err(|err| err.lines)
    }

    fn endpoint_of(pairs: &[(&str, &str)]) -> Option<String> {
        settings(pairs).unwrap().traces.map(|t| t.endpoint)
    }

    #[test]
    fn nothing_is_exported_without_an_endpoint() {
        let settings = settings(&[]).unwrap();
        assert!(settings.traces.is_none());
        assert_eq!(settings.log_format, LogFormat::Pretty);
        assert_eq!(settings.log_filter, "info");
    }

    #[test]
    fn the_base_endpoint_gets_the_traces_path_and_the_signal_endpoint_is_used_as_is() {
        for (base, expected) in [
            ("http://collector:4318", "http://collector:4318/v1/traces"),
            ("http://collector:4318/", "http://collector:4318/v1/traces"),
            (
                "https://c.example/mypath",
                "https://c.example/mypath/v1/traces",
            ),
            (
                "https://c.example/mypath/",
                "https://c.example/mypath/v1/traces",
            ),
        ] {
            assert_eq!(
                endpoint_of(&[("OTEL_EXPORTER_OTLP_ENDPOINT", base)]).as_deref(),
                Some(expected),
                "{base}"
            );
        }
        assert_eq!(
            endpoint_of(&[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://base:4318"),
                (
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                    "http://traces:4318/custom"
                ),
            ])
            .as_deref(),
            Some("http://traces:4318/custom")
        );
        assert_eq!(
            endpoint_of(&[("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4318")]).as_deref(),
            Some("http://t:4318"),
            "a signal endpoint gets no path"
        );
    }

    #[test]
    fn only_http_protobuf_is_accepted_and_the_signal_protocol_is_checked_too() {
        assert!(settings(&[("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")]).is_ok());
        let lines = settings(&[
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"),
            ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"),
        ])
        .unwrap_err();
        assert_eq!(lines.len(), 2, "{lines:?}");
        assert!(lines[0].starts_with("OTEL_EXPORTER_OTLP_PROTOCOL: `grpc` is not supported"));
        assert!(lines[1].starts_with("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: `http/json`"));
    }

    #[test]
    fn sdk_disabled_turns_export_off_and_other_values_only_warn() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let off = settings(&[base, ("OTEL_SDK_DISABLED", "TRUE")]).unwrap();
        assert!(off.sdk_disabled && off.traces.is_none());
        let on = settings(&[base, ("OTEL_SDK_DISABLED", "false")]).unwrap();
        assert!(!on.sdk_disabled && on.traces.is_some());
        let odd = settings(&[base, ("OTEL_SDK_DISABLED", "yes")]).unwrap();
        assert!(odd.traces.is_some(), "only `true` disables");
        assert_eq!(odd.warnings.len(), 1);
        let none = settings(&[base, ("OTEL_TRACES_EXPORTER", "none")]).unwrap();
        assert!(none.traces.is_none());
        assert!(settings(&[("OTEL_TRACES_EXPORTER", "zipkin")]).is_err());
    }

    #[test]
    fn resource_attributes_are_decoded_and_merged_with_the_service_name_and_version() {
        let s = settings(&[(
            "OTEL_RESOURCE_ATTRIBUTES",
            "deployment.environment=prod, team=data%20eng,service.name=from-list,",
        )])
        .unwrap();
        assert_eq!(s.resource["deployment.environment"], "prod");
        assert_eq!(s.resource["team"], "data eng");
        assert_eq!(s.resource["service.name"], "from-list");
        assert_eq!(s.resource["service.version"], "0.1.0");

        let s = settings(&[
            (
                "OTEL_RESOURCE_ATTRIBUTES",
                "service.name=from-list,service.version=9",
            ),
            ("OTEL_SERVICE_NAME", "loader-eu"),
        ])
        .unwrap();
        assert_eq!(
            s.resource["service.name"], "loader-eu",
            "OTEL_SERVICE_NAME wins"
        );
        assert_eq!(s.resource["service.version"], "9");

        let s = settings(&[]).unwrap();
        assert_eq!(s.resource["service.name"], "loader");
        let resource = s.otel_resource();
        assert_eq!(
            resource
                .get(&opentelemetry::Key::new("service.version"))
                .map(|v| v.to_string()),
            Some("0.1.0".to_owned())
        );
        assert!(
            resource
                .get(&opentelemetry::Key::new("telemetry.sdk.name"))
                .is_some()
        );
    }

    #[test]
    fn a_bad_attribute_list_is_one_error_and_quotes_no_value() {
        for raw in ["team", "=x", "k=%zz", "k=%ff"] {
            let lines = settings(&[("OTEL_RESOURCE_ATTRIBUTES", raw)]).unwrap_err();
            assert_eq!(lines.len(), 1, "{raw}: {lines:?}");
            assert!(
                lines[0].starts_with("OTEL_RESOURCE_ATTRIBUTES: entry 1"),
                "{lines:?}"
            );
        }
        let lines = settings(&[("OTEL_EXPORTER_OTLP_HEADERS", "api-key=%zzhunter2")]).unwrap_err();
        assert!(!lines[0].contains("hunter2"), "{lines:?}");
    }

    #[test]
    fn headers_and_timeouts_follow_the_signal_first_rule() {
        let s = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318"),
            ("OTEL_EXPORTER_OTLP_HEADERS", "a=1"),
            ("OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=s%3Dcret"),
            ("OTEL_EXPORTER_OTLP_TIMEOUT", "2000"),
        ])
        .unwrap();
        let traces = s.traces.unwrap();
        assert_eq!(traces.headers.len(), 1);
        assert_eq!(traces.headers[0].0, "api-key");
        assert_eq!(traces.headers[0].1.expose(), "s=cret");
        assert_eq!(traces.timeout, Duration::from_secs(2));
        assert!(!format!("{traces:?}").contains("s=cret"));
    }

    #[test]
    fn metrics_follow_the_same_rules_with_their_own_path_and_variables() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318/otel");
        let metrics = settings(&[base]).unwrap().metrics.unwrap();
        assert_eq!(metrics.endpoint, "http://c:4318/otel/v1/metrics");
        assert_eq!(metrics.interval, METRIC_EXPORT_INTERVAL);
        let metrics = settings(&[
            base,
            (
                "OTEL_EXPORTER_OTLP_METRICS_ENDPOINT",
                "http://m:4318/custom",
            ),
            ("OTEL_METRIC_EXPORT_INTERVAL", "5000"),
        ])
        .unwrap()
        .metrics
        .unwrap();
        assert_eq!(metrics.endpoint, "http://m:4318/custom");
        assert_eq!(metrics.interval, Duration::from_secs(5));
        for off in [
            ("OTEL_METRICS_EXPORTER", "none"),
            ("OTEL_METRICS_EXPORTER", "prometheus"),
            ("OTEL_SDK_DISABLED", "true"),
        ] {
            let s = settings(&[base, off]).unwrap();
            assert!(s.metrics.is_none(), "{off:?}");
        }
        assert!(
            settings(&[base, ("OTEL_METRICS_EXPORTER", "prometheus,otlp")])
                .unwrap()
                .metrics
                .is_some()
        );
        let lines = settings(&[
            ("OTEL_METRICS_EXPORTER", "statsd"),
            ("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL", "grpc"),
            ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
        ])
        .unwrap_err();
        assert_eq!(lines.len(), 3, "{lines:?}");
    }

    #[test]
    fn bad_endpoints_and_log_settings_are_named() {
        let lines = settings(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "grpc://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "not a url"),
            ("LOG_FORMAT", "xml"),
            ("RUST_LOG", "info,[bad"),
        ])
        .unwrap_err();
        let names: Vec<&str> = lines.iter().map(|l| l.split(':').next().unwrap()).collect();
        assert_eq!(
            names,
            [
                "RUST_LOG",
                "LOG_FORMAT",
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
            ],
            "{lines:?}"
        );
    }
}
