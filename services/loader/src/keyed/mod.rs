//! The keyed datasets (`states`, `counties`; issue 12): a run's delta or its full curated dataset
//! applied to `<dataset>_daily`, inside the caller's transaction, set-based.
//!
//! The transformer hands over COPY-ready CSV (the keyed contract): the rows that are new or
//! changed, the (date, key) pairs that left, and one line per revised upstream value, computed
//! against the previous run's dataset, its *base*. [`apply_delta`] applies that only when
//! `keyed_base` says the table holds exactly the base; otherwise it answers
//! [`DeltaOutcome::BaseMismatch`] and the caller runs [`reconcile`] from the full dataset, which
//! works out the inserts, updates, removals and revisions in SQL.
//!
//! Both COPY the CSV into temporary staging tables (dropped at commit), check DESIGN rule 7
//! before changing anything, then run one statement each: delete, upsert (only rows that differ,
//! NULL-aware), record the revisions, and record the table's new base. The counts come from what
//! the statements did, and are checked against each other; a disagreement fails the call.
//!
//! Each call first takes the env's load lock, the `pg_advisory_xact_lock` the `us` path takes
//! ([`db::lock_key`]`("load", env)`), so no two loads of an env overlap, across processes too. Its
//! wait is bounded as the `us` path's is: by the session's `lock_timeout` (`DB_LOCK_TIMEOUT`),
//! whose error is transient. The lock is held until the caller's transaction ends. Run order is
//! the caller's to check (`keyed_run`): as `apply::apply_run` does with `etl_runs`, it takes the
//! same lock first (taking it again here is free), then refuses an already loaded or superseded
//! run; these functions apply whatever run they are given.
//!
//! Every call does its work under a savepoint and rolls back to it on any error, so a
//! [`KeyedError`] leaves the tables as they were and the caller's transaction usable (to record
//! the run as failed, or to reconcile after a delta that did not fit).
//!
//! - [`table`]: the two tables (on `dataset::keyed::Spec`), their key columns, SQL fragments;
//! - `stage`: the staging tables and the COPY of each CSV;
//! - `base`: `keyed_base`, and rule 7; `keys`: the key list readers go through (`<dataset>_keys`);
//! - `write`: the statements shared by both paths (delete, upsert, the new base);
//! - `apply`: [`apply_delta`]; `reconcile`: [`reconcile`];
//! - `corrections`: a run's revisions read back for its `Loaded` event ([`corrections`]).

mod apply;
mod base;
mod corrections;
mod error;
mod keys;
mod reconcile;
mod stage;
pub mod table;
mod write;

pub use apply::{Delta, DeltaOutcome, apply_delta};
pub use corrections::corrections;
pub use error::KeyedError;
pub use reconcile::reconcile;
use shared::Env;
pub use shared::events::Counts;
use shared::events::Timings;
pub use table::Table;
use tokio_postgres::Transaction;

use crate::db;

/// What applying a delta or a reconcile did to a keyed table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// Per (date, key): inserted, updated, unchanged (the rest of the run's rows), removed, and
    /// revised (pairs with a line in `<table>_changes`).
    pub counts: Counts,
    /// Rows the table holds now: the run's rows.
    pub rows: u64,
    /// Lines written to `<table>_changes` (one per revised field).
    pub changes: u64,
    /// Milliseconds per step, in the order they ran (`stage`, `check`, `delete`, `upsert`, ...).
    pub timings: Timings,
}

/// The savepoint each call works under. Savepoints are issued as SQL rather than through
/// `Transaction::savepoint`, which needs `&mut Transaction` and would change the API.
const SAVEPOINT: &str = "keyed_load";

/// Takes the env's load lock (see the module's text) for the rest of the caller's transaction.
/// The statement runs under a savepoint of its own, so a lock timeout leaves the transaction
/// usable; released on success, the savepoint's lock passes to the transaction.
pub(crate) async fn lock(tx: &Transaction<'_>, env: &Env, table: &Table) -> Result<(), KeyedError> {
    guarded(tx, table, async {
        tx.execute(
            "SELECT pg_advisory_xact_lock($1)",
            &[&db::lock_key("load", env)],
        )
        .await
        .map_err(KeyedError::db(
            table.table_name(),
            "take the env's load lock",
        ))?;
        Ok(())
    })
    .await
}

/// Runs `work` under a savepoint: released when it succeeds, rolled back to (and released) on
/// any error, so the error leaves the transaction usable and as it was before.
pub(crate) async fn guarded<T>(
    tx: &Transaction<'_>,
    table: &Table,
    work: impl Future<Output = Result<T, KeyedError>>,
) -> Result<T, KeyedError> {
    tx.batch_execute(&format!("SAVEPOINT {SAVEPOINT}"))
        .await
        .map_err(KeyedError::db(table.table_name(), "set a savepoint"))?;
    match work.await {
        Ok(done) => {
            tx.batch_execute(&format!("RELEASE SAVEPOINT {SAVEPOINT}"))
                .await
                .map_err(KeyedError::db(table.table_name(), "release the savepoint"))?;
            Ok(done)
        }
        Err(err) => {
            // Should the rollback fail too (the connection broke), the work's error is the one
            // to report; the transaction is then lost either way.
            if let Err(rollback) = tx
                .batch_execute(&format!(
                    "ROLLBACK TO SAVEPOINT {SAVEPOINT}; RELEASE SAVEPOINT {SAVEPOINT}"
                ))
                .await
            {
                tracing::warn!(table = table.table_name(), error = %rollback, "rolling back to the savepoint failed");
            }
            Err(err)
        }
    }
}

/// A fresh step timer (the `us` path's).
pub(crate) fn steps() -> crate::apply::Steps {
    crate::apply::Steps::new(Timings::new())
}
