//! The keyed datasets (`states`, `counties`) through their public API: reading and curating
//! (keyed-contract.md, "Datasets"), with small files in upstream's formats.

use dataset::DataError;
use dataset::keyed::{self, COUNTIES, Curated, STATES};

pub const COUNTIES_HEADER: &str = "date,county,state,fips,cases,deaths";

/// A county file: the header, then `lines` as they are.
pub fn counties_csv(lines: &[&str]) -> String {
    let mut out = format!("{COUNTIES_HEADER}\n");
    for line in lines {
        out.push_str(line);
        out.push('\n');
    }
    out
}

pub fn read_counties(files: &[(&str, &str)]) -> Result<Curated, DataError> {
    let files: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, text)| (*name, text.as_bytes()))
        .collect();
    keyed::read(&COUNTIES, &files)
}

pub fn counties(files: &[(&str, &str)]) -> Curated {
    read_counties(files).unwrap_or_else(|err| panic!("the read failed: {err}"))
}

pub fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("UTF-8")
}

#[test]
fn rows_are_sorted_by_key_then_date_and_a_keys_first_date_is_its_value() {
    // Upstream's order: by date, then state and county.
    let file = counties_csv(&[
        "2020-03-01,Snohomish,Washington,53061,2,0",
        "2020-03-01,Cook,Illinois,17031,5,1",
        "2020-03-02,Snohomish,Washington,53061,4,1",
        "2020-03-02,Cook,Illinois,17031,6,1",
        "2020-03-03,Cook,Illinois,17031,9,2",
    ]);
    let curated = counties(&[("us-counties.csv", &file)]);
    assert_eq!(curated.rows(), 5);
    assert_eq!(curated.keys(), 2);
    assert_eq!(curated.first_date(), Some(crate::day("2020-03-01")));
    assert_eq!(curated.last_date(), Some(crate::day("2020-03-03")));
    assert!(curated.warnings().is_empty());
    assert_eq!(
        text(curated.rows_csv().unwrap()),
        "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-01,Illinois,Cook,17031,5,1,5,1\n\
         2020-03-02,Illinois,Cook,17031,6,1,1,0\n\
         2020-03-03,Illinois,Cook,17031,9,2,3,1\n\
         2020-03-01,Washington,Snohomish,53061,2,0,2,0\n\
         2020-03-02,Washington,Snohomish,53061,4,1,2,1\n"
    );
}

#[test]
fn empty_counts_and_fips_are_null_and_stay_null_through_deltas_and_csv() {
    let file = counties_csv(&[
        "2020-04-01,New York City,New York,,5,",
        "2020-04-02,New York City,New York,,7,1",
        "2020-04-03,New York City,New York,,,2",
        "2020-04-04,New York City,New York,,9,2",
    ]);
    let curated = counties(&[("us-counties.csv", &file)]);
    assert_eq!(
        text(curated.rows_csv().unwrap()),
        "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
         2020-04-01,New York,New York City,,5,,5,\n\
         2020-04-02,New York,New York City,,7,1,2,\n\
         2020-04-03,New York,New York City,,,2,,1\n\
         2020-04-04,New York,New York City,,9,2,,0\n"
    );
    let frame = curated.to_frame().unwrap();
    assert_eq!(frame.column("fips").unwrap().null_count(), 4);
    assert_eq!(frame.column("cases").unwrap().null_count(), 1);
    assert_eq!(frame.column("new_cases").unwrap().null_count(), 2);
    assert_eq!(frame.column("deaths").unwrap().null_count(), 1);
}

#[test]
fn a_falling_count_is_kept_and_warned_about_in_one_sentence() {
    let file = counties_csv(&[
        "2020-08-13,Snohomish,Washington,53061,5000,100",
        "2020-08-14,Snohomish,Washington,53061,4988,100",
    ]);
    let curated = counties(&[("us-counties.csv", &file)]);
    assert_eq!(
        curated.warnings(),
        [
            "new_cases is -12 on 2020-08-14 for state \"Washington\", county \"Snohomish\" \
             (cases fell from 5000 on 2020-08-13 to 4988)"
        ]
    );
    assert!(
        text(curated.rows_csv().unwrap())
            .ends_with("2020-08-14,Washington,Snohomish,53061,4988,100,-12,0\n")
    );
}

