//! Names and helpers for what the pipeline keeps in JetStream: raw and curated objects, and the
//! per-env state in the `etl-state` KV bucket.
//!
//! Two rules keep a stage from ever waiting forever on an object (issue 16): an object is written
//! once and never replaced ([`put_object_once`], [`put_object`]), because replacing one purges
//! the chunks its readers are still fetching; and every object read or write has a deadline
//! ([`OBJECT_DEADLINE`] by default), with a read checked against the digest and size its event
//! announced ([`get_object`]).

use std::collections::HashMap;
use std::time::Duration;

use async_nats::jetstream::{kv, object_store};
use tokio::io::AsyncReadExt;

use crate::env::Env;
use crate::events::{Extracted, FailureKind, ObjectRef};
use crate::ids::{Digest, RunId};
use crate::nats::{self, NatsError, Stores};
use crate::settle::Failure;
use crate::source::{Dataset, Source};

pub fn raw_object_name(env: &Env, source: &Source, sha256: &Digest) -> String {
    format!("{env}/{source}/{sha256}")
}

pub fn curated_object_name(env: &Env, run_id: &RunId) -> String {
    format!("{env}/{run_id}.parquet")
}

/// One part of a keyed run's delta (`rows`, `removed`, `changes`): COPY-ready CSV.
pub fn delta_object_name(env: &Env, run_id: &RunId, part: &str) -> String {
    format!("{env}/{run_id}.{part}.csv")
}

/// KV key of the last run of a keyed dataset the transformer curated (its `Transformed` event):
/// the base the next run's delta is computed against.
pub fn curated_key(env: &Env, dataset: &Dataset) -> String {
    format!("{env}.{dataset}.curated")
}

/// Metadata key of a curated object: when its run started (RFC 3339), i.e. when the extraction
/// whose event triggered the run was fetched. The loader measures a run's `duration_ms` from it.
pub const CURATED_STARTED_AT: &str = "started_at";

/// Metadata key of a curated object: when the transformer wrote it (RFC 3339), by the
/// transformer's clock. Information for people only: runs are ordered by
/// [`crate::events::RunOrder`], never by a host's clock.
pub const CURATED_TRANSFORMED_AT: &str = "transformed_at";

/// KV key of the latest extracted payload of a source (the [`Extracted`] event as JSON).
pub fn latest_key(env: &Env, source: &Source) -> String {
    format!("{env}.{source}.latest")
}

/// KV key of the extractor's polling cursor for a source.
pub fn cursor_key(env: &Env, source: &Source) -> String {
    format!("{env}.{source}.cursor")
}

/// The last part of the KV key of a source's trouble, `<env>.<source>.trouble`: what has gone
/// wrong with it since it last worked (written by the extractor, shown by `etl status`).
pub const TROUBLE_KEY_SUFFIX: &str = "trouble";

/// KV key of a source's trouble (see [`TROUBLE_KEY_SUFFIX`]).
pub fn trouble_key(env: &Env, source: &Source) -> String {
    format!("{env}.{source}.{TROUBLE_KEY_SUFFIX}")
}

/// KV key recording that a run's notification went out.
pub fn notified_key(env: &Env, run_id: &RunId) -> String {
    format!("{env}.notified.{run_id}")
}

/// The default limit on one raw payload (`MAX_PAYLOAD_BYTES`, read by the extractor and the
/// transformer). The largest upstream file, NYT's `us-counties.csv`, passed 100 MB before upstream
/// split it by year: 256 MiB holds it with room to grow, and still refuses a runaway download
/// before it is parsed.
pub const DEFAULT_MAX_PAYLOAD_BYTES: u64 = 256 * 1024 * 1024;

