//! A run's delta applied on top of its base: only when `keyed_base` says the table holds exactly
//! the base, and only when the delta fits it (every removed row stored, every revision's old
//! value the stored one and its new value the staged one).

use shared::Env;
use shared::ids::RunId;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::stage::{Kind, stage};
use super::table::Table;
use super::write::{count, delete_listed, unchanged, upsert};
use super::{Applied, guarded, lock, steps};
use super::{base, keys};
use shared::events::Counts;

/// A run's delta against its base, as the transformer writes it (the keyed contract's CSV).
#[derive(Debug, Clone, Copy)]
pub struct Delta<'a> {
    /// The run the delta was computed against.
    pub base_run_id: &'a RunId,
    /// `date,<key>,fips,cases,deaths,new_cases,new_deaths`: new or changed rows.
    pub rows: &'a [u8],
    /// `date,<key>`: rows that left the dataset.
    pub removed: &'a [u8],
    /// `date,<key>,field,old_value,new_value`: revised upstream values.
    pub changes: &'a [u8],
}

/// What [`apply_delta`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeltaOutcome {
    Applied(Applied),
    /// The table does not hold the delta's base (`stored`: the run it holds, `None` before its
    /// first load). Nothing was changed: reconcile from the full dataset instead.
    BaseMismatch {
        expected: RunId,
        stored: Option<String>,
    },
}

/// Applies `delta` to `table` in `env`'s schema, inside the caller's transaction, as `run_id`,
/// under the env's load lock (held until the transaction ends). The caller checks run order
/// first (see the module [`keyed`](super)). DESIGN rule 7 is checked against the base's rows
/// before anything changes. On any error nothing is changed and the transaction is still usable.
pub async fn apply_delta(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    delta: &Delta<'_>,
    max_removed_share: f64,
) -> Result<DeltaOutcome, KeyedError> {
    lock(tx, env, table).await?;
    guarded(
        tx,
        table,
        apply(tx, env, table, run_id, delta, max_removed_share),
    )
    .await
}

async fn apply(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    delta: &Delta<'_>,
    max_removed_share: f64,
) -> Result<DeltaOutcome, KeyedError> {
    let stored = match base::read(tx, env, table).await? {
        Some(stored) if stored.run_id == delta.base_run_id.as_str() => stored,
        other => {
            return Ok(DeltaOutcome::BaseMismatch {
                expected: delta.base_run_id.clone(),
                stored: other.map(|b| b.run_id),
            });
        }
    };
    let mut steps = steps();
    let (rows, _) = stage(tx, table, Kind::Rows, delta.rows).await?;
    let (removed, removing) = stage(tx, table, Kind::Removed, delta.removed).await?;
    let (changes, revising) = stage(tx, table, Kind::Changes, delta.changes).await?;
    steps.lap("stage");
    check_fit(
        tx,
        env,
        table,
        delta.base_run_id,
        [&rows, &removed, &changes],
    )
    .await?;
    base::check_removal(table, stored.rows, removing, max_removed_share)?;
    steps.lap("check");

    let removed_rows = delete_listed(tx, env, table, &removed, "true").await?;
    steps.lap("delete");
    let up = upsert(tx, env, table, &rows, "true", run_id).await?;
    steps.lap("upsert");
    let (lines, revised) = record_changes(tx, env, table, &changes, run_id).await?;
    steps.lap("changes");
    let mismatch = |problem: String| KeyedError::CountMismatch {
        table: table.table_name(),
        problem,
    };
    if removed_rows != removing {
        return Err(mismatch(format!(
            "{removed_rows} rows deleted, {removing} listed as removed"
        )));
    }
    if lines != revising {
        return Err(mismatch(format!(
            "{lines} revisions recorded, {revising} in the delta"
        )));
    }
    let after = (stored.rows + up.inserted)
        .checked_sub(removed_rows)
        .ok_or_else(|| {
            mismatch(format!(
                "{removed_rows} rows deleted of the {} the base holds",
                stored.rows
            ))
        })?;
    base::record(tx, env, table, run_id, after).await?;
    keys::follow(tx, env, table, &rows, &removed).await?;
    steps.lap("keys");
    Ok(DeltaOutcome::Applied(Applied {
        counts: Counts {
            inserted: up.inserted,
            updated: up.updated,
            unchanged: unchanged(table, after, up)?,
            removed: removed_rows,
            revised,
        },
        rows: after,
        changes: lines,
        timings: steps.timings,
    }))
}