#[test]
fn warnings_beyond_the_cap_are_summarised() {
    let mut lines = Vec::new();
    for day in 1..=14 {
        lines.push(format!(
            "2020-08-{day:02},Cook,Illinois,17031,{},{}",
            100 - day,
            100 - day
        ));
    }
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    let curated = counties(&[("us-counties.csv", &counties_csv(&lines))]);
    let warnings = curated.warnings();
    assert_eq!(warnings.len(), dataset::MAX_LISTED_WARNINGS + 1);
    assert_eq!(
        warnings.last().unwrap(),
        "16 more negative daily deltas not listed (new_cases 8, new_deaths 8), the latest on 2020-08-14"
    );
}

#[test]
fn overlapping_files_that_agree_are_read_once() {
    let year = counties_csv(&[
        "2023-03-01,Cook,Illinois,17031,10,1",
        "2023-03-02,Cook,Illinois,17031,12,1",
        "2023-03-03,Cook,Illinois,17031,13,2",
    ]);
    let recent = counties_csv(&[
        "2023-03-02,Cook,Illinois,17031,12,1",
        "2023-03-03,Cook,Illinois,17031,13,2",
        "2023-03-04,Cook,Illinois,17031,15,2",
    ]);
    let curated = counties(&[
        ("us-counties-2023.csv", &year),
        ("us-counties-recent.csv", &recent),
    ]);
    assert_eq!(
        text(curated.rows_csv().unwrap()),
        "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
         2023-03-01,Illinois,Cook,17031,10,1,10,1\n\
         2023-03-02,Illinois,Cook,17031,12,1,2,0\n\
         2023-03-03,Illinois,Cook,17031,13,2,1,1\n\
         2023-03-04,Illinois,Cook,17031,15,2,2,0\n"
    );
}

#[test]
fn overlapping_files_that_disagree_fail_naming_both_files_the_date_and_the_key() {
    let year = counties_csv(&[
        "2023-03-01,Cook,Illinois,17031,10,1",
        "2023-03-02,Cook,Illinois,17031,12,1",
    ]);
    let recent = counties_csv(&[
        "2023-03-02,Cook,Illinois,17031,14,1",
        "2023-03-03,Cook,Illinois,17031,15,2",
    ]);
    let err = read_counties(&[
        ("us-counties-2023.csv", &year),
        ("us-counties-recent.csv", &recent),
    ])
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "us-counties-recent.csv line 2: the row for state \"Illinois\", county \"Cook\" on \
         2023-03-02 disagrees with us-counties-2023.csv line 3 (cases is 14 here but 12 there)"
    );
    assert_eq!(err.kind(), shared::events::FailureKind::InvalidData);
    let null_fips = counties_csv(&["2023-03-02,Cook,Illinois,,12,1"]);
    assert_eq!(
        read_counties(&[("a.csv", &year), ("b.csv", &null_fips)])
            .unwrap_err()
            .to_string(),
        "b.csv line 2: the row for state \"Illinois\", county \"Cook\" on 2023-03-02 disagrees \
         with a.csv line 3 (fips is empty here but \"17031\" there)"
    );
}

#[test]
fn bad_inputs_are_refused_naming_the_file_the_line_and_the_problem() {
    // (what, file body, the sentence)
    let cases: &[(&str, String, &str)] = &[
        (
            "a missing column",
            "date,county,state,cases,deaths\n2020-03-01,Cook,Illinois,1,0\n".into(),
            "us-counties.csv: required column \"fips\" is missing (the header has \"date\", \
             \"county\", \"state\", \"cases\", \"deaths\")",
        ),
        (
            "a bad date",
            counties_csv(&[
                "2020-03-01,Cook,Illinois,17031,1,0",
                "2020-02-30,Cook,Illinois,17031,1,0",
            ]),
            "us-counties.csv line 3: date \"2020-02-30\" is not a day of the calendar",
        ),
        (
            "a negative count",
            counties_csv(&["2020-03-01,Cook,Illinois,17031,1,-1"]),
            "us-counties.csv line 2: deaths \"-1\" is negative",
        ),
        (
            "a decimal count",
            counties_csv(&["2020-03-01,Cook,Illinois,17031,1.5,0"]),
            "us-counties.csv line 2: cases \"1.5\" is a decimal number; counts must be whole numbers",
        ),
        (
            "a duplicate (date, key)",
            counties_csv(&[
                "2020-03-01,Cook,Illinois,17031,1,0",
                "2020-03-01,Snohomish,Washington,53061,1,0",
                "2020-03-01,Cook,Illinois,17031,1,0",
            ]),
            "us-counties.csv line 4: the row for state \"Illinois\", county \"Cook\" on \
             2020-03-01 appears again (first on line 2)",
        ),
        (
            "an empty county",
            counties_csv(&["2020-03-01,,Illinois,17031,1,0"]),
            "us-counties.csv line 2: county is empty",
        ),
        (
            "an empty state",
            counties_csv(&["2020-03-01,Cook,,17031,1,0"]),
            "us-counties.csv line 2: state is empty",
        ),
        (
            "a short row",
            counties_csv(&["2020-03-01,Cook,Illinois,17031,1"]),
            "us-counties.csv line 2: has 5 fields but the header has 6",
        ),
        (
            "a header only",
            counties_csv(&[]),
            "us-counties.csv: the file has a header line but no data rows",
        ),
        (
            "an HTML page",
            "<!DOCTYPE html>\n<html></html>\n".into(),
            "us-counties.csv: the payload is an HTML page, not CSV (it starts with \"<!DOCTYPE html>\")",
        ),
    ];
    for (what, body, expected) in cases {
        let err = read_counties(&[("us-counties.csv", body)]).unwrap_err();
        assert_eq!(err.to_string(), *expected, "{what}");
    }
}

