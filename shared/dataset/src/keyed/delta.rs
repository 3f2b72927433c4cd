//! What a new version of a keyed dataset changes against its base (keyed-contract.md, "The
//! delta"): both versions are sorted by key then date, so one merge walk over both pairs their
//! rows and compares each pair NULL-aware as it goes — linear, no hash table, and nothing held
//! but the indices of the rows that differ; polars then gathers those rows into the frames.

use std::borrow::Cow;
use std::cmp::Ordering;

use polars::prelude::*;
use shared::events::Counts;

use super::combine::key_day;
use super::spec::Spec;
use super::{Curated, copy_csv, internal};
use crate::error::{DataError, Share};

/// The rows a new version inserts or changes, the (date, key) pairs it removes, the upstream
/// values it revises, and the counts (DESIGN's "Counting", per (date, key)).
#[derive(Debug, Clone)]
pub struct Delta {
    spec: &'static Spec,
    /// New or changed rows, in the columns of [`Spec::row_columns`], by key then date.
    pub rows: DataFrame,
    /// (date, key) pairs of the base missing from the new version: [`Spec::removed_columns`].
    pub removed: DataFrame,
    /// One line per revised cases/deaths value: [`Spec::changes_columns`].
    pub changes: DataFrame,
    pub counts: Counts,
}

impl Delta {
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// True when applying the delta changes nothing.
    pub fn is_empty(&self) -> bool {
        self.rows.height() == 0 && self.removed.height() == 0
    }

    /// `date,<key>,fips,cases,deaths,new_cases,new_deaths`
    pub fn rows_csv(&self) -> Result<Vec<u8>, DataError> {
        copy_csv::write(&self.rows)
    }

    /// `date,<key>`
    pub fn removed_csv(&self) -> Result<Vec<u8>, DataError> {
        copy_csv::write(&self.removed)
    }

    /// `date,<key>,field,old_value,new_value`
    pub fn changes_csv(&self) -> Result<Vec<u8>, DataError> {
        copy_csv::write(&self.changes)
    }
}

/// The delta from `base` (the previous curated version; `None` when there is none, which makes
/// every row inserted) to `next`.
pub fn delta(base: Option<&Curated>, next: &Curated) -> Result<Delta, DataError> {
    let spec = next.spec;
    let Some(base) = base else {
        let none = next.public(&next.rows.clear()).map_err(internal)?;
        return Ok(Delta {
            spec,
            rows: next.to_frame()?,
            removed: empty(&spec.removed_columns(), &none).map_err(internal)?,
            changes: no_changes(spec, &none).map_err(internal)?,
            counts: Counts {
                inserted: next.rows() as u64,
                ..Counts::default()
            },
        });
    };
    if base.spec != spec {
        return Err(DataError::Invalid(format!(
            "a {} dataset cannot be the base of a {} dataset",
            base.spec.name, spec.name
        )));
    }
    compare(base, next).map_err(internal)
}

fn compare(base: &Curated, next: &Curated) -> PolarsResult<Delta> {
    let spec = next.spec;
    // Keys and fips codes numbered over both versions, keys in text order, so one number names
    // one key (or code) on both sides and the walk's (key, date) order is both sides' order.
    let keys = joint(&base.keys, &next.keys);
    let codes = joint(&base.fips_codes, &next.fips_codes);
    let (old_side, new_side) = (
        Side::of(base, &keys, &codes)?,
        Side::of(next, &keys, &codes)?,
    );
    let (old_row, new_row) = (old_side.reader(), new_side.reader());
    let (mut old, mut new) = (old_row(0), new_row(0));
    let mut pairs = Pairs::default();
    loop {
        match (&old, &new) {
            (None, None) => break,
            (Some(row), None) => {
                pairs.remove(row);
                old = old_row(row.at as usize + 1);
            }
            (None, Some(row)) => {
                pairs.insert(row);
                new = new_row(row.at as usize + 1);
            }
            (Some(o), Some(n)) => match o.key_day.cmp(&n.key_day) {
                Ordering::Less => {
                    pairs.remove(o);
                    old = old_row(o.at as usize + 1);
                }
                Ordering::Greater => {
                    pairs.insert(n);
                    new = new_row(n.at as usize + 1);
                }
                Ordering::Equal => {
                    pairs.compare(o, n);
                    old = old_row(o.at as usize + 1);
                    new = new_row(n.at as usize + 1);
                }
            },
        }
    }
    let Pairs {
        rows,
        removed,
        changes,
        counts,
    } = pairs;
    let take = |at: Vec<IdxSize>| IdxCa::from_vec("at".into(), at);
    Ok(Delta {
        spec,
        rows: next.public(&next.rows.take(&take(rows))?)?,
        removed: base
            .public(&base.rows.take(&take(removed))?)?
            .select(spec.removed_columns())?,
        changes: changes.frame(spec, next)?,
        counts,
    })
}

