//! How far a download has come, told on `etl.<env>.progress.<source>` (core NATS, not stored) for
//! `etl trigger --wait` to draw a progress bar. Reports are at most a few a second, and the last
//! one says the whole file arrived; one that cannot be sent is skipped, never a reason to fail.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_nats::Client;
use shared::events::DownloadProgress;
use shared::{Env, Source, subjects};

/// The shortest time between two reports of one download.
const EVERY: Duration = Duration::from_millis(250);

/// The progress reports of one download.
pub struct Progress {
    client: Client,
    subject: String,
    source: Source,
    commit: String,
    total_bytes: u64,
    last_sent: Mutex<Option<Instant>>,
}

impl Progress {
    pub fn new(client: Client, env: &Env, source: &Source, commit: &str, total_bytes: u64) -> Self {
        Self {
            client,
            subject: subjects::progress(env, source),
            source: source.clone(),
            commit: commit.to_owned(),
            total_bytes,
            last_sent: Mutex::new(None),
        }
    }

    /// `received` bytes have arrived: reported unless a report went out less than [`EVERY`] ago.
    pub async fn advance(&self, received: u64) {
        let due = {
            let mut last = self.last_sent.lock().unwrap_or_else(|e| e.into_inner());
            let due = last.is_none_or(|at| at.elapsed() >= EVERY);
            if due {
                *last = Some(Instant::now());
            }
            due
        };
        if due {
            self.send(received).await;
        }
    }

    /// The whole file has arrived: always reported.
    pub async fn finish(&self, received: u64) {
        self.send(received).await;
    }

    async fn send(&self, received_bytes: u64) {
        let report = DownloadProgress {
            source: self.source.clone(),
            commit: self.commit.clone(),
            received_bytes,
            total_bytes: self.total_bytes,
        };
        let Ok(body) = serde_json::to_vec(&report) else {
            return;
        };
        if let Err(err) = self.client.publish(self.subject.clone(), body.into()).await {
            tracing::debug!(subject = %self.subject, error = %err, "a progress report was not sent");
        }
    }
}
