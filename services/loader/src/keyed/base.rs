//! `keyed_base`: which run a keyed table holds and how many rows; and DESIGN rule 7.

use shared::Env;
use shared::ids::RunId;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::table::Table;
use crate::db;

/// The run a keyed table holds, by `keyed_base`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Base {
    pub run_id: String,
    pub rows: u64,
}

/// `table`'s base, its row locked until the end of the transaction; `None` before its first load.
pub(crate) async fn read(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
) -> Result<Option<Base>, KeyedError> {
    let row = tx
        .query_opt(
            &format!(
                "SELECT run_id, rows FROM {}.keyed_base WHERE dataset = $1 FOR UPDATE",
                db::schema(env)
            ),
            &[&table.dataset()],
        )
        .await
        .map_err(KeyedError::db(table.table_name(), "read keyed_base"))?;
    Ok(row.map(|row| Base {
        run_id: row.get(0),
        rows: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
    }))
}

/// Records that `table` now holds `run_id`'s `rows` rows, its base. The caller brings the key list
/// readers go through along (`keys`).
pub(crate) async fn record(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    rows: u64,
) -> Result<(), KeyedError> {
    let rows = i64::try_from(rows).map_err(|_| KeyedError::CountMismatch {
        table: table.table_name(),
        problem: format!("{rows} rows do not fit keyed_base"),
    })?;
    tx.execute(
        &format!(
            "INSERT INTO {}.keyed_base (dataset, run_id, rows, applied_at)
             VALUES ($1, $2, $3, now())
             ON CONFLICT (dataset) DO UPDATE
                 SET run_id = EXCLUDED.run_id, rows = EXCLUDED.rows, applied_at = EXCLUDED.applied_at",
            db::schema(env)
        ),
        &[&table.dataset(), &run_id.as_str(), &rows],
    )
    .await
    .map_err(KeyedError::db(table.table_name(), "record keyed_base"))?;
    Ok(())
}

/// DESIGN rule 7: removing more than `max_share` of the `stored` rows is suspicious. The rule
/// itself is `dataset::diff::check_removal` (the `us` path's and `dataset::keyed`'s too); only the
/// error is the loader's, naming the table.
pub(crate) fn check_removal(
    table: &Table,
    stored: u64,
    removed: u64,
    max_share: f64,
) -> Result<(), KeyedError> {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    dataset::diff::check_removal(size(stored), size(removed), max_share).map_err(|_| {
        KeyedError::SuspiciousRemoval {
            table: table.table_name(),
            stored,
            removed,
            max_share,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removal_up_to_the_share_is_allowed_and_beyond_it_refused() {
        let t = &Table::COUNTIES;
        assert!(check_removal(t, 100, 5, 0.05).is_ok());
        assert!(check_removal(t, 100, 29, 0.29).is_ok());
        assert!(check_removal(t, 0, 0, 0.0).is_ok());
        assert!(check_removal(t, 100, 6, 0.05).is_err());
        assert!(check_removal(t, 10, 1, 0.0).is_err());
    }
}
