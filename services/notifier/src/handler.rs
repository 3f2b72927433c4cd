//! One `loaded` or `failed` event in, one email (when due) and one notification out.
//!
//! The steps, each safe to repeat: look up the run's record → if there is none, decide the email
//! (send it, or note why not) and record the outcome → publish the notification (its message id
//! is `notify:<env>:<id>`, so a repeat within the stream's window is dropped) → mark the record
//! published → acknowledge. A mail server that is down or deferring turns into a delayed
//! redelivery of this one event, so the consumer moves on to other events and envs meanwhile.

use std::sync::Arc;
use std::time::Duration;

use shared::consumer::{Delivery, Outcome};
use shared::nats::{self, Stores};
use shared::{store, subjects};

use crate::compose::{Composed, RunEvent};
use crate::config::{Routes, UnchangedPolicy};
use crate::ledger::{EmailFate, Ledger, Record};
use crate::mailer::{Mailer, SendError};
use crate::stale::StaleWatch;

pub struct Handler {
    pub stores: Stores,
    pub ledger: Arc<Ledger>,
    pub mailer: Mailer,
    pub routes: Routes,
    pub dashboard_url: String,
    pub unchanged: UnchangedPolicy,
    /// The longest delay between two attempts to reach the mail server.
    pub retry_max: Duration,
    pub stale: Option<Arc<StaleWatch>>,
}

impl Handler {
    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let event = match RunEvent::decode(&delivery.subject, &delivery.payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::error!(error = %err, "dropping an event that cannot be read");
                return Outcome::Reject {
                    reason: err.to_string(),
                };
            }
        };
        let outcome = self.notify(&event, delivery.delivered).await;
        if let (Outcome::Ack, RunEvent::Loaded(loaded), Some(stale)) =
            (&outcome, &event, &self.stale)
        {
            // A run is a good moment to look at its sources' age; a failure here is logged and
            // the periodic check tries again, it does not hold up the run's notification.
            if let Err(err) = stale.check_env(&loaded.env).await {
                tracing::warn!(env = %loaded.env, error = %err, "staleness check failed");
            }
        }
        outcome
    }

    async fn notify(&self, event: &RunEvent, attempt: i64) -> Outcome {
        let env = event.env();
        let id = event.id();
        let key = store::notified_key(env, &id);
        let composed = event.compose(&self.dashboard_url);

        let record = match self.ledger.get(&key).await {
            Ok(record) => record,
            Err(err) => {
                return retry(
                    attempt,
                    Duration::from_secs(30),
                    format!("cannot read {key}: {err}"),
                );
            }
        };
        let mut record = match record {
            Some(record) => {
                tracing::info!(%env, id, email = ?record.email, published = record.published, "event seen before, not emailing again");
                record
            }
            None => match self.email(event, &composed, &key, attempt).await {
                Ok(record) => record,
                Err(outcome) => return outcome,
            },
        };
        if record.published {
            return Outcome::Ack;
        }

        let notification = event.notification(&composed, record.emailed(), record.note.clone());
        // The env is in the id although run ids are derived from it: the stream's de-duplication
        // spans every env, and ids from elsewhere (tests, hand-made events) need not be.
        let msg_id = format!("notify:{env}:{id}");
        if let Err(err) = nats::publish_event(
            &self.stores.js,
            &subjects::notify(env),
            &msg_id,
            &notification,
        )
        .await
        {
            return retry(attempt, Duration::from_secs(30), err.to_string());
        }
        tracing::info!(%env, id, subject = %composed.subject, emailed = record.emailed(), "notified");
        record.published = true;
        if let Err(err) = self.ledger.put(&key, &record).await {
            // Published already; a redelivery publishes again under the same message id, which
            // the stream drops, and then records.
            return retry(
                attempt,
                Duration::from_secs(30),
                format!("cannot record {key}: {err}"),
            );
        }
        Outcome::Ack
    }

    /// Sends the email when one is due and records what became of it. `Err` is the outcome to
    /// return instead: a retry while the mail server is unavailable.
    async fn email(
        &self,
        event: &RunEvent,
        composed: &Composed,
        key: &str,
        attempt: i64,
    ) -> Result<Record, Outcome> {
        let env = event.env();
        let to = self.routes.recipients(env);
        if to.is_empty() {
            return Ok(Record::new(EmailFate::Skipped, &composed.subject, 0, None));
        }
        if event.is_unchanged() && self.unchanged == UnchangedPolicy::Nats {
            let note =
                "a run that changed nothing is not emailed (NOTIFY_UNCHANGED=nats)".to_owned();
            return Ok(Record::new(
                EmailFate::Skipped,
                &composed.subject,
                to.len(),
                Some(note),
            ));
        }

        let message_id = format!("{}.{}", event.id(), env);
        let record = match self.mailer.send(to, composed, &message_id).await {
            Ok(()) => {
                tracing::info!(%env, id = event.id(), recipients = to.len(), subject = %composed.subject, "email sent");
                Record::new(EmailFate::Sent, &composed.subject, to.len(), None)
            }
            Err(SendError::Transient(reason)) => {
                let delay = nats::backoff(
                    attempt.max(1) as u32,
                    Duration::from_secs(1),
                    self.retry_max,
                );
                tracing::warn!(%env, id = event.id(), server = self.mailer.server(), %reason, attempt, ?delay, "mail server unavailable, will send when it is back");
                return Err(Outcome::Retry { delay, reason });
            }
            Err(SendError::Refused(reason)) => {
                tracing::error!(%env, id = event.id(), server = self.mailer.server(), %reason, "mail server refused the email for good; publishing the notification without it");
                let note = format!("the mail server refused the email: {reason}");
                Record::new(EmailFate::Refused, &composed.subject, to.len(), Some(note))
            }
        };
        // Written before anything else happens, so a redelivery does not send it again.
        if let Err(err) = self.ledger.put(key, &record).await {
            return Err(retry(
                attempt,
                Duration::from_secs(30),
                format!("cannot record {key}: {err}"),
            ));
        }
        Ok(record)
    }
}

fn retry(attempt: i64, max: Duration, reason: String) -> Outcome {
    Outcome::Retry {
        delay: nats::backoff(attempt.max(1) as u32, Duration::from_secs(1), max),
        reason,
    }
}
