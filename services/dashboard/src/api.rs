//! The read API under `/api/v1`: the series, the runs, the corrections and the metadata the
//! page's freshness badge shows. Each answers conditional requests with 304 (see [`crate::cache`]).

use axum::extract::{RawQuery, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeDelta, Utc};
use serde::Serialize;

use crate::app::AppState;
use crate::cache::{CachedBody, Validators};
use crate::daily::{self, DailyQuery, Format, render};
use crate::db::{ChangeRow, RunRow};
use crate::error::ApiError;
use crate::params::Params;

/// A successful run older than this makes the data stale: the daily schedule should have run.
pub const STALE_AFTER: TimeDelta = TimeDelta::hours(36);
pub const MAX_RUNS: u32 = 200;
pub const MAX_CHANGES: u32 = 500;

/// `GET /api/v1/us/daily`
pub async fn daily(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let query = DailyQuery::parse(query.as_deref())?;
    let validators = Validators::new(&state.db.version().await?, &query.cache_key());
    if let Some(not_modified) = validators.not_modified(&headers) {
        return Ok(not_modified);
    }
    if let Some(body) = state.bodies.get(validators.etag()) {
        return Ok(validators.apply(body.into_response()));
    }
    let rows = state
        .db
        .daily(query.read_from(), query.to, query.read_limit())
        .await?;
    let series = daily::shape::shape(&query, rows);
    let body = match query.format {
        Format::Json => CachedBody {
            bytes: render::json(&query, state.env.as_str(), &series).into(),
            content_type: "application/json",
            disposition: None,
        },
        Format::Csv => CachedBody {
            bytes: render::csv(&query, &series).into(),
            content_type: "text/csv; charset=utf-8",
            disposition: Some(format!(
                "attachment; filename=\"{}\"",
                render::csv_filename(&query, &series)
            )),
        },
    };
    state.bodies.put(validators.etag(), body.clone());
    Ok(validators.apply(body.into_response()))
}

/// `GET /api/v1/runs?limit=`
pub async fn runs(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["limit"])?;
    let limit = params.integer("limit", 20, 1, MAX_RUNS)?;
    let validators = Validators::new(&state.db.version().await?, &format!("runs|{limit}"));
    if let Some(not_modified) = validators.not_modified(&headers) {
        return Ok(not_modified);
    }
    let runs: Vec<RunView> = state
        .db
        .runs(i64::from(limit))
        .await?
        .into_iter()
        .map(RunView::from)
        .collect();
    let body = serde_json::json!({ "env": state.env.as_str(), "count": runs.len(), "runs": runs });
    Ok(validators.apply(json_bytes(body.to_string().into_bytes())))
}

/// `GET /api/v1/us/changes?limit=`: the latest upstream corrections.
pub async fn changes(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let params = Params::parse(query.as_deref(), &["limit"])?;
    let limit = params.integer("limit", 50, 1, MAX_CHANGES)?;
    let validators = Validators::new(&state.db.version().await?, &format!("changes|{limit}"));
    if let Some(not_modified) = validators.not_modified(&headers) {
        return Ok(not_modified);
    }
    let changes: Vec<ChangeRow> = state.db.changes(i64::from(limit)).await?;
    let body = serde_json::json!({ "env": state.env.as_str(), "count": changes.len(), "changes": changes });
    Ok(validators.apply(json_bytes(body.to_string().into_bytes())))
}

#[derive(Debug, Serialize)]
struct Meta {
    env: String,
    rows: i64,
    first_date: Option<NaiveDate>,
    last_date: Option<NaiveDate>,
    /// The last day JHU reported recovered; later days are "not reported", not zero.
    recovered_last_reported: Option<NaiveDate>,
    last_run: Option<RunView>,
    last_success: Option<RunView>,
    /// The upstream commits the last successful run read.
    sources: Vec<SourceView>,
    stale: bool,
    stale_after_hours: i64,
}

/// `GET /api/v1/meta`
pub async fn meta(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    Params::parse(query.as_deref(), &[])?;
    let (version, last_success) = tokio::try_join!(state.db.version(), state.db.last_success())?;
    let last_success = last_success.map(RunView::from);
    let success_at = last_success
        .as_ref()
        .and_then(|r| r.finished_at.or(r.started_at));
    let stale = is_stale(success_at, Utc::now());
    // Staleness follows the clock as well as the data, so it is part of the ETag key.
    let validators = Validators::new(&version, &format!("meta|{stale}"));
    if let Some(not_modified) = validators.not_modified(&headers) {
        return Ok(not_modified);
    }
    let (stats, last_runs) = tokio::try_join!(state.db.stats(), state.db.runs(1))?;
    let body = Meta {
        env: state.env.to_string(),
        rows: stats.rows,
        first_date: stats.first_date,
        last_date: stats.last_date,
        recovered_last_reported: stats.recovered_last_reported,
        last_run: last_runs.into_iter().next().map(RunView::from),
        sources: last_success
            .as_ref()
            .map(|r| r.sources.clone())
            .unwrap_or_default(),
        last_success,
        stale,
        stale_after_hours: STALE_AFTER.num_hours(),
    };
    let bytes = serde_json::to_vec(&body).expect("metadata serialises");
    Ok(validators.apply(json_bytes(bytes)))
}

