//! One run of the transform: read both raw payloads, apply the transform, store the Parquet in
//! `etl-curated` (once: a run's output is never rewritten) and publish `etl.<env>.transformed`,
//! timing each step.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use shared::events::{
    Extracted, InputRef, ObjectRef, RunOrder, SCHEMA_VERSION, Transformed, Trigger,
};
use shared::ids::{Digest, RunId};
use shared::nats::{self, Stores};
use shared::settle::RunContext;
use shared::store::{self, StoreError, Stored};
use shared::{Dataset, Env, Source, run_id};

use crate::config::Config;
use crate::error::RunError;
use crate::steps::{Steps, elapsed_ms, panic_message};

/// A run: the triggering event's env and trigger, and the latest payload of each source.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub env: Env,
    pub run_id: RunId,
    pub trigger: Trigger,
    pub nyt: Extracted,
    pub jhu: Extracted,
    /// When the extraction that triggered the run was fetched.
    pub started_at: DateTime<Utc>,
    /// Where the run stands among the env's runs (the loader orders by it).
    pub order: RunOrder,
}

impl Run {
    /// The run of `nyt` and `jhu`, started by `trigger_event`, which sits at `stream_sequence`
    /// in the `ETL` stream. The run id depends on the inputs (and a forced trigger's id) only, so
    /// the first events of the two sources, handled one after the other once both payloads are
    /// recorded, are the same run.
    pub fn new(
        trigger_event: &Extracted,
        stream_sequence: u64,
        nyt: Extracted,
        jhu: Extracted,
    ) -> Self {
        let env = trigger_event.env.clone();
        let trigger = trigger_event.trigger.clone();
        let run_id = run_id::of_inputs(&env, &nyt, &jhu, &trigger);
        let order = RunOrder::of(&[nyt.input(), jhu.input()], stream_sequence);
        Self {
            env,
            run_id,
            trigger,
            nyt,
            jhu,
            started_at: trigger_event.fetched_at,
            order,
        }
    }

    /// NYT first, as in the run id.
    pub fn inputs(&self) -> Vec<InputRef> {
        vec![self.nyt.input(), self.jhu.input()]
    }

    /// What a failure of this run reports about it.
    pub fn context(&self) -> RunContext {
        RunContext {
            dataset: Dataset::US,
            run_id: Some(self.run_id.clone()),
            inputs: self.inputs(),
            trigger: Some(self.trigger.clone()),
            source: None,
        }
    }

