//! What applying a run's rows to the stored rows would change, counted as DESIGN.md defines
//! ("Counting"), and the guard of DESIGN rule 7 against a run that would empty the table.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use shared::events::{Correction, Counts, Field};

use crate::DailyRow;
use crate::error::{DataError, Share};

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
        let mut revised: Vec<NaiveDate> = self.corrections.iter().map(|c| c.date).collect();
        revised.dedup(); // corrections are ordered by date, so equal dates are adjacent
        Counts {
            inserted: self.inserted.len() as u64,
            updated: self.updated.len() as u64,
            unchanged: self.unchanged,
            removed: self.removed.len() as u64,
            revised: revised.len() as u64,
        }
    }
}

/// Compares stored rows with a run's rows (both in any order). Every list in the result is in
/// date order. If either side repeats a date, its last row for that date counts.
pub fn diff(stored: &[DailyRow], new: &[DailyRow]) -> Diff {
    let stored: BTreeMap<NaiveDate, &DailyRow> = stored.iter().map(|r| (r.date, r)).collect();
    let new: BTreeMap<NaiveDate, &DailyRow> = new.iter().map(|r| (r.date, r)).collect();
    let mut diff = Diff::default();
    for (date, row) in &new {
        let Some(old) = stored.get(date) else {
            diff.inserted.push(*date);
            continue;
        };
        if old == row {
            diff.unchanged += 1;
            continue;
        }
        diff.updated.push(*date);
        for field in Field::ALL {
            let (was, is) = (upstream_value(old, field), upstream_value(row, field));
            if was != is {
                diff.corrections.push(Correction {
                    key: None,
                    date: *date,
                    field,
                    old: was,
                    new: is,
                });
            }
        }
    }
    diff.removed = stored
        .keys()
        .filter(|date| !new.contains_key(date))
        .copied()
        .collect();
    diff
}

fn upstream_value(row: &DailyRow, field: Field) -> Option<i64> {
    match field {
        Field::Cases => Some(row.cases),
        Field::Deaths => Some(row.deaths),
        Field::Recovered => row.recovered,
    }
}

