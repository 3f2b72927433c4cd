//! What a new version of a keyed dataset changes against its base (keyed-contract.md, "The
//! delta"), with polars: one join on (key, date) pairs the rows, then each value column is
//! gathered for the pairs and compared NULL-aware, one column at a time (so memory stays at a
//! few columns, not a joined frame of every column of both versions).

use polars::prelude::*;
use shared::events::Counts;

use super::deltas::key_day;
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
    // Keys numbered over both versions, in text order, so one number names a key on both sides.
    let mut joint: Vec<&str> = base
        .keys
        .iter()
        .chain(&next.keys)
        .map(String::as_str)
        .collect();
    joint.sort_unstable();
    joint.dedup();
    let pairs = |side: &Curated, row: &str| -> PolarsResult<LazyFrame> {
        let to_joint: Vec<u32> = side
            .keys
            .iter()
            .map(|key| joint.binary_search(&key.as_str()).unwrap_or(0) as u32)
            .collect();
        let ranks = side.rows.column("key")?.u32()?;
        let jkey = UInt32Chunked::from_vec("jkey".into(), to_joint).take(ranks)?;
        let frame = DataFrame::new_infer_height(vec![
            Column::from(jkey.into_series()),
            side.rows.column("date")?.clone(),
        ])?;
        Ok(frame
            .lazy()
            .with_row_index(row, None)
            .select([key_day("jkey", "date").alias("kd"), col(row)]))
    };
    let joined = pairs(next, "row")?
        .join(
            pairs(base, "base_row")?,
            [col("kd")],
            [col("kd")],
            JoinArgs::new(JoinType::Full).with_coalesce(JoinCoalesce::CoalesceColumns),
        )
        .collect()?;
    let (row, base_row) = (
        joined.column("row")?.idx()?,
        joined.column("base_row")?.idx()?,
    );
    let inserted = row.filter(&base_row.is_null())?;
    // The join's order is unspecified: the pairs are compared in any order, the outputs sorted.
    let removed = base_row.filter(&row.is_null())?.sort(false);
    let both = row.is_not_null() & base_row.is_not_null();
    let (row, base_row) = (row.filter(&both)?, base_row.filter(&both)?);

    // Fips codes numbered over both versions too, so equal codes are equal numbers.
    let mut codes: Vec<&str> = base
        .fips_codes
        .iter()
        .chain(&next.fips_codes)
        .map(String::as_str)
        .collect();
    codes.sort_unstable();
    codes.dedup();
    let joint_codes = |side: &Curated| -> UInt32Chunked {
        let ids = side
            .fips_codes
            .iter()
            .map(|code| codes.binary_search(&code.as_str()).unwrap_or(0) as u32);
        UInt32Chunked::from_vec("fips".into(), ids.collect())
    };
    let (base_codes, next_codes) = (joint_codes(base), joint_codes(next));
    // Each value column gathered for the pairs and compared NULL-aware, one at a time.
    let value = |side: &Curated, name: &str, at: &IdxCa| -> PolarsResult<Series> {
        let values = side.rows.column(name)?.as_materialized_series().take(at)?;
        if name != "fips" {
            return Ok(values);
        }
        let joint = if std::ptr::eq(side, base) {
            &base_codes
        } else {
            &next_codes
        };
        Ok(joint.take(values.u32()?)?.into_series())
    };
    let mut changed = BooleanChunked::full("changed".into(), false, row.len());
    let mut revised = changed.clone();
    let mut changes = Vec::new();
    for name in ["fips", "cases", "deaths", "new_cases", "new_deaths"] {
        let (old, new) = (value(base, name, &base_row)?, value(next, name, &row)?);
        let differs = old.not_equal_missing(&new)?;
        changed = &changed | &differs;
        if matches!(name, "cases" | "deaths") {
            revised = &revised | &differs;
            let lines = DataFrame::new_infer_height(vec![
                Column::from(row.filter(&differs)?.into_series()),
                Column::from(old.filter(&differs)?.with_name("old_value".into())),
                Column::from(new.filter(&differs)?.with_name("new_value".into())),
            ])?;
            changes.push(lines.lazy().select([
                col("row"),
                lit(name).alias("field"),
                col("old_value"),
                col("new_value"),
            ]));
        }
    }
    let updated = row.filter(&changed)?;
    let mut rows = inserted.clone();
    rows.append(&updated)?;
    let rows = rows.sort(false);
    let changes = concat(changes, UnionArgs::default())?
        .sort(["row", "field"], SortMultipleOptions::default())
        .collect()?;
    let changes_frame = changes_frame(spec, next, &changes)?;
    let counts = Counts {
        inserted: inserted.len() as u64,
        updated: updated.len() as u64,
        unchanged: (row.len() - updated.len()) as u64,
        removed: removed.len() as u64,
        revised: revised.sum().unwrap_or(0) as u64,
    };
    Ok(Delta {
        spec,
        rows: next.public(&next.rows.take(&rows)?)?,
        removed: base
            .public(&base.rows.take(&removed)?)?
            .select(spec.removed_columns())?,
        changes: changes_frame,
        counts,
    })
}

/// `date,<key>` of each changed row, then `field,old_value,new_value`.
fn changes_frame(spec: &Spec, next: &Curated, changes: &DataFrame) -> PolarsResult<DataFrame> {
    let at = changes.column("row")?.idx()?;
    let mut frame = next
        .public(&next.rows.take(at)?)?
        .select(spec.removed_columns())?;
    for name in ["field", "old_value", "new_value"] {
        frame.with_column(changes.column(name)?.clone())?;
    }
    Ok(frame)
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
