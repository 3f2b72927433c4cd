//! Writing the keyed answers: the list of keys on a date as JSON or CSV (names quoted as RFC 4180
//! says where needed, "not reported" as `null` or an empty cell; with `avg=N` the columns
//! `new_cases_avgN` and `new_deaths_avgN`, named as a series' averages), a series' key for the
//! series' JSON, and download names. The series itself is written by [`crate::daily::render`].

use std::fmt::Write as _;

use chrono::NaiveDate;
use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};

use super::Dataset;
use super::query::{Key, LatestRow};
use crate::daily::DailyQuery;
use crate::daily::shape::Series;

/// What a series' JSON says about its key, after `env`.
#[derive(Debug, Serialize)]
pub struct SeriesKey<'a> {
    pub dataset: &'static str,
    pub state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub county: Option<&'a str>,
    pub fips: Option<&'a str>,
}

impl<'a> SeriesKey<'a> {
    pub fn new(dataset: Dataset, key: &'a Key) -> Self {
        Self {
            dataset: dataset.name(),
            state: &key.state,
            county: key.county.as_deref(),
            fips: key.fips.as_deref(),
        }
    }
}

/// The list of keys on one date.
pub struct Latest<'a> {
    pub dataset: Dataset,
    pub env: &'a str,
    /// The date asked for, else the rows' (the table's latest); `None` for an empty table.
    pub date: Option<NaiveDate>,
    /// Counties of this state only.
    pub state: Option<&'a str>,
    /// Days in the rows' trailing averages; `None`: the rows have none.
    pub avg: Option<u32>,
    pub rows: &'a [LatestRow],
    pub truncated: bool,
}

#[derive(Serialize)]
struct LatestBody<'a> {
    env: &'a str,
    dataset: &'static str,
    date: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<&'a str>,
    fields: [&'static str; 4],
    avg: Option<u32>,
    averages: &'a [String],
    count: usize,
    truncated: bool,
    rows: Vec<LatestItem<'a>>,
}

#[derive(Serialize)]
struct LatestItem<'a> {
    state: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    county: Option<&'a str>,
    fips: Option<&'a str>,
    cases: Option<i64>,
    deaths: Option<i64>,
    new_cases: Option<i64>,
    new_deaths: Option<i64>,
    #[serde(flatten)]
    averages: Averages<'a>,
}

/// A row's averages under their column names (nothing without `avg`).
struct Averages<'a> {
    names: &'a [String],
    values: [Option<f64>; 2],
}

impl Serialize for Averages<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.names.len()))?;
        for (name, value) in self.names.iter().zip(&self.values) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

const VALUE_COLUMNS: [&str; 4] = ["cases", "deaths", "new_cases", "new_deaths"];

impl Latest<'_> {
    /// The average columns' names: `new_cases_avgN`, `new_deaths_avgN` (none without `avg`).
    fn average_columns(&self) -> Vec<String> {
        match self.avg {
            Some(n) => vec![format!("new_cases_avg{n}"), format!("new_deaths_avg{n}")],
            None => Vec::new(),
        }
    }

    pub fn json(&self) -> Vec<u8> {
        let averages = self.average_columns();
        let body = LatestBody {
            env: self.env,
            dataset: self.dataset.name(),
            date: self.date,
            state: self.state,
            fields: VALUE_COLUMNS,
            avg: self.avg,
            averages: &averages,
            count: self.rows.len(),
            truncated: self.truncated,
            rows: self
                .rows
                .iter()
                .map(|row| LatestItem {
                    state: &row.state,
                    county: row.county.as_deref(),
                    fips: row.fips.as_deref(),
                    cases: row.cases,
                    deaths: row.deaths,
                    new_cases: row.new_cases,
                    new_deaths: row.new_deaths,
                    averages: Averages {
                        names: &averages,
                        values: [row.new_cases_avg, row.new_deaths_avg],
                    },
                })
                .collect(),
        };
        serde_json::to_vec(&body).expect("the list serialises: it holds strings, dates and numbers")
    }

    /// One line per key, with its date, so a saved file says what it holds.
    pub fn csv(&self) -> String {
        let mut out = String::with_capacity(64 + self.rows.len() * 64);
        out.push_str(match self.dataset {
            Dataset::States => "date,state,fips",
            Dataset::Counties => "date,state,county,fips",
        });
        let averages = self.average_columns();
        for name in VALUE_COLUMNS
            .iter()
            .copied()
            .chain(averages.iter().map(String::as_str))
        {
            out.push(',');
            out.push_str(name);
        }
        out.push('\n');
        for row in self.rows {
            let _ = write!(out, "{},", row.date);
            push_field(&mut out, &row.state);
            if let Some(county) = &row.county {
                out.push(',');
                push_field(&mut out, county);
            }
            out.push(',');
            push_field(&mut out, row.fips.as_deref().unwrap_or(""));
            for value in [row.cases, row.deaths, row.new_cases, row.new_deaths] {
                out.push(',');
                if let Some(v) = value {
                    let _ = write!(out, "{v}");
                }
            }
            if self.avg.is_some() {
                for value in [row.new_cases_avg, row.new_deaths_avg] {
                    out.push(',');
                    if let Some(v) = value {
                        let _ = write!(out, "{v}");
                    }
                }
            }
            out.push('\n');
        }
        out
    }

    pub fn csv_filename(&self) -> String {
        let state = self
            .state
            .map(|s| format!("-{}", slug(s)))
            .unwrap_or_default();
        let avg = self.avg.map(|n| format!("-avg{n}")).unwrap_or_default();
        match self.date {
            Some(date) => format!("covid-{}{state}-{date}{avg}.csv", self.dataset.name()),
            None => format!("covid-{}{state}-latest{avg}.csv", self.dataset.name()),
        }
    }
}

