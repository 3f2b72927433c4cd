//! What becomes of one extracted event: skipped when it is no longer its source's latest, held
//! until the other source has a payload, or run; and how a failed run is reported.

use std::time::Duration;

use chrono::Utc;
use shared::consumer::{Delivery, Outcome};
use shared::events::{Extracted, Failed, SCHEMA_VERSION, Stage};
use shared::nats::{self, Stores, backoff};
use shared::{Source, store, subjects};

use crate::config::Config;
use crate::error::RunError;
use crate::run::Run;

pub(crate) struct Handler {
    stores: Stores,
    config: Config,
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
        Self { stores, config }
    }

    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let event: Extracted = match serde_json::from_slice(&delivery.payload) {
            Ok(event) => event,
            Err(err) => {
                return Outcome::Reject {
                    reason: format!(
                        "the message on {} is not an extracted event: {err}",
                        delivery.subject
                    ),
                };
            }
        };
        let run = match self.plan(&event).await {
            Ok(Plan::Run(run)) => run,
            Ok(Plan::Wait { missing }) => {
                tracing::info!(env = %event.env, source = %event.source, %missing, "waiting for the other source's first payload");
                return Outcome::Ack;
            }
            Ok(Plan::Skip { reason }) => {
                tracing::info!(env = %event.env, source = %event.source, object = %event.object.name, %reason, "skipping a stale extracted event");
                return Outcome::Ack;
            }
            Err(err) => return self.fail(&delivery, &event, None, err).await,
        };
        match run
            .execute(&self.stores, self.config.max_payload_bytes)
            .await
        {
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
                Outcome::Ack
            }
            Err(err) => self.fail(&delivery, &event, Some(&run), err).await,
        }
    }

    async fn plan(&self, event: &Extracted) -> Result<Plan, RunError> {
        let nyt = self.latest(event, Source::Nyt).await?;
        let jhu = self.latest(event, Source::Jhu).await?;
        let own = match event.source {
            Source::Nyt => &nyt,
            Source::Jhu => &jhu,
        };
        if let Some(reason) = staleness(event, own.as_ref()) {
            return Ok(Plan::Skip { reason });
        }
        Ok(match (nyt, jhu) {
            (Some(nyt), Some(jhu)) => Plan::Run(Box::new(Run::new(event, nyt, jhu))),
            (None, _) => Plan::Wait {
                missing: Source::Nyt,
            },
            (_, None) => Plan::Wait {
                missing: Source::Jhu,
            },
        })
    }

    async fn latest(
        &self,
        event: &Extracted,
        source: Source,
    ) -> Result<Option<Extracted>, RunError> {
        store::latest_extracted(&self.stores.state, &event.env, source)
            .await
            .map_err(|error| RunError::ReadState {
                input: source,
                error,
            })
    }

    /// Retries a transient error; otherwise (bad data, or the last attempt) publishes
    /// `etl.<env>.failed.transform` and rejects the event for good.
    async fn fail(
        &self,
        delivery: &Delivery,
        event: &Extracted,
        run: Option<&Run>,
        err: RunError,
    ) -> Outcome {
        let attempt = u32::try_from(delivery.delivered).unwrap_or(u32::MAX);
        let (kind, reason) = match err.permanent_kind() {
            Some(kind) => (kind, err.to_string()),
            None if delivery.last_attempt => (
                "unavailable",
                format!("the transform gave up after {attempt} attempts: {err}"),
            ),
            None => {
                return Outcome::Retry {
                    delay: retry_delay(attempt),
                    reason: err.to_string(),
                };
            }
        };
        let failed = Failed {
            schema_version: SCHEMA_VERSION,
            env: event.env.clone(),
            run_id: run.map(|run| run.run_id.clone()),
            stage: Stage::Transform,
            kind: kind.to_owned(),
            reason: reason.clone(),
            inputs: run.map_or_else(|| vec![event.input()], Run::inputs),
            trigger: Some(run.map_or_else(|| event.trigger.clone(), |run| run.trigger.clone())),
            source: None,
            failed_at: Utc::now(),
        };
        let msg_id = format!("failed:transform:{}", failed.id());
        tracing::warn!(env = %failed.env, run_id = ?failed.run_id, kind, %reason, "transform failed");
        match nats::publish_event(
            &self.stores.js,
            &subjects::failed(&failed.env, Stage::Transform),
            &msg_id,
            &failed,
        )
        .await
        {
            Ok(_) => Outcome::Reject { reason },
            // Unreported, the failure would be silent: try again while attempts remain.
            Err(publish) if !delivery.last_attempt => Outcome::Retry {
                delay: retry_delay(attempt),
                reason: format!("{reason}; and the failure could not be reported: {publish}"),
            },
            Err(publish) => {
                tracing::error!(env = %failed.env, error = %publish, %reason, "could not report a failed transform");
                Outcome::Reject { reason }
            }
        }
    }
}

fn retry_delay(attempt: u32) -> Duration {
    backoff(attempt, Duration::from_secs(1), Duration::from_secs(60))
}

/// Why `event` is not its source's latest extraction, if it is not. The latest is written to KV
/// before its event is published, so a current event always finds itself there.
fn staleness(event: &Extracted, latest: Option<&Extracted>) -> Option<String> {
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
    use shared::Env;
    use shared::events::{ObjectRef, Trigger, TriggerKind, UpstreamRef};

    fn extracted(sha: &str, trigger: Trigger) -> Extracted {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        Extracted {
            schema_version: SCHEMA_VERSION,
            env: Env::new("t_handler").unwrap(),
            source: Source::Nyt,
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: "us.csv".into(),
                commit_sha: "c".into(),
                commit_time: at,
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "etl-raw".into(),
                name: format!("t_handler/nyt/{sha}"),
                sha256: sha.into(),
                bytes: 1,
            },
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
        assert!(reason.contains("t_handler/nyt/b"), "{reason}");
    }

    #[test]
    fn the_same_payload_under_an_earlier_trigger_is_stale() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        let latest = extracted("a", Trigger::forced(TriggerKind::Manual, "t1"));
        assert!(staleness(&event, Some(&latest)).unwrap().contains("manual"));
    }

    #[test]
    fn an_event_without_a_recorded_latest_is_stale() {
        let event = extracted("a", Trigger::new(TriggerKind::Commit));
        assert!(staleness(&event, None).is_some());
    }
}