/// The distinct values of both sides, sorted.
fn joint<'a>(base: &'a [String], next: &'a [String]) -> Vec<&'a str> {
    let mut joint: Vec<&str> = base.iter().chain(next).map(String::as_str).collect();
    joint.sort_unstable();
    joint.dedup();
    joint
}

/// Each of `values`' index into `joint` (which holds them all).
fn to_joint(values: &[String], joint: &[&str]) -> Vec<u32> {
    values
        .iter()
        .map(|value| joint.binary_search(&value.as_str()).unwrap_or(0) as u32)
        .collect()
}

/// One row of one side, keys and fips codes in the joint numbering.
#[derive(Clone, Copy)]
struct Row {
    /// Its index in its side's rows.
    at: IdxSize,
    key_day: u64,
    fips: Option<u32>,
    /// `cases`, `deaths`, `new_cases`, `new_deaths`.
    values: [Option<i64>; 4],
}

/// One side's columns, each in one chunk, so that the walk reads a row by its index.
struct Side<'a> {
    key: Cow<'a, UInt32Chunked>,
    day: Cow<'a, Int32Chunked>,
    fips: Cow<'a, UInt32Chunked>,
    /// `cases`, `deaths`, `new_cases`, `new_deaths`.
    values: [Cow<'a, Int64Chunked>; 4],
    /// Each key rank and fips id of this side in the joint numbering.
    key_ids: Vec<u32>,
    fips_ids: Vec<u32>,
}

impl<'a> Side<'a> {
    fn of(side: &'a Curated, keys: &[&str], codes: &[&str]) -> PolarsResult<Self> {
        let column = |name: &str| side.rows.column(name);
        let i64s = |name: &str| -> PolarsResult<_> { Ok(column(name)?.i64()?.rechunk()) };
        Ok(Side {
            key: column("key")?.u32()?.rechunk(),
            day: column("date")?.date()?.phys.rechunk(),
            fips: column("fips")?.u32()?.rechunk(),
            values: [
                i64s("cases")?,
                i64s("deaths")?,
                i64s("new_cases")?,
                i64s("new_deaths")?,
            ],
            key_ids: to_joint(&side.keys, keys),
            fips_ids: to_joint(&side.fips_codes, codes),
        })
    }

    /// Reads the row at an index, `None` past the last one: straight from the columns' one
    /// array each (a `ChunkedArray::get` per value would find the chunk every time).
    fn reader(&self) -> impl Fn(usize) -> Option<Row> + '_ {
        let (key, day, fips) = (values(&self.key), values(&self.day), nullable(&self.fips));
        let counts = self.values.each_ref().map(|column| nullable(column));
        move |at| {
            let rank = *key.get(at)?;
            Some(Row {
                at: at as IdxSize,
                key_day: key_day(self.key_ids[rank as usize], day[at]),
                fips: fips(at).map(|id| self.fips_ids[id as usize]),
                values: counts.each_ref().map(|count| count(at)),
            })
        }
    }
}