/// DESIGN rule 7: refuses a run that would remove more than `max_share` (0.05 = 5 %) of the
/// `stored` dates. A run that removes nothing always passes, so an empty table (`stored` = 0)
/// accepts any first run.
pub fn check_removal(stored: usize, removed: usize, max_share: f64) -> Result<(), DataError> {
    // The small tolerance keeps a share exactly at the limit (29 of 100 at 0.29) allowed
    // despite binary floating point.
    if removed == 0 || removed as f64 <= max_share * stored as f64 + 1e-9 {
        return Ok(());
    }
    Err(DataError::SuspiciousRemoval {
        stored,
        removed,
        max_share: Share(max_share),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(d: u32) -> NaiveDate {
        NaiveDate::from_ymd_opt(2020, 8, d).unwrap()
    }

    /// Rows with deltas computed as the transform does, from (day, cases, deaths, recovered).
    fn rows(values: &[(u32, i64, i64, Option<i64>)]) -> Vec<DailyRow> {
        let mut out: Vec<DailyRow> = Vec::new();
        for &(d, cases, deaths, recovered) in values {
            let prev = out.last();
            out.push(DailyRow {
                date: day(d),
                cases,
                deaths,
                recovered,
                new_cases: Some(cases - prev.map_or(0, |p| p.cases)),
                new_deaths: Some(deaths - prev.map_or(0, |p| p.deaths)),
                new_recovered: match prev {
                    None => recovered,
                    Some(p) => recovered.zip(p.recovered).map(|(a, b)| a - b),
                },
            });
        }
        out
    }

    fn counts(inserted: u64, updated: u64, unchanged: u64, removed: u64, revised: u64) -> Counts {
        Counts {
            inserted,
            updated,
            unchanged,
            removed,
            revised,
        }
    }

    #[test]
    fn a_first_run_inserts_every_date() {
        let new = rows(&[(1, 1, 0, None), (2, 3, 0, None)]);
        let diff = diff(&[], &new);
        assert_eq!(diff.inserted, vec![day(1), day(2)]);
        assert_eq!(diff.counts(), counts(2, 0, 0, 0, 0));
    }

    #[test]
    fn the_same_rows_again_change_nothing() {
        let stored = rows(&[(1, 1, 0, Some(0)), (2, 3, 1, Some(1))]);
        assert_eq!(diff(&stored, &stored).counts(), counts(0, 0, 2, 0, 0));
    }

    #[test]
    fn a_new_day_is_inserted_and_the_rest_stay_unchanged() {
        let stored = rows(&[(1, 1, 0, None), (2, 3, 0, None)]);
        let new = rows(&[(1, 1, 0, None), (2, 3, 0, None), (3, 6, 1, None)]);
        let diff = diff(&stored, &new);
        assert_eq!(diff.inserted, vec![day(3)]);
        assert_eq!(diff.counts(), counts(1, 0, 2, 0, 0));
    }

    #[test]
    fn a_revised_day_updates_its_row_and_the_next_days_delta() {
        let stored = rows(&[(1, 10, 1, None), (2, 20, 2, None), (3, 30, 3, None)]);
        let new = rows(&[(1, 10, 1, None), (2, 25, 2, None), (3, 30, 3, None)]);
        let diff = diff(&stored, &new);
        assert_eq!(diff.updated, vec![day(2), day(3)]);
        assert_eq!(
            diff.corrections,
            vec![Correction {
                key: None,
                date: day(2),
                field: Field::Cases,
                old: Some(20),
                new: Some(25)
            }]
        );
        assert_eq!(diff.counts(), counts(0, 2, 1, 0, 1));
    }

    #[test]
    fn each_changed_field_is_one_correction_and_one_revised_date() {
        let stored = rows(&[(1, 10, 1, Some(5))]);
        let new = rows(&[(1, 11, 2, None)]);
        let diff = diff(&stored, &new);
        assert_eq!(
            diff.corrections,
            vec![
                Correction {
                    key: None,
                    date: day(1),
                    field: Field::Cases,
                    old: Some(10),
                    new: Some(11)
                },
                Correction {
                    key: None,
                    date: day(1),
                    field: Field::Deaths,
                    old: Some(1),
                    new: Some(2)
                },
                Correction {
                    key: None,
                    date: day(1),
                    field: Field::Recovered,
                    old: Some(5),
                    new: None
                },
            ]
        );
        assert_eq!(diff.counts(), counts(0, 1, 0, 0, 1));
    }

    #[test]
    fn a_dropped_day_is_removed_and_its_neighbour_updated_without_a_revision() {
        let stored = rows(&[(1, 10, 1, None), (2, 20, 2, None), (3, 30, 3, None)]);
        let new = rows(&[(1, 10, 1, None), (3, 30, 3, None)]);
        let diff = diff(&stored, &new);
        assert_eq!(diff.removed, vec![day(2)]);
        assert_eq!(diff.updated, vec![day(3)]);
        assert!(diff.corrections.is_empty());
        assert_eq!(diff.counts(), counts(0, 1, 1, 1, 0));
    }

    #[test]
    fn order_of_either_side_does_not_matter() {
        let stored = rows(&[(1, 10, 1, None), (2, 20, 2, None), (3, 30, 3, None)]);
        let new = rows(&[(2, 21, 2, None), (3, 30, 3, None), (4, 40, 4, None)]);
        let (mut stored_rev, mut new_rev) = (stored.clone(), new.clone());
        stored_rev.reverse();
        new_rev.reverse();
        assert_eq!(diff(&stored_rev, &new_rev), diff(&stored, &new));
    }

    #[test]
    fn counts_always_add_up_to_the_runs_dates_and_the_stored_dates() {
        let stored = rows(&[
            (1, 10, 1, None),
            (2, 20, 2, None),
            (3, 30, 3, None),
            (5, 50, 5, None),
        ]);
        let new = rows(&[
            (2, 21, 2, None),
            (3, 30, 3, None),
            (4, 40, 4, None),
            (5, 50, 5, None),
        ]);
        let c = diff(&stored, &new).counts();
        assert_eq!(c.inserted + c.updated + c.unchanged, new.len() as u64);
        assert_eq!(c.removed + c.updated + c.unchanged, stored.len() as u64);
    }

    #[test]
    fn removal_within_the_allowed_share_passes() {
        let cases: &[(usize, usize, f64)] = &[
            (0, 0, 0.05),
            (200, 0, 0.0),
            (200, 10, 0.05),
            (100, 29, 0.29),
            (1, 1, 1.0),
        ];
        for &(stored, removed, share) in cases {
            assert_eq!(
                check_removal(stored, removed, share),
                Ok(()),
                "{removed} of {stored} at {share}"
            );
        }
    }

    #[test]
    fn removal_beyond_the_allowed_share_is_suspicious() {
        let err = check_removal(200, 40, 0.05).unwrap_err();
        assert_eq!(err.kind(), shared::events::FailureKind::SuspiciousRemoval);
        assert_eq!(
            err.to_string(),
            "the run would remove 40 of 200 stored dates (20 %), more than the 5 % allowed"
        );
        assert!(check_removal(200, 11, 0.05).is_err());
        assert!(check_removal(10, 1, 0.0).is_err());
    }
}
