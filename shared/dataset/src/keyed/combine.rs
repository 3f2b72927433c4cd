//! From the parsed files of one version to the curated dataset: one merge walk over the files
//! (each sorted by key then date), which finds the duplicates within a file and the
//! disagreements across files, keeps each (date, key) once, and takes the per-key deltas and
//! the negative-delta warnings on the way. Linear in the rows; no sort, no hash table per row.

use chrono::NaiveDate;
use polars::prelude::*;

use super::read::{NO_FIPS, NULL_COUNT, ParsedFile};
use super::spec::{KEY_SEPARATOR, Spec};
use super::{Curated, from_days, internal};
use crate::error::{At, DataError, Overlap, Problem};
use crate::warnings::MAX_LISTED;

/// Curates the parsed files of one version, `(file name, parsed file)` in the dataset's order:
/// a (date, key) in several files is kept once when they agree. Of the duplicates and
/// disagreements, the first one in file then line order fails the read.
pub fn combine(spec: &'static Spec, files: &[(&str, &ParsedFile)]) -> Result<Curated, DataError> {
    if files.is_empty() {
        return Err(DataError::Invalid(format!(
            "the {} dataset was given no file to read",
            spec.name
        )));
    }
    if let Some((name, _)) = files.iter().find(|(_, file)| file.spec != spec) {
        return Err(DataError::Invalid(format!(
            "{name} was not read as a file of the {} dataset",
            spec.name
        )));
    }
    let keys = joint_keys(files);
    let (fips_codes, fips_ids) = joint_fips(files);
    let sides: Vec<Side> = files
        .iter()
        .zip(fips_ids)
        .map(|((_, file), fips)| Side {
            key: file.keys.iter().map(|key| rank_of(&keys, key)).collect(),
            fips,
            file,
        })
        .collect();
    let mut walk = Walk::new(spec, &keys, sides.iter().map(|s| s.file.rows()).sum());
    let mut at = vec![0usize; sides.len()];
    let mut heads: Vec<u64> = sides.iter().map(|side| side.key_day(0)).collect();
    // The file with the smallest (key, date) next; on a tie the earlier file, so rows of one
    // (key, date) come in file then line order.
    while let Some(file) = (0..heads.len())
        .filter(|&f| heads[f] != u64::MAX)
        .min_by_key(|&f| (heads[f], f))
    {
        // It goes on while it stays first: below every earlier file's next row, and not above
        // any later file's (a key's rows of one file are one long run, so this loop is where the
        // walk spends its time).
        let before = heads[..file].iter().copied().min().unwrap_or(u64::MAX);
        let after = heads[file + 1..].iter().copied().min().unwrap_or(u64::MAX);
        let side = &sides[file];
        let mut row = at[file];
        let mut head = heads[file];
        while head != u64::MAX && head < before && head <= after {
            walk.take(Row {
                key_day: head,
                file: file as u32,
                line: side.file.line[row],
                fips: match side.file.fips[row] {
                    NO_FIPS => NO_FIPS,
                    id => side.fips[id as usize],
                },
                cases: side.file.cases[row],
                deaths: side.file.deaths[row],
            });
            row += 1;
            head = side.key_day(row);
        }
        (at[file], heads[file]) = (row, head);
    }
    if let Some(conflict) = walk.conflict {
        let names: Vec<&str> = files.iter().map(|(name, _)| *name).collect();
        return Err(conflict.error(spec, &keys, &fips_codes, &names));
    }
    let warnings = walk.negative.sentences();
    let rows = walk.out.finish().map_err(internal)?;
    Ok(Curated {
        spec,
        rows,
        keys,
        fips_codes,
        warnings,
    })
}

/// The distinct keys of all files, in text order.
fn joint_keys(files: &[(&str, &ParsedFile)]) -> Vec<String> {
    let mut keys: Vec<&str> = files
        .iter()
        .flat_map(|(_, file)| file.keys.iter().map(String::as_str))
        .collect();
    keys.sort_unstable();
    keys.dedup();
    keys.into_iter().map(str::to_owned).collect()
}

