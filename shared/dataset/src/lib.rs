//! The covid-etl dataset: from the two upstream CSV payloads to the curated daily rows, and from
//! curated rows to what a run would change in the stored table.
//!
//! Used by the transformer (transform, Parquet), the loader (Parquet, diff) and `etl diff`.
//! This is the only crate that uses polars.
//!
//! How the files fit together ([`transform`] runs them in this order):
//! - `payload`: checks before any line is read (empty, HTML or JSON, gzip, UTF-8, NUL bytes);
//! - `csv`: a strict CSV reader that knows each record's 1-based line, refuses broken quoting
//!   and rows wider or narrower than the header, and splits only the records it is asked about;
//!   `header`: columns by name;
//! - `values`: one field as an ISO date or a non-negative whole count;
//! - `nyt` and `jhu`: each source's columns found by name and its rows validated (DESIGN rules
//!   1, 2 and 6); for JHU only the US national rows are split and checked;
//! - `merge`: the join, the dropped days, the `recovered` rule and the deltas, in polars
//!   (rules 3–5); `warnings`: the negative deltas as sentences;
//! - `parquet`: the `etl-curated` object; [`diff`]: what a run changes, and rule 7;
//! - `error`: [`DataError`], one sentence each, with a machine word ([`DataError::kind`]).
//! - [`keyed`]: the `states` and `counties` datasets (keyed-contract.md): many files per
//!   version, per-key deltas, and the delta between two versions as COPY-ready CSV.
//!
//! Choices the rules leave open, made here:
//! - The `recovered` rule (4) looks at JHU's own US rows before the join: a positive count on a
//!   day NYT lacks still makes later zeros "not reported".
//! - Both payloads are fully validated before the join; NYT first, so when both are broken the
//!   error names NYT. Structure problems (encoding, NUL, quoting, a row with another number of
//!   fields than the header) fail anywhere in a file; value rules apply to every NYT row and to
//!   the JHU US national rows only.
//! - [`Dropped`] lists the earliest [`Dropped::MAX_DATES`] dropped dates of each source.
//! - Negative deltas: the first [`MAX_LISTED_WARNINGS`] are one sentence each, the rest one
//!   summary sentence.
//! - [`diff::check_removal`] passes any run that removes nothing, so a first run into an empty
//!   table (0 stored dates) always passes.

use shared::events::Dropped;

mod csv;
pub mod diff;
mod error;
mod header;
mod jhu;
pub mod keyed;
mod merge;
mod nyt;
mod parquet;
mod payload;
mod values;
mod warnings;

pub use error::{At, DataError, Overlap, Problem, Share};
pub use parquet::{from_parquet, to_parquet};
pub use warnings::MAX_LISTED as MAX_LISTED_WARNINGS;

/// One row of `us_daily`; defined in `shared` beside its one SQL mapping, which the loader, `etl`
/// and the dashboard (which does not use polars) read it with.
pub use shared::daily::DailyRow;

/// The result of the transform: rows sorted by date, the days dropped by the join, and
/// data-quality warnings (one sentence each, e.g. negative daily deltas).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Curated {
    pub rows: Vec<DailyRow>,
    pub dropped: Dropped,
    pub warnings: Vec<String>,
}

/// Parses, validates and merges the two payloads (DESIGN.md, transform rules 1–6).
///
/// The NYT payload is checked first, so when both are broken the error names NYT.
pub fn transform(nyt: &[u8], jhu: &[u8]) -> Result<Curated, DataError> {
    let nyt = nyt::read(nyt)?;
    let jhu = jhu::read(jhu)?;
    let (rows, dropped) = merge::merge(&nyt, &jhu)?;
    let warnings = warnings::negative_deltas(&rows);
    Ok(Curated {
        rows,
        dropped,
        warnings,
    })
}