/// The delta fits the stored base: every removed row is stored; every revision goes from the
/// stored value to the staged one, and changes it (old and new differ, NULL-aware); and every
/// stored cases or deaths value a staged row changes has its revision. Otherwise the table is not
/// what `keyed_base` says, or the delta is not the one computed against it.
async fn check_fit(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    base_run_id: &RunId,
    [rows, removed, changes]: [&str; 3],
) -> Result<(), KeyedError> {
    let target = table.qualified(env);
    let field = |alias: &str| {
        format!(
            "CASE c.field WHEN 'cases' THEN {alias}.cases WHEN 'deaths' THEN {alias}.deaths END"
        )
    };
    let row = tx
        .query_one(
            &format!(
                "SELECT
                     (SELECT count(*) FROM {removed} r
                      WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {removed_stored})),
                     (SELECT count(*) FROM {changes} c
                      WHERE NOT EXISTS (SELECT 1 FROM {target} t WHERE {change_stored}
                                        AND {stored_value} IS NOT DISTINCT FROM c.old_value)),
                     (SELECT count(*) FROM {changes} c
                      WHERE NOT EXISTS (SELECT 1 FROM {rows} s WHERE {change_staged}
                                        AND {staged_value} IS NOT DISTINCT FROM c.new_value)),
                     (SELECT count(*) FROM {changes} c
                      WHERE c.old_value IS NOT DISTINCT FROM c.new_value),
                     (SELECT count(*) FROM {rows} s JOIN {target} t ON {staged_stored}
                      CROSS JOIN LATERAL (VALUES ('cases', t.cases, s.cases),
                                                 ('deaths', t.deaths, s.deaths))
                          AS f (field, old_value, new_value)
                      WHERE f.old_value IS DISTINCT FROM f.new_value
                        AND NOT EXISTS (SELECT 1 FROM {changes} c
                                        WHERE {change_staged} AND c.field = f.field))",
                removed_stored = table.same_row("t", "r"),
                change_stored = table.same_row("t", "c"),
                change_staged = table.same_row("s", "c"),
                staged_stored = table.same_row("s", "t"),
                stored_value = field("t"),
                staged_value = field("s"),
            ),
            &[],
        )
        .await
        .map_err(KeyedError::db(
            table.table_name(),
            "check the delta against the table",
        ))?;
    let counted: [(i64, &str); 5] = [
        (row.get(0), "removed rows are not stored"),
        (
            row.get(1),
            "revisions have an old value that is not the stored one",
        ),
        (
            row.get(2),
            "revisions have a new value that is not in the delta's rows",
        ),
        (row.get(3), "revisions have the same old and new value"),
        (
            row.get(4),
            "stored values the delta's rows change have no revision",
        ),
    ];
    let problems: Vec<String> = counted
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, what)| format!("{n} {what}"))
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(KeyedError::DeltaDisagrees {
            table: table.table_name(),
            base: base_run_id.to_string(),
            problem: problems.join("; "),
        })
    }
}

/// Copies the staged revisions into `<table>_changes` as `run_id`'s; the lines written and the
/// (date, key) pairs they cover.
pub(crate) async fn record_changes(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    staging: &str,
    run_id: &RunId,
) -> Result<(u64, u64), KeyedError> {
    let key = table.key_list();
    let row = tx
        .query_one(
            &format!(
                "WITH ins AS (
                     INSERT INTO {changes} (run_id, date, {key}, field, old_value, new_value)
                     SELECT $1, date, {key}, field, old_value, new_value FROM {staging}
                     RETURNING date, {key}
                 )
                 SELECT count(*), count(DISTINCT (date, {key})) FROM ins",
                changes = table.qualified_changes(env),
            ),
            &[&run_id.as_str()],
        )
        .await
        .map_err(KeyedError::db(table.table_name(), "record the revisions"))?;
    Ok((count(row.get(0)), count(row.get(1))))
}
