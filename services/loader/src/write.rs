//! The SQL of one run, inside its transaction: the rows binary-COPied into a staging table, then
//! new dates inserted, changed rows updated (only where a column IS DISTINCT FROM), departed
//! dates deleted and every corrected upstream value recorded; and the check that the rows each
//! statement touched are exactly what the diff predicted.

use std::collections::BTreeSet;

use dataset::DailyRow;
use futures::pin_mut;
use shared::events::{Correction, Counts, Transformed};
use tokio_postgres::Transaction;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use crate::db::schema;
use crate::error::LoadError;

const STAGING_COLUMNS: &str =
    "date, cases, deaths, recovered, new_cases, new_deaths, new_recovered";

/// Binary-COPies the rows into a staging table that disappears at commit or rollback.
pub(crate) async fn stage(tx: &Transaction<'_>, rows: &[DailyRow]) -> Result<u64, LoadError> {
    // The primary key makes a dataset with a repeated date fail loudly instead of double-counting.
    tx.batch_execute(
        "CREATE TEMP TABLE loader_staging (
             date date PRIMARY KEY, cases bigint NOT NULL, deaths bigint NOT NULL,
             recovered bigint, new_cases bigint, new_deaths bigint, new_recovered bigint
         ) ON COMMIT DROP",
    )
    .await
    .map_err(LoadError::db("create the staging table"))?;
    let sink = tx
        .copy_in(&format!(
            "COPY loader_staging ({STAGING_COLUMNS}) FROM STDIN BINARY"
        ))
        .await
        .map_err(LoadError::db("start the COPY"))?;
    let types = [
        Type::DATE,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
        Type::INT8,
    ];
    let writer = BinaryCopyInWriter::new(sink, &types);
    pin_mut!(writer);
    for row in rows {
        writer
            .as_mut()
            .write(&[
                &row.date,
                &row.cases,
                &row.deaths,
                &row.recovered,
                &row.new_cases,
                &row.new_deaths,
                &row.new_recovered,
            ])
            .await
            .map_err(LoadError::db("COPY the rows"))?;
    }
    writer
        .finish()
        .await
        .map_err(LoadError::db("finish the COPY"))
}

/// Rows each statement touched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SqlCounts {
    inserted: u64,
    updated: u64,
    removed: u64,
    changes: u64,
}

pub(crate) async fn write(
    tx: &Transaction<'_>,
    t: &Transformed,
    corrections: &[Correction],
) -> Result<SqlCounts, LoadError> {
    let s = schema(&t.env);
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {s}.us_daily ({STAGING_COLUMNS}, updated_at, run_id)
                 SELECT {STAGING_COLUMNS}, now(), $1 FROM loader_staging st
                 WHERE NOT EXISTS (SELECT 1 FROM {s}.us_daily d WHERE d.date = st.date)"
            ),
            &[&t.run_id.as_str()],
        )
        .await
        .map_err(LoadError::db("insert new dates"))?;
    let updated = tx
        .execute(
            &format!(
                "UPDATE {s}.us_daily d SET cases = st.cases, deaths = st.deaths,
                     recovered = st.recovered, new_cases = st.new_cases,
                     new_deaths = st.new_deaths, new_recovered = st.new_recovered,
                     updated_at = now(), run_id = $1
                 FROM loader_staging st
                 WHERE d.date = st.date
                   AND (d.cases, d.deaths, d.recovered, d.new_cases, d.new_deaths, d.new_recovered)
                       IS DISTINCT FROM
                       (st.cases, st.deaths, st.recovered, st.new_cases, st.new_deaths, st.new_recovered)"
            ),
            &[&t.run_id.as_str()],
        )
        .await
        .map_err(LoadError::db("update changed dates"))?;
    let removed = tx
        .execute(
            &format!(
                "DELETE FROM {s}.us_daily d
                 WHERE NOT EXISTS (SELECT 1 FROM loader_staging st WHERE st.date = d.date)"
            ),
            &[],
        )
        .await
        .map_err(LoadError::db("delete departed dates"))?;
    let changes = if corrections.is_empty() {
        0
    } else {
        let dates: Vec<_> = corrections.iter().map(|c| c.date).collect();
        let fields: Vec<&str> = corrections.iter().map(|c| c.field.as_str()).collect();
        let old: Vec<Option<i64>> = corrections.iter().map(|c| c.old).collect();
        let new: Vec<Option<i64>> = corrections.iter().map(|c| c.new).collect();
        tx.execute(
            &format!(
                "INSERT INTO {s}.us_daily_changes (run_id, date, field, old_value, new_value)
                 SELECT $1, * FROM unnest($2::date[], $3::text[], $4::int8[], $5::int8[])"
            ),
            &[&t.run_id.as_str(), &dates, &fields, &old, &new],
        )
        .await
        .map_err(LoadError::db("record the corrections"))?
    };
    Ok(SqlCounts {
        inserted,
        updated,
        removed,
        changes,
    })
}

