//! The keyed datasets' questions to PostgreSQL, asked with the statements of
//! [`super::statements`], and their answers as rows.
//!
//! Reads go through [`Db`]'s pool and its rule that a table not created yet reads as empty.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use shared::Env;
use tokio_postgres::Row;

use super::Dataset;
use super::params::KeyRequest;
use crate::daily::shape::mean;
use crate::daily::{DayValues, Field};
use crate::db::{DataVersion, Db, DbError, quote_ident};

pub use super::statements::Statements;

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
#[derive(Debug, Clone, PartialEq)]
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
    /// With `avg`: the mean of `new_cases` over the window of days ending on `date`; `None`
    /// when a day of the window is missing or not reported (as in a series' average).
    pub new_cases_avg: Option<f64>,
    /// With `avg`: the mean of `new_deaths`, as `new_cases_avg`.
    pub new_deaths_avg: Option<f64>,
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
    /// `state` when given; at most `limit`, by key. With `avg`, each row also has the trailing
    /// `avg`-day means of its daily values ending on the date.
    pub async fn latest(
        &self,
        dataset: Dataset,
        date: Option<NaiveDate>,
        state: Option<&str>,
        avg: Option<u32>,
        limit: i64,
    ) -> Result<Vec<LatestRow>, DbError> {
        let days = avg.map(|n| i32::try_from(n).unwrap_or(i32::MAX));
        let what = match dataset {
            Dataset::States => "states_daily",
            Dataset::Counties => "counties_daily",
        };
        let rows = match (dataset, days) {
            (Dataset::States, None) => {
                self.db
                    .query(what, &self.sql.states_latest, &[&date, &limit])
                    .await?
            }
            (Dataset::States, Some(days)) => {
                self.db
                    .query(what, &self.sql.states_latest_avg, &[&date, &limit, &days])
                    .await?
            }
            (Dataset::Counties, None) => {
                self.db
                    .query(what, &self.sql.counties_latest, &[&date, &state, &limit])
                    .await?
            }
            (Dataset::Counties, Some(days)) => {
                self.db
                    .query(
                        what,
                        &self.sql.counties_latest_avg,
                        &[&date, &state, &limit, &days],
                    )
                    .await?
            }
        };
        rows.iter()
            .map(|row| {
                let average = |column: usize| -> Result<Option<f64>, tokio_postgres::Error> {
                    Ok(match avg {
                        Some(n) => row
                            .try_get::<_, Option<i64>>(column)?
                            .map(|sum| mean(sum, n)),
                        None => None,
                    })
                };
                Ok(LatestRow {
                    date: row.try_get(0)?,
                    state: row.try_get(1)?,
                    county: row.try_get(2)?,
                    fips: row.try_get(3)?,
                    cases: row.try_get(4)?,
                    deaths: row.try_get(5)?,
                    new_cases: row.try_get(6)?,
                    new_deaths: row.try_get(7)?,
                    new_cases_avg: average(8)?,
                    new_deaths_avg: average(9)?,
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
