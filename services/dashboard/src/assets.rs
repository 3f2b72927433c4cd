//! The page and its static files, compiled into the binary: running the dashboard needs no
//! Node build and no files beside it. uPlot 1.6.32 is vendored in `assets/` with its licence.

use std::sync::LazyLock;

use axum::extract::Path;
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};

use crate::cache::Validators;
use crate::error::ApiError;

struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

const INDEX: Asset = Asset {
    name: "index.html",
    content_type: "text/html; charset=utf-8",
    bytes: include_bytes!("../assets/index.html"),
};

const ASSETS: [Asset; 5] = [
    Asset {
        name: "app.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/app.js"),
    },
    Asset {
        name: "app.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/app.css"),
    },
    Asset {
        name: "uPlot.iife.min.js",
        content_type: "text/javascript; charset=utf-8",
        bytes: include_bytes!("../assets/uPlot.iife.min.js"),
    },
    Asset {
        name: "uPlot.min.css",
        content_type: "text/css; charset=utf-8",
        bytes: include_bytes!("../assets/uPlot.min.css"),
    },
    Asset {
        name: "uPlot.LICENSE",
        content_type: "text/plain; charset=utf-8",
        bytes: include_bytes!("../assets/uPlot.LICENSE"),
    },
];

/// Content hashes, computed once: the files never change while the process runs.
static VALIDATORS: LazyLock<Vec<Validators>> = LazyLock::new(|| {
    std::iter::once(&INDEX)
        .chain(ASSETS.iter())
        .map(|a| Validators::for_bytes(a.bytes))
        .collect()
});

/// `GET /`
pub async fn index(headers: HeaderMap) -> Response {
    serve(&INDEX, &VALIDATORS[0], &headers)
}

/// `GET /assets/{name}`
pub async fn asset(Path(name): Path<String>, headers: HeaderMap) -> Result<Response, ApiError> {
    let (i, asset) = ASSETS
        .iter()
        .enumerate()
        .find(|(_, a)| a.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("/assets/{name}")))?;
    Ok(serve(asset, &VALIDATORS[i + 1], &headers))
}

fn serve(asset: &Asset, validators: &Validators, headers: &HeaderMap) -> Response {
    if let Some(not_modified) = validators.not_modified(headers) {
        return not_modified;
    }
    let mut response = asset.bytes.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(asset.content_type));
    validators.apply(response)
}
