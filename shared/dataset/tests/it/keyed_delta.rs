//! The delta between two curated versions of a keyed dataset (keyed-contract.md, "The delta"):
//! rows, removed keys, changes and counts, and rule 7.

use dataset::keyed::{self, COUNTIES, Curated};
use shared::events::Counts;

use crate::keyed::{counties, counties_csv, text};

const ROWS_HEADER: &str = "date,state,county,fips,cases,deaths,new_cases,new_deaths\n";
const REMOVED_HEADER: &str = "date,state,county\n";
const CHANGES_HEADER: &str = "date,state,county,field,old_value,new_value\n";

fn version(lines: &[&str]) -> Curated {
    counties(&[("us-counties.csv", &counties_csv(lines))])
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

const BASE: &[&str] = &[
    "2020-03-01,Cook,Illinois,17031,10,1",
    "2020-03-01,Snohomish,Washington,53061,2,",
    "2020-03-02,Cook,Illinois,17031,20,2",
    "2020-03-02,Snohomish,Washington,53061,4,",
    "2020-03-03,Cook,Illinois,17031,30,3",
    "2020-03-03,Snohomish,Washington,53061,,1",
];

#[test]
fn without_a_base_every_row_is_inserted() {
    let next = version(BASE);
    let delta = keyed::delta(None, &next).unwrap();
    assert_eq!(delta.counts, counts(6, 0, 0, 0, 0));
    assert_eq!(delta.rows_csv().unwrap(), next.rows_csv().unwrap());
    assert_eq!(text(delta.removed_csv().unwrap()), REMOVED_HEADER);
    assert_eq!(text(delta.changes_csv().unwrap()), CHANGES_HEADER);
}

#[test]
fn the_same_version_again_changes_nothing_nulls_included() {
    let (base, next) = (version(BASE), version(BASE));
    let delta = keyed::delta(Some(&base), &next).unwrap();
    assert_eq!(delta.counts, counts(0, 0, 6, 0, 0));
    assert!(delta.is_empty());
    assert_eq!(text(delta.rows_csv().unwrap()), ROWS_HEADER);
}

#[test]
fn a_new_day_inserts_its_rows_and_leaves_the_rest_unchanged() {
    let mut lines = BASE.to_vec();
    lines.extend([
        "2020-03-04,Cook,Illinois,17031,35,3",
        "2020-03-04,Snohomish,Washington,53061,7,1",
    ]);
    let delta = keyed::delta(Some(&version(BASE)), &version(&lines)).unwrap();
    assert_eq!(delta.counts, counts(2, 0, 6, 0, 0));
    assert_eq!(
        text(delta.rows_csv().unwrap()),
        format!(
            "{ROWS_HEADER}\
             2020-03-04,Illinois,Cook,17031,35,3,5,0\n\
             2020-03-04,Washington,Snohomish,53061,7,1,,0\n"
        )
    );
}

#[test]
fn a_revised_value_updates_its_row_and_the_next_days_delta_and_is_one_change() {
    let mut lines = BASE.to_vec();
    lines[2] = "2020-03-02,Cook,Illinois,17031,25,2";
    let delta = keyed::delta(Some(&version(BASE)), &version(&lines)).unwrap();
    assert_eq!(delta.counts, counts(0, 2, 4, 0, 1));
    assert_eq!(
        text(delta.rows_csv().unwrap()),
        format!(
            "{ROWS_HEADER}\
             2020-03-02,Illinois,Cook,17031,25,2,15,1\n\
             2020-03-03,Illinois,Cook,17031,30,3,5,1\n"
        )
    );
    assert_eq!(
        text(delta.changes_csv().unwrap()),
        format!("{CHANGES_HEADER}2020-03-02,Illinois,Cook,cases,20,25\n")
    );
    assert_eq!(text(delta.removed_csv().unwrap()), REMOVED_HEADER);
}

#[test]
fn a_value_becoming_null_or_reported_is_a_change_with_an_empty_side() {
    let mut lines = BASE.to_vec();
    lines[1] = "2020-03-01,Snohomish,Washington,53061,2,0"; // deaths NULL → 0
    lines[4] = "2020-03-03,Cook,Illinois,17031,,"; // cases and deaths 30, 3 → NULL
    let delta = keyed::delta(Some(&version(BASE)), &version(&lines)).unwrap();
    assert_eq!(delta.counts, counts(0, 2, 4, 0, 2));
    assert_eq!(
        text(delta.changes_csv().unwrap()),
        format!(
            "{CHANGES_HEADER}\
             2020-03-03,Illinois,Cook,cases,30,\n\
             2020-03-03,Illinois,Cook,deaths,3,\n\
             2020-03-01,Washington,Snohomish,deaths,,0\n"
        )
    );
    assert_eq!(
        text(delta.rows_csv().unwrap()),
        format!(
            "{ROWS_HEADER}\
             2020-03-03,Illinois,Cook,17031,,,,\n\
             2020-03-01,Washington,Snohomish,53061,2,0,2,0\n"
        )
    );
}

#[test]
fn a_dropped_key_lists_each_of_its_dates_as_removed() {
    let lines: Vec<&str> = BASE
        .iter()
        .copied()
        .filter(|l| l.contains("Cook"))
        .collect();
    let delta = keyed::delta(Some(&version(BASE)), &version(&lines)).unwrap();
    assert_eq!(delta.counts, counts(0, 0, 3, 3, 0));
    assert_eq!(
        text(delta.removed_csv().unwrap()),
        format!(
            "{REMOVED_HEADER}\
             2020-03-01,Washington,Snohomish\n\
             2020-03-02,Washington,Snohomish\n\
             2020-03-03,Washington,Snohomish\n"
        )
    );
    assert_eq!(text(delta.rows_csv().unwrap()), ROWS_HEADER);
}

#[test]
fn a_new_key_between_existing_keys_is_inserted_without_disturbing_the_others() {
    let mut lines = BASE.to_vec();
    lines.push("2020-03-03,King,Washington,53033,1,0");
    let base = version(BASE);
    let next = version(&lines);
    let delta = keyed::delta(Some(&base), &next).unwrap();
    assert_eq!(delta.counts, counts(1, 0, 6, 0, 0));
    assert_eq!(
        text(delta.rows_csv().unwrap()),
        format!("{ROWS_HEADER}2020-03-03,Washington,King,53033,1,0,1,0\n")
    );
}

#[test]
fn a_base_read_back_from_parquet_gives_the_same_delta() {
    let mut lines = BASE.to_vec();
    lines[2] = "2020-03-02,Cook,Illinois,17031,25,2";
    let base = version(BASE);
    let stored = Curated::from_parquet(&COUNTIES, &base.to_parquet().unwrap()).unwrap();
    let next = version(&lines);
    let direct = keyed::delta(Some(&base), &next).unwrap();
    let via_parquet = keyed::delta(Some(&stored), &next).unwrap();
    assert_eq!(via_parquet.counts, direct.counts);
    assert_eq!(via_parquet.rows_csv().unwrap(), direct.rows_csv().unwrap());
    assert_eq!(
        via_parquet.changes_csv().unwrap(),
        direct.changes_csv().unwrap()
    );
}

#[test]
fn a_states_base_cannot_be_compared_with_counties() {
    let states = "date,state,fips,cases,deaths\n2020-03-01,Illinois,17,3,0\n";
    let states = keyed::read(&keyed::STATES, &[("us-states.csv", states.as_bytes())]).unwrap();
    let err = keyed::delta(Some(&states), &version(BASE)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "a states dataset cannot be the base of a counties dataset"
    );
}

#[test]
fn removing_more_than_the_allowed_share_of_stored_rows_is_suspicious() {
    assert_eq!(keyed::check_removal(&COUNTIES, 0, 0, 0.05), Ok(()));
    assert_eq!(keyed::check_removal(&COUNTIES, 200, 10, 0.05), Ok(()));
    let err = keyed::check_removal(&COUNTIES, 200, 11, 0.05).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the counties run would remove 11 of 200 stored rows (5.5 %), more than the 5 % allowed"
    );
    assert_eq!(err.kind(), shared::events::FailureKind::SuspiciousRemoval);
}
