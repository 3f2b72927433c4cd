//! A full reconcile: the table made equal to every row of the run's curated dataset, whatever it
//! held before (nothing, an older run, rows changed by hand). The removals, revisions, inserts and
//! updates are all worked out in SQL against the staged rows.
//!
//! One full join of the staged rows with the table finds every row that is new, changed or gone
//! (a small temporary `diff` table, usually); the statements that follow read only that. A
//! reconcile that changes nothing costs the COPY and one join, not a probe per row. An empty
//! table (a first load) skips all that: the rows are copied straight into it.

use shared::Env;
use shared::events::Counts;
use shared::ids::RunId;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::stage::{Kind, copy_into_empty, stage};
use super::table::Table;
use super::write::{VALUES, count, delete_listed, unchanged, upsert};
use super::{Applied, guarded, lock, steps};
use super::{base, keys};

/// Makes `table` in `env`'s schema hold exactly `all_rows` (the rows CSV of the whole dataset:
/// `date,<key>,fips,cases,deaths,new_cases,new_deaths`) as `run_id`, inside the caller's
/// transaction. Revisions are the cases and deaths that differ (NULL-aware) on a (date, key)
/// stored before and present now. Runs under the env's load lock (held until the transaction
/// ends); the caller checks run order first (see the module [`keyed`](super)). DESIGN rule 7 is
/// checked on the share of stored rows that would go, before anything changes. On any error
/// nothing is changed and the transaction is still usable.
///
/// The key list (`keys`) becomes `all_keys` when given: the dataset's own
/// (`Curated::keys_csv`), right since the table now holds exactly the dataset, and much cheaper
/// than listing the keys from the table, which is done otherwise.
pub async fn reconcile(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    all_rows: &[u8],
    all_keys: Option<&[u8]>,
    max_removed_share: f64,
) -> Result<Applied, KeyedError> {
    lock(tx, env, table).await?;
    let whole = Whole {
        rows: all_rows,
        keys: all_keys,
    };
    guarded(
        tx,
        table,
        reconcile_all(tx, env, table, run_id, whole, max_removed_share),
    )
    .await
}

/// A whole dataset: its rows CSV, and its key list if known.
#[derive(Clone, Copy)]
struct Whole<'a> {
    rows: &'a [u8],
    keys: Option<&'a [u8]>,
}

impl Whole<'_> {
    /// Makes the key list that of the table, which now holds exactly this dataset.
    async fn list_keys(
        self,
        tx: &Transaction<'_>,
        env: &Env,
        table: &Table,
    ) -> Result<(), KeyedError> {
        match self.keys {
            Some(csv) => keys::replace(tx, env, table, csv).await,
            None => keys::refresh(tx, env, table).await.map(drop),
        }
    }
}

async fn reconcile_all(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    whole: Whole<'_>,
    max_removed_share: f64,
) -> Result<Applied, KeyedError> {
    let all_rows = whole.rows;
    let mut steps = steps();
    if is_empty(tx, env, table).await? && stays_empty(tx, env, table).await? {
        let inserted = copy_into_empty(tx, env, table, all_rows, run_id).await?;
        steps.lap("load");
        base::record(tx, env, table, run_id, inserted).await?;
        whole.list_keys(tx, env, table).await?;
        return Ok(Applied {
            counts: Counts {
                inserted,
                ..Counts::default()
            },
            rows: inserted,
            changes: 0,
            timings: steps.timings,
        });
    }
    let (staging, staged) = stage(tx, table, Kind::Rows, all_rows).await?;
    // Without statistics the planner would guess the size of a table of millions of rows.
    tx.batch_execute(&format!("ANALYZE {staging}"))
        .await
        .map_err(KeyedError::db(
            table.table_name(),
            "analyze the staged rows",
        ))?;
    steps.lap("stage");
    let diff = Diff::make(tx, env, table, &staging).await?;
    // Every stored row is either staged (matched) or gone; every staged row matched or added.
    let stored = (staged + diff.gone)
        .checked_sub(diff.added)
        .ok_or_else(|| KeyedError::CountMismatch {
            table: table.table_name(),
            problem: format!("{} rows added of {staged} staged", diff.added),
        })?;
    base::check_removal(table, stored, diff.gone, max_removed_share)?;
    steps.lap("diff");

    let (lines, revised) = record_revisions(tx, env, table, &diff.name, run_id).await?;
    steps.lap("changes");
    let removed = delete_listed(tx, env, table, &diff.name, "r.gone").await?;
    steps.lap("delete");
    let up = upsert(tx, env, table, &diff.name, "NOT gone", run_id).await?;
    steps.lap("upsert");
    let changed = diff.rows.saturating_sub(diff.added + diff.gone);
    if removed != diff.gone || up.inserted != diff.added || up.updated != changed {
        return Err(KeyedError::CountMismatch {
            table: table.table_name(),
            problem: format!(
                "{} inserted, {} updated, {removed} deleted; the join found {} new, {changed} \
                 changed, {} gone",
                up.inserted, up.updated, diff.added, diff.gone
            ),
        });
    }
    base::record(tx, env, table, run_id, staged).await?;
    whole.list_keys(tx, env, table).await?;
    Ok(Applied {
        counts: Counts {
            inserted: up.inserted,
            updated: up.updated,
            unchanged: unchanged(table, staged, up)?,
            removed,
            revised,
        },
        rows: staged,
        changes: lines,
        timings: steps.timings,
    })
}

