//! The covid-etl dataset: from the two upstream CSV payloads to the curated daily rows, and from
//! curated rows to what a run would change in the stored table.
//!
//! Used by the transformer (transform, Parquet), the loader (Parquet, diff) and `etl diff`.
//! This is the only crate that uses polars.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use shared::events::Dropped;

pub mod diff;

/// One row of `us_daily`: the merged cumulative figures of a day and their daily deltas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyRow {
    pub date: NaiveDate,
    pub cases: i64,
    pub deaths: i64,
    /// `None` where JHU does not report recoveries (empty, or 0 after it stopped reporting).
    pub recovered: Option<i64>,
    pub new_cases: Option<i64>,
    pub new_deaths: Option<i64>,
    pub new_recovered: Option<i64>,
}

/// The result of the transform: rows sorted by date, the days dropped by the join, and
/// data-quality warnings (one sentence each, e.g. negative daily deltas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curated {
    pub rows: Vec<DailyRow>,
    pub dropped: Dropped,
    pub warnings: Vec<String>,
}

/// Why a payload was refused. `Display` is one sentence naming the source, the line or field,
/// and the problem; [`DataError::kind`] is a machine word for events.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("{0}")]
    Invalid(String),
}

impl DataError {
    pub fn kind(&self) -> &'static str {
        "invalid_data"
    }
}

/// Parses, validates and merges the two payloads (DESIGN.md, transform rules 1–6).
pub fn transform(_nyt: &[u8], _jhu: &[u8]) -> Result<Curated, DataError> {
    unimplemented!("the transform is being written")
}

/// The rows as Parquet (the `etl-curated` object).
pub fn to_parquet(_rows: &[DailyRow]) -> Result<Vec<u8>, DataError> {
    unimplemented!("the transform is being written")
}

/// Rows back from [`to_parquet`]'s bytes.
pub fn from_parquet(_bytes: &[u8]) -> Result<Vec<DailyRow>, DataError> {
    unimplemented!("the transform is being written")
}
