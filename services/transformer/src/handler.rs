//! What becomes of one extracted event: skipped when it is no longer its source's latest, held
//! until the other source has a payload, or run. An event of a keyed dataset (`states`,
//! `counties`) goes to `keyed`, which decides the same way over its dataset's sources. A failure
//! is returned, classified, to the consumer's settle step, which retries, reports and
//! dead-letters; nothing here does.

use shared::Source;
use shared::consumer::Delivery;
use shared::events::{Extracted, FailureKind};
use shared::message::Event;
use shared::nats::Stores;
use shared::settle::Failure;
use shared::store;

use crate::config::Config;
use crate::error::RunError;
use crate::keyed;
use crate::run::Run;

pub(crate) struct Handler {
    stores: Stores,
    config: Config,
    /// What the keyed runs keep for the next run of their dataset.
    keyed_cache: keyed::Cache,
}

/// What to do with an extracted event, decided from the latest extractions in KV.
#[derive(Debug)]
enum Plan {
    Run(Box<Run>),
    /// The other source has never been extracted in this env.
    Wait {
        missing: Source,
    },
    /// The event is not its source's latest payload: a newer one superseded it, or it is a
    /// redelivery of an old one. Running it would use stale inputs.
    Skip {
        reason: String,
    },
}

impl Handler {
    pub fn new(stores: Stores, config: Config) -> Self {
        Self {
            stores,
            config,
            keyed_cache: keyed::Cache::new(),
        }
    }

    pub async fn handle(&self, delivery: Delivery) -> Result<(), Failure> {
        let Event::Extracted(event) = &delivery.event else {
            // The consumer's filter lets only extracted events through.
            return Err(Failure::permanent(
                FailureKind::Internal,
                format!(
                    "the transformer was handed the message on {}, which is not an extracted event",
                    delivery.subject
                ),
            ));
        };
        if !event.dataset.is_us() {
            return keyed::handle(
                &self.stores,
                &self.config,
                &self.keyed_cache,
                event,
                &delivery,
            )
            .await;
        }
        let plan = self
            .plan(event, delivery.stream_sequence)
            .await
            .map_err(|err| err.failure(delivery.delivered))?;
        let run = match plan {
            Plan::Run(run) => run,
            Plan::Wait { missing } => {
                tracing::info!(env = %event.env, source = %event.source, %missing, "waiting for the other source's first payload");
                return Ok(());
            }
            Plan::Skip { reason } => {
                tracing::info!(env = %event.env, source = %event.source, object = %event.object.name, %reason, "skipping a stale extracted event");
                return Ok(());
            }
        };
        match run.execute(&self.stores, &self.config).await {
            Ok(transformed) => {
                tracing::info!(
                    env = %transformed.env,
                    run_id = %transformed.run_id,
                    rows = transformed.rows,
                    first_date = %transformed.first_date,
                    last_date = %transformed.last_date,
                    warnings = transformed.warnings.len(),
                    timings = ?transformed.timings,
                    "transformed"
                );
                Ok(())
            }
            Err(err) => {
                let failure = err.failure(delivery.delivered).for_run(run.context());
                tracing::warn!(env = %run.env, run_id = %run.run_id, kind = %failure.kind, transient = failure.transient, reason = %failure.reason, "transform did not finish");
                Err(failure)
            }
        }
    }

    async fn plan(&self, event: &Extracted, stream_sequence: u64) -> Result<Plan, RunError> {
        let nyt = self.latest(event, &Source::NYT).await?;
        let jhu = self.latest(event, &Source::JHU).await?;
        let own = if event.source == Source::NYT {
            &nyt
        } else if event.source == Source::JHU {
            &jhu
        } else {
            return Err(RunError::NotADatasetSource {
                input: event.source.clone(),
                dataset: event.dataset.clone(),
                sources: Source::US.to_vec(),
            });
        };
        if let Some(reason) = staleness(event, own.as_ref()) {
            return Ok(Plan::Skip { reason });
        }
        Ok(match (nyt, jhu) {
            (Some(nyt), Some(jhu)) => {
                Plan::Run(Box::new(Run::new(event, stream_sequence, nyt, jhu)))
            }
            (None, _) => Plan::Wait {
                missing: Source::NYT,
            },
            (_, None) => Plan::Wait {
                missing: Source::JHU,
            },
        })
    }

    async fn latest(
        &self,
        event: &Extracted,
        source: &Source,
    ) -> Result<Option<Extracted>, RunError> {
        latest_extracted(&self.stores, event, source).await
    }
}

/// The latest extraction of `source` in `event`'s env, from KV.
pub(crate) async fn latest_extracted(
    stores: &Stores,
    event: &Extracted,
    source: &Source,
) -> Result<Option<Extracted>, RunError> {
    store::latest_extracted(&stores.state, &event.env, source)
        .await
        .map_err(|error| RunError::ReadState {
            input: source.clone(),
            error,
        })
}

/// Why `event` is not its source's latest extraction, if it is not. The latest is written to KV
/// before its event is published, so a current event always finds itself there.
pub(crate) fn staleness(event: &Extracted, latest: Option<&Extracted>) -> Option<String> {
    match latest {
        None => Some(format!(
            "no latest {} extraction is recorded for env {}",
            event.source, event.env
        )),
        Some(latest) if latest.object.sha256 != event.object.sha256 => Some(format!(
            "superseded by the newer payload {}",
            latest.object.name
        )),
        Some(latest) if latest.trigger != event.trigger => Some(format!(
            "superseded by a later {} trigger of the same payload",
            latest.trigger.kind.as_str()
        )),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::DateTime;
    use shared::events::{ObjectRef, SCHEMA_VERSION, Trigger, TriggerKind, UpstreamRef};
    use shared::ids::{CommitSha, Digest, TriggerId};
    use shared::{Dataset, Env};

    fn extracted(payload: &str, trigger: Trigger) -> Extracted {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let env = Env::new("t_handler").unwrap();
        let sha256 = Digest::of(payload.as_bytes());
        Extracted {
            schema_version: SCHEMA_VERSION,
            dataset: Dataset::US,
            source: Source::NYT,
            dataset_sources: vec![],
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: "us.csv".into(),
                commit_sha: CommitSha::new("c0ffee0").unwrap(),
                commit_time: at,
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: store::raw_object_name(&env, &Source::NYT, &sha256),
                sha256,
                bytes: payload.len() as u64,
            },
            env,
            trigger,
            fetched_at: at,
        }
    }

    #[test]
    fn the_latest_payload_is_current() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        assert_eq!(staleness(&event, Some(&event.clone())), None);
    }

    #[test]
    fn an_older_payload_is_stale() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        let latest = extracted("b", Trigger::new(TriggerKind::Commit));
        let reason = staleness(&event, Some(&latest)).unwrap();
        assert!(reason.contains(&latest.object.name), "{reason}");
    }

    #[test]
    fn the_same_payload_under_an_earlier_trigger_is_stale() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        let latest = extracted(
            "a",
            Trigger::forced(TriggerKind::Manual, TriggerId::new("t1").unwrap()),
        );
        assert!(staleness(&event, Some(&latest)).unwrap().contains("manual"));
    }

    #[test]
    fn an_event_without_a_recorded_latest_is_stale() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        assert!(staleness(&event, None).is_some());
    }
}
