//! From the rows of every file to the curated frame, in polars: the sort by (key, date), the
//! duplicate and overlap checks, the per-key deltas and the negative-delta warnings.

use chrono::NaiveDate;
use polars::prelude::*;

use super::read::Raw;
use super::spec::{KEY_SEPARATOR, Spec};
use super::{Curated, from_days, internal};
use crate::error::{At, DataError, Overlap, Problem};
use crate::warnings::MAX_LISTED;

/// One sortable number per (key, date): the key's rank in the high 32 bits, the day (shifted
/// to be non-negative) in the low 32. `key` is a rank, so the order is the key's text order.
pub(crate) fn key_day(key: &str, date: &str) -> Expr {
    (col(key).cast(DataType::UInt64) * lit(1u64 << 32))
        + (col(date).cast(DataType::Int64) + lit(1i64 << 31)).cast(DataType::UInt64)
}

fn prev(name: &str) -> Expr {
    col(name).shift(lit(1))
}

/// Sorts, checks and curates the rows of `raw`; `names` are the file names, by index.
pub(crate) fn curate(spec: &'static Spec, raw: Raw, names: &[&str]) -> Result<Curated, DataError> {
    let Raw {
        keys,
        fips_codes,
        mut key,
        day,
        file,
        line,
        fips,
        cases,
        deaths,
        ..
    } = raw;
    // Key ids in first-seen order become ranks in text order, so sorting by rank sorts by key.
    let mut order: Vec<usize> = (0..keys.len()).collect();
    order.sort_unstable_by(|&a, &b| keys[a].cmp(&keys[b]));
    let mut rank = vec![0u32; keys.len()];
    for (position, &id) in order.iter().enumerate() {
        rank[id] = u32::try_from(position).unwrap_or(u32::MAX);
    }
    for id in &mut key {
        *id = rank[*id as usize];
    }
    let mut keys = keys;
    let keys: Vec<String> = order
        .iter()
        .map(|&id| std::mem::take(&mut keys[id]))
        .collect();

    let frame = DataFrame::new_infer_height(vec![
        Column::from(UInt32Chunked::from_vec("key".into(), key).into_series()),
        Column::from(Int32Chunked::from_vec("day".into(), day).into_series()),
        Column::from(UInt32Chunked::from_vec("file".into(), file).into_series()),
        Column::from(UInt32Chunked::from_vec("line".into(), line).into_series()),
        Column::from(fips.finish().into_series()),
        Column::from(cases.finish().into_series()),
        Column::from(deaths.finish().into_series()),
    ])
    .map_err(internal)?;

    // A row equal in (key, date) to the one before it is a duplicate within its file, or the
    // same row in a later file, which must agree on every value. The sort is stable, so rows
    // of one (key, date) stay in file order, then line order.
    let same = col("kd").eq(prev("kd")).fill_null(lit(false));
    let differs = col("file")
        .eq(prev("file"))
        .or(col("fips").neq_missing(prev("fips")))
        .or(col("cases").neq_missing(prev("cases")))
        .or(col("deaths").neq_missing(prev("deaths")));
    let sorted = frame
        .lazy()
        .with_column(key_day("key", "day").alias("kd"))
        .sort(
            ["kd"],
            SortMultipleOptions::default().with_maintain_order(true),
        )
        .with_columns([same.clone().alias("same"), same.and(differs).alias("bad")])
        .collect()
        .map_err(internal)?;
    let bad = sorted.column("bad").and_then(|c| c.bool().cloned());
    if bad.map_err(internal)?.any() {
        return Err(conflict(spec, &sorted, &keys, &fips_codes, names));
    }

    let delta = |name: &str| {
        when(col("key").eq(prev("key")))
            .then(col(name) - prev(name))
            .otherwise(col(name))
            .alias(format!("new_{name}"))
    };
    let curated = sorted
        .lazy()
        .filter(col("same").not())
        .select([
            col("key"),
            col("day"),
            col("fips"),
            col("cases"),
            col("deaths"),
            delta("cases"),
            delta("deaths"),
        ])
        .collect()
        .map_err(internal)?;
    let warnings = negative_deltas(spec, &curated, &keys).map_err(internal)?;
    let rows = curated
        .lazy()
        .select([
            col("key"),
            col("day").cast(DataType::Date).alias("date"),
            col("fips"),
            col("cases"),
            col("deaths"),
            col("new_cases"),
            col("new_deaths"),
        ])
        .collect()
        .map_err(internal)?;
    Ok(Curated {
        spec,
        rows,
        keys,
        fips_codes,
        warnings,
    })
}

/// The key's values for a message, from its rank.
pub(crate) fn describe(spec: &Spec, keys: &[String], rank: u32) -> String {
    let key = keys.get(rank as usize).map_or("", String::as_str);
    spec.describe_key(key.split(KEY_SEPARATOR))
}

/// The first bad row in file then line order: a duplicate within a file, or a disagreement.
fn conflict(
    spec: &Spec,
    sorted: &DataFrame,
    keys: &[String],
    fips_codes: &[String],
    names: &[&str],
) -> DataError {
    let first = sorted
        .clone()
        .lazy()
        .with_columns([
            prev("file").alias("prev_file"),
            prev("line").alias("prev_line"),
            prev("fips").alias("prev_fips"),
            prev("cases").alias("prev_cases"),
            prev("deaths").alias("prev_deaths"),
        ])
        .filter(col("bad"))
        .sort(["file", "line"], SortMultipleOptions::default())
        .limit(1)
        .collect();
    match first.and_then(|row| Conflict::of(&row)) {
        Ok(row) => row.error(spec, keys, fips_codes, names),
        Err(err) => internal(err),
    }
}