/// `key`'s rank in `keys` (which holds it).
fn rank_of(keys: &[String], key: &str) -> u32 {
    keys.binary_search_by(|probe| probe.as_str().cmp(key))
        .unwrap_or(0) as u32
}

/// The distinct fips codes of all files (first seen first), and each file's ids into them.
fn joint_fips(files: &[(&str, &ParsedFile)]) -> (Vec<String>, Vec<Vec<u32>>) {
    let mut ids = std::collections::HashMap::new();
    let mut codes = Vec::new();
    let per_file = files
        .iter()
        .map(|(_, file)| {
            file.fips_codes
                .iter()
                .map(|code| {
                    *ids.entry(code.as_str()).or_insert_with(|| {
                        codes.push(code.clone());
                        (codes.len() - 1) as u32
                    })
                })
                .collect()
        })
        .collect();
    (codes, per_file)
}

/// One file in the walk, its keys and fips codes numbered as in the whole version.
struct Side<'a> {
    file: &'a ParsedFile,
    key: Vec<u32>,
    fips: Vec<u32>,
}

impl Side<'_> {
    /// The sortable (key, date) of `row`, [`u64::MAX`] past the last row.
    fn key_day(&self, row: usize) -> u64 {
        match self.file.key.get(row) {
            Some(&key) => key_day(self.key[key as usize], self.file.day[row]),
            None => u64::MAX,
        }
    }
}

/// One number per (key, date) that sorts as the pair: the key's rank in the high 32 bits, the
/// day (shifted to be non-negative) in the low 32.
pub(crate) fn key_day(rank: u32, day: i32) -> u64 {
    (u64::from(rank) << 32) | u64::from((day as u32) ^ (1 << 31))
}

fn rank_and_day(key_day: u64) -> (u32, i32) {
    (
        (key_day >> 32) as u32,
        ((key_day as u32) ^ (1 << 31)) as i32,
    )
}

/// One row as the walk meets it; fips in the joint numbering.
#[derive(Clone, Copy)]
struct Row {
    key_day: u64,
    file: u32,
    line: u32,
    fips: u32,
    cases: i64,
    deaths: i64,
}

/// The state of the merge walk: the previous row met, the first conflict, the curated rows.
struct Walk<'a> {
    previous: Option<Row>,
    /// The previous row kept: the base of the per-key deltas.
    kept: Option<Row>,
    conflict: Option<Conflict>,
    out: Columns,
    negative: Negative<'a>,
}

impl<'a> Walk<'a> {
    fn new(spec: &'a Spec, keys: &'a [String], rows: usize) -> Self {
        Walk {
            previous: None,
            kept: None,
            conflict: None,
            out: Columns::with_capacity(rows),
            negative: Negative::new(spec, keys),
        }
    }

    fn take(&mut self, row: Row) {
        let previous = self.previous.replace(row);
        match previous {
            // A row equal in (key, date) to the one before it is a duplicate within its file, or
            // the same row in a later file, which must agree on every value.
            Some(before) if before.key_day == row.key_day => {
                let bad = before.file == row.file
                    || before.fips != row.fips
                    || before.cases != row.cases
                    || before.deaths != row.deaths;
                let first = self
                    .conflict
                    .as_ref()
                    .is_none_or(|c| (row.file, row.line) < (c.row.file, c.row.line));
                if bad && first {
                    self.conflict = Some(Conflict { row, before });
                }
            }
            _ => self.keep(row),
        }
    }

