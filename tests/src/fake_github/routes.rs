//! The fake's HTTP answers: the commits list, the contents API, the raw host, replay control, and
//! the faults a test queued.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use sha1::{Digest, Sha1};

use super::faults::fault_response;
use super::history::{FakeCommit, commit_json, git_blob_sha};
use super::{Endpoint, Inner};

type Params = Query<HashMap<String, String>>;

pub async fn commits(
    State(inner): State<Arc<Inner>>,
    Path((owner, repo)): Path<(String, String)>,
    Query(params): Params,
    headers: HeaderMap,
) -> Response {
    let repo = format!("{owner}/{repo}");
    let mut state = inner.state.lock().expect("fake state lock");
    if let Some(fault) = state.take_fault(Endpoint::Commits, &repo) {
        let rate = state.charge(true);
        return fault_response(&fault, rate, None);
    }
    // A repository we hold no commits of yet is one whose file has no history so far: GitHub
    // answers the path-filtered list with `[]`, and the extractor must wait for the first commit.
    let upto = if !state.has_repo(&repo) {
        0
    } else {
        let Some(upto) = state.resolve_ref(&repo, params.get("sha").map(String::as_str)) else {
            let rate = state.charge(true);
            return json_response(
                StatusCode::NOT_FOUND,
                rate,
                &json!({"message": "No commit found for SHA"}),
            );
        };
        upto
    };
    let per_page: usize = params
        .get("per_page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(30)
        .clamp(1, 100);
    let page: usize = params
        .get("page")
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
        .max(1);
    let history = state.history(&repo, params.get("path").map(String::as_str), upto);
    let pages = history.len().div_ceil(per_page).max(1);
    let items: Vec<_> = history
        .iter()
        .enumerate()
        .skip((page - 1) * per_page)
        .take(per_page)
        .map(|(i, c)| {
            commit_json(
                &inner.api_url,
                c,
                history.get(i + 1).map(|p| p.sha.as_str()),
            )
        })
        .collect();
    let body = serde_json::to_vec(&items).expect("json encodes");

    // A strong ETag of this URL in this state: the same question with the same answer.
    let query = params_string(&params);
    let mut hasher = Sha1::new();
    hasher.update(format!("/repos/{repo}/commits?{query}\n").as_bytes());
    hasher.update(&body);
    let etag = format!("\"{}\"", hex::encode(hasher.finalize()));
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim().trim_start_matches("W/") == etag)
        });
    let rate = state.charge(!matches);
    drop(state);

    let mut response = if matches {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        let mut response = (StatusCode::OK, body).into_response();
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        if let Some(link) = link_header(&inner.api_url, &repo, &params, page, pages) {
            response.headers_mut().insert(
                header::LINK,
                HeaderValue::from_str(&link).expect("link is ascii"),
            );
        }
        response
    };
    response.headers_mut().insert(
        header::ETAG,
        HeaderValue::from_str(&etag).expect("etag is ascii"),
    );
    add_headers(&mut response, rate);
    response
}

pub async fn contents(
    State(inner): State<Arc<Inner>>,
    Path((owner, repo, path)): Path<(String, String, String)>,
    Query(params): Params,
) -> Response {
    let repo = format!("{owner}/{repo}");
    let mut state = inner.state.lock().expect("fake state lock");
    if let Some(fault) = state.take_fault(Endpoint::Contents, &repo) {
        let rate = state.charge(true);
        return fault_response(&fault, rate, None);
    }
    let rate = state.charge(true);
    let Some(file) = state.file_at(&repo, &path, params.get("ref").map(String::as_str)) else {
        return json_response(StatusCode::NOT_FOUND, rate, &not_found());
    };
    let api = &inner.api_url;
    let size = file.content.len();
    // GitHub inlines content up to 1 MB only; above, the default media type leaves it empty.
    let (content, encoding) = if size <= 1_000_000 {
        (base64(&file.content), "base64")
    } else {
        (String::new(), "none")
    };
    let name = path.rsplit('/').next().unwrap_or(&path);
    let body = json!({
        "type": "file",
        "encoding": encoding,
        "size": size,
        "name": name,
        "path": path,
        "content": content,
        "sha": file.blob_sha(),
        "url": format!("{api}/repos/{repo}/contents/{path}?ref={}", file.sha),
        "git_url": format!("{api}/repos/{repo}/git/blobs/{}", file.blob_sha()),
        "html_url": format!("https://github.com/{repo}/blob/{}/{path}", file.sha),
        "download_url": format!("{}/{repo}/{}/{path}", inner.raw_url, file.sha),
    });
    json_response(StatusCode::OK, rate, &body)
}

