//! Reading a run's curated dataset from `etl-curated`: its metadata (when the run started and was
//! transformed), then its bytes, checked against the size and digest the transformed event
//! announced, all within the read deadline — an object deleted, replaced or purged under the
//! reader ends as a classified error (missing, corrupt, timeout), never as a wait without end.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::{InfoErrorKind, ObjectStore};
use chrono::{DateTime, Utc};
use shared::events::ObjectRef;
use shared::store::{self, CURATED_STARTED_AT, CURATED_TRANSFORMED_AT, StoreError};
use tokio::sync::Notify;

use crate::error::LoadError;

/// The largest curated dataset the loader reads: a `us` one is tens of kB, the whole county
/// history a few tens of MB.
pub const MAX_CURATED_BYTES: u64 = 64 * 1024 * 1024;

/// The largest part of a keyed delta the loader reads: a delta may rewrite every row (upstream
/// revised its whole history), and the county history's rows CSV is about 110 MB.
pub const MAX_DELTA_PART_BYTES: u64 = 256 * 1024 * 1024;

/// The longest reading one curated dataset may take, metadata and content together: the store's
/// own bound for one object (tens of kB move in milliseconds; a read still going is stuck).
pub const READ_DEADLINE: Duration = store::OBJECT_DEADLINE;

/// A curated dataset as read: its bytes, and when its run started and was transformed (object
/// metadata; absent from an object not written by the transformer).
pub struct Curated {
    pub bytes: Vec<u8>,
    pub started_at: Option<DateTime<Utc>>,
    pub transformed_at: Option<DateTime<Utc>>,
}

/// Reads `object` within `deadline`. `pause`, a test seam, holds the read between the metadata
/// and the content (outside the deadline, as a slow scheduler would not be).
pub async fn read(
    curated: &ObjectStore,
    object: &ObjectRef,
    deadline: Duration,
    pause: Option<&ReadPause>,
) -> Result<Curated, LoadError> {
    let error = |error| LoadError::ReadCurated {
        name: object.name.clone(),
        error,
    };
    let started = Instant::now();
    let (started_at, transformed_at) = run_times(curated, object, deadline).await?;
    let left = deadline.saturating_sub(started.elapsed());
    if let Some(pause) = pause {
        pause.hold().await;
    }
    let bytes = store::get_object(curated, object, MAX_CURATED_BYTES, left)
        .await
        .map_err(error)?;
    Ok(Curated {
        bytes,
        started_at,
        transformed_at,
    })
}

/// When the run of the curated dataset `object` started and was transformed (its metadata), read
/// within `deadline`: a keyed run applied from its delta reads no more of it.
pub async fn run_times(
    curated: &ObjectStore,
    object: &ObjectRef,
    deadline: Duration,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), LoadError> {
    tokio::time::timeout(deadline, times(curated, object))
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Timeout {
                name: object.name.clone(),
                operation: "look-up",
                deadline,
            })
        })
        .map_err(|error| LoadError::ReadCurated {
            name: object.name.clone(),
            error,
        })
}

/// One part of a keyed run's delta (COPY-ready CSV), checked against its announced size and
/// digest, within `deadline`.
pub async fn read_delta_part(
    curated: &ObjectStore,
    object: &ObjectRef,
    deadline: Duration,
) -> Result<Vec<u8>, LoadError> {
    store::get_object(curated, object, MAX_DELTA_PART_BYTES, deadline)
        .await
        .map_err(|error| LoadError::ReadCurated {
            name: object.name.clone(),
            error,
        })
}

/// When the run started and was transformed, from the object's metadata.
async fn times(
    curated: &ObjectStore,
    object: &ObjectRef,
) -> Result<(Option<DateTime<Utc>>, Option<DateTime<Utc>>), StoreError> {
    let missing = || StoreError::Missing {
        name: object.name.clone(),
        bucket: object.bucket.clone(),
    };
    let info = match curated.info(&object.name).await {
        Ok(info) if info.deleted => return Err(missing()),
        Ok(info) => info,
        Err(err) if err.kind() == InfoErrorKind::NotFound => return Err(missing()),
        Err(err) => {
            return Err(StoreError::Lookup {
                name: object.name.clone(),
                source: err.into(),
            });
        }
    };
    let time = |key: &str| {
        info.metadata
            .get(key)
            .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
            .map(|at| at.with_timezone(&Utc))
    };
    Ok((time(CURATED_STARTED_AT), time(CURATED_TRANSFORMED_AT)))
}

/// Test seam, not a mock: while armed, every curated read stops after the object's metadata was
/// read and before its content is, tells the test ([`ReadPause::reached`]) and waits for
/// [`ReadPause::release`]. The test meanwhile does to the real object what a concurrent writer or
/// a clean-up could (delete it, replace it, purge its chunks).
#[derive(Debug)]
pub struct ReadPause {
    armed: AtomicBool,
    reached: Notify,
    released: Notify,
}

impl ReadPause {
    pub fn armed() -> Arc<Self> {
        Arc::new(Self {
            armed: AtomicBool::new(true),
            reached: Notify::new(),
            released: Notify::new(),
        })
    }

    /// Waits until a read is held.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held read go on.
    pub fn release(&self) {
        self.released.notify_one();
    }

    /// Later reads go on without stopping.
    pub fn disarm(&self) {
        self.armed.store(false, Ordering::SeqCst);
    }

    async fn hold(&self) {
        if self.armed.load(Ordering::SeqCst) {
            // Both are stored as a permit when no one waits yet, so neither side can miss the
            // other whatever the order they arrive in.
            self.reached.notify_one();
            self.released.notified().await;
        }
    }
}
