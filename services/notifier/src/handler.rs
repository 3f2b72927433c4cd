//! One `loaded` or `failed` event in: its notification on `notify.<env>` at once, then its email
//! and the email's fate ([`crate::notice`]), then, for a loaded run, a look at its sources' age.
//!
//! The handler only classifies: a notice that cannot go on (mail server unavailable, NATS or KV
//! unreachable) is a transient failure, retried after a back-off that grows to `SMTP_RETRY_MAX`;
//! the settle step gives it up after [`crate::consumer::max_deliver`] deliveries.
//!
//! A failure report of the notifier's own (`etl.<env>.failed.notify`, from the settle step) is
//! published like any failure but never emailed: nearly always it is an email given up on, so its
//! own email would wait on the same mail server and, given up in turn, could only be
//! dead-lettered. The settle step never reports the failure of a report of its own stage, so
//! nothing loops.

use std::sync::Arc;
use std::time::Duration;

use shared::consumer::Delivery;
use shared::events::FailureKind;
use shared::settle::Failure;

use crate::compose::RunEvent;
use crate::config::{Routes, UnchangedPolicy};
use crate::consumer::retry_delay;
use crate::notice::{Delivered, Email, Notice, NoticeError, Notices};
use crate::stale::StaleWatch;

/// Why a run that changed nothing has no email.
const UNCHANGED_NOTE: &str = "a run that changed nothing is not emailed (NOTIFY_UNCHANGED=nats)";

/// Why the notifier's own failure has no email.
const OWN_FAILURE_NOTE: &str = "a failure of the notifier itself is published, not emailed: its email would wait on the mail server that most likely caused it";

pub struct Handler {
    pub notices: Arc<Notices>,
    pub routes: Routes,
    pub dashboard_url: String,
    pub unchanged: UnchangedPolicy,
    /// The longest delay between two attempts to reach the mail server.
    pub retry_max: Duration,
    pub stale: Option<Arc<StaleWatch>>,
}

impl Handler {
    pub async fn handle(&self, delivery: Delivery) -> Result<(), Failure> {
        let Some(event) = RunEvent::of(delivery.event) else {
            // The consumer's filters let only loaded and failed events through.
            return Err(Failure::permanent(
                FailureKind::Internal,
                format!(
                    "the notifier handles loaded and failed events, not the one on {}",
                    delivery.subject
                ),
            ));
        };
        self.notify(&event)
            .await
            .map_err(|err| self.failure(&event, err, delivery.delivered))?;
        if let (RunEvent::Loaded(loaded), Some(stale)) = (&event, &self.stale) {
            // A run is a good moment to look at its sources' age; a failure here is logged and
            // the periodic check tries again, it does not hold up the run's notice.
            if let Err(err) = stale.check_env(&loaded.env).await {
                tracing::warn!(env = %loaded.env, error = %err, "staleness check failed");
            }
        }
        Ok(())
    }

    async fn notify(&self, event: &RunEvent) -> Result<Delivered, NoticeError> {
        let id = event.id();
        let composed = event.compose(&self.dashboard_url);
        let notice = Notice {
            env: event.env(),
            id: &id,
            composed: &composed,
            email: self.email(event),
        };
        self.notices
            .deliver(&notice, |email, note| {
                event.notification(&composed, email, note)
            })
            .await
    }

    fn email(&self, event: &RunEvent) -> Email<'_> {
        let to = self.routes.recipients(event.env());
        if to.is_empty() {
            Email::Skip(None)
        } else if event.is_notify_failure() {
            Email::Skip(Some(OWN_FAILURE_NOTE))
        } else if event.is_unchanged() && self.unchanged == UnchangedPolicy::Nats {
            Email::Skip(Some(UNCHANGED_NOTE))
        } else {
            Email::To(to)
        }
    }

    fn failure(&self, event: &RunEvent, err: NoticeError, delivered: u64) -> Failure {
        // Every step of a notice is safe to repeat, and none fails for good: the mail server's
        // refusals are an answer, recorded and reported, not an error.
        Failure::transient(FailureKind::Unavailable, err.to_string())
            .retry_after(retry_delay(delivered, self.retry_max))
            .for_run(event.failure_context())
    }
}
