//! The keyed datasets `states` and `counties` (keyed-contract.md): rows identified by
//! (date, key), read from one or more NYT files, curated with per-key deltas, stored as Parquet
//! and compared version to version as COPY-ready CSV.
//!
//! - `spec`: the two datasets, their key columns and tables ([`Spec`]);
//! - `read`: each file's rows ([`ParsedFile`]), checked as strictly as the `us` files (reusing
//!   `payload`, `csv`, `header`, `values`), keys interned so the row loop allocates nothing per
//!   row, then sorted by (key, date). It depends on the file's bytes alone, so a caller may keep
//!   it for a file that has not changed (the transformer does, keyed by the payload's digest);
//! - `combine`: one merge walk over the parsed files: the duplicate check within a file and the
//!   agreement check across files, the per-key deltas and the negative-delta warnings;
//! - `delta`: what a new version changes against its base ([`Delta`]), one merge walk over both;
//! - `copy_csv`: the CSV buffers the loader `COPY`s; `parquet`: the `etl-curated` object.
//!
//! Choices the contract leaves open, made here:
//! - Per-row value rules (dates, counts, empty keys) fail on the first bad line of the first
//!   bad file; duplicates and disagreements are found after every file is read, and the first
//!   one in file then line order is reported.
//! - Inside the crate a key is one string, its values joined by NUL: it sorts as the tuple of
//!   its values (byte order), which is the order of the curated rows.
//! - Warnings list negative deltas in key then date order.

mod combine;
mod copy_csv;
mod delta;
mod parquet;
mod read;
mod spec;

use chrono::NaiveDate;
use polars::prelude::*;

pub use combine::combine;
pub use delta::{Delta, check_removal, delta};
pub use read::{ParsedFile, parse_file};
pub use spec::{COUNTIES, STATES, Spec};

use crate::error::DataError;
pub(crate) use crate::merge::{from_days, to_days};
use spec::KEY_SEPARATOR;

/// A curated keyed dataset: one row per (date, key), sorted by key then date.
///
/// Its public form ([`Curated::to_frame`], the Parquet object, the CSV) has the columns of
/// [`Spec::row_columns`]: `date` (Date), the key columns and `fips` (String; fips NULL when
/// upstream's is empty), `cases`, `deaths`, `new_cases`, `new_deaths` (Int64, NULL when not
/// reported). In memory, keys and fips codes are numbers into small tables, which halves the
/// frame (2.5 M county rows: ≈ 110 MB instead of ≈ 230 MB).
#[derive(Debug, Clone)]
pub struct Curated {
    spec: &'static Spec,
    /// `key` (UInt32, an index into `keys`), `date`, `fips` (UInt32, an index into
    /// `fips_codes`, NULL when empty), `cases`, `deaths`, `new_cases`, `new_deaths`.
    rows: DataFrame,
    /// The distinct keys in order, values joined by NUL.
    keys: Vec<String>,
    /// The distinct fips codes, in no particular order.
    fips_codes: Vec<String>,
    warnings: Vec<String>,
}

/// Reads, validates and curates the files of one version of a dataset, `(file name, bytes)`
/// each: rows of all files together, a (date, key) in several files kept once when they agree.
pub fn read(spec: &'static Spec, files: &[(&str, &[u8])]) -> Result<Curated, DataError> {
    let parsed = files
        .iter()
        .map(|(name, bytes)| parse_file(spec, name, bytes))
        .collect::<Result<Vec<_>, _>>()?;
    let named: Vec<(&str, &ParsedFile)> = files
        .iter()
        .zip(&parsed)
        .map(|((name, _), parsed)| (*name, parsed))
        .collect();
    combine(spec, &named)
}

impl Curated {
    pub fn spec(&self) -> &'static Spec {
        self.spec
    }

    /// The rows in their public columns ([`Spec::row_columns`]), built on each call.
    pub fn to_frame(&self) -> Result<DataFrame, DataError> {
        self.public(&self.rows).map_err(internal)
    }

    /// How many rows, i.e. (date, key) pairs.
    pub fn rows(&self) -> usize {
        self.rows.height()
    }

    /// How many distinct keys.
    pub fn keys(&self) -> usize {
        self.keys.len()
    }

    pub fn first_date(&self) -> Option<NaiveDate> {
        self.date_column()?.min().and_then(from_days)
    }

    pub fn last_date(&self) -> Option<NaiveDate> {
        self.date_column()?.max().and_then(from_days)
    }

    fn date_column(&self) -> Option<&Int32Chunked> {
        Some(&self.rows.column("date").ok()?.date().ok()?.phys)
    }

    /// Data-quality warnings of the read, one sentence each (negative deltas); none for a
    /// dataset read back from Parquet.
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// Every row as the contract's `rows` CSV, for a full reconcile.
    pub fn rows_csv(&self) -> Result<Vec<u8>, DataError> {
        copy_csv::rows(self)
    }

    /// The key list (`<key columns>,fips,first_date,last_date`, a line per key with its latest
    /// row's FIPS code), the CSV the loader `COPY`s into `<dataset>_keys` with the rows.
    pub fn keys_csv(&self) -> Result<Vec<u8>, DataError> {
        copy_csv::keys(self)
    }

    /// The `etl-curated` object.
    pub fn to_parquet(&self) -> Result<Vec<u8>, DataError> {
        parquet::write(&self.to_frame()?)
    }

    /// A dataset back from [`Curated::to_parquet`]'s bytes; columns, types, NULL keys and the
    /// (key, date) order are checked.
    pub fn from_parquet(spec: &'static Spec, bytes: &[u8]) -> Result<Curated, DataError> {
        parquet::read(spec, bytes)
    }
}

impl Curated {
    /// Some of this dataset's internal rows (all, or taken from them) in their public columns.
    pub(crate) fn public(&self, rows: &DataFrame) -> PolarsResult<DataFrame> {
        let ranks = rows.column("key")?.u32()?;
        let mut columns = vec![rows.column("date")?.clone()];
        for (index, name) in self.spec.keys.iter().enumerate() {
            let values: Vec<&str> = self
                .keys
                .iter()
                .map(|key| key.split(KEY_SEPARATOR).nth(index).unwrap_or(""))
                .collect();
            columns.push(Column::from(
                Series::new((*name).into(), values).take(ranks)?,
            ));
        }
        let codes: Vec<&str> = self.fips_codes.iter().map(String::as_str).collect();
        let codes = Series::new("fips".into(), codes);
        columns.push(Column::from(codes.take(rows.column("fips")?.u32()?)?));
        for name in ["cases", "deaths", "new_cases", "new_deaths"] {
            columns.push(rows.column(name)?.clone());
        }
        DataFrame::new_infer_height(columns)
    }
}

/// Failures inside polars on validated input are bugs, said in one sentence.
pub(crate) fn internal(err: PolarsError) -> DataError {
    DataError::Internal(err.to_string().replace('\n', " "))
}
