//! A run of a keyed dataset (`states`, `counties`): the latest payload of every source of the
//! dataset, read together into the curated dataset, compared with the dataset's last curated run
//! (its *base*, the `Transformed` event at `store::curated_key`), and stored as the full Parquet
//! plus the three delta CSVs the loader applies.
//!
//! The delta is an optimisation, never a condition of the run: without a usable base (the first
//! run, a base object gone or unreadable, delta objects already there with other bytes) the run
//! is announced with `delta: None` and the loader reconciles from the full Parquet.
//!
//! A daily run reads little: the files whose payload did not change (the frozen yearly county
//! files) are reused as an earlier run parsed them, and the base is the curated dataset that
//! run left in memory (`cache`), so only the changed files are downloaded and parsed.
//!
//! - `run`: one run, from the base's look-up to the announcement and the base's update;
//! - `curate`: its blocking part in polars: parse, combine, compare with the base, encode;
//! - `cache`: the parsed files and the curated dataset of each dataset's last run.

mod cache;
pub(crate) use cache::Cache;
mod curate;
mod run;

use dataset::keyed::Spec;
use shared::Source;
use shared::consumer::Delivery;
use shared::events::Extracted;
use shared::nats::Stores;
use shared::settle::Failure;

use crate::config::Config;
use crate::error::RunError;
use crate::handler::{latest_extracted, staleness};
use run::{KeyedRun, Outcome};

/// Handles an extracted event of a keyed dataset: waits, skips or runs, as the `us` path does.
pub(crate) async fn handle(
    stores: &Stores,
    config: &Config,
    cache: &Cache,
    event: &Extracted,
    delivery: &Delivery,
) -> Result<(), Failure> {
    let plan = plan(stores, event, delivery.stream_sequence)
        .await
        .map_err(|err| err.failure(delivery.delivered))?;
    let run = match plan {
        Plan::Run(run) => run,
        Plan::Wait { missing } => {
            tracing::info!(env = %event.env, dataset = %event.dataset, source = %event.source, %missing, "waiting for the first payload of every source of the dataset");
            return Ok(());
        }
        Plan::Skip { reason } => {
            tracing::info!(env = %event.env, dataset = %event.dataset, source = %event.source, object = %event.object.name, %reason, "skipping a stale extracted event");
            return Ok(());
        }
    };
    match run.execute(stores, config, cache).await {
        Ok(Outcome::Superseded { by }) => {
            tracing::info!(env = %run.env, dataset = %run.dataset, run_id = %run.run_id, later = %by, "skipping a run older than the dataset's last curated run");
            Ok(())
        }
        Ok(Outcome::Announced(transformed)) => {
            tracing::info!(
                env = %transformed.env,
                dataset = %transformed.dataset,
                run_id = %transformed.run_id,
                rows = transformed.rows,
                base = ?transformed.delta.as_ref().map(|d| d.base_run_id.to_string()),
                counts = ?transformed.delta.as_ref().map(|d| d.counts),
                warnings = transformed.warnings.len(),
                timings = ?transformed.timings,
                "transformed"
            );
            Ok(())
        }
        Err(err) => {
            let failure = err.failure(delivery.delivered).for_run(run.context());
            tracing::warn!(env = %run.env, dataset = %run.dataset, run_id = %run.run_id, kind = %failure.kind, transient = failure.transient, reason = %failure.reason, "transform did not finish");
            Err(failure)
        }
    }
}

#[derive(Debug)]
enum Plan {
    Run(Box<KeyedRun>),
    /// A source of the dataset has never been extracted in this env.
    Wait {
        missing: Source,
    },
    /// The event is not its source's latest payload.
    Skip {
        reason: String,
    },
}

/// What to do with `event`, decided from the dataset and the latest extractions in KV.
async fn plan(stores: &Stores, event: &Extracted, stream_sequence: u64) -> Result<Plan, RunError> {
    let spec = spec_of(event)?;
    let mut latest = Vec::with_capacity(event.dataset_sources.len());
    for source in &event.dataset_sources {
        latest.push((source, latest_extracted(stores, event, source).await?));
    }
    let own = latest
        .iter()
        .find(|(source, _)| **source == event.source)
        .and_then(|(_, extracted)| extracted.as_ref());
    if let Some(reason) = staleness(event, own) {
        return Ok(Plan::Skip { reason });
    }
    let mut inputs = Vec::with_capacity(latest.len());
    for (source, extracted) in latest {
        match extracted {
            // A source recorded under another dataset (the event lists `nyt` among the states'
            // sources, say) is not this dataset's file.
            Some(extracted) if extracted.dataset != event.dataset => {
                return Err(RunError::NotADatasetSource {
                    input: source.clone(),
                    dataset: event.dataset.clone(),
                    sources: event.dataset_sources.clone(),
                });
            }
            Some(extracted) => inputs.push(extracted),
            None => {
                return Ok(Plan::Wait {
                    missing: source.clone(),
                });
            }
        }
    }
    Ok(Plan::Run(Box::new(KeyedRun::new(
        spec,
        event,
        stream_sequence,
        inputs,
    ))))
}

