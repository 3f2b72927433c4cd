//! What a keyed run keeps in memory for the next run of its dataset, so that a daily run
//! neither downloads nor parses the files that did not change (the frozen yearly county files),
//! nor reads its base back from Parquet:
//!
//! - each input file as parsed ([`ParsedFile`]), keyed by its raw payload's digest: the sha256
//!   the extractor recorded in the event, which `store::get_object` checks the downloaded bytes
//!   against, so a digest names exactly the bytes that were parsed. A parsed file depends on the
//!   bytes and the dataset only (the file's name appears in errors, and errors are not kept);
//! - the last curated dataset, keyed by its run id: the base of the next run only when the KV
//!   base (`<env>.<dataset>.curated`) names that run. A run id is derived from the env, the
//!   dataset and the digests of its inputs, so it names one curated dataset.
//!
//! Bounded to one version per dataset: the files and the curated dataset of the dataset's last
//! run made by this process, whatever its env (envs that alternate only miss, never mix). At the
//! counties' final size that is ≈ 80 MB of parsed files (2.4 M rows over the files, 32 bytes a
//! row) and ≈ 110 MB of curated rows (2.3 M rows, ≈ 45 bytes a row); the states (60 k rows) a few
//! MB. A run without the cache held the same and more: every file's text (≈ 110 MB) and the base
//! read back from Parquet.
//!
//! The transformer's handler (`handler.rs`) owns one, for every env it serves.

use std::sync::{Arc, Mutex, MutexGuard};

use dataset::keyed::{Curated, ParsedFile, Spec};
use shared::ids::{Digest, RunId};

/// Per dataset, what its last run kept.
pub(crate) struct Cache {
    datasets: Mutex<Vec<(&'static str, Kept)>>,
}

/// What one run of a dataset keeps.
#[derive(Default)]
struct Kept {
    files: Vec<(Digest, Arc<ParsedFile>)>,
    curated: Option<(RunId, Arc<Curated>)>,
}

impl Cache {
    pub(crate) const fn new() -> Self {
        Cache {
            datasets: Mutex::new(Vec::new()),
        }
    }

    /// The parsed file of `spec`'s dataset whose payload has `digest`, if the last run had it.
    pub(crate) fn file(&self, spec: &Spec, digest: &Digest) -> Option<Arc<ParsedFile>> {
        let datasets = self.lock();
        let (_, kept) = datasets.iter().find(|(name, _)| *name == spec.name)?;
        kept.files
            .iter()
            .find(|(kept, _)| kept == digest)
            .map(|(_, file)| Arc::clone(file))
    }

    /// The curated dataset of `run_id`, if it is `spec`'s dataset's last run made here.
    pub(crate) fn curated(&self, spec: &Spec, run_id: &RunId) -> Option<Arc<Curated>> {
        let datasets = self.lock();
        let (_, kept) = datasets.iter().find(|(name, _)| *name == spec.name)?;
        match &kept.curated {
            Some((kept, curated)) if kept == run_id => Some(Arc::clone(curated)),
            _ => None,
        }
    }

    /// Keeps a run's parsed files and curated dataset in place of the dataset's last ones.
    pub(crate) fn keep(
        &self,
        spec: &'static Spec,
        files: Vec<(Digest, Arc<ParsedFile>)>,
        run_id: RunId,
        curated: Arc<Curated>,
    ) {
        let kept = Kept {
            files,
            curated: Some((run_id, curated)),
        };
        let mut datasets = self.lock();
        match datasets.iter_mut().find(|(name, _)| *name == spec.name) {
            // The replaced version is dropped here, once no run holds it.
            Some((_, slot)) => *slot = kept,
            None => datasets.push((spec.name, kept)),
        }
    }

    /// A panic while the lock was held left nothing half-written (each update is one
    /// assignment), so the cache stays usable.
    fn lock(&self) -> MutexGuard<'_, Vec<(&'static str, Kept)>> {
        self.datasets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use dataset::keyed::{self, COUNTIES, STATES};

    const STATES_V1: &[u8] = b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,1,0\n";

    fn parsed(bytes: &[u8]) -> Arc<ParsedFile> {
        Arc::new(keyed::parse_file(&STATES, "us-states.csv", bytes).unwrap())
    }

    fn curated(bytes: &[u8]) -> Arc<Curated> {
        Arc::new(keyed::read(&STATES, &[("us-states.csv", bytes)]).unwrap())
    }

    #[test]
    fn a_file_is_served_only_for_the_digest_it_was_parsed_from() {
        let cache = Cache::new();
        let digest = Digest::of(STATES_V1);
        cache.keep(
            &STATES,
            vec![(digest.clone(), parsed(STATES_V1))],
            RunId::new("r1").unwrap(),
            curated(STATES_V1),
        );
        assert_eq!(cache.file(&STATES, &digest), Some(parsed(STATES_V1)));
        let changed = b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,2,0\n";
        assert_eq!(cache.file(&STATES, &Digest::of(changed)), None);
        assert_eq!(cache.file(&COUNTIES, &digest), None);
    }

    #[test]
    fn the_curated_dataset_is_served_only_for_its_run() {
        let cache = Cache::new();
        let run = RunId::new("r1").unwrap();
        cache.keep(&STATES, Vec::new(), run.clone(), curated(STATES_V1));
        assert!(cache.curated(&STATES, &run).is_some());
        assert!(cache.curated(&STATES, &RunId::new("r0").unwrap()).is_none());
        assert!(cache.curated(&COUNTIES, &run).is_none());
    }

    #[test]
    fn a_run_replaces_the_last_version_of_its_dataset() {
        let cache = Cache::new();
        let (first, second) = (RunId::new("r1").unwrap(), RunId::new("r2").unwrap());
        let v2 =
            b"date,state,fips,cases,deaths\n2020-03-01,Texas,48,1,0\n2020-03-02,Texas,48,3,0\n";
        cache.keep(
            &STATES,
            vec![(Digest::of(STATES_V1), parsed(STATES_V1))],
            first.clone(),
            curated(STATES_V1),
        );
        cache.keep(
            &STATES,
            vec![(Digest::of(v2), parsed(v2))],
            second.clone(),
            curated(v2),
        );
        assert!(cache.curated(&STATES, &first).is_none());
        assert!(cache.file(&STATES, &Digest::of(STATES_V1)).is_none());
        assert_eq!(cache.curated(&STATES, &second).unwrap().rows(), 2);
        assert!(cache.file(&STATES, &Digest::of(v2)).is_some());
    }
}
