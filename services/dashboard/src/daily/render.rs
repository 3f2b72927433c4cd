//! Writing a series as JSON (numbers as numbers, "not reported" as `null`) or as CSV (an empty
//! cell), with one column per selected field and per average.

use std::fmt::Write as _;

use serde::Serialize;
use serde::ser::{SerializeMap, SerializeSeq, Serializer};

use super::shape::{Point, Series, averaged_fields};
use super::{DailyQuery, Period};

/// The column names of the series, after `date` (and `days` when grouped).
pub fn columns(query: &DailyQuery) -> (Vec<&'static str>, Vec<String>) {
    let values = query.fields.iter().map(|f| f.name()).collect();
    let averages = match query.avg {
        Some(n) => averaged_fields(query)
            .iter()
            .map(|f| format!("{}_avg{n}", f.name()))
            .collect(),
        None => Vec::new(),
    };
    (values, averages)
}

#[derive(Serialize)]
struct Body<'a, K: Serialize> {
    env: &'a str,
    /// Which series, for a keyed dataset; nothing for `us`.
    #[serde(flatten)]
    key: K,
    from: Option<chrono::NaiveDate>,
    to: Option<chrono::NaiveDate>,
    per: &'static str,
    avg: Option<u32>,
    fields: &'a [&'static str],
    averages: &'a [String],
    count: usize,
    truncated: bool,
    rows: Rows<'a>,
}

struct Rows<'a> {
    points: &'a [Point],
    grouped: bool,
    fields: &'a [&'static str],
    averages: &'a [String],
}

impl Serialize for Rows<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut seq = serializer.serialize_seq(Some(self.points.len()))?;
        for point in self.points {
            seq.serialize_element(&Row { point, rows: self })?;
        }
        seq.end()
    }
}

struct Row<'a> {
    point: &'a Point,
    rows: &'a Rows<'a>,
}

impl Serialize for Row<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("date", &self.point.date)?;
        if self.rows.grouped {
            map.serialize_entry("days", &self.point.days)?;
        }
        for (name, value) in self.rows.fields.iter().zip(&self.point.values) {
            map.serialize_entry(name, value)?;
        }
        for (name, value) in self.rows.averages.iter().zip(&self.point.averages) {
            map.serialize_entry(name, value)?;
        }
        map.end()
    }
}

pub fn json(query: &DailyQuery, env: &str, series: &Series) -> Vec<u8> {
    json_keyed(query, env, (), series)
}

/// [`json`] for one key's series of a keyed dataset: `key`'s fields (a struct or map) follow
/// `env`.
pub fn json_keyed<K: Serialize>(query: &DailyQuery, env: &str, key: K, series: &Series) -> Vec<u8> {
    let (fields, averages) = columns(query);
    let body = Body {
        env,
        key,
        from: query.from,
        to: query.to,
        per: query.per.name(),
        avg: query.avg,
        fields: &fields,
        averages: &averages,
        count: series.points.len(),
        truncated: series.truncated,
        rows: Rows {
            points: &series.points,
            grouped: query.per != Period::Day,
            fields: &fields,
            averages: &averages,
        },
    };
    serde_json::to_vec(&body)
        .expect("the series serialises: it holds only dates, numbers and the key's strings")
}

pub fn csv(query: &DailyQuery, series: &Series) -> String {
    let (fields, averages) = columns(query);
    let grouped = query.per != Period::Day;
    let mut out =
        String::with_capacity(64 + series.points.len() * 16 * (fields.len() + averages.len() + 1));
    out.push_str("date");
    if grouped {
        out.push_str(",days");
    }
    for name in fields
        .iter()
        .copied()
        .chain(averages.iter().map(String::as_str))
    {
        out.push(',');
        out.push_str(name);
    }
    out.push('\n');
    for point in &series.points {
        let _ = write!(out, "{}", point.date);
        if grouped {
            let _ = write!(out, ",{}", point.days);
        }
        for value in &point.values {
            out.push(',');
            if let Some(v) = value {
                let _ = write!(out, "{v}");
            }
        }
        for value in &point.averages {
            out.push(',');
            if let Some(v) = value {
                let _ = write!(out, "{v}");
            }
        }
        out.push('\n');
    }
    out
}

/// A download name that says what the file holds.
pub fn csv_filename(query: &DailyQuery, series: &Series) -> String {
    match (series.points.first(), series.points.last()) {
        (Some(first), Some(last)) => {
            format!(
                "covid-us-{}-{}-to-{}.csv",
                query.per.name(),
                first.date,
                last.date
            )
        }
        _ => format!("covid-us-{}.csv", query.per.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daily::shape::shape;
    use crate::db::DailyRow;

    fn rows() -> Vec<DailyRow> {
        vec![
            DailyRow {
                date: "2020-12-13".parse().unwrap(),
                cases: 16_000_000,
                deaths: 300_000,
                recovered: Some(6_000_000),
                new_cases: Some(190_000),
                new_deaths: Some(1_400),
                new_recovered: Some(50_000),
            },
            DailyRow {
                date: "2020-12-14".parse().unwrap(),
                cases: 16_200_000,
                deaths: 301_500,
                recovered: None,
                new_cases: Some(200_000),
                new_deaths: Some(1_500),
                new_recovered: None,
            },
        ]
    }

    #[test]
    fn json_has_numbers_as_numbers_and_not_reported_as_null() {
        let q = DailyQuery::parse(Some("fields=cases,recovered,new_cases&avg=2")).unwrap();
        let body: serde_json::Value =
            serde_json::from_slice(&json(&q, "prod", &shape(&q, rows()))).unwrap();
        assert_eq!(
            body["fields"],
            serde_json::json!(["cases", "recovered", "new_cases"])
        );
        assert_eq!(body["averages"], serde_json::json!(["new_cases_avg2"]));
        assert_eq!(body["count"], 2);
        assert_eq!(
            body["rows"][1],
            serde_json::json!({
                "date": "2020-12-14", "cases": 16_200_000, "recovered": null,
                "new_cases": 200_000, "new_cases_avg2": 195_000.0
            })
        );
        assert!(
            body["rows"][0]["days"].is_null(),
            "days only appears when grouped"
        );
    }

    #[test]
    fn csv_leaves_not_reported_cells_empty() {
        let q = DailyQuery::parse(Some(
            "fields=cases,recovered,new_recovered&avg=2&format=csv",
        ))
        .unwrap();
        let series = shape(&q, rows());
        assert_eq!(
            csv(&q, &series),
            "date,cases,recovered,new_recovered,new_recovered_avg2\n\
             2020-12-13,16000000,6000000,50000,\n\
             2020-12-14,16200000,,,\n"
        );
        assert_eq!(
            csv_filename(&q, &series),
            "covid-us-day-2020-12-13-to-2020-12-14.csv"
        );
    }

    #[test]
    fn grouped_csv_has_a_days_column() {
        let q = DailyQuery::parse(Some("per=month&fields=new_deaths&format=csv")).unwrap();
        assert_eq!(
            csv(&q, &shape(&q, rows())),
            "date,days,new_deaths\n2020-12-01,2,2900\n"
        );
    }
}