/// The values of a column without NULLs (a key, a date), in one chunk.
fn values<T: PolarsNumericType>(column: &ChunkedArray<T>) -> &[T::Native] {
    column.downcast_as_array().values().as_slice()
}

/// The value at an index of a column in one chunk, `None` when NULL.
fn nullable<T: PolarsNumericType>(
    column: &ChunkedArray<T>,
) -> impl Fn(usize) -> Option<T::Native> + '_ {
    let array = column.downcast_as_array();
    let (values, validity) = (array.values().as_slice(), array.validity());
    move |at| match validity {
        Some(validity) if !validity.get_bit(at) => None,
        _ => Some(values[at]),
    }
}

/// What the walk finds: the new version's inserted or changed rows and the base's removed
/// rows (each in its side's order), the revised values, the counts.
#[derive(Default)]
struct Pairs {
    rows: Vec<IdxSize>,
    removed: Vec<IdxSize>,
    changes: Changes,
    counts: Counts,
}

impl Pairs {
    /// A row of the new version only.
    fn insert(&mut self, row: &Row) {
        self.counts.inserted += 1;
        self.rows.push(row.at);
    }

    /// A row of the base only.
    fn remove(&mut self, row: &Row) {
        self.counts.removed += 1;
        self.removed.push(row.at);
    }

    /// A (date, key) in both versions: changed when any value differs (NULL-aware); each
    /// differing `cases` or `deaths` is one change line, `cases` first.
    fn compare(&mut self, old: &Row, new: &Row) {
        let changed = old.fips != new.fips || old.values != new.values;
        if !changed {
            self.counts.unchanged += 1;
            return;
        }
        self.counts.updated += 1;
        self.rows.push(new.at);
        let mut revised = false;
        for (field, index) in [("cases", 0), ("deaths", 1)] {
            if old.values[index] != new.values[index] {
                revised = true;
                self.changes
                    .push(new.at, field, old.values[index], new.values[index]);
            }
        }
        self.counts.revised += u64::from(revised);
    }
}

/// One line per revised value, by the new version's row then field.
#[derive(Default)]
struct Changes {
    at: Vec<IdxSize>,
    field: Vec<&'static str>,
    old_value: Vec<Option<i64>>,
    new_value: Vec<Option<i64>>,
}

impl Changes {
    fn push(&mut self, at: IdxSize, field: &'static str, old: Option<i64>, new: Option<i64>) {
        self.at.push(at);
        self.field.push(field);
        self.old_value.push(old);
        self.new_value.push(new);
    }

    /// `date,<key>` of each changed row, then `field,old_value,new_value`.
    fn frame(self, spec: &Spec, next: &Curated) -> PolarsResult<DataFrame> {
        let at = IdxCa::from_vec("at".into(), self.at);
        let mut frame = next
            .public(&next.rows.take(&at)?)?
            .select(spec.removed_columns())?;
        frame.with_column(Column::new("field".into(), self.field))?;
        frame.with_column(Column::new("old_value".into(), self.old_value))?;
        frame.with_column(Column::new("new_value".into(), self.new_value))?;
        Ok(frame)
    }
}

/// No rows, in the given columns of `like`.
fn empty(columns: &[&str], like: &DataFrame) -> PolarsResult<DataFrame> {
    Ok(like.select(columns.iter().copied())?.clear())
}

fn no_changes(spec: &Spec, like: &DataFrame) -> PolarsResult<DataFrame> {
    let mut frame = empty(&spec.removed_columns(), like)?;
    frame.with_column(Column::new("field".into(), Vec::<&str>::new()))?;
    frame.with_column(Column::new("old_value".into(), Vec::<i64>::new()))?;
    frame.with_column(Column::new("new_value".into(), Vec::<i64>::new()))?;
    Ok(frame)
}

