//! The blocking part of a keyed run, in polars: the files parsed (those not already parsed)
//! and combined, the comparison with the base, the Parquet and the delta CSVs encoded.

use std::sync::Arc;
use std::time::Instant;

use dataset::DataError;
use dataset::keyed::{self, Curated, ParsedFile, Spec};
use shared::Env;
use shared::events::Counts;
use shared::ids::{Digest, RunId};

use crate::steps::elapsed_ms;

/// One input file of a run, named as upstream names it, by its payload's digest.
pub(super) struct File {
    pub name: String,
    pub digest: Digest,
    pub content: Content,
}

/// A file as the run has it: parsed by an earlier run (its digest unchanged), or its payload.
pub(super) enum Content {
    Parsed(Arc<ParsedFile>),
    Payload(Vec<u8>),
}

/// The base of the delta: the previous run's curated dataset, still in memory, or its Parquet
/// bytes read back (not yet checked to be a dataset).
pub(super) enum Base {
    Curated {
        run_id: RunId,
        curated: Arc<Curated>,
    },
    Parquet {
        run_id: RunId,
        parquet: Vec<u8>,
    },
}

/// What the blocking part of a run makes: the parsed files, the curated dataset and its
/// encodings.
pub(super) struct Curation {
    pub files: Vec<(Digest, Arc<ParsedFile>)>,
    pub curated: Arc<Curated>,
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

/// The files' contents parsed, each payload on a thread of its own (a first county run parses
/// five files of up to 40 MB), kept in the files' order. The first failure in that order is the
/// one reported, so the first bad line is that of the first bad file, as when they are parsed one
/// after the other (a file parsed before has none).
fn parse_all(
    spec: &'static Spec,
    files: Vec<File>,
) -> Result<Vec<(Digest, Arc<ParsedFile>)>, DataError> {
    let results: Vec<Result<(Digest, Arc<ParsedFile>), DataError>> = std::thread::scope(|scope| {
        let parsing: Vec<_> = files
            .into_iter()
            .map(
                |File {
                     name,
                     digest,
                     content,
                 }| match content {
                    Content::Parsed(file) => Parsing::Done(digest, file),
                    Content::Payload(bytes) => Parsing::Running(
                        digest,
                        scope.spawn(move || keyed::parse_file(spec, &name, &bytes)),
                    ),
                },
            )
            .collect();
        parsing.into_iter().map(Parsing::join).collect()
    });
    results.into_iter().collect()
}

/// A file being parsed on a thread, or one parsed by an earlier run.
enum Parsing<'scope> {
    Done(Digest, Arc<ParsedFile>),
    Running(
        Digest,
        std::thread::ScopedJoinHandle<'scope, Result<ParsedFile, DataError>>,
    ),
}

impl Parsing<'_> {
    fn join(self) -> Result<(Digest, Arc<ParsedFile>), DataError> {
        match self {
            Parsing::Done(digest, file) => Ok((digest, file)),
            Parsing::Running(digest, thread) => match thread.join() {
                Ok(parsed) => Ok((digest, Arc::new(parsed?))),
                // A panic in the parser is a bug; the run fails with its message.
                Err(panic) => std::panic::resume_unwind(panic),
            },
        }
    }
}

/// The blocking part of a run (polars): parses the payloads and combines the files, compares
/// with the base when there is one, and encodes the Parquet and the delta CSVs. Each step is
/// timed.
pub(super) fn curate(
    spec: &'static Spec,
    files: Vec<File>,
    base: Option<Base>,
    env: &Env,
    run_id: &RunId,
) -> Result<Curation, DataError> {
    let mut timings = Vec::new();
    let mut step =
        |name: &str, started: Instant| timings.push((name.to_owned(), elapsed_ms(started)));

    let started = Instant::now();
    let names: Vec<String> = files.iter().map(|file| file.name.clone()).collect();
    let parsed = parse_all(spec, files)?;
    step("parse", started);

    let started = Instant::now();
    let named: Vec<(&str, &ParsedFile)> = names
        .iter()
        .zip(&parsed)
        .map(|(name, (_, file))| (name.as_str(), file.as_ref()))
        .collect();
    let curated = keyed::combine(spec, &named)?;
    step("combine", started);

    // The Parquet (≈ 0.5 s at county scale) is encoded on a thread of its own while the delta is
    // worked out: both are needed before the run is announced.
    let (parquet, delta) = std::thread::scope(|scope| {
        let parquet = scope.spawn(|| curated.to_parquet());
        let delta = delta_against(spec, base, &curated, env, run_id, &mut step);
        let started = Instant::now();
        let parquet = match parquet.join() {
            Ok(parquet) => parquet,
            Err(panic) => std::panic::resume_unwind(panic),
        };
        // The time the run waited on the Parquet once its delta was ready.
        step("parquet", started);
        Ok::<_, DataError>((parquet?, delta?))
    })?;
    Ok(Curation {
        files: parsed,
        curated: Arc::new(curated),
        parquet,
        delta,
        timings,
    })
}

