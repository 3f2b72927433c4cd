//! A lease in the `etl-state` bucket: of several replicas of a service, one at a time does a job
//! that must not run twice at once (the extractor's polls, the notifier's staleness check).
//!
//! The key holds the holder's name. The holder renews it by a revision-checked update every
//! quarter of the lease period; the others read it and take it over, by the same kind of update,
//! once its revision has stood still for three quarters of the period. Only elapsed times on each
//! process's own monotonic clock are compared, never two hosts' clocks, so a skewed clock cannot
//! hand the lease to two replicas:
//!
//! - a holder acts only within half a period of sending its last successful renewal;
//! - a replica takes over no sooner than three quarters of a period after it first saw that
//!   renewal, which is later;
//! - a replica that stops cleanly deletes the key ([`Lease::release`]), and another takes over at
//!   its next check.
//!
//! Checked every eighth of a period ([`keep`] does it in a task of its own, so a long job never
//! delays a renewal), a dead holder's lease passes to another replica within one period of its
//! last renewal.

use std::time::Duration;

use async_nats::jetstream::kv::{self, Operation};
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use crate::shutdown::Shutdown;

/// Where this replica stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Standing {
    /// This replica holds the lease: it may do the job now.
    Holder,
    /// Another replica holds it (its name, when known).
    Standby { holder: Option<String> },
}

#[derive(Debug, thiserror::Error)]
#[error("lease {key}: {reason}")]
pub struct LeaseError {
    key: String,
    reason: String,
}

#[derive(Serialize, Deserialize)]
struct Value {
    holder: String,
}

/// One replica's side of a lease.
pub struct Lease {
    kv: kv::Store,
    key: String,
    name: String,
    period: Duration,
    held: Option<Held>,
    watched: Option<Watched>,
}

/// Our hold: the revision we wrote, and when we sent the write that made it.
struct Held {
    revision: u64,
    sent_at: Instant,
}

/// Another holder's revision, and when this replica first saw it.
struct Watched {
    revision: u64,
    holder: Option<String>,
    since: Instant,
}