/// The SQL did exactly what the diff said it would, or the run is not committed.
pub(crate) fn check_counts(
    sql: &SqlCounts,
    staged: u64,
    corrections: &[Correction],
    counts: &Counts,
) -> Result<(), LoadError> {
    let revised_dates = corrections
        .iter()
        .map(|c| c.date)
        .collect::<BTreeSet<_>>()
        .len() as u64;
    let unchanged = staged.checked_sub(sql.inserted + sql.updated);
    let mut problems = Vec::new();
    let mut expect = |what: &str, got: Option<u64>, want: u64| {
        if got != Some(want) {
            let got = got.map_or_else(|| "a negative count of".to_owned(), |n| n.to_string());
            problems.push(format!("{what}: {got} rows in SQL, {want} in the diff"));
        }
    };
    expect("inserted", Some(sql.inserted), counts.inserted);
    expect("updated", Some(sql.updated), counts.updated);
    expect("unchanged", unchanged, counts.unchanged);
    expect("removed", Some(sql.removed), counts.removed);
    expect("corrections", Some(sql.changes), corrections.len() as u64);
    expect("revised dates", Some(revised_dates), counts.revised);
    if problems.is_empty() {
        Ok(())
    } else {
        Err(LoadError::CountMismatch(problems.join("; ")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use shared::events::Field;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2021, 3, d).unwrap()
    }

    /// One new day (4) and a revision of day 2 that also changes day 3's delta.
    fn revision_diff() -> (Vec<Correction>, Counts) {
        let corrections = vec![
            Correction {
                key: None,
                date: day(2),
                field: Field::Cases,
                old: Some(10),
                new: Some(12),
            },
            Correction {
                key: None,
                date: day(2),
                field: Field::Deaths,
                old: Some(1),
                new: Some(2),
            },
        ];
        let counts = Counts {
            inserted: 1,
            updated: 2,
            unchanged: 1,
            removed: 0,
            revised: 1,
        };
        (corrections, counts)
    }

    #[test]
    fn counts_that_agree_pass() {
        let (diff, counts) = revision_diff();
        let sql = SqlCounts {
            inserted: 1,
            updated: 2,
            removed: 0,
            changes: 2,
        };
        assert!(check_counts(&sql, 4, &diff, &counts).is_ok());
    }

    #[test]
    fn an_update_the_diff_did_not_predict_is_a_mismatch() {
        let (diff, counts) = revision_diff();
        let sql = SqlCounts {
            inserted: 1,
            updated: 3,
            removed: 0,
            changes: 2,
        };
        let err = check_counts(&sql, 4, &diff, &counts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("updated: 3 rows in SQL, 2 in the diff"),
            "{err}"
        );
        assert!(
            err.contains("unchanged: 0 rows in SQL, 1 in the diff"),
            "{err}"
        );
    }

    #[test]
    fn revised_counts_distinct_dates_not_values() {
        let (diff, mut counts) = revision_diff();
        counts.revised = 2;
        let sql = SqlCounts {
            inserted: 1,
            updated: 2,
            removed: 0,
            changes: 2,
        };
        let err = check_counts(&sql, 4, &diff, &counts)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("revised dates: 1 rows in SQL, 2 in the diff"),
            "{err}"
        );
    }
}
