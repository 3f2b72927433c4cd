//! Names and helpers for what the pipeline keeps in JetStream: raw and curated objects, and the
//! per-env state in the `etl-state` KV bucket.

use std::collections::HashMap;

use async_nats::jetstream::{kv, object_store};
use tokio::io::AsyncReadExt;

use crate::env::Env;
use crate::events::{Extracted, ObjectRef};
use crate::hash::sha256_hex;
use crate::nats::{self, NatsError, Stores};
use crate::source::Source;
use crate::subjects;

pub fn raw_object_name(env: &Env, source: Source, sha256: &str) -> String {
    format!("{env}/{source}/{sha256}")
}

pub fn curated_object_name(env: &Env, run_id: &str) -> String {
    format!("{env}/{run_id}.parquet")
}

/// Metadata key of a curated object: when its run started (RFC 3339), i.e. when the extraction
/// whose event triggered the run was fetched. The loader measures a run's `duration_ms` from it.
pub const CURATED_STARTED_AT: &str = "started_at";

/// Metadata key of a curated object: when the transformer began its run (RFC 3339). Runs are
/// transformed in the order their inputs arrived, so this orders them: the loader never lets an
/// older run overwrite a newer one that overtook it during retries.
pub const CURATED_TRANSFORMED_AT: &str = "transformed_at";

/// KV key of the latest extracted payload of a source (the [`Extracted`] event as JSON).
pub fn latest_key(env: &Env, source: Source) -> String {
    format!("{env}.{source}.latest")
}

/// KV key of the extractor's polling cursor for a source.
pub fn cursor_key(env: &Env, source: Source) -> String {
    format!("{env}.{source}.cursor")
}

/// KV key recording that a run's notification went out.
pub fn notified_key(env: &Env, run_id: &str) -> String {
    format!("{env}.notified.{run_id}")
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
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
    #[error("object {name} is larger than the limit of {limit} bytes")]
    TooLarge { name: String, limit: u64 },
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

/// Stores `bytes` under `name` with `metadata`, and returns its reference.
pub async fn put_object(
    store: &object_store::ObjectStore,
    bucket: &str,
    name: &str,
    bytes: &[u8],
    metadata: HashMap<String, String>,
) -> Result<ObjectRef, StoreError> {
    let meta = object_store::ObjectMetadata {
        name: name.to_owned(),
        metadata,
        ..Default::default()
    };
    let mut reader = bytes;
    store
        .put(meta, &mut reader)
        .await
        .map_err(|source| StoreError::Put {
            name: name.to_owned(),
            source: source.into(),
        })?;
    Ok(ObjectRef {
        bucket: bucket.to_owned(),
        name: name.to_owned(),
        sha256: sha256_hex(bytes),
        bytes: bytes.len() as u64,
    })
}

/// Reads a whole object, refusing one over `limit` bytes. The store verifies its digest.
pub async fn get_object(
    store: &object_store::ObjectStore,
    name: &str,
    limit: u64,
) -> Result<Vec<u8>, StoreError> {
    let object = store.get(name).await.map_err(|source| StoreError::Get {
        name: name.to_owned(),
        source: source.into(),
    })?;
    let mut bytes = Vec::new();
    let read = object
        .take(limit + 1)
        .read_to_end(&mut bytes)
        .await
        .map_err(|source| StoreError::Get {
            name: name.to_owned(),
            source: source.into(),
        })?;
    if read as u64 > limit {
        return Err(StoreError::TooLarge {
            name: name.to_owned(),
            limit,
        });
    }
    Ok(bytes)
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
    source: Source,
) -> Result<Option<Extracted>, StoreError> {
    kv_get(state, &latest_key(env, source)).await
}

/// Makes `event` the latest payload of its source, then publishes it. The KV write comes first so
/// that a transformer woken by the event always finds it.
pub async fn record_extracted(stores: &Stores, event: &Extracted) -> Result<(), StoreError> {
    kv_put(&stores.state, &latest_key(&event.env, event.source), event).await?;
    // Content and commit: a revert to an earlier file is a new event, not a duplicate.
    let mut msg_id = format!(
        "extracted:{}:{}:{}:{}",
        event.env, event.source, event.object.sha256, event.upstream.commit_sha
    );
    if event.trigger.force
        && let Some(id) = &event.trigger.id
    {
        msg_id.push(':');
        msg_id.push_str(id);
    }
    nats::publish_event(
        &stores.js,
        &subjects::extracted(&event.env, event.source),
        &msg_id,
        event,
    )
    .await?;
    Ok(())
}