/// No successful run, or none for longer than [`STALE_AFTER`].
pub fn is_stale(last_success: Option<DateTime<Utc>>, now: DateTime<Utc>) -> bool {
    last_success.is_none_or(|at| now - at > STALE_AFTER)
}

/// Unknown paths under `/api`.
pub async fn not_found(uri: Uri) -> ApiError {
    ApiError::NotFound(uri.path().to_owned())
}

fn json_bytes(bytes: Vec<u8>) -> Response {
    let mut response = bytes.into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// A run as the API shows it: counts, timing, and which upstream commits it read.
#[derive(Debug, Clone, Serialize)]
pub struct RunView {
    pub run_id: String,
    pub status: Option<String>,
    pub trigger: Option<String>,
    pub inserted: Option<i64>,
    pub updated: Option<i64>,
    pub unchanged: Option<i64>,
    pub removed: Option<i64>,
    pub revised: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
    pub stage: Option<String>,
    pub kind: Option<String>,
    pub dataset: String,
    pub sources: Vec<SourceView>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceView {
    pub source: Option<String>,
    pub repo: Option<String>,
    pub path: Option<String>,
    pub commit_sha: Option<String>,
    pub commit_time: Option<String>,
}

impl From<RunRow> for RunView {
    fn from(run: RunRow) -> Self {
        let duration_ms = run
            .started_at
            .zip(run.finished_at)
            .map(|(s, f)| (f - s).num_milliseconds());
        Self {
            sources: sources(run.inputs.as_ref()),
            run_id: run.run_id,
            status: run.status,
            trigger: run.trigger,
            inserted: run.inserted,
            updated: run.updated,
            unchanged: run.unchanged,
            removed: run.removed,
            revised: run.revised,
            started_at: run.started_at,
            finished_at: run.finished_at,
            duration_ms,
            error: run.error,
            stage: run.stage,
            kind: run.kind,
            dataset: run.dataset,
        }
    }
}

/// Reads the `inputs` the loader stored (a list of `shared::events::InputRef`) leniently: a
/// field it cannot find is left out rather than failing the page.
fn sources(inputs: Option<&serde_json::Value>) -> Vec<SourceView> {
    let Some(list) = inputs.and_then(|v| v.as_array()) else {
        return Vec::new();
    };
    let text = |v: &serde_json::Value, pointer: &str| {
        v.pointer(pointer)
            .and_then(|x| x.as_str())
            .map(str::to_owned)
    };
    list.iter()
        .map(|input| SourceView {
            source: text(input, "/source"),
            repo: text(input, "/upstream/repo"),
            path: text(input, "/upstream/path"),
            commit_sha: text(input, "/upstream/commit_sha"),
            commit_time: text(input, "/upstream/commit_time"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_is_stale_without_a_recent_success() {
        let now: DateTime<Utc> = "2024-01-02T12:00:00Z".parse().unwrap();
        assert!(is_stale(None, now));
        assert!(!is_stale(Some(now - TimeDelta::hours(35)), now));
        assert!(is_stale(Some(now - TimeDelta::hours(37)), now));
    }

    #[test]
    fn sources_are_read_from_stored_inputs_leniently() {
        let inputs = serde_json::json!([
            {"source": "nyt", "upstream": {"repo": "nytimes/covid-19-data", "path": "us.csv",
              "commit_sha": "abc", "commit_time": "2023-03-24T12:00:00Z"}, "object": {}},
            {"source": "jhu"}
        ]);
        let got = sources(Some(&inputs));
        assert_eq!(got[0].commit_sha.as_deref(), Some("abc"));
        assert_eq!(got[0].commit_time.as_deref(), Some("2023-03-24T12:00:00Z"));
        assert_eq!(
            got[1],
            SourceView {
                source: Some("jhu".into()),
                repo: None,
                path: None,
                commit_sha: None,
                commit_time: None
            }
        );
        assert!(sources(Some(&serde_json::json!({"not": "a list"}))).is_empty());
    }
}
