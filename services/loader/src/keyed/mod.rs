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
//! the statements did, and are checked against each other; a disagreement fails the call and the
//! caller rolls back.
//!
//! - [`table`]: the two tables, their key columns, SQL fragments;
//! - `stage`: the staging tables and the COPY of each CSV;
//! - `base`: `keyed_base`, and rule 7;
//! - `write`: the statements shared by both paths (delete, upsert, the new base);
//! - `apply`: [`apply_delta`]; `reconcile`: [`reconcile`].

mod apply;
mod base;
mod error;
mod reconcile;
mod stage;
pub mod table;
mod write;

pub use apply::{Delta, DeltaOutcome, apply_delta};
pub use error::KeyedError;
pub use reconcile::reconcile;
pub use shared::events::Counts;
use shared::events::Timings;
pub use table::Table;

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

/// Milliseconds per step, in the order the steps ran.
pub(crate) struct Steps {
    timings: Timings,
    last: std::time::Instant,
}

impl Steps {
    pub(crate) fn new() -> Self {
        Self {
            timings: Timings::new(),
            last: std::time::Instant::now(),
        }
    }

    pub(crate) fn lap(&mut self, name: &str) {
        let ms = u64::try_from(self.last.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.timings.push((name.to_owned(), ms));
        self.last = std::time::Instant::now();
    }

    pub(crate) fn done(self) -> Timings {
        self.timings
    }
}