/// The values of one conflicting row and of the row before it.
struct Conflict {
    key: u32,
    day: i32,
    file: u32,
    line: u32,
    prev_file: u32,
    prev_line: u32,
    fips: [Option<u32>; 2],
    cases: [Option<i64>; 2],
    deaths: [Option<i64>; 2],
}

impl Conflict {
    fn of(row: &DataFrame) -> PolarsResult<Self> {
        let u32_at =
            |name: &str| -> PolarsResult<Option<u32>> { Ok(row.column(name)?.u32()?.get(0)) };
        let i64_at =
            |name: &str| -> PolarsResult<Option<i64>> { Ok(row.column(name)?.i64()?.get(0)) };
        let missing = || PolarsError::ComputeError("a conflicting row lacks its position".into());
        Ok(Conflict {
            key: u32_at("key")?.ok_or_else(missing)?,
            day: row.column("day")?.i32()?.get(0).ok_or_else(missing)?,
            file: u32_at("file")?.ok_or_else(missing)?,
            line: u32_at("line")?.ok_or_else(missing)?,
            prev_file: u32_at("prev_file")?.ok_or_else(missing)?,
            prev_line: u32_at("prev_line")?.ok_or_else(missing)?,
            fips: [u32_at("fips")?, u32_at("prev_fips")?],
            cases: [i64_at("cases")?, i64_at("prev_cases")?],
            deaths: [i64_at("deaths")?, i64_at("prev_deaths")?],
        })
    }

    fn error(
        &self,
        spec: &Spec,
        keys: &[String],
        fips_codes: &[String],
        names: &[&str],
    ) -> DataError {
        let name = |file: u32| names.get(file as usize).copied().unwrap_or("?").to_owned();
        let date = from_days(self.day).unwrap_or_default();
        let key = describe(spec, keys, self.key);
        if self.file == self.prev_file {
            return DataError::File {
                file: name(self.file),
                at: At::Line(self.line as usize),
                problem: Problem::DuplicateKey {
                    key,
                    date,
                    first_line: self.prev_line as usize,
                },
            };
        }
        let code = |id: Option<u32>| match id.and_then(|id| fips_codes.get(id as usize)) {
            Some(code) => format!("{code:?}"),
            None => "empty".to_owned(),
        };
        let count = |value: Option<i64>| value.map_or("empty".to_owned(), |v| v.to_string());
        let what = if self.fips[0] != self.fips[1] {
            ("fips", code(self.fips[0]), code(self.fips[1]))
        } else if self.cases[0] != self.cases[1] {
            ("cases", count(self.cases[0]), count(self.cases[1]))
        } else {
            ("deaths", count(self.deaths[0]), count(self.deaths[1]))
        };
        DataError::Overlap(Box::new(Overlap {
            first: name(self.prev_file),
            first_line: self.prev_line as usize,
            second: name(self.file),
            second_line: self.line as usize,
            date,
            key,
            what: format!("{} is {} here but {} there", what.0, what.1, what.2),
        }))
    }
}

/// A falling cumulative count is an upstream correction: kept, and reported one sentence each
/// for the first [`MAX_LISTED`] (in key then date order), the rest in one summary sentence.
fn negative_deltas(spec: &Spec, curated: &DataFrame, keys: &[String]) -> PolarsResult<Vec<String>> {
    let negative = curated
        .clone()
        .lazy()
        .with_columns([
            prev("day").alias("prev_day"),
            prev("cases").alias("prev_cases"),
            prev("deaths").alias("prev_deaths"),
        ])
        .filter(
            col("new_cases")
                .lt(lit(0i64))
                .or(col("new_deaths").lt(lit(0i64))),
        )
        .collect()?;
    let key = negative.column("key")?.u32()?;
    let (day, prev_day) = (
        negative.column("day")?.i32()?,
        negative.column("prev_day")?.i32()?,
    );
    let mut listed = Vec::new();
    let mut unlisted = [0usize; 2];
    let mut latest: Option<NaiveDate> = None;
    let fields = ["cases", "deaths"];
    let mut columns = Vec::new();
    for field in fields {
        columns.push([
            negative.column(&format!("new_{field}"))?.i64()?,
            negative.column(field)?.i64()?,
            negative.column(&format!("prev_{field}"))?.i64()?,
        ]);
    }
    for i in 0..negative.height() {
        for (slot, (field, [delta, now, before])) in fields.iter().zip(&columns).enumerate() {
            let (Some(delta), Some(now), Some(before)) = (delta.get(i), now.get(i), before.get(i))
            else {
                continue;
            };
            if delta >= 0 {
                continue;
            }
            let date = day.get(i).and_then(from_days).unwrap_or_default();
            if listed.len() < MAX_LISTED {
                let before_date = prev_day.get(i).and_then(from_days).unwrap_or_default();
                let which = describe(spec, keys, key.get(i).unwrap_or(0));
                listed.push(format!(
                    "new_{field} is {delta} on {date} for {which} ({field} fell from {before} on {before_date} to {now})"
                ));
            } else {
                unlisted[slot] += 1;
                latest = latest.max(Some(date));
            }
        }
    }
    let total: usize = unlisted.iter().sum();
    if let Some(latest) = latest {
        let per_field: Vec<String> = ["cases", "deaths"]
            .into_iter()
            .zip(unlisted)
            .filter(|(_, n)| *n > 0)
            .map(|(field, n)| format!("new_{field} {n}"))
            .collect();
        listed.push(format!(
            "{total} more negative daily {} not listed ({}), the latest on {latest}",
            if total == 1 { "delta" } else { "deltas" },
            per_field.join(", ")
        ));
    }
    Ok(listed)
}
