//! One day of `us_daily`, and the one mapping between that table and [`DailyRow`].
//!
//! The transform makes these rows (`dataset` re-exports the type), the loader stores them, and the
//! loader, `etl diff` and the dashboard read them back: all of them select [`COLUMNS`] and map a
//! result row with [`DailyRow::from_row`], so the column list and its order are written once.

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};
use tokio_postgres::{GenericClient, Row};

use crate::env::Env;

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

/// The `us_daily` columns of a [`DailyRow`], in the order [`DailyRow::from_row`] reads them: the
/// select list of every query that reads rows.
pub const COLUMNS: &str = "date, cases, deaths, recovered, new_cases, new_deaths, new_recovered";

impl DailyRow {
    /// Reads a result row whose first columns are [`COLUMNS`]. A column of another type is an
    /// error (naming the column), never a panic.
    pub fn from_row(row: &Row) -> Result<Self, tokio_postgres::Error> {
        Ok(Self {
            date: row.try_get(0)?,
            cases: row.try_get(1)?,
            deaths: row.try_get(2)?,
            recovered: row.try_get(3)?,
            new_cases: row.try_get(4)?,
            new_deaths: row.try_get(5)?,
            new_recovered: row.try_get(6)?,
        })
    }
}

/// The SQL that reads all of an env's stored rows in date order. The schema is the env's name,
/// validated by [`Env`] to a plain identifier and quoted all the same (an env called `user`).
pub fn stored_rows_sql(env: &Env) -> String {
    format!("SELECT {COLUMNS} FROM \"{env}\".us_daily ORDER BY date")
}

/// All of an env's stored rows, by date. The schema must exist: a caller that may run before the
/// loader's migrations checks first.
pub async fn stored_rows(
    client: &impl GenericClient,
    env: &Env,
) -> Result<Vec<DailyRow>, tokio_postgres::Error> {
    let rows = client.query(&stored_rows_sql(env), &[]).await?;
    rows.iter().map(DailyRow::from_row).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_rows_are_read_from_the_env_schema_by_date() {
        let env = Env::new("user").unwrap();
        assert_eq!(
            stored_rows_sql(&env),
            "SELECT date, cases, deaths, recovered, new_cases, new_deaths, new_recovered \
             FROM \"user\".us_daily ORDER BY date"
        );
    }
}
