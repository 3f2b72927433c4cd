//! `GET /healthz` (the process answers) and `GET /readyz` (it can do its job: PostgreSQL answers
//! and the NATS subscription for live updates is up).

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::AppState;
use crate::live::NatsStatus;

const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Response {
    no_store((StatusCode::OK, Json(json!({ "status": "ok" }))).into_response())
}

pub async fn readyz(State(state): State<AppState>) -> Response {
    let postgres = match tokio::time::timeout(CHECK_TIMEOUT, state.db.ping()).await {
        Ok(Ok(())) => "ok".to_owned(),
        Ok(Err(err)) => {
            // The error can name hosts, roles and tables: the log has it, the answer does not.
            tracing::warn!(error = %err, "readiness: PostgreSQL does not answer");
            "unavailable".to_owned()
        }
        Err(_) => format!("no answer within {}s", CHECK_TIMEOUT.as_secs()),
    };
    let nats = state.live.nats_status();
    let ready = postgres == "ok" && nats == NatsStatus::Ok;
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({
        "status": if ready { "ready" } else { "not_ready" },
        "postgres": postgres,
        "nats": nats,
    });
    no_store((status, Json(body)).into_response())
}

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
