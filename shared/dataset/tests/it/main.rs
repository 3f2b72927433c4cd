//! The transform through its public API: the rules (DESIGN.md 1–5), every bad-input class
//! (rule 6 and what a broken upstream could send), what is tolerated, properties, and a golden
//! file; and the keyed datasets (`keyed`, `keyed_delta`). One test binary, so polars is linked
//! once.

mod bad_input;
mod golden;
mod keyed;
mod keyed_delta;
mod properties;
mod rules;
mod tolerated;

use chrono::NaiveDate;
use dataset::{Curated, DataError, transform};

pub const JHU_HEADER: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths";

pub fn day(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

/// An NYT file from `(date, cases, deaths)`.
pub fn nyt_csv(rows: &[(&str, i64, i64)]) -> String {
    let mut out = String::from("date,cases,deaths\n");
    for (date, cases, deaths) in rows {
        out.push_str(&format!("{date},{cases},{deaths}\n"));
    }
    out
}

/// A JHU file in the current format from `(date, country, province, recovered)`.
pub fn jhu_csv(rows: &[(&str, &str, &str, &str)]) -> String {
    let mut out = format!("{JHU_HEADER}\n");
    for (date, country, province, recovered) in rows {
        let country = if country.contains(',') {
            format!("\"{country}\"")
        } else {
            (*country).to_owned()
        };
        out.push_str(&format!("{date},{country},{province},1,{recovered},0\n"));
    }
    out
}

/// US national JHU rows from `(date, recovered)`.
pub fn us(
    rows: &[(&'static str, &'static str)],
) -> Vec<(&'static str, &'static str, &'static str, &'static str)> {
    rows.iter()
        .map(|(date, recovered)| (*date, "US", "", *recovered))
        .collect()
}

pub fn run(nyt: &str, jhu: &str) -> Curated {
    transform(nyt.as_bytes(), jhu.as_bytes())
        .unwrap_or_else(|err| panic!("transform failed: {err}"))
}

pub fn failure(nyt: &[u8], jhu: &[u8]) -> DataError {
    match transform(nyt, jhu) {
        Ok(curated) => panic!("transform succeeded with {} rows", curated.rows.len()),
        Err(err) => err,
    }
}
