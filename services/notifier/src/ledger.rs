//! The durable record of what the notifier told people, in the `etl-state` KV bucket: one record
//! per notice (a run, a failure, a staleness alert), under [`shared::store::notified_key`].
//!
//! The record follows the notice through its steps ([`crate::notice`]): written once the
//! notification is on `notify.<env>` (with the email `pending` or `skipped`), again the moment the
//! email's fate is known, and once more when that fate is reported. A redelivered event reads it
//! and does only the steps that remain, so nothing is emailed or published twice. Should a write
//! fail, the record is kept in memory so that this process does not redo a step (above all, send
//! an email again) while the bucket is unreachable; the write itself is retried.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::events::EmailFate;
use shared::store::{self, StoreError};

/// A notice's record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// `pending` until the mail server has answered for good; `skipped` when none is due.
    pub email: EmailFate,
    /// When `email` last changed.
    pub at: DateTime<Utc>,
    pub subject: String,
    pub recipients: usize,
    /// Why no email went out although recipients are configured: the policy, or the server's
    /// refusal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// The notification (or alert) is on `notify.<env>`.
    #[serde(default)]
    pub published: bool,
    /// The email's final fate is on `notify.<env>`, in the notification itself or in an
    /// [`shared::events::EmailReport`]. Records written before reports existed lack the field:
    /// their notification carried the email's fate, so nothing is owed.
    #[serde(default = "already_reported")]
    pub reported: bool,
}

impl Record {
    pub fn new(email: EmailFate, subject: &str, recipients: usize, note: Option<String>) -> Self {
        Self {
            email,
            at: Utc::now(),
            subject: subject.to_owned(),
            recipients,
            note,
            published: false,
            reported: false,
        }
    }

    /// Nothing is left to do for this notice.
    pub fn is_done(&self) -> bool {
        self.published && self.email != EmailFate::Pending && self.reported
    }
}

fn already_reported() -> bool {
    true
}

/// How long [`Ledger::put`] keeps trying: longer than a JetStream cluster takes to elect a new
/// leader when a node dies (a few seconds).
pub const PUT_PATIENCE: Duration = Duration::from_secs(15);

pub struct Ledger {
    state: kv::Store,
    unsaved: Mutex<HashMap<String, Record>>,
}

impl Ledger {
    pub fn new(state: kv::Store) -> Self {
        Self {
            state,
            unsaved: Mutex::new(HashMap::new()),
        }
    }

    /// The record under `key`: one this process could not save yet, or the stored one.
    pub async fn get(&self, key: &str) -> Result<Option<Record>, StoreError> {
        if let Some(record) = self.unsaved.lock().expect("ledger lock").get(key) {
            return Ok(Some(record.clone()));
        }
        store::kv_get(&self.state, key).await
    }

    /// Stores `record`, retrying for up to [`PUT_PATIENCE`]; on failure it is kept in memory so
    /// that this process goes on from it, and the caller retries later. The patience outlasts a
    /// JetStream leader election: a record not saved could send its email twice, should the
    /// retry land on another notifier.
    pub async fn put(&self, key: &str, record: &Record) -> Result<(), StoreError> {
        let started = std::time::Instant::now();
        let mut attempt = 0;
        loop {
            attempt += 1;
            match store::kv_put(&self.state, key, record).await {
                Ok(()) => {
                    self.unsaved.lock().expect("ledger lock").remove(key);
                    return Ok(());
                }
                Err(err) if started.elapsed() < PUT_PATIENCE => {
                    tracing::warn!(key, error = %err, attempt, "could not record the notice, retrying");
                    tokio::time::sleep(shared::nats::backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(2),
                    ))
                    .await;
                }
                Err(err) => {
                    self.unsaved
                        .lock()
                        .expect("ledger lock")
                        .insert(key.to_owned(), record.clone());
                    return Err(err);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_notice_is_done_once_published_and_its_email_settled_and_reported() {
        let mut record = Record::new(EmailFate::Pending, "s", 2, None);
        record.published = true;
        assert!(!record.is_done(), "the email is still to be sent");
        record.email = EmailFate::Sent;
        assert!(!record.is_done(), "its fate is still to be reported");
        record.reported = true;
        assert!(record.is_done());
    }

    #[test]
    fn a_record_written_before_email_reports_still_reads() {
        // The previous version's record: the email was sent before the notification went out.
        let old = serde_json::json!({
            "email": "sent", "at": "2026-01-05T06:00:00Z", "subject": "s", "recipients": 1,
            "published": true, "commit_sha": "1a2b3c4d"
        });
        let record: Record = serde_json::from_value(old).unwrap();
        assert_eq!(record.email, EmailFate::Sent);
        assert!(record.is_done(), "the old notification said it was emailed");
    }
}