/// The longest one object-store read or write may take unless its caller says otherwise. The
/// pipeline's objects are at most a few hundred MB (the county files), which the store moves in
/// seconds; an operation still going after this is stuck (its chunks were purged, the server is
/// gone) and must not hold the message in hand any longer.
pub const OBJECT_DEADLINE: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("could not look up object {name}: {source}")]
    Lookup {
        name: String,
        source: async_nats::Error,
    },
    #[error("could not write object {name}: {source}")]
    Put {
        name: String,
        source: async_nats::Error,
    },
    #[error("could not read object {name}: {source}")]
    Get {
        name: String,
        source: async_nats::Error,
    },
    #[error("object {name}: the {operation} did not finish within {deadline:?}")]
    Timeout {
        name: String,
        operation: &'static str,
        deadline: Duration,
    },
    #[error("object {name} is not in bucket {bucket}")]
    Missing { name: String, bucket: String },
    #[error("object {name} is larger than the limit of {limit} bytes")]
    TooLarge { name: String, limit: u64 },
    #[error("object {name} is {found} bytes, not the {expected} bytes it was announced with")]
    SizeMismatch {
        name: String,
        expected: u64,
        found: u64,
    },
    #[error("object {name} has SHA-256 {found}, not the {expected} it was announced with")]
    DigestMismatch {
        name: String,
        expected: Digest,
        found: Digest,
    },
    #[error("object {name}: its chunks do not add up to the digest the store recorded for it")]
    CorruptChunks { name: String },
    #[error(
        "object {name} already exists with SHA-256 {found}, not {expected}; it is left as it is"
    )]
    Occupied {
        name: String,
        expected: Digest,
        found: Digest,
    },
    #[error("object {name} has no readable SHA-256 digest in its info ({digest:?})")]
    NoDigest {
        name: String,
        digest: Option<String>,
    },
    #[error("could not read key {key}: {source}")]
    KvGet {
        key: String,
        source: async_nats::Error,
    },
    #[error("could not write key {key}: {source}")]
    KvPut {
        key: String,
        source: async_nats::Error,
    },
    #[error("key {key} holds something unreadable: {source}")]
    KvDecode {
        key: String,
        source: serde_json::Error,
    },
    #[error(transparent)]
    Nats(#[from] NatsError),
}

impl StoreError {
    /// The failure kind of a stage that could not read or write an object this way.
    pub fn kind(&self) -> FailureKind {
        match self {
            StoreError::Missing { .. } => FailureKind::MissingObject,
            StoreError::TooLarge { .. } => FailureKind::TooLarge,
            StoreError::SizeMismatch { .. }
            | StoreError::DigestMismatch { .. }
            | StoreError::CorruptChunks { .. }
            | StoreError::Occupied { .. }
            | StoreError::NoDigest { .. } => FailureKind::CorruptObject,
            // A state value the pipeline wrote but cannot read back: a bug or a version skew.
            StoreError::KvDecode { .. } => FailureKind::Internal,
            StoreError::Timeout { .. } => FailureKind::Timeout,
            StoreError::Lookup { .. }
            | StoreError::Put { .. }
            | StoreError::Get { .. }
            | StoreError::KvGet { .. }
            | StoreError::KvPut { .. }
            | StoreError::Nats(_) => FailureKind::Unavailable,
        }
    }

    /// Whether a message whose handling met this error on delivery number `delivered` (1 on the
    /// first) is worth delivering again: the same operation may then succeed.
    ///
    /// A store that is slow or unreachable may recover: retried. An object that is not there, or
    /// too large, stays so: given up on at once. An object whose bytes are not the ones announced
    /// is read once more before it is given up on: objects are written once and never replaced,
    /// so a second read that still disagrees proves the stored bytes wrong, whereas the first may
    /// have met a broken transfer (the store's ordered reader restarts on a gap) or a writer of
    /// the time before objects were write-once. More reads would only hold the run back.
    pub fn is_transient(&self, delivered: u64) -> bool {
        match self {
            StoreError::Timeout { .. }
            | StoreError::Lookup { .. }
            | StoreError::Put { .. }
            | StoreError::Get { .. }
            | StoreError::KvGet { .. }
            | StoreError::KvPut { .. }
            | StoreError::Nats(_) => true,
            StoreError::SizeMismatch { .. }
            | StoreError::DigestMismatch { .. }
            | StoreError::CorruptChunks { .. } => delivered <= 1,
            StoreError::Missing { .. }
            | StoreError::TooLarge { .. }
            | StoreError::Occupied { .. }
            | StoreError::NoDigest { .. }
            | StoreError::KvDecode { .. } => false,
        }
    }

