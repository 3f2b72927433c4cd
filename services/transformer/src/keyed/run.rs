//! One run of a keyed dataset: the base looked up, the payloads read, the blocking curation,
//! the full Parquet and the delta CSVs stored once each, the run announced and recorded as the
//! dataset's base.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use dataset::keyed::{Curated, Spec};
use shared::events::{
    Delta, Dropped, Extracted, InputRef, ObjectRef, RunOrder, SCHEMA_VERSION, Transformed, Trigger,
};
use shared::ids::{Digest, RunId};
use shared::nats::{self, Stores};
use shared::settle::RunContext;
use shared::store::{self, StoreError, Stored};
use shared::{Dataset, Env, run_id};

use super::cache::Cache;
use super::curate::{Base, Content, Curation, DeltaParts, File, curate, same_rows};
use crate::config::Config;
use crate::error::RunError;
use crate::run::{Placed, read_payload, store_curated_once};
use crate::steps::{Steps, panic_message};

/// A run of a keyed dataset: the latest payload of each of its sources, in the dataset's order.
#[derive(Debug)]
pub(super) struct KeyedRun {
    spec: &'static Spec,
    pub env: Env,
    pub dataset: Dataset,
    pub run_id: RunId,
    trigger: Trigger,
    inputs: Vec<Extracted>,
    /// When the extraction that triggered the run was fetched.
    started_at: DateTime<Utc>,
    pub order: RunOrder,
}

/// What became of a run.
pub(super) enum Outcome {
    /// The run was announced (now, or by an earlier delivery whose event is re-published).
    Announced(Box<Transformed>),
    /// The dataset's last curated run comes after this one: the loader would never apply this
    /// one over it, so it is not made.
    Superseded { by: RunId },
}

impl KeyedRun {
    pub(super) fn new(
        spec: &'static Spec,
        trigger_event: &Extracted,
        stream_sequence: u64,
        inputs: Vec<Extracted>,
    ) -> Self {
        let env = trigger_event.env.clone();
        let dataset = trigger_event.dataset.clone();
        let trigger = trigger_event.trigger.clone();
        let refs: Vec<&Extracted> = inputs.iter().collect();
        let run_id = run_id::of_dataset(&env, &dataset, &refs, &trigger);
        let input_refs: Vec<InputRef> = inputs.iter().map(Extracted::input).collect();
        let order = RunOrder::of(&input_refs, stream_sequence);
        Self {
            spec,
            env,
            dataset,
            run_id,
            trigger,
            inputs,
            started_at: trigger_event.fetched_at,
            order,
        }
    }

    pub(super) fn input_refs(&self) -> Vec<InputRef> {
        self.inputs.iter().map(Extracted::input).collect()
    }

    pub(super) fn context(&self) -> RunContext {
        RunContext {
            dataset: self.dataset.clone(),
            run_id: Some(self.run_id.clone()),
            inputs: self.input_refs(),
            trigger: Some(self.trigger.clone()),
            source: None,
        }
    }

    pub(super) async fn execute(
        &self,
        stores: &Stores,
        config: &Config,
        cache: &Cache,
    ) -> Result<Outcome, RunError> {
        let last = self.last_curated(stores).await?;
        if let Some(last) = &last {
            if last.run_id == self.run_id {
                // A redelivery of a run already made: announce it again, as it was.
                tracing::info!(env = %self.env, dataset = %self.dataset, run_id = %self.run_id, "the run is already curated; announcing it again");
                nats::publish(&stores.js, last)
                    .await
                    .map_err(RunError::Publish)?;
                return Ok(Outcome::Announced(Box::new(last.clone())));
            }
            if last.order > self.order {
                return Ok(Outcome::Superseded {
                    by: last.run_id.clone(),
                });
            }
        }
        let mut steps = Steps::start();
        let files = self.files(stores, config, cache).await?;
        steps.lap("read");
        let base = match &last {
            Some(last) => self.base(stores, config, cache, last).await,
            None => None,
        };
        steps.lap("base");

        let spec = self.spec;
        let (env, run_id) = (self.env.clone(), self.run_id.clone());
        let curation =
            tokio::task::spawn_blocking(move || curate(spec, files, base, &env, &run_id))
                .await
                .map_err(|err| RunError::Panicked(panic_message(err)))??;
        record_inside(&mut steps, &curation.timings);
        let Curation {
            files,
            curated,
            parquet,
            delta,
            ..
        } = curation;
        let (Some(first_date), Some(last_date)) = (curated.first_date(), curated.last_date())
        else {
            return Err(RunError::Empty);
        };

        let warnings = curated.warnings().to_vec();
        let rows = curated.rows();
        let object = self
            .store_curated(
                stores,
                config,
                &parquet,
                Arc::clone(&curated),
                first_date,
                last_date,
            )
            .await?;
        drop(parquet);
        let delta = match delta {
            Some(parts) => self.store_delta(stores, config, parts).await?,
            None => None,
        };
        steps.lap("store");

        let event = Transformed {
            schema_version: SCHEMA_VERSION,
            env: self.env.clone(),
            dataset: self.dataset.clone(),
            run_id: self.run_id.clone(),
            order: self.order,
            trigger: self.trigger.clone(),
            inputs: self.input_refs(),
            object,
            rows: rows as u64,
            first_date,
            last_date,
            dropped: Dropped::default(),
            warnings,
            timings: steps.timings,
            delta,
        };
        self.announce(stores, &event).await?;
        // Kept once the run is the dataset's base: its files for the next run to reuse, its
        // curated dataset to be that run's base.
        cache.keep(self.spec, files, self.run_id.clone(), curated);
        Ok(Outcome::Announced(Box::new(event)))
    }

