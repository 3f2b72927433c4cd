//! What applying a run's rows to the stored rows would change, counted as DESIGN.md defines.

use chrono::NaiveDate;
use shared::events::{Correction, Counts};

use crate::DailyRow;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    /// Dates in the run but not stored.
    pub inserted: Vec<NaiveDate>,
    /// Dates in both whose stored row changes in any column (values or deltas).
    pub updated: Vec<NaiveDate>,
    /// Dates in both with nothing to change.
    pub unchanged: u64,
    /// Stored dates missing from the run.
    pub removed: Vec<NaiveDate>,
    /// Every changed upstream value (cases, deaths, recovered) on dates in both, by date then field.
    pub corrections: Vec<Correction>,
}

impl Diff {
    pub fn counts(&self) -> Counts {
        unimplemented!("the diff is being written")
    }
}

/// Compares stored rows with a run's rows (both in any order).
pub fn diff(_stored: &[DailyRow], _new: &[DailyRow]) -> Diff {
    unimplemented!("the diff is being written")
}