    /// This error as a stage's [`Failure`] on delivery number `delivered`, with the error as its
    /// reason. A caller with more context replaces the reason (`Failure { reason, ..failure }`).
    pub fn failure(&self, delivered: u64) -> Failure {
        if self.is_transient(delivered) {
            Failure::transient(self.kind(), self.to_string())
        } else {
            Failure::permanent(self.kind(), self.to_string())
        }
    }
}

/// What a write-once put did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stored {
    /// The object was not there and is now, holding the given bytes.
    Written(ObjectRef),
    /// An object of that name was already there and was left alone: this is its reference (its
    /// digest and size, which may differ from the bytes that were offered).
    Existing(ObjectRef),
}

impl Stored {
    pub fn object(&self) -> &ObjectRef {
        match self {
            Stored::Written(object) | Stored::Existing(object) => object,
        }
    }

    pub fn into_object(self) -> ObjectRef {
        match self {
            Stored::Written(object) | Stored::Existing(object) => object,
        }
    }

    pub fn was_written(&self) -> bool {
        matches!(self, Stored::Written(_))
    }
}

/// Stores `bytes` under `name` unless an object of that name is already there; never replaces
/// one. Returns what it did and the reference of the object now under `name`.
///
/// Why never replace: replacing an object in a JetStream object store purges the old version's
/// chunks, and a reader of the old version then waits for chunks that will never come (issue 16).
/// An object is only ever visible once complete (its info is written after its last chunk), so an
/// existing one is whole. Two writers racing past the look-up can still both write; the second
/// then replaces the first, which is why every name written this way must stand for one content
/// (a content digest, or a run whose output is deterministic) and every read has a deadline.
///
/// The look-up and the write share `deadline` ([`OBJECT_DEADLINE`] unless the caller knows
/// better); past it, [`StoreError::Timeout`]. A write cut short leaves no visible object.
pub async fn put_object_once(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
    bytes: &[u8],
    metadata: HashMap<String, String>,
    deadline: Duration,
) -> Result<Stored, StoreError> {
    let work = async {
        if let Some(existing) = lookup(store, bucket, name).await? {
            return Ok(Stored::Existing(existing));
        }
        // A write that JetStream cannot take for a moment (its stream is electing a leader
        // after a node died, say) is tried again until the deadline: writing the same bytes
        // under the same name again is harmless.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let meta = object_store::ObjectMetadata {
                name: name.to_owned(),
                metadata: metadata.clone(),
                ..Default::default()
            };
            let mut reader = bytes;
            match store.put(meta, &mut reader).await {
                Ok(_) => break,
                // The object is whole; only an earlier object's chunks of this name are left.
                Err(err) if err.kind() == object_store::PutErrorKind::PurgeOldChunks => {
                    tracing::warn!(object = name, error = %err, "object written; an older version's chunks were not purged");
                    break;
                }
                Err(err) if is_transient(err.kind()) => {
                    tracing::warn!(object = name, attempt, error = %err, "object write not taken yet, trying again");
                    tokio::time::sleep(nats::backoff(
                        attempt,
                        Duration::from_millis(200),
                        Duration::from_secs(2),
                    ))
                    .await;
                }
                Err(err) => {
                    return Err(StoreError::Put {
                        name: name.to_owned(),
                        source: err.into(),
                    });
                }
            }
        }
        Ok(Stored::Written(ObjectRef {
            bucket: bucket.to_owned(),
            name: name.to_owned(),
            sha256: Digest::of(bytes),
            bytes: bytes.len() as u64,
        }))
    };
    within(deadline, name, "write", work).await
}