    fn keep(&mut self, row: Row) {
        let (rank, day) = rank_and_day(row.key_day);
        let same_key = self
            .kept
            .is_some_and(|kept| rank_and_day(kept.key_day).0 == rank);
        let delta = |now: i64, before: Option<i64>| -> Option<i64> {
            let now = (now != NULL_COUNT).then_some(now)?;
            match before {
                None => Some(now),
                Some(NULL_COUNT) => None,
                Some(before) => Some(now - before),
            }
        };
        let kept = self.kept.filter(|_| same_key);
        let new_cases = delta(row.cases, kept.map(|k| k.cases));
        let new_deaths = delta(row.deaths, kept.map(|k| k.deaths));
        if let Some(kept) = kept {
            let before_day = rank_and_day(kept.key_day).1;
            for (field, delta, now, before) in [
                ("cases", new_cases, row.cases, kept.cases),
                ("deaths", new_deaths, row.deaths, kept.deaths),
            ] {
                if let Some(delta) = delta.filter(|d| *d < 0) {
                    self.negative
                        .add(field, delta, rank, (before_day, before), (day, now));
                }
            }
        }
        self.out.push(rank, day, row, new_cases, new_deaths);
        self.kept = Some(row);
    }
}

/// The curated rows' columns, as they are built: plain vectors with sentinels for NULL (no
/// validity bit to keep per push), made nullable columns once at the end.
struct Columns {
    key: Vec<u32>,
    day: Vec<i32>,
    /// [`NO_FIPS`] when empty.
    fips: Vec<u32>,
    /// [`NULL_COUNT`] when not reported.
    cases: Vec<i64>,
    deaths: Vec<i64>,
    /// [`NO_DELTA`] when NULL.
    new_cases: Vec<i64>,
    new_deaths: Vec<i64>,
}

/// A NULL delta while the columns are built: a delta of two non-negative counts is above it.
const NO_DELTA: i64 = i64::MIN;

impl Columns {
    fn with_capacity(rows: usize) -> Self {
        Columns {
            key: Vec::with_capacity(rows),
            day: Vec::with_capacity(rows),
            fips: Vec::with_capacity(rows),
            cases: Vec::with_capacity(rows),
            deaths: Vec::with_capacity(rows),
            new_cases: Vec::with_capacity(rows),
            new_deaths: Vec::with_capacity(rows),
        }
    }

    fn push(
        &mut self,
        rank: u32,
        day: i32,
        row: Row,
        new_cases: Option<i64>,
        new_deaths: Option<i64>,
    ) {
        self.key.push(rank);
        self.day.push(day);
        self.fips.push(row.fips);
        self.cases.push(row.cases);
        self.deaths.push(row.deaths);
        self.new_cases.push(new_cases.unwrap_or(NO_DELTA));
        self.new_deaths.push(new_deaths.unwrap_or(NO_DELTA));
    }

    /// The internal frame of [`Curated`]: `key`, `date`, `fips`, `cases`, `deaths`,
    /// `new_cases`, `new_deaths`.
    fn finish(self) -> PolarsResult<DataFrame> {
        let date = Int32Chunked::from_vec("date".into(), self.day)
            .into_series()
            .cast(&DataType::Date)?;
        DataFrame::new_infer_height(vec![
            Column::from(UInt32Chunked::from_vec("key".into(), self.key).into_series()),
            Column::from(date),
            nullable::<UInt32Type>("fips", self.fips, NO_FIPS),
            nullable::<Int64Type>("cases", self.cases, NULL_COUNT),
            nullable::<Int64Type>("deaths", self.deaths, NULL_COUNT),
            nullable::<Int64Type>("new_cases", self.new_cases, NO_DELTA),
            nullable::<Int64Type>("new_deaths", self.new_deaths, NO_DELTA),
        ])
    }
}

/// A column of `values`, NULL where a value is `null`.
fn nullable<T: PolarsNumericType>(name: &str, values: Vec<T::Native>, null: T::Native) -> Column {
    let column: ChunkedArray<T> = values
        .into_iter()
        .map(|value| (value != null).then_some(value))
        .collect();
    Column::from(column.with_name(name.into()).into_series())
}