/// The rows that differ between the staged dataset and the table, in a temporary table: the
/// staged values (NULL for a row that is gone), the stored cases and deaths, and whether the
/// row is `added` (not stored) or `gone` (not staged).
struct Diff {
    name: String,
    rows: u64,
    added: u64,
    gone: u64,
}

impl Diff {
    async fn make(
        tx: &Transaction<'_>,
        env: &Env,
        table: &Table,
        staging: &str,
    ) -> Result<Diff, KeyedError> {
        let name = table.staging("diff");
        let key = std::iter::once("date")
            .chain(table.key().iter().copied())
            .map(|c| format!("coalesce(s.{c}, t.{c}) AS {c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let list = |alias: &str| {
            VALUES
                .iter()
                .map(|c| format!("{alias}.{c}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        tx.batch_execute(&format!("DROP TABLE IF EXISTS pg_temp.{name}"))
            .await
            .map_err(KeyedError::db(table.table_name(), "drop an earlier diff"))?;
        let rows = tx
            .execute(
                &format!(
                    "CREATE TEMP TABLE {name} ON COMMIT DROP AS
                     SELECT {key}, {staged},
                            t.cases AS old_cases, t.deaths AS old_deaths,
                            t.date IS NULL AS added, s.date IS NULL AS gone
                     FROM {staging} s FULL JOIN {target} t ON {same}
                     WHERE s.date IS NULL OR t.date IS NULL
                        OR ({stored}) IS DISTINCT FROM ({staged})",
                    staged = list("s"),
                    stored = list("t"),
                    target = table.qualified(env),
                    same = table.same_row("s", "t"),
                ),
                &[],
            )
            .await
            .map_err(KeyedError::db(
                table.table_name(),
                "compare the staged rows with the table",
            ))?;
        let row = tx
            .query_one(
                &format!(
                    "SELECT count(*) FILTER (WHERE added), count(*) FILTER (WHERE gone) FROM {name}"
                ),
                &[],
            )
            .await
            .map_err(KeyedError::db(table.table_name(), "count the differences"))?;
        Ok(Diff {
            name,
            rows,
            added: count(row.get(0)),
            gone: count(row.get(1)),
        })
    }
}

/// Whether `table` holds no row at all.
async fn is_empty(tx: &Transaction<'_>, env: &Env, table: &Table) -> Result<bool, KeyedError> {
    Ok(tx
        .query_one(
            &format!("SELECT NOT EXISTS (SELECT 1 FROM {})", table.qualified(env)),
            &[],
        )
        .await
        .map_err(KeyedError::db(table.table_name(), "look for stored rows"))?
        .get(0))
}

/// Locks the empty `table` against every other session until the transaction ends (a first load
/// empties it again, see `copy_into_empty`), then whether it is still empty: a row written
/// between the look and the lock leaves it to the full reconcile, which keeps what it must. The
/// second look sees such a row because the loader's transactions are READ COMMITTED
/// (`apply::begin_locked`).
async fn stays_empty(tx: &Transaction<'_>, env: &Env, table: &Table) -> Result<bool, KeyedError> {
    tx.batch_execute(&format!(
        "LOCK TABLE {} IN ACCESS EXCLUSIVE MODE",
        table.qualified(env)
    ))
    .await
    .map_err(KeyedError::db(table.table_name(), "lock the empty table"))?;
    is_empty(tx, env, table).await
}

/// Records, as `run_id`'s revisions, every cases or deaths value of a stored (date, key) that the
/// staged row changes; the lines written and the (date, key) pairs they cover.
async fn record_revisions(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    diff: &str,
    run_id: &RunId,
) -> Result<(u64, u64), KeyedError> {
    let key = table.key_list();
    let row = tx
        .query_one(
            &format!(
                "WITH ins AS (
                     INSERT INTO {changes} (run_id, date, {key}, field, old_value, new_value)
                     SELECT $1, d.date, {diff_key}, f.field, f.old_value, f.new_value
                     FROM {diff} d
                     CROSS JOIN LATERAL (VALUES ('cases', d.old_cases, d.cases),
                                                ('deaths', d.old_deaths, d.deaths))
                         AS f (field, old_value, new_value)
                     WHERE NOT d.added AND NOT d.gone
                       AND f.old_value IS DISTINCT FROM f.new_value
                     RETURNING date, {key}
                 )
                 SELECT count(*), count(DISTINCT (date, {key})) FROM ins",
                changes = table.qualified_changes(env),
                diff_key = table.key_of("d"),
            ),
            &[&run_id.as_str()],
        )
        .await
        .map_err(KeyedError::db(table.table_name(), "record the revisions"))?;
    Ok((count(row.get(0)), count(row.get(1))))
}
