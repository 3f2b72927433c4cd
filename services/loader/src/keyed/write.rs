//! The statements both paths share, each one set-based over a temporary table (the staged rows,
//! or a reconcile's diff): the upsert (only where a value differs), and the delete.

use shared::Env;
use shared::ids::RunId;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::table::Table;

/// The value columns of a keyed row.
pub(crate) const VALUES: [&str; 5] = ["fips", "cases", "deaths", "new_cases", "new_deaths"];

/// Rows the upsert added and changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Upserted {
    pub inserted: u64,
    pub updated: u64,
}

/// Inserts the rows of the temporary table `source` where `filter` holds that are new, and
/// updates the stored rows where any value IS DISTINCT FROM the staged one (NULL-aware); a row
/// that is the same is not touched (its `run_id` and `updated_at` stay). `xmax = 0` marks a row
/// version made by an insert. Rows go in key order, so the primary key's pages are visited in
/// order rather than at random.
pub(crate) async fn upsert(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    source: &str,
    filter: &str,
    run_id: &RunId,
) -> Result<Upserted, KeyedError> {
    let target = table.qualified(env);
    let columns = format!("date, {}, {}", table.key_list(), VALUES.join(", "));
    let set = VALUES
        .iter()
        .map(|c| format!("{c} = EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let stored = VALUES
        .iter()
        .map(|c| format!("t.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let staged = VALUES
        .iter()
        .map(|c| format!("EXCLUDED.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let row = tx
        .query_one(
            &format!(
                "WITH up AS (
                     INSERT INTO {target} AS t ({columns}, updated_at, run_id)
                     SELECT {columns}, now(), $1 FROM {source} WHERE {filter}
                     ORDER BY {key}, date
                     ON CONFLICT ({key}, date) DO UPDATE
                         SET {set}, updated_at = EXCLUDED.updated_at, run_id = EXCLUDED.run_id
                         WHERE ({stored}) IS DISTINCT FROM ({staged})
                     RETURNING (xmax = 0) AS inserted
                 )
                 SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted)
                 FROM up",
                key = table.key_list(),
            ),
            &[&run_id.as_str()],
        )
        .await
        .map_err(KeyedError::db(
            table.table_name(),
            "insert and update the rows",
        ))?;
    Ok(Upserted {
        inserted: count(row.get(0)),
        updated: count(row.get(1)),
    })
}

/// Deletes the stored rows listed in the temporary table `listed` (alias `r`) where `filter`
/// holds; how many.
pub(crate) async fn delete_listed(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    listed: &str,
    filter: &str,
) -> Result<u64, KeyedError> {
    tx.execute(
        &format!(
            "DELETE FROM {} t USING {listed} r WHERE {filter} AND {}",
            table.qualified(env),
            table.same_row("t", "r")
        ),
        &[],
    )
    .await
    .map_err(KeyedError::db(
        table.table_name(),
        "delete the removed rows",
    ))
}

/// A `count(*)` as an unsigned count (PostgreSQL never returns a negative one).
pub(crate) fn count(n: i64) -> u64 {
    u64::try_from(n).unwrap_or(0)
}

/// `unchanged = rows − inserted − updated`, or a mismatch when that would be negative.
pub(crate) fn unchanged(table: &Table, rows: u64, up: Upserted) -> Result<u64, KeyedError> {
    rows.checked_sub(up.inserted + up.updated)
        .ok_or_else(|| KeyedError::CountMismatch {
            table: table.table_name(),
            problem: format!(
                "{} rows inserted and {} updated, but the table holds {rows}",
                up.inserted, up.updated
            ),
        })
}