/// The most sources one dataset may have: the county files split by year are six at most until
/// 2024. The list comes from the event, so it is bounded before it is read: each source costs a
/// KV read and a payload held in memory.
pub(crate) const MAX_DATASET_SOURCES: usize = 16;

/// The dataset's spec, if `event` is a well-formed event of a keyed dataset.
fn spec_of(event: &Extracted) -> Result<&'static Spec, RunError> {
    let Some(spec) = Spec::by_name(event.dataset.as_str()) else {
        return Err(RunError::UnknownDataset {
            dataset: event.dataset.clone(),
        });
    };
    if event.dataset_sources.is_empty() {
        return Err(RunError::NoDatasetSources {
            input: event.source.clone(),
            dataset: event.dataset.clone(),
        });
    }
    let sources = &event.dataset_sources;
    let repeated = (1..sources.len()).any(|i| sources[..i].contains(&sources[i]));
    if sources.len() > MAX_DATASET_SOURCES || repeated {
        return Err(RunError::TooManyDatasetSources {
            dataset: event.dataset.clone(),
            count: sources.len(),
        });
    }
    if !event.dataset_sources.contains(&event.source) {
        return Err(RunError::NotADatasetSource {
            input: event.source.clone(),
            dataset: event.dataset.clone(),
            sources: event.dataset_sources.clone(),
        });
    }
    Ok(spec)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use dataset::keyed;
    use shared::events::{
        FailureKind, ObjectRef, SCHEMA_VERSION, Trigger, TriggerKind, UpstreamRef,
    };
    use shared::ids::Digest;
    use shared::{Dataset, Env, run_id, store};

    fn extracted(dataset: Dataset, source: &str, sources: &[&str]) -> Extracted {
        let env = Env::new("t_keyed").unwrap();
        let source = Source::new(source).unwrap();
        let sha256 = Digest::of(source.as_str().as_bytes());
        let at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        Extracted {
            schema_version: SCHEMA_VERSION,
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: format!("{source}.csv"),
                commit_sha: sha256.as_str()[..12].parse().unwrap(),
                commit_time: at,
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: store::raw_object_name(&env, &source, &sha256),
                sha256,
                bytes: 1,
            },
            env,
            dataset,
            source,
            dataset_sources: sources.iter().map(|s| Source::new(*s).unwrap()).collect(),
            trigger: Trigger::new(TriggerKind::Commit),
            fetched_at: at,
        }
    }

    #[test]
    fn an_event_of_a_keyed_dataset_among_its_sources_has_its_spec() {
        let event = extracted(Dataset::STATES, "us-states", &["us-states"]);
        assert_eq!(spec_of(&event).unwrap().name, "states");
    }

    #[test]
    fn an_unknown_dataset_is_malformed() {
        let event = extracted(Dataset::new("towns").unwrap(), "towns", &["towns"]);
        let failure = spec_of(&event).unwrap_err().failure(1);
        assert_eq!(failure.kind, FailureKind::Malformed);
        assert_eq!(
            failure.reason,
            "the extracted event names the dataset towns, which the transformer does not know"
        );
    }

    #[test]
    fn an_event_without_its_datasets_sources_is_malformed() {
        let event = extracted(Dataset::STATES, "us-states", &[]);
        let failure = spec_of(&event).unwrap_err().failure(1);
        assert_eq!(failure.kind, FailureKind::Malformed);
        assert!(failure.reason.contains("lists none"), "{}", failure.reason);
    }

    #[test]
    fn a_source_outside_its_dataset_is_malformed() {
        let event = extracted(Dataset::COUNTIES, "us-states", &["us-counties"]);
        let failure = spec_of(&event).unwrap_err().failure(1);
        assert_eq!(failure.kind, FailureKind::Malformed);
        assert!(!failure.transient);
    }

    #[test]
    fn a_keyed_run_is_named_by_its_inputs_in_the_datasets_order() {
        let recent = extracted(
            Dataset::COUNTIES,
            "us-counties-recent",
            &["us-counties-2020", "us-counties-recent"],
        );
        let year = extracted(
            Dataset::COUNTIES,
            "us-counties-2020",
            &["us-counties-2020", "us-counties-recent"],
        );
        let run = KeyedRun::new(
            &keyed::COUNTIES,
            &recent,
            9,
            vec![year.clone(), recent.clone()],
        );
        assert_eq!(
            run.run_id,
            run_id::of_dataset(
                &recent.env,
                &Dataset::COUNTIES,
                &[&year, &recent],
                &recent.trigger
            )
        );
        assert_eq!(run.order.sequence, 9);
        assert_eq!(run.context().dataset, Dataset::COUNTIES);
        let sources: Vec<Source> = run.input_refs().into_iter().map(|i| i.source).collect();
        assert_eq!(sources, [year.source, recent.source]);
    }
}