/// DESIGN rule 7 for a keyed dataset: refuses a run that would remove more than `max_share`
/// (0.05 = 5 %) of the `stored` rows; a run that removes nothing always passes.
pub fn check_removal(
    spec: &Spec,
    stored: usize,
    removed: usize,
    max_share: f64,
) -> Result<(), DataError> {
    crate::diff::check_removal(stored, removed, max_share).map_err(|_| {
        DataError::SuspiciousRowRemoval {
            dataset: spec.name,
            stored,
            removed,
            max_share: Share(max_share),
        }
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::super::{STATES, read};
    use super::*;

    /// A version of a small states file from `seed`: rows missing, values NULL or revised at
    /// random, in upstream's date-then-key order.
    fn version(seed: u64) -> String {
        let mut state = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let mut next = |n: u64| {
            state = state
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (state >> 33) % n
        };
        let mut csv = String::from("date,state,fips,cases,deaths\n");
        for day in 1..=9 {
            for name in ["Alaska", "Ohio", "Texas", "Utah"] {
                if next(6) == 0 {
                    continue;
                }
                let count = |v: u64| if v == 0 { String::new() } else { v.to_string() };
                let fips = if next(5) == 0 { "" } else { "01" };
                let (cases, deaths) = (count(next(4)), count(next(3)));
                csv.push_str(&format!("2020-03-0{day},{name},{fips},{cases},{deaths}\n"));
            }
        }
        csv
    }

    /// Each row's CSV line after `date,state`, by `date,state`: the naive side of the check.
    fn by_key(curated: &Curated) -> BTreeMap<String, String> {
        let csv = String::from_utf8(curated.rows_csv().unwrap()).unwrap();
        csv.lines()
            .skip(1)
            .map(|line| {
                let mut fields = line.splitn(3, ',');
                let key = format!("{},{}", fields.next().unwrap(), fields.next().unwrap());
                (key, fields.next().unwrap().to_owned())
            })
            .collect()
    }

    #[test]
    fn the_merge_walk_finds_what_comparing_every_row_by_key_finds() {
        for seed in 0..40 {
            let (old, new) = (version(seed), version(seed + 1000));
            let base = read(&STATES, &[("us-states.csv", old.as_bytes())]).unwrap();
            let next = read(&STATES, &[("us-states.csv", new.as_bytes())]).unwrap();
            let delta = delta(Some(&base), &next).unwrap();
            let (old, new) = (by_key(&base), by_key(&next));
            let mut changed: Vec<String> = new
                .iter()
                .filter(|(key, row)| old.get(*key) != Some(row))
                .map(|(key, row)| format!("{key},{row}"))
                .collect();
            let removed: Vec<&String> = old.keys().filter(|key| !new.contains_key(*key)).collect();
            let rows_csv = String::from_utf8(delta.rows_csv().unwrap()).unwrap();
            let removed_csv = String::from_utf8(delta.removed_csv().unwrap()).unwrap();
            // The CSVs list rows by key then date; the maps by date then key.
            let mut rows: Vec<&str> = rows_csv.lines().skip(1).collect();
            let mut gone: Vec<&str> = removed_csv.lines().skip(1).collect();
            rows.sort_unstable();
            gone.sort_unstable();
            changed.sort_unstable();
            assert_eq!(rows, changed, "seed {seed}");
            assert_eq!(gone, removed, "seed {seed}");
            let both = new.keys().filter(|key| old.contains_key(*key)).count() as u64;
            let counts = delta.counts;
            assert_eq!(counts.inserted, (new.len() as u64) - both, "seed {seed}");
            assert_eq!(counts.updated + counts.unchanged, both, "seed {seed}");
            assert_eq!(counts.removed, removed.len() as u64, "seed {seed}");
            // `fips,cases,deaths,…`: a revised value is a change of cases or deaths.
            let counted = |row: &String| -> Vec<String> {
                row.split(',').skip(1).take(2).map(str::to_owned).collect()
            };
            let revised = new
                .iter()
                .filter(|(key, row)| old.get(*key).is_some_and(|o| counted(o) != counted(row)))
                .count() as u64;
            assert_eq!(counts.revised, revised, "seed {seed}");
            assert!(
                counts.revised <= delta.changes.height() as u64,
                "seed {seed}"
            );
        }
    }
}
