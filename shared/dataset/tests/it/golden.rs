//! The transform on a small, realistic pair of files in the real formats (NYT `us.csv`; JHU
//! `time-series-19-covid-combined.csv` around JHU's stop of US recoveries on 2020-12-14), against
//! an expected `us_daily` computed independently (tests/fixtures/expected_us_daily.csv).

use dataset::{DailyRow, transform};

use crate::day;

const NYT: &[u8] = include_bytes!("../fixtures/nyt_us.csv");
const JHU: &[u8] = include_bytes!("../fixtures/jhu_combined.csv");
const EXPECTED: &str = include_str!("../fixtures/expected_us_daily.csv");

fn render(rows: &[DailyRow]) -> String {
    let cell = |v: Option<i64>| v.map_or(String::new(), |v| v.to_string());
    let mut out = String::from("date,cases,deaths,recovered,new_cases,new_deaths,new_recovered\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            r.date,
            r.cases,
            r.deaths,
            cell(r.recovered),
            cell(r.new_cases),
            cell(r.new_deaths),
            cell(r.new_recovered)
        ));
    }
    out
}

#[test]
fn the_realistic_fixture_gives_the_expected_us_daily_table() {
    let curated = transform(NYT, JHU).unwrap();
    assert_eq!(render(&curated.rows), EXPECTED);
    assert_eq!(curated.dropped.only_nyt, 1);
    assert_eq!(curated.dropped.only_nyt_dates, vec![day("2020-12-18")]);
    assert_eq!(curated.dropped.only_jhu, 1);
    assert_eq!(curated.dropped.only_jhu_dates, vec![day("2020-12-04")]);
    assert_eq!(
        curated.warnings,
        vec!["new_deaths is -7 on 2020-12-11 (deaths fell from 293027 on 2020-12-10 to 293020)"]
    );
}

#[test]
fn the_realistic_fixture_round_trips_through_parquet() {
    let curated = transform(NYT, JHU).unwrap();
    let bytes = dataset::to_parquet(&curated.rows).unwrap();
    assert_eq!(dataset::from_parquet(&bytes).unwrap(), curated.rows);
}