    /// Transforms, stores and announces the run; returns the published event.
    pub async fn execute(&self, stores: &Stores, config: &Config) -> Result<Transformed, RunError> {
        let mut steps = Steps::start();
        let nyt = read_payload(stores, &self.nyt, config).await?;
        let jhu = read_payload(stores, &self.jhu, config).await?;
        steps.lap("read");

        // Parsing a few MB of CSV with polars is CPU work: keep it off the async workers.
        let (curated, parquet, transform_ms) = tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let curated = dataset::transform(&nyt, &jhu)?;
            let transform_ms = elapsed_ms(started);
            let parquet = dataset::to_parquet(&curated.rows)?;
            Ok::<_, dataset::DataError>((curated, parquet, transform_ms))
        })
        .await
        .map_err(|err| RunError::Panicked(panic_message(err)))??;
        steps.record("transform", transform_ms);
        steps.lap_remaining("parquet", transform_ms);

        let (Some(first), Some(last)) = (curated.rows.first(), curated.rows.last()) else {
            return Err(RunError::Empty);
        };
        let (first_date, last_date) = (first.date, last.date);

        let object = self.store(stores, config, &parquet, &curated.rows).await?;
        steps.lap("store");

        let event = Transformed {
            schema_version: SCHEMA_VERSION,
            env: self.env.clone(),
            dataset: Dataset::US,
            run_id: self.run_id.clone(),
            order: self.order,
            trigger: self.trigger.clone(),
            inputs: self.inputs(),
            object,
            rows: curated.rows.len() as u64,
            first_date,
            last_date,
            dropped: curated.dropped,
            warnings: curated.warnings,
            timings: steps.timings,
            delta: None,
        };
        // The message id is the run's: a second transform of the run (a duplicate delivery, the
        // other source's first event) publishes nothing new within the duplicate window.
        let duplicate = nats::publish(&stores.js, &event)
            .await
            .map_err(RunError::Publish)?;
        if duplicate {
            tracing::info!(env = %self.env, run_id = %self.run_id, "the run was already announced");
        }
        Ok(event)
    }

    /// Stores the run's Parquet unless the run's object is already there, and returns the
    /// object the run announces. An existing object is never replaced, since a loader may be
    /// reading it (issue 16). The transform is deterministic, so an earlier transform of the run
    /// normally left these very bytes; if not (another version of the transformer wrote it), the
    /// existing object stands as the run's output once it reads back whole, with its own digest
    /// and size, and the same rows.
    async fn store(
        &self,
        stores: &Stores,
        config: &Config,
        parquet: &[u8],
        rows: &[dataset::DailyRow],
    ) -> Result<ObjectRef, RunError> {
        let name = store::curated_object_name(&self.env, &self.run_id);
        let metadata = self.metadata(rows.len(), config.clock.now());
        let (existing, bytes) =
            match store_curated_once(stores, config, &name, parquet, metadata).await? {
                Placed::Ours(object) => return Ok(object),
                Placed::Other { object, bytes } => (object, bytes),
            };
        let foreign = |problem: String| RunError::ForeignCurated {
            name: name.clone(),
            problem,
        };
        match dataset::from_parquet(&bytes) {
            Ok(stored_rows) if stored_rows == rows => Ok(existing),
            Ok(stored_rows) => Err(foreign(format!(
                "{} rows where the transform gives {}, or other values",
                stored_rows.len(),
                rows.len()
            ))),
            Err(err) => Err(foreign(err.to_string())),
        }
    }

    fn metadata(&self, rows: usize, transformed_at: DateTime<Utc>) -> HashMap<String, String> {
        HashMap::from([
            ("env".to_owned(), self.env.to_string()),
            ("run_id".to_owned(), self.run_id.to_string()),
            ("rows".to_owned(), rows.to_string()),
            ("nyt_sha256".to_owned(), self.nyt.object.sha256.to_string()),
            ("jhu_sha256".to_owned(), self.jhu.object.sha256.to_string()),
            (
                store::CURATED_STARTED_AT.to_owned(),
                self.started_at.to_rfc3339(),
            ),
            (
                store::CURATED_TRANSFORMED_AT.to_owned(),
                transformed_at.to_rfc3339(),
            ),
        ])
    }
}

/// What [`store_curated_once`] found.
pub(crate) enum Placed {
    /// The object holds these very bytes: written now, or by an earlier transform of the run.
    Ours(ObjectRef),
    /// The object was already there with other bytes (another version of the transformer wrote
    /// it), read back whole: the caller decides whether it holds the same rows.
    Other { object: ObjectRef, bytes: Vec<u8> },
}

/// Stores a run's curated dataset as `name` in `etl-curated` unless an object of that name is
/// there already. An existing object is never replaced, since a loader may be reading it (issue
/// 16); with other bytes than `bytes`, it is read back for the caller to check.
pub(crate) async fn store_curated_once(
    stores: &Stores,
    config: &Config,
    name: &str,
    bytes: &[u8],
    metadata: HashMap<String, String>,
) -> Result<Placed, RunError> {
    let stored = store::put_object_once(
        &stores.curated,
        nats::CURATED_BUCKET,
        name,
        bytes,
        metadata,
        config.store_deadline,
    )
    .await
    .map_err(RunError::StoreCurated)?;
    let existing = match stored {
        Stored::Written(object) => return Ok(Placed::Ours(object)),
        Stored::Existing(object)
            if object.sha256 == Digest::of(bytes) && object.bytes == bytes.len() as u64 =>
        {
            tracing::info!(object = %name, "the run's curated dataset is already stored, as this transform made it");
            return Ok(Placed::Ours(object));
        }
        Stored::Existing(object) => object,
    };
    tracing::warn!(object = %name, stored = %existing.sha256, "the run's curated dataset is already stored with other bytes; checking it");
    let limit = existing.bytes.max(config.max_payload_bytes);
    let stored_bytes = store::get_object(&stores.curated, &existing, limit, config.store_deadline)
        .await
        .map_err(RunError::CheckCurated)?;
    Ok(Placed::Other {
        object: existing,
        bytes: stored_bytes,
    })
}

