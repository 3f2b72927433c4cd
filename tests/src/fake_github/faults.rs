//! The answers a queued [`Fault`] makes the fake give instead of the real one.

use std::convert::Infallible;

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::json;

use super::Fault;
use super::history::{FakeCommit, reset_after};
use super::routes::json_response;

/// The answer for a queued fault; `file` is the version a raw request asked for.
pub(super) fn fault_response(
    fault: &Fault,
    rate: Vec<(&'static str, String)>,
    file: Option<&FakeCommit>,
) -> Response {
    let content = file.map(|f| f.content.clone()).unwrap_or_default();
    let content_length = content.len();
    let mut response = match fault {
        Fault::ServerError => json_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            rate,
            &json!({"message": "Server Error"}),
        ),
        Fault::RateLimited { reset_in } => {
            let mut rate = rate;
            for (name, value) in &mut rate {
                match *name {
                    "x-ratelimit-remaining" => *value = "0".to_owned(),
                    "x-ratelimit-reset" => *value = reset_after(*reset_in).to_string(),
                    _ => {}
                }
            }
            let message = "API rate limit exceeded for 127.0.0.1. (But here's the good news: Authenticated requests get a higher rate limit.)";
            json_response(
                StatusCode::FORBIDDEN,
                rate,
                &json!({"message": message, "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}),
            )
        }
        Fault::TooManyRequests { retry_after } => {
            let mut response = json_response(
                StatusCode::TOO_MANY_REQUESTS,
                rate,
                &json!({"message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again."}),
            );
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(*retry_after));
            response
        }
        Fault::SecondaryLimit => json_response(
            StatusCode::FORBIDDEN,
            rate,
            &json!({
                "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
                "documentation_url": "https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits",
            }),
        ),
        Fault::Forbidden => json_response(
            StatusCode::FORBIDDEN,
            rate,
            &json!({
                "message": "Resource not accessible by integration",
                "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
                "status": "403",
            }),
        ),
        Fault::TooLarge => json_response(
            StatusCode::FORBIDDEN,
            rate,
            &json!({
                "message": "This API returns blobs up to 1 MB in size. The requested blob is too large to fetch via the API, but you can use the Git Data API to request blobs up to 100 MB in size.",
                "errors": [{"resource": "Blob", "field": "data", "code": "too_large"}],
                "documentation_url": "https://docs.github.com/rest/repos/contents#get-repository-content",
            }),
        ),
        Fault::Html => html_page(header::HeaderValue::from_static("text/html; charset=utf-8")),
        Fault::HtmlAsText => html_page(header::HeaderValue::from_static(
            "text/plain; charset=utf-8",
        )),
        Fault::TruncatedBody => {
            // Announce the whole length, send half, then end: the connection closes early.
            // The pause lets the head and the first half go out before the early end, so the
            // client sees a response whose body breaks off, not a refused request.
            let half = content.slice(..content.len() / 2);
            let stream = futures::stream::unfold(Some(half), |half| async move {
                match half {
                    Some(half) => Some((Ok::<_, Infallible>(half), None)),
                    None => {
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                        None
                    }
                }
            });
            let mut response = Response::new(Body::from_stream(stream));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(content.len()));
            response
        }
        Fault::CutAtLineEnd => {
            // No Content-Length, and the cut falls just after a newline: looks like a whole CSV.
            let middle = content.len() / 2;
            let cut = content[..middle]
                .iter()
                .rposition(|b| *b == b'\n')
                .map_or(0, |i| i + 1);
            let stream = futures::stream::iter([Ok::<_, Infallible>(content.slice(..cut))]);
            Response::new(Body::from_stream(stream))
        }
        Fault::Altered => {
            let mut altered = content.to_vec();
            if let Some(digit) = altered.iter_mut().rev().find(|b| b.is_ascii_digit()) {
                *digit = if *digit == b'9' { b'0' } else { *digit + 1 };
            }
            (StatusCode::OK, altered).into_response()
        }
        Fault::Endless => {
            let line = Bytes::from("2020-01-21,1,0\n".repeat(4096));
            let stream = futures::stream::repeat_with(move || Ok::<_, Infallible>(line.clone()));
            Response::new(Body::from_stream(stream))
        }
        Fault::Slow { delay } => {
            let delay = *delay;
            let body = futures::stream::once(async move {
                tokio::time::sleep(delay).await;
                Ok::<_, Infallible>(content)
            });
            let mut response = Response::new(Body::from_stream(body));
            response
                .headers_mut()
                .insert(header::CONTENT_LENGTH, HeaderValue::from(content_length));
            response
        }
    };
    if matches!(
        fault,
        Fault::TruncatedBody
            | Fault::CutAtLineEnd
            | Fault::Endless
            | Fault::Altered
            | Fault::Slow { .. }
    ) {
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; charset=utf-8"),
        );
    }
    response
}

fn html_page(content_type: HeaderValue) -> Response {
    let page = "<!DOCTYPE html>\n<html><head><title>Unicorn! &middot; GitHub</title></head>\n<body>No server is currently available to service your request.</body></html>\n";
    let mut response = (StatusCode::OK, page).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, content_type);
    response
}