    /// The run's files in the dataset's order: parsed by an earlier run when the payload's
    /// digest is one that run had, else the payload read from `etl-raw`, all read at once.
    async fn files(
        &self,
        stores: &Stores,
        config: &Config,
        cache: &Cache,
    ) -> Result<Vec<File>, RunError> {
        let reads = self.inputs.iter().map(|input| async move {
            let digest = input.object.sha256.clone();
            let content = match cache.file(self.spec, &digest) {
                Some(parsed) => Content::Parsed(parsed),
                None => Content::Payload(read_payload(stores, input, config).await?),
            };
            Ok::<_, RunError>(File {
                name: input.upstream.path.clone(),
                digest,
                content,
            })
        });
        // All awaited, so that of several failed reads the first in the dataset's order is the
        // one reported, whichever failed first.
        futures::future::join_all(reads).await.into_iter().collect()
    }

    /// The base of the delta: the last run's curated dataset if this process made it and
    /// still holds it, else its Parquet read back.
    async fn base(
        &self,
        stores: &Stores,
        config: &Config,
        cache: &Cache,
        last: &Transformed,
    ) -> Option<Base> {
        match cache.curated(self.spec, &last.run_id) {
            Some(curated) => Some(Base::Curated {
                run_id: last.run_id.clone(),
                curated,
            }),
            None => self.read_base(stores, config, last).await,
        }
    }

    /// Publishes the run's event, then records it as the dataset's last curated run: a run is
    /// the base of the next one only once the loader can know it.
    async fn announce(&self, stores: &Stores, event: &Transformed) -> Result<(), RunError> {
        // The run's message id: a second announcement within the window is a duplicate.
        let duplicate = nats::publish(&stores.js, event)
            .await
            .map_err(RunError::Publish)?;
        if duplicate {
            tracing::info!(env = %self.env, dataset = %self.dataset, run_id = %self.run_id, "the run was already announced");
        }
        let key = store::curated_key(&self.env, &self.dataset);
        store::kv_put(&stores.state, &key, event)
            .await
            .map_err(|error| RunError::RecordCurated {
                dataset: self.dataset.clone(),
                error,
            })
    }

    /// The dataset's last curated run. One recorded in a form this version cannot read is no
    /// base: the next run reconciles rather than every run failing on it.
    async fn last_curated(&self, stores: &Stores) -> Result<Option<Transformed>, RunError> {
        let key = store::curated_key(&self.env, &self.dataset);
        match store::kv_get::<Transformed>(&stores.state, &key).await {
            Ok(last) => Ok(last),
            Err(error @ StoreError::KvDecode { .. }) => {
                tracing::warn!(env = %self.env, dataset = %self.dataset, %key, %error, "the last curated run cannot be read; going on without a base");
                Ok(None)
            }
            Err(error) => Err(RunError::ReadBase {
                dataset: self.dataset.clone(),
                error,
            }),
        }
    }

    /// The base's Parquet; `None` (with a warning) when it cannot be read: the run goes on
    /// without a delta.
    async fn read_base(
        &self,
        stores: &Stores,
        config: &Config,
        last: &Transformed,
    ) -> Option<Base> {
        let object = &last.object;
        match store::get_object(&stores.curated, object, object.bytes, config.store_deadline).await
        {
            Ok(parquet) => Some(Base::Parquet {
                run_id: last.run_id.clone(),
                parquet,
            }),
            Err(error) => {
                tracing::warn!(env = %self.env, dataset = %self.dataset, run_id = %self.run_id, base = %last.run_id, %error, "the base's curated object cannot be read; going on without a delta");
                None
            }
        }
    }

