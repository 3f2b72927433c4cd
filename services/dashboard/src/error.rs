//! What an API request can fail with, and the JSON each failure is answered with.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::db::DbError;
use crate::params::BadParameter;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    BadParameter(#[from] BadParameter),
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("no such endpoint: {0}")]
    NotFound(String),
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            ApiError::BadParameter(bad) => (StatusCode::BAD_REQUEST, Json(bad)).into_response(),
            ApiError::Database(err) => {
                // Details go to the log, not to the client: they can name hosts and roles.
                tracing::error!(error = %err, "database error while answering a request");
                let (status, message) = match err {
                    DbError::Unavailable(_) => (
                        StatusCode::SERVICE_UNAVAILABLE,
                        "the database is not reachable; try again shortly",
                    ),
                    DbError::Query { .. } => (
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "reading the database failed",
                    ),
                };
                (status, Json(json!({ "error": message }))).into_response()
            }
            ApiError::NotFound(_) => (
                StatusCode::NOT_FOUND,
                Json(json!({ "error": self.to_string() })),
            )
                .into_response(),
        }
    }
}