/// Whether a failed object write may succeed if tried again: its chunks or metadata were not
/// acknowledged (no stream leader for a moment, a timeout), as opposed to a bad name or input.
fn is_transient(kind: object_store::PutErrorKind) -> bool {
    use object_store::PutErrorKind as Kind;
    matches!(
        kind,
        Kind::PublishChunks | Kind::PublishMetadata | Kind::TimedOut
    )
}

/// Stores `bytes` under a content-addressed `name` (such as [`raw_object_name`]) within
/// [`OBJECT_DEADLINE`], writing nothing when the object is already there with these bytes.
/// An object of that name with other bytes is [`StoreError::Occupied`] and left as it is: the
/// name promises its content, so that object is damaged and must be looked at, not overwritten
/// under a reader.
pub async fn put_object(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
    bytes: &[u8],
    metadata: HashMap<String, String>,
) -> Result<ObjectRef, StoreError> {
    let expected = Digest::of(bytes);
    let stored = put_object_once(store, bucket, name, bytes, metadata, OBJECT_DEADLINE).await?;
    let object = stored.into_object();
    if object.sha256 != expected || object.bytes != bytes.len() as u64 {
        return Err(StoreError::Occupied {
            name: name.to_owned(),
            expected,
            found: object.sha256,
        });
    }
    Ok(object)
}

/// Reads the object `object` names, and returns its bytes only if they are exactly what `object`
/// promises: its size and its SHA-256 digest (as announced in the event that named it).
///
/// - `limit`: an object announced or found larger than this is [`StoreError::TooLarge`], and is
///   not read past the limit.
/// - `deadline`: the whole read (look-up and every chunk) must end within it
///   ([`OBJECT_DEADLINE`] unless the caller knows better), else [`StoreError::Timeout`]. A read
///   whose chunks were purged under it would otherwise wait forever.
///
/// Errors, each naming the object: [`StoreError::Missing`] (not there, or deleted),
/// [`StoreError::SizeMismatch`] / [`StoreError::DigestMismatch`] (not the announced bytes),
/// [`StoreError::CorruptChunks`] (not even the bytes the store recorded), [`StoreError::TooLarge`],
/// [`StoreError::Timeout`], [`StoreError::Get`] (the store could not be asked). Turn one into a
/// stage's failure with [`StoreError::failure`].
pub async fn get_object(
    store: &object_store::ObjectStore,
    object: &ObjectRef,
    limit: u64,
    deadline: Duration,
) -> Result<Vec<u8>, StoreError> {
    let name = object.name.as_str();
    if object.bytes > limit {
        return Err(StoreError::TooLarge {
            name: name.to_owned(),
            limit,
        });
    }
    let bytes = within(deadline, name, "read", read(store, object, limit)).await?;
    let found = Digest::of(&bytes);
    if found != object.sha256 {
        return Err(StoreError::DigestMismatch {
            name: name.to_owned(),
            expected: object.sha256.clone(),
            found,
        });
    }
    Ok(bytes)
}

/// The reference of the object under `name`, if there is one (a deleted one is not).
pub async fn object_info(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
    deadline: Duration,
) -> Result<Option<ObjectRef>, StoreError> {
    within(deadline, name, "look-up", lookup(store, bucket, name)).await
}

async fn lookup(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
) -> Result<Option<ObjectRef>, StoreError> {
    use object_store::InfoErrorKind;
    let info = match store.info(name).await {
        Ok(info) if info.deleted => return Ok(None),
        Ok(info) => info,
        Err(err) if err.kind() == InfoErrorKind::NotFound => return Ok(None),
        Err(err) => {
            return Err(StoreError::Lookup {
                name: name.to_owned(),
                source: err.into(),
            });
        }
    };
    let sha256 = info
        .digest
        .as_deref()
        .and_then(digest_of_info)
        .ok_or_else(|| StoreError::NoDigest {
            name: name.to_owned(),
            digest: info.digest.clone(),
        })?;
    Ok(Some(ObjectRef {
        bucket: bucket.to_owned(),
        name: name.to_owned(),
        sha256,
        bytes: info.size as u64,
    }))
}

