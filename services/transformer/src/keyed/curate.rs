//! The blocking part of a keyed run, in polars: the files read and curated, the comparison with
//! the base, the Parquet and the delta CSVs encoded.

use std::time::Instant;

use dataset::DataError;
use dataset::keyed::{self, Curated, Spec};
use shared::Env;
use shared::events::Counts;
use shared::ids::RunId;

use crate::steps::elapsed_ms;

/// The base read back: its run and its Parquet bytes (not yet checked to be a dataset).
pub(super) struct Base {
    pub run_id: RunId,
    pub parquet: Vec<u8>,
}

/// What the blocking part of a run makes: the curated dataset and its encodings.
pub(super) struct Curation {
    pub curated: Curated,
    pub parquet: Vec<u8>,
    pub delta: Option<DeltaParts>,
    pub timings: Vec<(String, u64)>,
}

pub(super) struct DeltaParts {
    pub base_run_id: RunId,
    pub rows: Vec<u8>,
    pub removed: Vec<u8>,
    pub changes: Vec<u8>,
    pub counts: Counts,
}

/// The blocking part of a run (polars): reads and curates the files, compares with the base when
/// there is one, and encodes the Parquet and the delta CSVs. Each step is timed.
pub(super) fn curate(
    spec: &'static Spec,
    files: &[(String, Vec<u8>)],
    base: Option<Base>,
    env: &Env,
    run_id: &RunId,
) -> Result<Curation, DataError> {
    let mut timings = Vec::new();
    let mut step =
        |name: &str, started: Instant| timings.push((name.to_owned(), elapsed_ms(started)));

    let started = Instant::now();
    let named: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect();
    let curated = keyed::read(spec, &named)?;
    step("transform", started);

    let started = Instant::now();
    let base = base.and_then(|base| match Curated::from_parquet(spec, &base.parquet) {
        Ok(curated) => Some((base.run_id, curated)),
        Err(error) => {
            tracing::warn!(%env, dataset = spec.name, %run_id, base = %base.run_id, %error, "the base's curated object is not a readable dataset; going on without a delta");
            None
        }
    });
    step("base_parquet", started);

    let started = Instant::now();
    let delta = match base {
        Some((base_run_id, base)) => {
            let delta = keyed::delta(Some(&base), &curated)?;
            Some(DeltaParts {
                base_run_id,
                rows: delta.rows_csv()?,
                removed: delta.removed_csv()?,
                changes: delta.changes_csv()?,
                counts: delta.counts,
            })
        }
        None => None,
    };
    step("delta", started);

    let started = Instant::now();
    let parquet = curated.to_parquet()?;
    step("parquet", started);
    Ok(Curation {
        curated,
        parquet,
        delta,
        timings,
    })
}

/// What sets the stored Parquet `bytes` apart from `curated`, if anything.
pub(super) fn same_rows(spec: &'static Spec, bytes: &[u8], curated: &Curated) -> Option<String> {
    let stored = match Curated::from_parquet(spec, bytes) {
        Ok(stored) => stored,
        Err(err) => return Some(err.to_string()),
    };
    match (stored.to_frame(), curated.to_frame()) {
        (Ok(stored_rows), Ok(rows)) if stored_rows.equals_missing(&rows) => None,
        (Ok(_), Ok(_)) => Some(format!(
            "{} rows where the transform gives {}, or other values",
            stored.rows(),
            curated.rows()
        )),
        (Err(err), _) | (_, Err(err)) => Some(err.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_base_the_run_has_no_delta_and_with_one_it_has() {
        let first = b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,1,0\n";
        let next = b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,2,0\n";
        let files = |bytes: &[u8]| vec![("us-states.csv".to_owned(), bytes.to_vec())];
        let env = Env::new("t_keyed").unwrap();
        let run_id = RunId::new("r1").unwrap();
        let alone = curate(&keyed::STATES, &files(first), None, &env, &run_id).unwrap();
        assert!(alone.delta.is_none());
        let base = Base {
            run_id: run_id.clone(),
            parquet: alone.parquet,
        };
        let with_base = curate(&keyed::STATES, &files(next), Some(base), &env, &run_id).unwrap();
        let delta = with_base.delta.unwrap();
        assert_eq!(delta.base_run_id, run_id);
        assert_eq!(delta.counts.updated, 1);
        assert_eq!(delta.counts.revised, 1);
    }

    #[test]
    fn an_unreadable_base_means_no_delta_not_a_failure() {
        let bytes = b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,1,0\n";
        let files = vec![("us-states.csv".to_owned(), bytes.to_vec())];
        let env = Env::new("t_keyed").unwrap();
        let run_id = RunId::new("r2").unwrap();
        let base = Base {
            run_id: RunId::new("r1").unwrap(),
            parquet: b"not parquet".to_vec(),
        };
        let curation = curate(&keyed::STATES, &files, Some(base), &env, &run_id).unwrap();
        assert!(curation.delta.is_none());
        assert_eq!(curation.curated.rows(), 1);
    }
}