/// The key's values for a message, from its rank.
pub(crate) fn describe(spec: &Spec, keys: &[String], rank: u32) -> String {
    let key = keys.get(rank as usize).map_or("", String::as_str);
    spec.describe_key(key.split(KEY_SEPARATOR))
}

/// The first bad row in file then line order (a duplicate within a file, or a disagreement),
/// and the row met before it.
struct Conflict {
    row: Row,
    before: Row,
}

impl Conflict {
    fn error(
        &self,
        spec: &Spec,
        keys: &[String],
        fips_codes: &[String],
        names: &[&str],
    ) -> DataError {
        let (row, before) = (&self.row, &self.before);
        let name = |file: u32| names.get(file as usize).copied().unwrap_or("?").to_owned();
        let (rank, day) = rank_and_day(row.key_day);
        let date = from_days(day).unwrap_or_default();
        let key = describe(spec, keys, rank);
        if row.file == before.file {
            return DataError::File {
                file: name(row.file),
                at: At::Line(row.line as usize),
                problem: Problem::DuplicateKey {
                    key,
                    date,
                    first_line: before.line as usize,
                },
            };
        }
        let code = |id: u32| match fips_codes.get(id as usize) {
            Some(code) => format!("{code:?}"),
            None => "empty".to_owned(),
        };
        let count = |value: i64| match value {
            NULL_COUNT => "empty".to_owned(),
            value => value.to_string(),
        };
        let what = if row.fips != before.fips {
            ("fips", code(row.fips), code(before.fips))
        } else if row.cases != before.cases {
            ("cases", count(row.cases), count(before.cases))
        } else {
            ("deaths", count(row.deaths), count(before.deaths))
        };
        DataError::Overlap(Box::new(Overlap {
            first: name(before.file),
            first_line: before.line as usize,
            second: name(row.file),
            second_line: row.line as usize,
            date,
            key,
            what: format!("{} is {} here but {} there", what.0, what.1, what.2),
        }))
    }
}

/// A falling cumulative count is an upstream correction: kept, and reported one sentence each
/// for the first [`MAX_LISTED`] (in key then date order), the rest in one summary sentence.
struct Negative<'a> {
    spec: &'a Spec,
    keys: &'a [String],
    listed: Vec<String>,
    /// Not listed, of `new_cases` and of `new_deaths`.
    unlisted: [usize; 2],
    latest: Option<NaiveDate>,
}

impl<'a> Negative<'a> {
    fn new(spec: &'a Spec, keys: &'a [String]) -> Self {
        Negative {
            spec,
            keys,
            listed: Vec::new(),
            unlisted: [0; 2],
            latest: None,
        }
    }

    /// A negative `delta` of `field` for key `rank`, from `(day, count)` `before` to `now`.
    fn add(&mut self, field: &str, delta: i64, rank: u32, before: (i32, i64), now: (i32, i64)) {
        let date = from_days(now.0).unwrap_or_default();
        if self.listed.len() < MAX_LISTED {
            let before_date = from_days(before.0).unwrap_or_default();
            let which = describe(self.spec, self.keys, rank);
            let (before, now) = (before.1, now.1);
            self.listed.push(format!(
                "new_{field} is {delta} on {date} for {which} ({field} fell from {before} on {before_date} to {now})"
            ));
        } else {
            self.unlisted[usize::from(field == "deaths")] += 1;
            self.latest = self.latest.max(Some(date));
        }
    }

    fn sentences(self) -> Vec<String> {
        let mut listed = self.listed;
        let total: usize = self.unlisted.iter().sum();
        if let Some(latest) = self.latest {
            let per_field: Vec<String> = ["cases", "deaths"]
                .into_iter()
                .zip(self.unlisted)
                .filter(|(_, n)| *n > 0)
                .map(|(field, n)| format!("new_{field} {n}"))
                .collect();
            listed.push(format!(
                "{total} more negative daily {} not listed ({}), the latest on {latest}",
                if total == 1 { "delta" } else { "deltas" },
                per_field.join(", ")
            ));
        }
        listed
    }
}