async fn read(
    store: &object_store::ObjectStore,
    object: &ObjectRef,
    limit: u64,
) -> Result<Vec<u8>, StoreError> {
    use object_store::GetErrorKind;
    let name = object.name.as_str();
    let stored = store.get(name).await.map_err(|err| match err.kind() {
        GetErrorKind::NotFound => StoreError::Missing {
            name: name.to_owned(),
            bucket: object.bucket.clone(),
        },
        _ => StoreError::Get {
            name: name.to_owned(),
            source: err.into(),
        },
    })?;
    let size = stored.info().size as u64;
    if size != object.bytes {
        // Larger than announced may also be larger than the limit; either way it is not the
        // announced object, and it is not read.
        return Err(StoreError::SizeMismatch {
            name: name.to_owned(),
            expected: object.bytes,
            found: size,
        });
    }
    let mut bytes = Vec::with_capacity(usize::try_from(size).unwrap_or(0));
    stored
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|err| match err.kind() {
            std::io::ErrorKind::InvalidData => StoreError::CorruptChunks {
                name: name.to_owned(),
            },
            _ => StoreError::Get {
                name: name.to_owned(),
                source: err.into(),
            },
        })?;
    if bytes.len() as u64 > limit {
        return Err(StoreError::TooLarge {
            name: name.to_owned(),
            limit,
        });
    }
    if bytes.len() as u64 != object.bytes {
        return Err(StoreError::SizeMismatch {
            name: name.to_owned(),
            expected: object.bytes,
            found: bytes.len() as u64,
        });
    }
    Ok(bytes)
}

/// Runs one object-store operation on `name` under `deadline`.
async fn within<T>(
    deadline: Duration,
    name: &str,
    operation: &'static str,
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    tokio::time::timeout(deadline, work)
        .await
        .unwrap_or_else(|_| {
            Err(StoreError::Timeout {
                name: name.to_owned(),
                operation,
                deadline,
            })
        })
}

/// The hex digest of an object info's `digest` (`SHA-256=` and the URL-safe base64 of the 32
/// bytes), or `None` when it is not one.
fn digest_of_info(digest: &str) -> Option<Digest> {
    let encoded = digest.strip_prefix("SHA-256=")?.trim_end_matches('=');
    let mut bytes = Vec::with_capacity(32);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in encoded.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'-' | b'+' => 62,
            b'_' | b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(value);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            bytes.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bytes.len() != 32 {
        return None;
    }
    Digest::new(hex::encode(bytes)).ok()
}

/// Reads a JSON value from the state bucket.
pub async fn kv_get<T: serde::de::DeserializeOwned>(
    state: &kv::Store,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let value = state.get(key).await.map_err(|source| StoreError::KvGet {
        key: key.to_owned(),
        source: source.into(),
    })?;
    value
        .map(|bytes| serde_json::from_slice(&bytes))
        .transpose()
        .map_err(|source| StoreError::KvDecode {
            key: key.to_owned(),
            source,
        })
}

/// Writes a JSON value to the state bucket.
pub async fn kv_put<T: serde::Serialize>(
    state: &kv::Store,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    let bytes = serde_json::to_vec(value).expect("state values serialize");
    state
        .put(key, bytes.into())
        .await
        .map_err(|source| StoreError::KvPut {
            key: key.to_owned(),
            source: source.into(),
        })?;
    Ok(())
}

/// The latest payload extracted for `source` in `env`, if any.
pub async fn latest_extracted(
    state: &kv::Store,
    env: &Env,
    source: &Source,
) -> Result<Option<Extracted>, StoreError> {
    kv_get(state, &latest_key(env, source)).await
}

/// What [`put_latest`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LatestWrite {
    /// The event is its source's latest payload now.
    Written,
    /// The bucket already holds a payload of a newer upstream commit (written by another
    /// extractor replica, say): nothing was written.
    Newer { commit_sha: String },
}

