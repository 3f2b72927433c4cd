//! One run of the transform: read both raw payloads, apply the transform, write the Parquet to
//! `etl-curated` and publish `etl.<env>.transformed`, timing each step.

use std::collections::HashMap;
use std::time::Instant;

use chrono::{DateTime, Utc};
use shared::events::{Extracted, InputRef, SCHEMA_VERSION, Timings, Transformed, Trigger};
use shared::nats::{self, Stores};
use shared::store::{self, StoreError};
use shared::{Env, Source, run_id, subjects};

use crate::error::RunError;

/// A run: the triggering event's env and trigger, and the latest payload of each source.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub env: Env,
    pub run_id: String,
    pub trigger: Trigger,
    pub nyt: Extracted,
    pub jhu: Extracted,
    /// When the extraction that triggered the run was fetched.
    pub started_at: DateTime<Utc>,
    /// When this transformer took the run up: orders runs for the loader.
    pub transformed_at: DateTime<Utc>,
}

impl Run {
    pub fn new(trigger_event: &Extracted, nyt: Extracted, jhu: Extracted) -> Self {
        let env = trigger_event.env.clone();
        let trigger = trigger_event.trigger.clone();
        let run_id = run_id::of_inputs(&env, &nyt, &jhu, &trigger);
        Self {
            env,
            run_id,
            trigger,
            nyt,
            jhu,
            started_at: trigger_event.fetched_at,
            transformed_at: Utc::now(),
        }
    }

    /// NYT first, as in the run id.
    pub fn inputs(&self) -> Vec<InputRef> {
        vec![self.nyt.input(), self.jhu.input()]
    }

    /// Transforms, stores and announces the run; returns the published event.
    pub async fn execute(
        &self,
        stores: &Stores,
        max_payload_bytes: u64,
    ) -> Result<Transformed, RunError> {
        let mut steps = Steps::start();
        let nyt = read_payload(stores, &self.nyt, max_payload_bytes).await?;
        let jhu = read_payload(stores, &self.jhu, max_payload_bytes).await?;
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

        let name = store::curated_object_name(&self.env, &self.run_id);
        let object = store::put_object(
            &stores.curated,
            nats::CURATED_BUCKET,
            &name,
            &parquet,
            self.metadata(curated.rows.len()),
        )
        .await
        .map_err(RunError::StoreCurated)?;
        steps.lap("store");

        let event = Transformed {
            schema_version: SCHEMA_VERSION,
            env: self.env.clone(),
            run_id: self.run_id.clone(),
            trigger: self.trigger.clone(),
            inputs: self.inputs(),
            object,
            rows: curated.rows.len() as u64,
            first_date,
            last_date,
            dropped: curated.dropped,
            warnings: curated.warnings,
            timings: steps.timings,
        };
        let msg_id = format!("transformed:{}", self.run_id);
        nats::publish_event(
            &stores.js,
            &subjects::transformed(&self.env),
            &msg_id,
            &event,
        )
        .await
        .map_err(RunError::Publish)?;
        Ok(event)
    }

    fn metadata(&self, rows: usize) -> HashMap<String, String> {
        HashMap::from([
            ("env".to_owned(), self.env.to_string()),
            ("run_id".to_owned(), self.run_id.clone()),
            ("rows".to_owned(), rows.to_string()),
            ("nyt_sha256".to_owned(), self.nyt.object.sha256.clone()),
            ("jhu_sha256".to_owned(), self.jhu.object.sha256.clone()),
            (
                store::CURATED_STARTED_AT.to_owned(),
                self.started_at.to_rfc3339(),
            ),
            (
                store::CURATED_TRANSFORMED_AT.to_owned(),
                self.transformed_at.to_rfc3339(),
            ),
        ])
    }
}

async fn read_payload(
    stores: &Stores,
    extracted: &Extracted,
    limit: u64,
) -> Result<Vec<u8>, RunError> {
    let input: Source = extracted.source;
    store::get_object(&stores.raw, &extracted.object.name, limit)
        .await
        .map_err(|error| match error {
            StoreError::TooLarge { name, limit } => RunError::TooLarge { input, name, limit },
            error => RunError::ReadPayload { input, error },
        })
}

/// Milliseconds per step, in the order the steps ran.
struct Steps {
    timings: Timings,
    last: Instant,
}

impl Steps {
    fn start() -> Self {
        Self {
            timings: Vec::new(),
            last: Instant::now(),
        }
    }

    /// Records the time since the previous lap as `name`.
    fn lap(&mut self, name: &str) {
        let ms = elapsed_ms(self.last);
        self.record(name, ms);
        self.last = Instant::now();
    }

    /// Records a step measured elsewhere (inside a blocking task).
    fn record(&mut self, name: &str, ms: u64) {
        self.timings.push((name.to_owned(), ms));
    }

    /// Records the time since the previous lap, minus `already` ms recorded on their own.
    fn lap_remaining(&mut self, name: &str, already: u64) {
        let ms = elapsed_ms(self.last).saturating_sub(already);
        self.record(name, ms);
        self.last = Instant::now();
    }
}

fn elapsed_ms(since: Instant) -> u64 {
    u64::try_from(since.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn panic_message(err: tokio::task::JoinError) -> String {
    if !err.is_panic() {
        return "the task was cancelled".to_owned();
    }
    let payload = err.into_panic();
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use shared::events::{ObjectRef, TriggerKind, UpstreamRef};

    fn extracted(
        source: Source,
        sha: &str,
        trigger: Trigger,
        fetched_at: DateTime<Utc>,
    ) -> Extracted {
        Extracted {
            schema_version: SCHEMA_VERSION,
            env: Env::new("t_run").unwrap(),
            source,
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: "p.csv".into(),
                commit_sha: format!("c-{sha}"),
                commit_time: fetched_at,
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: format!("t_run/{source}/{sha}"),
                sha256: sha.into(),
                bytes: 1,
            },
            trigger,
            fetched_at,
        }
    }

    #[test]
    fn a_run_takes_env_trigger_and_start_from_the_triggering_event() {
        let early = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
        let late = Utc.with_ymd_and_hms(2024, 1, 2, 0, 0, 0).unwrap();
        let nyt = extracted(Source::Nyt, "n1", Trigger::new(TriggerKind::Initial), early);
        let jhu = extracted(
            Source::Jhu,
            "j1",
            Trigger::forced(TriggerKind::Manual, "x"),
            late,
        );
        let run = Run::new(&jhu, nyt.clone(), jhu.clone());
        assert_eq!(run.trigger, jhu.trigger);
        assert_eq!(run.started_at, late);
        assert_eq!(
            run.run_id,
            run_id::of_inputs(&run.env, &nyt, &jhu, &jhu.trigger)
        );
        let sources: Vec<Source> = run.inputs().iter().map(|i| i.source).collect();
        assert_eq!(sources, vec![Source::Nyt, Source::Jhu]);
        assert_eq!(
            run.metadata(3)[store::CURATED_STARTED_AT],
            late.to_rfc3339()
        );
    }

    #[test]
    fn step_timings_keep_their_order() {
        let mut steps = Steps::start();
        steps.lap("read");
        steps.record("transform", 7);
        steps.lap_remaining("parquet", 7);
        let names: Vec<&str> = steps.timings.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["read", "transform", "parquet"]);
        assert_eq!(steps.timings[1].1, 7);
    }
}