#[test]
fn a_bad_line_in_the_second_file_names_that_file() {
    let good = counties_csv(&["2020-03-01,Cook,Illinois,17031,1,0"]);
    let bad = counties_csv(&["2021-01-01,Cook,Illinois,17031,x,0"]);
    assert_eq!(
        read_counties(&[
            ("us-counties-2020.csv", &good),
            ("us-counties-2021.csv", &bad)
        ])
        .unwrap_err()
        .to_string(),
        "us-counties-2021.csv line 2: cases \"x\" is not a whole number"
    );
}

#[test]
fn columns_are_found_by_name_and_keys_with_commas_are_quoted_in_csv() {
    let file = "cases,deaths,fips,state,county,date,extra\n\
                3,0,02013,Alaska,\"Aleutians East, Borough\",2020-03-01,x\n";
    let curated = counties(&[("us-counties.csv", file)]);
    assert_eq!(
        text(curated.rows_csv().unwrap()),
        "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-01,Alaska,\"Aleutians East, Borough\",02013,3,0,3,0\n"
    );
}

#[test]
fn the_states_dataset_is_keyed_by_state() {
    let file = "date,state,fips,cases,deaths\n\
                2020-03-01,Washington,53,10,1\n\
                2020-03-01,Illinois,17,3,0\n\
                2020-03-02,Washington,53,12,1\n";
    let curated = keyed::read(&STATES, &[("us-states.csv", file.as_bytes())]).unwrap();
    assert_eq!(
        text(curated.rows_csv().unwrap()),
        "date,state,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-01,Illinois,17,3,0,3,0\n\
         2020-03-01,Washington,53,10,1,10,1\n\
         2020-03-02,Washington,53,12,1,2,0\n"
    );
    let err = keyed::read(
        &STATES,
        &[(
            "us-states.csv",
            b"date,state,fips,cases,deaths\n2020-03-01,,53,1,0\n",
        )],
    )
    .unwrap_err();
    assert_eq!(err.to_string(), "us-states.csv line 2: state is empty");
    assert!(keyed::read(&STATES, &[]).is_err());
}

#[test]
fn a_curated_dataset_round_trips_through_parquet() {
    let file = counties_csv(&[
        "2020-04-01,New York City,New York,,5,",
        "2020-04-01,Cook,Illinois,17031,1,0",
        "2020-04-02,New York City,New York,,,1",
    ]);
    let curated = counties(&[("us-counties.csv", &file)]);
    let back = Curated::from_parquet(&COUNTIES, &curated.to_parquet().unwrap()).unwrap();
    assert!(
        back.to_frame()
            .unwrap()
            .equals_missing(&curated.to_frame().unwrap())
    );
    assert_eq!(back.keys(), 2);
    assert_eq!(
        text(back.rows_csv().unwrap()),
        text(curated.rows_csv().unwrap())
    );
    let states = "date,state,fips,cases,deaths\n2020-03-01,Illinois,17,3,0\n";
    let states = keyed::read(&STATES, &[("us-states.csv", states.as_bytes())]).unwrap();
    let err = Curated::from_parquet(&COUNTIES, &states.to_parquet().unwrap()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the curated Parquet object has no column \"county\""
    );
    assert_eq!(err.kind(), shared::events::FailureKind::CorruptObject);
    assert!(Curated::from_parquet(&COUNTIES, b"not parquet").is_err());
}