/// Makes `event` the latest payload of its source, unless the bucket holds one of a newer
/// upstream commit: the latest never goes backwards. The write is revision-checked, so a
/// concurrent writer makes it read again and decide anew rather than overwrite blindly.
pub async fn put_latest(state: &kv::Store, event: &Extracted) -> Result<LatestWrite, StoreError> {
    let key = latest_key(&event.env, &event.source);
    let kv_error = |source: async_nats::Error| StoreError::KvPut {
        key: key.clone(),
        source,
    };
    let value: bytes::Bytes = serde_json::to_vec(event).expect("events serialize").into();
    loop {
        let entry = state.entry(&key).await.map_err(|e| kv_error(e.into()))?;
        let current = entry
            .as_ref()
            .filter(|e| !matches!(e.operation, kv::Operation::Delete | kv::Operation::Purge));
        if let Some(stored) =
            current.and_then(|e| serde_json::from_slice::<Extracted>(&e.value).ok())
            && stored.upstream.commit_time > event.upstream.commit_time
        {
            return Ok(LatestWrite::Newer {
                commit_sha: stored.upstream.commit_sha.to_string(),
            });
        }
        let written = match &entry {
            Some(e) => state.update(&key, value.clone(), e.revision).await,
            None => state
                .create(&key, value.clone())
                .await
                .map_err(|err| match err.kind() {
                    kv::CreateErrorKind::AlreadyExists => {
                        kv::UpdateError::new(kv::UpdateErrorKind::WrongLastRevision)
                    }
                    _ => kv::UpdateError::with_source(kv::UpdateErrorKind::Other, err),
                }),
        };
        match written {
            Ok(_) => return Ok(LatestWrite::Written),
            // Another writer came first: read what it wrote and decide again.
            Err(err) if err.kind() == kv::UpdateErrorKind::WrongLastRevision => continue,
            Err(err) => return Err(kv_error(err.into())),
        }
    }
}

/// Makes `event` the latest payload of its source ([`put_latest`]), then publishes it; a newer
/// latest in the bucket means neither happens. The KV write comes first so that a transformer
/// woken by the event always finds it.
pub async fn record_extracted(
    stores: &Stores,
    event: &Extracted,
) -> Result<LatestWrite, StoreError> {
    let written = put_latest(&stores.state, event).await?;
    if written == LatestWrite::Written {
        nats::publish(&stores.js, event).await?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_info_digest_reads_as_hex() {
        // async-nats writes `SHA-256=` and the URL-safe, padded base64 of the digest.
        let info = "SHA-256=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=";
        assert_eq!(digest_of_info(info), Some(Digest::of(b"")));
        assert_eq!(digest_of_info("SHA-256=abc"), None);
        assert_eq!(
            digest_of_info("MD5=47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU="),
            None
        );
    }

    #[test]
    fn a_missing_object_is_given_up_at_once() {
        let err = StoreError::Missing {
            name: "prod/nyt/x".into(),
            bucket: "etl-raw".into(),
        };
        let failure = err.failure(1);
        assert_eq!(failure.kind, FailureKind::MissingObject);
        assert!(!failure.transient);
        assert!(failure.reason.contains("prod/nyt/x"), "{}", failure.reason);
    }

    #[test]
    fn a_digest_mismatch_is_read_once_more_then_given_up() {
        let err = StoreError::DigestMismatch {
            name: "prod/r1.parquet".into(),
            expected: Digest::of(b"a"),
            found: Digest::of(b"b"),
        };
        assert_eq!(err.kind(), FailureKind::CorruptObject);
        assert!(err.failure(1).transient);
        assert!(!err.failure(2).transient);
    }

    #[test]
    fn a_timeout_is_retried_and_names_the_object() {
        let err = StoreError::Timeout {
            name: "prod/r1.parquet".into(),
            operation: "read",
            deadline: Duration::from_secs(30),
        };
        assert_eq!(err.kind(), FailureKind::Timeout);
        assert!(err.failure(9).transient);
        assert_eq!(
            err.to_string(),
            "object prod/r1.parquet: the read did not finish within 30s"
        );
    }
}