/// Reads a raw payload and checks it is the one its extraction announced (digest and size).
pub(crate) async fn read_payload(
    stores: &Stores,
    extracted: &Extracted,
    config: &Config,
) -> Result<Vec<u8>, RunError> {
    let input: Source = extracted.source.clone();
    store::get_object(
        &stores.raw,
        &extracted.object,
        config.max_payload_bytes,
        config.store_deadline,
    )
    .await
    .map_err(|error| match error {
        StoreError::TooLarge { name, limit } => RunError::TooLarge { input, name, limit },
        error => RunError::ReadPayload { input, error },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::events::{TriggerKind, UpstreamRef};
    use shared::ids::TriggerId;

    fn extracted(
        source: Source,
        payload: &str,
        trigger: Trigger,
        fetched_at: DateTime<Utc>,
    ) -> Extracted {
        let env = Env::new("t_run").unwrap();
        let sha256 = Digest::of(payload.as_bytes());
        Extracted {
            schema_version: SCHEMA_VERSION,
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: "p.csv".into(),
                commit_sha: sha256.as_str()[..12].parse().unwrap(),
                commit_time: fetched_at,
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: store::raw_object_name(&env, &source, &sha256),
                sha256,
                bytes: payload.len() as u64,
            },
            env,
            dataset: Dataset::US,
            source,
            dataset_sources: vec![],
            trigger,
            fetched_at,
        }
    }

    #[test]
    fn a_run_takes_env_trigger_and_start_from_the_triggering_event() {
        let early = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
        let nyt = extracted(Source::NYT, "n1", Trigger::new(TriggerKind::Initial), early);
        let forced = Trigger::forced(TriggerKind::Manual, TriggerId::new("x").unwrap());
        let jhu = extracted(Source::JHU, "j1", forced, late);
        let run = Run::new(&jhu, 42, nyt.clone(), jhu.clone());
        assert_eq!(run.trigger, jhu.trigger);
        assert_eq!(run.started_at, late);
        assert_eq!(
            run.run_id,
            run_id::of_inputs(&run.env, &nyt, &jhu, &jhu.trigger)
        );
        let sources: Vec<Source> = run.inputs().into_iter().map(|i| i.source).collect();
        assert_eq!(sources, vec![Source::NYT, Source::JHU]);
        assert_eq!(
            run.metadata(3, early)[store::CURATED_STARTED_AT],
            late.to_rfc3339()
        );
        assert_eq!(
            run.metadata(3, early)[store::CURATED_TRANSFORMED_AT],
            early.to_rfc3339()
        );
    }

    #[test]
    fn the_first_events_of_both_sources_are_one_run_ordered_by_upstream_then_sequence() {
        let nyt_at = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let jhu_at = Utc.with_ymd_and_hms(2024, 1, 3, 0, 0, 0).unwrap();
        let nyt = extracted(
            Source::NYT,
            "n1",
            Trigger::new(TriggerKind::Initial),
            nyt_at,
        );
        let jhu = extracted(
            Source::JHU,
            "j1",
            Trigger::new(TriggerKind::Initial),
            jhu_at,
        );
        let from_nyt = Run::new(&nyt, 7, nyt.clone(), jhu.clone());
        let from_jhu = Run::new(&jhu, 8, nyt.clone(), jhu.clone());
        assert_eq!(from_nyt.run_id, from_jhu.run_id);
        assert_eq!(from_nyt.order.upstream_time, jhu_at);
        assert_eq!(from_nyt.order.sequence, 7);
        assert!(from_nyt.order < from_jhu.order);
    }

    #[test]
    fn the_same_inputs_make_the_same_parquet_bytes() {
        // A second transform of a run compares its bytes with the stored object's: that only
        // holds if the Parquet is deterministic.
        let nyt = b"date,cases,deaths\n2020-01-22,1,0\n2020-01-23,2,1\n2020-01-24,4,1\n";
        let jhu = b"Date,Country/Region,Province/State,Recovered\n2020-01-22,US,,0\n2020-01-23,US,,1\n2020-01-24,US,,\n";
        let once = dataset::to_parquet(&dataset::transform(nyt, jhu).unwrap().rows).unwrap();
        let again = dataset::to_parquet(&dataset::transform(nyt, jhu).unwrap().rows).unwrap();
        assert_eq!(Digest::of(&once), Digest::of(&again));
    }
}
