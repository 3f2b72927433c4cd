//! A real OTLP/HTTP receiver for the services' trace export: it keeps every export request's raw
//! body, and the spans decoded from it.

use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::routing::post;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::any_value::Value;
use prost::Message;

/// One exported span: who sent it, its name and where it sits in its trace.
#[derive(Debug, Clone)]
pub struct SpanRecord {
    pub service: String,
    pub name: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
}

#[derive(Default)]
struct Received {
    bodies: Vec<Bytes>,
    spans: Vec<SpanRecord>,
}

/// The receiver, listening on a port of its own until the test's runtime ends.
pub struct OtlpReceiver {
    /// `OTEL_EXPORTER_OTLP_ENDPOINT` for the services.
    pub url: String,
    received: Arc<Mutex<Received>>,
}

impl OtlpReceiver {
    pub async fn start() -> Self {
        let received: Arc<Mutex<Received>> = Arc::default();
        let app = axum::Router::new()
            .route("/v1/traces", post(receive))
            .with_state(received.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Self { url, received }
    }

    /// Every span received so far.
    pub fn spans(&self) -> Vec<SpanRecord> {
        self.received.lock().unwrap().spans.clone()
    }

    /// The raw body of every export request received so far, as sent.
    pub fn bodies(&self) -> Vec<Bytes> {
        self.received.lock().unwrap().bodies.clone()
    }
}

async fn receive(State(received): State<Arc<Mutex<Received>>>, body: Bytes) -> &'static str {
    let request =
        ExportTraceServiceRequest::decode(body.clone()).expect("a valid OTLP export request");
    let mut received = received.lock().unwrap();
    received.bodies.push(body);
    for resource_spans in request.resource_spans {
        let service = resource_spans
            .resource
            .iter()
            .flat_map(|r| &r.attributes)
            .find(|kv| kv.key == "service.name")
            .and_then(|kv| match kv.value.as_ref()?.value.as_ref()? {
                Value::StringValue(s) => Some(s.clone()),
                _ => None,
            })
            .unwrap_or_default();
        for scope in resource_spans.scope_spans {
            for span in scope.spans {
                received.spans.push(SpanRecord {
                    service: service.clone(),
                    name: span.name,
                    trace_id: hex(&span.trace_id),
                    span_id: hex(&span.span_id),
                    parent_span_id: hex(&span.parent_span_id),
                });
            }
        }
    }
    ""
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
