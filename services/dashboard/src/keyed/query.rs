//! The keyed datasets' SQL, one statement per question, each served by an index of the tables
//! (migration 0004; `tests/it/api_keyed.rs` checks the plans): a key's rows through the primary
//! key `(state[, county], date)`, one date's rows through `(date)`, a county by its FIPS code
//! through `(fips, date)`. Dates are bounded with `coalesce(…, '±infinity')` rather than
//! `$n IS NULL OR …`, so even a generic plan keeps them as index conditions.
//!
//! Reads go through [`Db`]'s pool and its rule that a table not created yet reads as empty.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use shared::Env;
use tokio_postgres::Row;

use super::Dataset;
use super::params::KeyRequest;
use crate::daily::{DayValues, Field};
use crate::db::{DataVersion, Db, DbError, quote_ident};

/// A key the dataset holds, with its latest FIPS code (NULL for New York City and `Unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Key {
    pub state: String,
    /// `None` for a state.
    pub county: Option<String>,
    pub fips: Option<String>,
}

/// One day of one key's series.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedDay {
    pub date: NaiveDate,
    pub cases: Option<i64>,
    pub deaths: Option<i64>,
    pub new_cases: Option<i64>,
    pub new_deaths: Option<i64>,
}

impl DayValues for KeyedDay {
    fn date(&self) -> NaiveDate {
        self.date
    }

    fn value(&self, field: Field) -> Option<i64> {
        match field {
            Field::Cases => self.cases,
            Field::Deaths => self.deaths,
            Field::NewCases => self.new_cases,
            Field::NewDeaths => self.new_deaths,
            Field::Recovered | Field::NewRecovered => None,
        }
    }
}

/// One key's values on one date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LatestRow {
    pub date: NaiveDate,
    pub state: String,
    /// `None` for a state.
    pub county: Option<String>,
    pub fips: Option<String>,
    pub cases: Option<i64>,
    pub deaths: Option<i64>,
    pub new_cases: Option<i64>,
    pub new_deaths: Option<i64>,
}

/// What the data version of a keyed dataset is made of: the loader records in `keyed_base`
/// which run each table holds, in the transaction that changes the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyedVersion {
    /// For the validators: `unversioned` when the table was never loaded (no `keyed_base` row)
    /// or is missing, so nothing is ever confirmed as current.
    pub version: DataVersion,
    /// The run the table holds; part of every cache key.
    pub run_id: Option<String>,
}

/// The statements, with the schema spliced in once. Public so the tests can read their plans.
#[derive(Debug)]
pub struct Statements {
    /// `$1` dataset name.
    pub version: String,
    /// `$1` state.
    pub state_key: String,
    /// `$1` state, `$2` from, `$3` to, `$4` limit.
    pub state_series: String,
    /// `$1` date (NULL: the latest), `$2` limit.
    pub states_latest: String,
    /// `$1` state, `$2` county.
    pub county_key: String,
    /// `$1` FIPS code.
    pub county_by_fips: String,
    /// `$1` state, `$2` county, `$3` from, `$4` to, `$5` limit.
    pub county_series: String,
    /// `$1` date (NULL: the latest), `$2` state (NULL: every state), `$3` limit.
    pub counties_latest: String,
    /// `$1` state.
    pub county_state: String,
}

impl Statements {
    pub fn new(schema: &str) -> Self {
        let values = "cases, deaths, new_cases, new_deaths";
        let range = "date >= coalesce($from::date, '-infinity'::date) \
                     AND date <= coalesce($to::date, 'infinity'::date)";
        Self {
            version: format!(
                "SELECT run_id, rows, applied_at FROM {schema}.keyed_base WHERE dataset = $1"
            ),
            state_key: format!(
                "SELECT state, NULL::text, fips FROM {schema}.states_daily \
                 WHERE state = $1 ORDER BY date DESC LIMIT 1"
            ),
            state_series: format!(
                "SELECT date, {values} FROM {schema}.states_daily \
                 WHERE state = $1 AND {range} ORDER BY date LIMIT $4",
                range = range.replace("$from", "$2").replace("$to", "$3")
            ),
            states_latest: format!(
                "SELECT date, state, NULL::text, fips, {values} FROM {schema}.states_daily \
                 WHERE date = coalesce($1::date, (SELECT max(date) FROM {schema}.states_daily)) \
                 ORDER BY state LIMIT $2"
            ),
            county_key: format!(
                "SELECT state, county, fips FROM {schema}.counties_daily \
                 WHERE state = $1 AND county = $2 ORDER BY date DESC LIMIT 1"
            ),
            county_by_fips: format!(
                "SELECT state, county, fips FROM {schema}.counties_daily \
                 WHERE fips = $1 ORDER BY date DESC LIMIT 1"
            ),
            county_series: format!(
                "SELECT date, {values} FROM {schema}.counties_daily \
                 WHERE state = $1 AND county = $2 AND {range} ORDER BY date LIMIT $5",
                range = range.replace("$from", "$3").replace("$to", "$4")
            ),
            counties_latest: format!(
                "SELECT date, state, county, fips, {values} FROM {schema}.counties_daily \
                 WHERE date = coalesce($1::date, (SELECT max(date) FROM {schema}.counties_daily)) \
                 AND ($2::text IS NULL OR state = $2) \
                 ORDER BY state, county LIMIT $3"
            ),
            // Ordered as the primary key, so the planner walks it rather than hoping to meet
            // the state early in a table sorted by state.
            county_state: format!(
                "SELECT 1 FROM {schema}.counties_daily WHERE state = $1 \
                 ORDER BY county, date LIMIT 1"
            ),
        }
    }
}

