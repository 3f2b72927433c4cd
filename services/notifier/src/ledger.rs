//! The durable record of what the notifier told people, in the `etl-state` KV bucket.
//!
//! A record is written right after the mail server accepts an email, before the notification is
//! published and before the event is acknowledged; a redelivered event finds it and is not
//! emailed again. Should the write fail, the record is kept in memory so that this process does
//! not send the email again while the bucket is unreachable (it retries the write instead).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::store::{self, StoreError};

/// What became of an email.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmailFate {
    /// The mail server accepted it.
    Sent,
    /// The mail server refused it for good.
    Refused,
    /// None was due: no recipients for the env, or the policy says NATS only.
    Skipped,
}

/// A notification's record (run notifications and staleness alerts alike).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub email: EmailFate,
    pub at: DateTime<Utc>,
    pub subject: String,
    pub recipients: usize,
    /// Why no email went out although recipients are configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Set once the notification is on `notify.<env>`: after that, the event is done.
    #[serde(default)]
    pub published: bool,
    /// For staleness alerts: the commit the alert was about (one alert per stale commit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
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
            commit_sha: None,
        }
    }

    pub fn emailed(&self) -> bool {
        self.email == EmailFate::Sent
    }
}

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

    /// Stores `record`, retrying briefly; on failure it is kept in memory so that this process
    /// treats the email as sent, and the caller retries later.
    pub async fn put(&self, key: &str, record: &Record) -> Result<(), StoreError> {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match store::kv_put(&self.state, key, record).await {
                Ok(()) => {
                    self.unsaved.lock().expect("ledger lock").remove(key);
                    return Ok(());
                }
                Err(err) if attempt < 3 => {
                    tracing::warn!(key, error = %err, attempt, "could not record the notification, retrying");
                    tokio::time::sleep(shared::nats::backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(1),
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