/// A download name for one key's series: `covid-counties-texas-harris-day-….csv`.
pub fn series_filename(dataset: Dataset, key: &Key, query: &DailyQuery, series: &Series) -> String {
    let mut name = format!("covid-{}-{}", dataset.name(), slug(&key.state));
    if let Some(county) = &key.county {
        let _ = write!(name, "-{}", slug(county));
    }
    let _ = write!(name, "-{}", query.per.name());
    if let (Some(first), Some(last)) = (series.points.first(), series.points.last()) {
        let _ = write!(name, "-{}-to-{}", first.date, last.date);
    }
    name.push_str(".csv");
    name
}

/// A name as a file-name part: ASCII letters and digits, lower case, runs of anything else as
/// one `-` (so it is also safe in a `Content-Disposition` header).
fn slug(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            out.push(c.to_ascii_lowercase());
        } else if !out.is_empty() && !out.ends_with('-') {
            out.push('-');
        }
    }
    let trimmed = out.trim_end_matches('-');
    if trimmed.is_empty() {
        "x".to_owned()
    } else {
        trimmed.to_owned()
    }
}

/// `value` as a CSV field: quoted (quotes doubled) when it holds a comma, a quote or a line break.
fn push_field(out: &mut String, value: &str) {
    if value.contains([',', '"', '\n', '\r']) {
        out.push('"');
        out.push_str(&value.replace('"', "\"\""));
        out.push('"');
    } else {
        out.push_str(value);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(state: &str, county: Option<&str>, fips: Option<&str>, cases: Option<i64>) -> LatestRow {
        LatestRow {
            date: "2021-01-05".parse().unwrap(),
            state: state.into(),
            county: county.map(Into::into),
            fips: fips.map(Into::into),
            cases,
            deaths: Some(1),
            new_cases: None,
            new_deaths: Some(0),
            new_cases_avg: None,
            new_deaths_avg: None,
        }
    }

    #[test]
    fn the_county_list_quotes_names_and_leaves_nulls_empty() {
        let rows = [
            row("New York", Some("New York City"), None, Some(10)),
            row("Texas", Some("A, \"B\""), Some("48999"), None),
        ];
        let latest = Latest {
            dataset: Dataset::Counties,
            env: "prod",
            date: rows[0].date.into(),
            state: None,
            avg: None,
            rows: &rows,
            truncated: false,
        };
        assert_eq!(
            latest.csv(),
            "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
             2021-01-05,New York,New York City,,10,1,,0\n\
             2021-01-05,Texas,\"A, \"\"B\"\"\",48999,,1,,0\n"
        );
        let body: serde_json::Value = serde_json::from_slice(&latest.json()).unwrap();
        assert_eq!(
            body["rows"][0],
            serde_json::json!({"state": "New York", "county": "New York City", "fips": null,
                "cases": 10, "deaths": 1, "new_cases": null, "new_deaths": 0})
        );
        assert!(body.get("state").is_none(), "no state filter, no state");
        assert_eq!(latest.csv_filename(), "covid-counties-2021-01-05.csv");
    }

    #[test]
    fn the_state_list_has_no_county_column() {
        let rows = [row("Ohio", None, Some("39"), Some(5))];
        let latest = Latest {
            dataset: Dataset::States,
            env: "prod",
            date: None,
            state: None,
            avg: None,
            rows: &rows,
            truncated: false,
        };
        assert_eq!(
            latest.csv(),
            "date,state,fips,cases,deaths,new_cases,new_deaths\n2021-01-05,Ohio,39,5,1,,0\n"
        );
        let body: serde_json::Value = serde_json::from_slice(&latest.json()).unwrap();
        assert!(body["rows"][0].get("county").is_none());
        assert_eq!(latest.csv_filename(), "covid-states-latest.csv");
    }

    #[test]
    fn averages_are_columns_named_by_their_window() {
        let mut rows = [
            row("Ohio", None, Some("39"), Some(5)),
            row("Utah", None, Some("49"), Some(6)),
        ];
        rows[0].new_cases_avg = Some(12.57);
        rows[0].new_deaths_avg = Some(0.14);
        rows[1].new_deaths_avg = Some(2.0);
        let latest = Latest {
            dataset: Dataset::States,
            env: "prod",
            date: rows[0].date.into(),
            state: None,
            avg: Some(7),
            rows: &rows,
            truncated: false,
        };
        assert_eq!(
            latest.csv(),
            "date,state,fips,cases,deaths,new_cases,new_deaths,new_cases_avg7,new_deaths_avg7\n\
             2021-01-05,Ohio,39,5,1,,0,12.57,0.14\n\
             2021-01-05,Utah,49,6,1,,0,,2\n"
        );
        let body: serde_json::Value = serde_json::from_slice(&latest.json()).unwrap();
        assert_eq!(
            (&body["avg"], &body["averages"]),
            (
                &serde_json::json!(7),
                &serde_json::json!(["new_cases_avg7", "new_deaths_avg7"])
            )
        );
        assert_eq!(
            body["rows"][1],
            serde_json::json!({"state": "Utah", "fips": "49", "cases": 6, "deaths": 1,
                "new_cases": null, "new_deaths": 0, "new_cases_avg7": null, "new_deaths_avg7": 2.0})
        );
        assert_eq!(latest.csv_filename(), "covid-states-2021-01-05-avg7.csv");
    }

    #[test]
    fn names_become_safe_file_name_parts() {
        assert_eq!(slug("New York City"), "new-york-city");
        assert_eq!(slug("Doña Ana"), "do-a-ana");
        assert_eq!(slug("St. John the Baptist"), "st-john-the-baptist");
        assert_eq!(slug("\"; x"), "x");
        assert_eq!(slug("ñ"), "x");
    }
}
