//! The keyed datasets' handlers. Like `/api/v1/us/daily` they answer conditional requests with
//! 304 and keep rendered bodies by ETag ([`crate::cache`]), in a cache of their own
//! ([`BODY_CACHE_ENTRIES`]) so cycling dates or states never pushes out the bodies polling pages
//! of `/api/v1/us` reuse; their data version is the run the loader recorded in `keyed_base` for
//! the dataset.

use axum::Json;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::Dataset;
use super::params::{LatestQuery, SeriesQuery};
use super::query::KeyedVersion;
use super::render::{Latest, SeriesKey, series_filename};
use crate::app::AppState;
use crate::cache::{CachedBody, Validators};
use crate::daily::{Format, render, shape};
use crate::db::DbError;
use crate::error::ApiError;
use crate::params::BadParameter;

/// The most rows one list answers with (the counties dataset has about 3,250 keys a date).
pub const MAX_KEYS: usize = 10_000;

/// Bodies the keyed routes keep: a county list is ≈450 KB, so a few (the latest date's lists and
/// a series or two) in `AppState::keyed_bodies`, apart from the shared cache.
pub const BODY_CACHE_ENTRIES: usize = 4;

/// What a keyed request can fail with: what every API request can, and a key the dataset does
/// not hold (404, with the parameter named as a 400 names it).
#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error(transparent)]
    UnknownKey(BadParameter),
}

impl From<BadParameter> for KeyedError {
    fn from(bad: BadParameter) -> Self {
        KeyedError::Api(ApiError::BadParameter(bad))
    }
}

impl From<DbError> for KeyedError {
    fn from(err: DbError) -> Self {
        KeyedError::Api(ApiError::Database(err))
    }
}

impl IntoResponse for KeyedError {
    fn into_response(self) -> Response {
        match self {
            KeyedError::Api(err) => err.into_response(),
            KeyedError::UnknownKey(bad) => (StatusCode::NOT_FOUND, Json(bad)).into_response(),
        }
    }
}

/// `GET /api/v1/states/daily?state=`
pub async fn states_daily(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, KeyedError> {
    series(Dataset::States, &state, query.as_deref(), &headers).await
}

/// `GET /api/v1/counties/daily?state=&county=` or `?fips=`
pub async fn counties_daily(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, KeyedError> {
    series(Dataset::Counties, &state, query.as_deref(), &headers).await
}

/// `GET /api/v1/states/latest?date=`
pub async fn states_latest(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, KeyedError> {
    latest(Dataset::States, &state, query.as_deref(), &headers).await
}

/// `GET /api/v1/counties/latest?state=&date=`
pub async fn counties_latest(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
) -> Result<Response, KeyedError> {
    latest(Dataset::Counties, &state, query.as_deref(), &headers).await
}

/// One key's series, shaped and written as `/api/v1/us/daily` does.
async fn series(
    dataset: Dataset,
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, KeyedError> {
    let query = SeriesQuery::parse(dataset, raw)?;
    let version = state.keyed.version(dataset).await?;
    let validators = validators(&version, &query.cache_key(dataset));
    if let Some(response) = cached(state, &validators, headers) {
        return Ok(response);
    }
    let Some(key) = state.keyed.key(&query.key).await? else {
        return Err(KeyedError::UnknownKey(BadParameter::new(
            query.key.parameter(),
            query.key.unknown(),
        )));
    };
    let daily = &query.daily;
    let rows = state
        .keyed
        .series(&key, daily.read_from(), daily.to, daily.read_limit())
        .await?;
    let series = shape::shape(daily, rows);
    let body = match daily.format {
        Format::Json => CachedBody {
            bytes: render::json_keyed(
                daily,
                state.env.as_str(),
                SeriesKey::new(dataset, &key),
                &series,
            )
            .into(),
            content_type: "application/json",
            disposition: None,
        },
        Format::Csv => CachedBody {
            bytes: render::csv(daily, &series).into(),
            content_type: "text/csv; charset=utf-8",
            disposition: Some(format!(
                "attachment; filename=\"{}\"",
                series_filename(dataset, &key, daily, &series)
            )),
        },
    };
    Ok(respond(state, &version, &validators, body))
}

/// Every key's values on one date.
async fn latest(
    dataset: Dataset,
    state: &AppState,
    raw: Option<&str>,
    headers: &HeaderMap,
) -> Result<Response, KeyedError> {
    let query = LatestQuery::parse(dataset, raw)?;
    let version = state.keyed.version(dataset).await?;
    let validators = validators(&version, &query.cache_key(dataset));
    if let Some(response) = cached(state, &validators, headers) {
        return Ok(response);
    }
    let limit = i64::try_from(MAX_KEYS + 1).unwrap_or(i64::MAX);
    let mut rows = state
        .keyed
        .latest(
            dataset,
            query.date,
            query.state.as_deref(),
            query.avg,
            limit,
        )
        .await?;
    if let Some(name) = &query.state
        && rows.is_empty()
        && !state.keyed.has_county_state(name).await?
    {
        return Err(KeyedError::UnknownKey(BadParameter::new(
            "state",
            format!("there is no state `{name}` in the counties dataset"),
        )));
    }
    let truncated = rows.len() > MAX_KEYS;
    rows.truncate(MAX_KEYS);
    let latest = Latest {
        dataset,
        env: state.env.as_str(),
        date: query.date.or(rows.first().map(|row| row.date)),
        state: query.state.as_deref(),
        avg: query.avg,
        rows: &rows,
        truncated,
    };
    let body = match query.format {
        Format::Json => CachedBody {
            bytes: latest.json().into(),
            content_type: "application/json",
            disposition: None,
        },
        Format::Csv => CachedBody {
            bytes: latest.csv().into(),
            content_type: "text/csv; charset=utf-8",
            disposition: Some(format!(
                "attachment; filename=\"{}\"",
                latest.csv_filename()
            )),
        },
    };
    Ok(respond(state, &version, &validators, body))
}

/// The run the table holds is part of the key: two runs never share a tag, even with equal
/// row counts and times.
fn validators(version: &KeyedVersion, key: &str) -> Validators {
    let run = version.run_id.as_deref().unwrap_or("-");
    Validators::new(&version.version, &format!("{run}|{key}"))
}

/// A 304 when the client's copy is current, else the body rendered earlier for this tag.
fn cached(state: &AppState, validators: &Validators, headers: &HeaderMap) -> Option<Response> {
    if let Some(not_modified) = validators.not_modified(headers) {
        return Some(not_modified);
    }
    state
        .keyed_bodies
        .get(validators.etag())
        .map(|body| validators.apply(body.into_response()))
}

/// Keeps the body for its tag (unless the data has no version, when the tag is never seen
/// again) and answers with it.
fn respond(
    state: &AppState,
    version: &KeyedVersion,
    validators: &Validators,
    body: CachedBody,
) -> Response {
    if !version.version.unversioned {
        state.keyed_bodies.put(validators.etag(), body.clone());
    }
    validators.apply(body.into_response())
}