/// The delta of `curated` against `base`, if there is a base that can be read, as its CSVs; the
/// reading of a base's Parquet and the delta are timed as `base_parquet` and `delta`.
fn delta_against(
    spec: &'static Spec,
    base: Option<Base>,
    curated: &Curated,
    env: &Env,
    run_id: &RunId,
    step: &mut impl FnMut(&str, Instant),
) -> Result<Option<DeltaParts>, DataError> {
    let started = Instant::now();
    let base = base.and_then(|base| match base {
        Base::Curated { run_id, curated } => Some((run_id, curated)),
        Base::Parquet {
            run_id: base_run_id,
            parquet,
        } => match Curated::from_parquet(spec, &parquet) {
            Ok(curated) => Some((base_run_id, Arc::new(curated))),
            Err(error) => {
                tracing::warn!(%env, dataset = spec.name, %run_id, base = %base_run_id, %error, "the base's curated object is not a readable dataset; going on without a delta");
                None
            }
        },
    });
    step("base_parquet", started);

    let started = Instant::now();
    let delta = match base {
        Some((base_run_id, base)) => {
            let delta = keyed::delta(Some(&base), curated)?;
            drop(base);
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
    Ok(delta)
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

    const HEADER: &str = "date,county,state,fips,cases,deaths\n";

    fn env() -> Env {
        Env::new("t_keyed").unwrap()
    }

    fn payloads(files: &[(&str, &str)]) -> Vec<File> {
        files
            .iter()
            .map(|(name, body)| {
                let bytes = format!("{HEADER}{body}").into_bytes();
                File {
                    name: (*name).to_owned(),
                    digest: Digest::of(&bytes),
                    content: Content::Payload(bytes),
                }
            })
            .collect()
    }

    /// A first version as upstream splits it: a frozen year, the current year and the recent
    /// days overlapping it; with an empty fips, an empty count and a falling count.
    const V1: [(&str, &str); 3] = [
        (
            "us-counties-2020.csv",
            "2020-03-01,Harris,Texas,48201,1,0\n\
             2020-03-01,Unknown,Texas,,4,\n",
        ),
        (
            "us-counties-2021.csv",
            "2020-03-02,Harris,Texas,48201,3,0\n\
             2020-03-02,Unknown,Texas,,2,1\n\
             2020-03-03,Harris,Texas,48201,5,1\n",
        ),
        (
            "us-counties-recent.csv",
            "2020-03-02,Unknown,Texas,,2,1\n\
             2020-03-03,Harris,Texas,48201,5,1\n",
        ),
    ];

    /// The next version: the frozen year unchanged; a revised value, a removed row, a new day.
    const V2: [(&str, &str); 3] = [
        V1[0],
        (
            "us-counties-2021.csv",
            "2020-03-02,Harris,Texas,48201,3,0\n\
             2020-03-03,Harris,Texas,48201,6,1\n\
             2020-03-04,Harris,Texas,48201,6,2\n\
             2020-03-04,Unknown,Texas,,1,1\n",
        ),
        (
            "us-counties-recent.csv",
            "2020-03-03,Harris,Texas,48201,6,1\n\
             2020-03-04,Harris,Texas,48201,6,2\n\
             2020-03-04,Unknown,Texas,,1,1\n",
        ),
    ];

    #[test]
    fn without_a_base_the_run_has_no_delta_and_with_one_it_has() {
        let first = payloads(&[("us-counties.csv", "2020-03-01,Harris,Texas,48201,1,0\n")]);
        let next = payloads(&[("us-counties.csv", "2020-03-01,Harris,Texas,48201,2,0\n")]);
        let run_id = RunId::new("r1").unwrap();
        let alone = curate(&keyed::COUNTIES, first, None, &env(), &run_id).unwrap();
        assert!(alone.delta.is_none());
        let base = Base::Parquet {
            run_id: run_id.clone(),
            parquet: alone.parquet,
        };
        let with_base = curate(&keyed::COUNTIES, next, Some(base), &env(), &run_id).unwrap();
        let delta = with_base.delta.unwrap();
        assert_eq!(delta.base_run_id, run_id);
        assert_eq!(delta.counts.updated, 1);
        assert_eq!(delta.counts.revised, 1);
    }

    #[test]
    fn an_unreadable_base_means_no_delta_not_a_failure() {
        let files = payloads(&[("us-counties.csv", "2020-03-01,Harris,Texas,48201,1,0\n")]);
        let base = Base::Parquet {
            run_id: RunId::new("r1").unwrap(),
            parquet: b"not parquet".to_vec(),
        };
        let run_id = RunId::new("r2").unwrap();
        let curation = curate(&keyed::COUNTIES, files, Some(base), &env(), &run_id).unwrap();
        assert!(curation.delta.is_none());
        assert_eq!(curation.curated.rows(), 2 - 1);
    }

    /// What a run gives, byte for byte.
    #[derive(Debug, PartialEq)]
    struct Outputs {
        parquet: Vec<u8>,
        rows: Vec<u8>,
        removed: Vec<u8>,
        changes: Vec<u8>,
        counts: Counts,
        warnings: Vec<String>,
    }

    fn outputs(curation: &Curation) -> Outputs {
        let delta = curation.delta.as_ref().expect("a delta");
        Outputs {
            parquet: curation.parquet.clone(),
            rows: delta.rows.clone(),
            removed: delta.removed.clone(),
            changes: delta.changes.clone(),
            counts: delta.counts,
            warnings: curation.curated.warnings().to_vec(),
        }
    }

    #[test]
    fn a_run_with_parsed_files_and_its_base_in_memory_gives_the_bytes_of_a_cold_run() {
        let spec = &keyed::COUNTIES;
        let (first, second) = (RunId::new("r1").unwrap(), RunId::new("r2").unwrap());
        let v1 = curate(spec, payloads(&V1), None, &env(), &first).unwrap();

        let cold_base = Base::Parquet {
            run_id: first.clone(),
            parquet: v1.parquet.clone(),
        };
        let cold = curate(spec, payloads(&V2), Some(cold_base), &env(), &second).unwrap();

        // Warm: the unchanged year as the first run parsed it, the base as it curated it.
        let mut warm_files = payloads(&V2);
        let (digest, parsed) = v1.files[0].clone();
        assert_eq!(warm_files[0].digest, digest);
        warm_files[0].content = Content::Parsed(parsed);
        let warm_base = Base::Curated {
            run_id: first.clone(),
            curated: Arc::clone(&v1.curated),
        };
        let warm = curate(spec, warm_files, Some(warm_base), &env(), &second).unwrap();

        assert_eq!(outputs(&warm), outputs(&cold));
        let frame = |c: &Curation| c.curated.to_frame().unwrap();
        assert!(frame(&warm).equals_missing(&frame(&cold)));
        assert_eq!(warm.files, cold.files);
        // The comparison is not vacuous: the delta has every kind of line, and warnings.
        let counts = outputs(&cold).counts;
        assert_eq!(
            (
                counts.inserted,
                counts.updated,
                counts.unchanged,
                counts.removed,
                counts.revised
            ),
            (2, 1, 3, 1, 1),
            "{counts:?}"
        );
        assert_eq!(
            cold.curated.warnings().len(),
            1,
            "{:?}",
            cold.curated.warnings()
        );
    }
}