    /// Stores the full curated dataset once. An object already there with other bytes (a
    /// transform of this run by another version, say) is accepted if it holds the same rows.
    async fn store_curated(
        &self,
        stores: &Stores,
        config: &Config,
        parquet: &[u8],
        curated: Arc<Curated>,
        first_date: NaiveDate,
        last_date: NaiveDate,
    ) -> Result<ObjectRef, RunError> {
        let name = store::curated_object_name(&self.env, &self.run_id);
        let metadata = self.metadata(curated.rows(), first_date, last_date, config.clock.now());
        let (existing, bytes) =
            match store_curated_once(stores, config, &name, parquet, metadata).await? {
                Placed::Ours(object) => return Ok(object),
                Placed::Other { object, bytes } => (object, bytes),
            };
        let spec = self.spec;
        let problem = tokio::task::spawn_blocking(move || same_rows(spec, &bytes, &curated))
            .await
            .map_err(|err| RunError::Panicked(panic_message(err)))?;
        match problem {
            None => Ok(existing),
            Some(problem) => Err(RunError::ForeignCurated { name, problem }),
        }
    }

    /// Stores the three delta CSVs once each. A part already there with other bytes was made
    /// against another base: the run then goes without a delta rather than announce a wrong one.
    async fn store_delta(
        &self,
        stores: &Stores,
        config: &Config,
        parts: DeltaParts,
    ) -> Result<Option<Delta>, RunError> {
        let mut objects = Vec::with_capacity(3);
        for (part, bytes) in [
            ("rows", &parts.rows),
            ("removed", &parts.removed),
            ("changes", &parts.changes),
        ] {
            let name = store::delta_object_name(&self.env, &self.run_id, part);
            let metadata = HashMap::from([
                ("env".to_owned(), self.env.to_string()),
                ("dataset".to_owned(), self.dataset.to_string()),
                ("run_id".to_owned(), self.run_id.to_string()),
                ("base_run_id".to_owned(), parts.base_run_id.to_string()),
            ]);
            let stored = store::put_object_once(
                &stores.curated,
                nats::CURATED_BUCKET,
                &name,
                bytes,
                metadata,
                config.store_deadline,
            )
            .await
            .map_err(RunError::StoreDelta)?;
            match stored {
                Stored::Written(object) => objects.push(object),
                Stored::Existing(object) if object.sha256 == Digest::of(bytes) => {
                    objects.push(object);
                }
                Stored::Existing(object) => {
                    tracing::warn!(env = %self.env, dataset = %self.dataset, run_id = %self.run_id, object = %name, stored = %object.sha256, "a delta part of the run is already stored with other bytes; announcing the run without a delta");
                    return Ok(None);
                }
            }
        }
        let [rows, removed, changes] =
            <[ObjectRef; 3]>::try_from(objects).expect("three parts were stored");
        Ok(Some(Delta {
            base_run_id: parts.base_run_id,
            rows,
            removed,
            changes,
            counts: parts.counts,
        }))
    }

    fn metadata(
        &self,
        rows: usize,
        first_date: NaiveDate,
        last_date: NaiveDate,
        transformed_at: DateTime<Utc>,
    ) -> HashMap<String, String> {
        let mut metadata = HashMap::from([
            ("env".to_owned(), self.env.to_string()),
            ("dataset".to_owned(), self.dataset.to_string()),
            ("run_id".to_owned(), self.run_id.to_string()),
            ("rows".to_owned(), rows.to_string()),
            ("first_date".to_owned(), first_date.to_string()),
            ("last_date".to_owned(), last_date.to_string()),
            (
                store::CURATED_STARTED_AT.to_owned(),
                self.started_at.to_rfc3339(),
            ),
            (
                store::CURATED_TRANSFORMED_AT.to_owned(),
                transformed_at.to_rfc3339(),
            ),
        ]);
        for input in &self.inputs {
            metadata.insert(
                format!("{}_sha256", input.source),
                input.object.sha256.to_string(),
            );
        }
        metadata
    }
}

/// Records the steps timed inside the blocking task; the last one also takes the hand-over back
/// from it.
fn record_inside(steps: &mut Steps, inside: &[(String, u64)]) {
    let mut recorded = 0;
    for (index, (name, ms)) in inside.iter().enumerate() {
        if index + 1 < inside.len() {
            steps.record(name, *ms);
            recorded += ms;
        } else {
            steps.lap_remaining(name, recorded);
        }
    }
}