/// The keyed datasets' questions.
#[derive(Clone)]
pub struct KeyedDb {
    db: Db,
    sql: Arc<Statements>,
}

impl KeyedDb {
    pub fn new(db: Db, env: &Env) -> Self {
        Self {
            db,
            sql: Arc::new(Statements::new(&quote_ident(env.as_str()))),
        }
    }

    pub async fn version(&self, dataset: Dataset) -> Result<KeyedVersion, DbError> {
        let rows = self
            .db
            .query_or_missing("keyed_base", &self.sql.version, &[&dataset.name()])
            .await?;
        let Some(row) = rows.as_deref().and_then(<[Row]>::first) else {
            return Ok(KeyedVersion {
                version: DataVersion {
                    unversioned: true,
                    ..DataVersion::default()
                },
                run_id: None,
            });
        };
        version_of(row).map_err(|source| DbError::Query {
            what: "keyed_base",
            source,
        })
    }

    /// The key asked for, if the dataset holds it.
    pub async fn key(&self, request: &KeyRequest) -> Result<Option<Key>, DbError> {
        let rows = match request {
            KeyRequest::State(state) => {
                self.db
                    .query("states_daily", &self.sql.state_key, &[state])
                    .await?
            }
            KeyRequest::County { state, county } => {
                self.db
                    .query("counties_daily", &self.sql.county_key, &[state, county])
                    .await?
            }
            KeyRequest::CountyFips(fips) => {
                self.db
                    .query("counties_daily", &self.sql.county_by_fips, &[fips])
                    .await?
            }
        };
        rows.first()
            .map(|row| {
                Ok(Key {
                    state: row.try_get(0)?,
                    county: row.try_get(1)?,
                    fips: row.try_get(2)?,
                })
            })
            .transpose()
            .map_err(|source| DbError::Query {
                what: "a keyed dataset's key",
                source,
            })
    }

    /// `key`'s days in `[from, to]` (either end open), at most `limit`, oldest first.
    pub async fn series(
        &self,
        key: &Key,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        limit: i64,
    ) -> Result<Vec<KeyedDay>, DbError> {
        let (what, rows) = match &key.county {
            None => (
                "states_daily",
                self.db
                    .query(
                        "states_daily",
                        &self.sql.state_series,
                        &[&key.state, &from, &to, &limit],
                    )
                    .await?,
            ),
            Some(county) => (
                "counties_daily",
                self.db
                    .query(
                        "counties_daily",
                        &self.sql.county_series,
                        &[&key.state, county, &from, &to, &limit],
                    )
                    .await?,
            ),
        };
        rows.iter()
            .map(|row| {
                Ok(KeyedDay {
                    date: row.try_get(0)?,
                    cases: row.try_get(1)?,
                    deaths: row.try_get(2)?,
                    new_cases: row.try_get(3)?,
                    new_deaths: row.try_get(4)?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|source| DbError::Query { what, source })
    }

    /// Every key's row on `date` (`None`: the table's latest date), for counties only those of
    /// `state` when given; at most `limit`, by key.
    pub async fn latest(
        &self,
        dataset: Dataset,
        date: Option<NaiveDate>,
        state: Option<&str>,
        limit: i64,
    ) -> Result<Vec<LatestRow>, DbError> {
        let (what, rows) = match dataset {
            Dataset::States => (
                "states_daily",
                self.db
                    .query("states_daily", &self.sql.states_latest, &[&date, &limit])
                    .await?,
            ),
            Dataset::Counties => (
                "counties_daily",
                self.db
                    .query(
                        "counties_daily",
                        &self.sql.counties_latest,
                        &[&date, &state, &limit],
                    )
                    .await?,
            ),
        };
        rows.iter()
            .map(|row| {
                Ok(LatestRow {
                    date: row.try_get(0)?,
                    state: row.try_get(1)?,
                    county: row.try_get(2)?,
                    fips: row.try_get(3)?,
                    cases: row.try_get(4)?,
                    deaths: row.try_get(5)?,
                    new_cases: row.try_get(6)?,
                    new_deaths: row.try_get(7)?,
                })
            })
            .collect::<Result<_, _>>()
            .map_err(|source| DbError::Query { what, source })
    }

    /// Whether the counties dataset has any county in `state`.
    pub async fn has_county_state(&self, state: &str) -> Result<bool, DbError> {
        let rows = self
            .db
            .query("counties_daily", &self.sql.county_state, &[&state])
            .await?;
        Ok(!rows.is_empty())
    }
}

/// A `keyed_base` row (`run_id, rows, applied_at`) as the dataset's version.
fn version_of(row: &Row) -> Result<KeyedVersion, tokio_postgres::Error> {
    let applied_at: DateTime<Utc> = row.try_get(2)?;
    Ok(KeyedVersion {
        version: DataVersion {
            days: row.try_get(1)?,
            days_updated_at: Some(applied_at),
            ..DataVersion::default()
        },
        run_id: Some(row.try_get(0)?),
    })
}