impl Lease {
    /// The lease at `key` of `kv`, as the replica called `name` (unique among the replicas, e.g.
    /// [`replica_name`]), for `period`.
    pub fn new(kv: kv::Store, key: String, name: String, period: Duration) -> Self {
        Self {
            kv,
            key,
            name,
            period,
            held: None,
            watched: None,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// How often [`Lease::check`] should run: an eighth of the period.
    pub fn check_every(&self) -> Duration {
        self.period / 8
    }

    /// Renews the lease if this replica holds it and a quarter period has passed, or takes it if
    /// it is free or its holder has stopped renewing it; then says where this replica stands.
    /// An error means the bucket could not be reached: the replica is then not the holder.
    pub async fn check(&mut self) -> Result<Standing, LeaseError> {
        if let Some(held) = &self.held {
            let age = held.sent_at.elapsed();
            if age < self.period / 4 {
                return Ok(Standing::Holder);
            }
            let revision = held.revision;
            let sent_at = Instant::now();
            match self.kv.update(&self.key, self.value(), revision).await {
                Ok(revision) => {
                    self.held = Some(Held { revision, sent_at });
                    return Ok(Standing::Holder);
                }
                Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => {
                    self.held = None;
                    // A renewal whose answer was lost (a broker leader change) leaves our own
                    // write in place under a revision we did not hear of.
                    if let Ok(Some(entry)) = self.kv.entry(&self.key).await
                        && entry.operation == Operation::Put
                        && holder_of(&entry).as_deref() == Some(self.name.as_str())
                    {
                        self.held = Some(Held {
                            revision: entry.revision,
                            sent_at,
                        });
                        return Ok(Standing::Holder);
                    }
                    tracing::warn!(key = %self.key, "the lease was taken over by another replica");
                }
                // A bucket that does not answer for a moment does not end the hold, but a
                // holder that has not renewed for half a period must stop: others may take over
                // from three quarters on.
                Err(err) if age < self.period / 2 => {
                    tracing::warn!(key = %self.key, error = %err, "the lease could not be renewed yet");
                    return Ok(Standing::Holder);
                }
                Err(err) => {
                    self.held = None;
                    return Err(self.error(format!("could not be renewed: {err}")));
                }
            }
        }
        self.try_take().await
    }

    async fn try_take(&mut self) -> Result<Standing, LeaseError> {
        let entry = self
            .kv
            .entry(&self.key)
            .await
            .map_err(|err| self.error(format!("could not be read: {err}")))?;
        let current =
            entry.filter(|e| !matches!(e.operation, Operation::Delete | Operation::Purge));
        let sent_at = Instant::now();
        let taken = match &current {
            // Free: whoever creates the key first holds it.
            None => self.kv.create(&self.key, self.value()).await.ok(),
            Some(entry) => {
                let holder = holder_of(entry);
                let unchanged_for = match &self.watched {
                    Some(w) if w.revision == entry.revision => w.since.elapsed(),
                    _ => {
                        self.watched = Some(Watched {
                            revision: entry.revision,
                            holder: holder.clone(),
                            since: Instant::now(),
                        });
                        Duration::ZERO
                    }
                };
                if unchanged_for < self.period * 3 / 4 {
                    return Ok(Standing::Standby { holder });
                }
                tracing::warn!(key = %self.key, holder = ?holder, "the lease's holder stopped renewing it: taking over");
                self.kv
                    .update(&self.key, self.value(), entry.revision)
                    .await
                    .ok()
            }
        };
        match taken {
            Some(revision) => {
                self.held = Some(Held { revision, sent_at });
                self.watched = None;
                Ok(Standing::Holder)
            }
            // Another replica was quicker.
            None => Ok(Standing::Standby {
                holder: self.watched.as_ref().and_then(|w| w.holder.clone()),
            }),
        }
    }

    /// Gives the lease up, if held, so that another replica takes over at once.
    pub async fn release(&mut self) {
        if let Some(held) = self.held.take()
            && let Err(err) = self
                .kv
                .delete_expect_revision(&self.key, Some(held.revision))
                .await
        {
            tracing::debug!(key = %self.key, error = %err, "the lease was not released");
        }
    }

    fn value(&self) -> bytes::Bytes {
        serde_json::to_vec(&Value {
            holder: self.name.clone(),
        })
        .expect("a lease value serializes")
        .into()
    }

    fn error(&self, reason: String) -> LeaseError {
        LeaseError {
            key: self.key.clone(),
            reason,
        }
    }
}

/// The holder named in a lease entry.
fn holder_of(entry: &kv::Entry) -> Option<String> {
    serde_json::from_slice::<Value>(&entry.value)
        .ok()
        .map(|v| v.holder)
}

/// Keeps `lease` until `shutdown`: checks it once now, then every [`Lease::check_every`] in a
/// task of its own, so the holder renews whatever else the replica is busy with; the returned
/// receiver tells the replica's standing. On shutdown the lease is released.
pub async fn keep(
    mut lease: Lease,
    shutdown: Shutdown,
) -> (watch::Receiver<Standing>, JoinHandle<()>) {
    let (standing, receiver) = watch::channel(checked(&mut lease).await);
    let task = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(lease.check_every()) => {}
                _ = shutdown.wait() => break,
            }
            let now = checked(&mut lease).await;
            standing.send_if_modified(|was| {
                let changed = *was != now;
                *was = now;
                changed
            });
        }
        lease.release().await;
    });
    (receiver, task)
}

/// The lease's standing now; a lease that cannot be checked is not held.
async fn checked(lease: &mut Lease) -> Standing {
    lease.check().await.unwrap_or_else(|err| {
        tracing::warn!(error = %err, "the lease cannot be checked");
        Standing::Standby { holder: None }
    })
}

/// A name for this replica of `service` that no other replica has: the host, the process id and
/// a random suffix (a restarted process on the same host is another replica).
pub fn replica_name(service: &str) -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .filter(|h| !h.is_empty())
        .or_else(|| {
            std::fs::read_to_string("/etc/hostname")
                .ok()
                .map(|h| h.trim().to_owned())
        })
        .unwrap_or_else(|| "host".to_owned());
    format!(
        "{service}@{host}:{}:{:04x}",
        std::process::id(),
        rand::random::<u16>()
    )
}