pub async fn raw(
    State(inner): State<Arc<Inner>>,
    Path((owner, repo, reference, path)): Path<(String, String, String, String)>,
) -> Response {
    let repo = format!("{owner}/{repo}");
    let mut state = inner.state.lock().expect("fake state lock");
    let fault = state.take_fault(Endpoint::Raw, &repo);
    let file = state.file_at(&repo, &path, Some(&reference)).cloned();
    drop(state);
    let Some(file) = file else {
        return (
            StatusCode::NOT_FOUND,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            "404: Not Found",
        )
            .into_response();
    };
    if let Some(fault) = fault {
        return fault_response(&fault, Vec::new(), Some(&file));
    }
    let mut response = (StatusCode::OK, file.content.clone()).into_response();
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    h.insert(
        header::ETAG,
        HeaderValue::from_str(&format!("\"{}\"", git_blob_sha(&file.content))).expect("ascii"),
    );
    response
}

/// `POST /_replay/next`: reveals the next replay step.
pub async fn replay_next(State(inner): State<Arc<Inner>>) -> Response {
    let mut state = inner.state.lock().expect("fake state lock");
    let revealed = state.reveal_next();
    let body = json!({
        "revealed": revealed.unwrap_or_default().iter().map(summary).collect::<Vec<_>>(),
        "step": state.revealed_steps,
        "remaining": state.pending.len(),
    });
    Json(body).into_response()
}

/// `GET /_replay/status`: how far the replay is, and the newest commit of each file.
pub async fn replay_status(State(inner): State<Arc<Inner>>) -> Response {
    let state = inner.state.lock().expect("fake state lock");
    let mut heads: HashMap<(String, String), &FakeCommit> = HashMap::new();
    for c in &state.commits {
        heads.insert((c.repo.clone(), c.path.clone()), c);
    }
    let body = json!({
        "step": state.revealed_steps,
        "remaining": state.pending.len(),
        "heads": heads.values().map(|c| summary(c)).collect::<Vec<_>>(),
    });
    Json(body).into_response()
}

fn summary(c: &FakeCommit) -> serde_json::Value {
    json!({"repo": c.repo, "path": c.path, "sha": c.sha, "time": c.time, "bytes": c.content.len()})
}

pub(super) fn json_response(
    status: StatusCode,
    rate: Vec<(&'static str, String)>,
    body: &serde_json::Value,
) -> Response {
    let mut response = (status, Json(body.clone())).into_response();
    add_headers(&mut response, rate);
    response
}

pub(super) fn add_headers(response: &mut Response, rate: Vec<(&'static str, String)>) {
    for (name, value) in rate {
        response
            .headers_mut()
            .insert(name, HeaderValue::from_str(&value).expect("ascii"));
    }
}

fn not_found() -> serde_json::Value {
    json!({"message": "Not Found", "documentation_url": "https://docs.github.com/rest"})
}

/// The query in a stable order, for ETags and links.
fn params_string(params: &HashMap<String, String>) -> String {
    let mut pairs: Vec<_> = params.iter().collect();
    pairs.sort();
    let mut serializer = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        serializer.append_pair(k, v);
    }
    serializer.finish()
}

fn link_header(
    api: &str,
    repo: &str,
    params: &HashMap<String, String>,
    page: usize,
    pages: usize,
) -> Option<String> {
    if pages <= 1 {
        return None;
    }
    let link = |p: usize, rel: &str| {
        let mut params = params.clone();
        params.insert("page".to_owned(), p.to_string());
        format!(
            "<{api}/repos/{repo}/commits?{}>; rel=\"{rel}\"",
            params_string(&params)
        )
    };
    let mut links = Vec::new();
    if page > 1 {
        links.push(link(page - 1, "prev"));
    }
    if page < pages {
        links.push(link(page + 1, "next"));
        links.push(link(pages, "last"));
    }
    if page > 1 {
        links.push(link(1, "first"));
    }
    Some(links.join(", "))
}

fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4 + bytes.len() / 45);
    for (i, chunk) in bytes.chunks(3).enumerate() {
        // GitHub wraps the base64 at 60 characters (every 45 input bytes).
        if i > 0 && i % 15 == 0 {
            out.push('\n');
        }
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (j, b)| n | (u32::from(*b) << (16 - 8 * j)));
        for j in 0..4 {
            if j <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * j)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out.push('\n');
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(super::base64(b"date,cases"), "ZGF0ZSxjYXNlcw==\n");
        assert_eq!(super::base64(b"ab"), "YWI=\n");
        assert_eq!(super::base64(b"abc"), "YWJj\n");
    }
}
