//! Playing the extractor's part: the [`Extracted`] event a payload makes, its raw object stored,
//! and the event recorded and published, each step on its own so that a test can leave one out or
//! repeat it.

use std::collections::HashMap;

use chrono::Utc;
use shared::events::{Extracted, ObjectRef, SCHEMA_VERSION, Trigger, UpstreamRef};
use shared::ids::{CommitSha, Digest};
use shared::nats::{self, Stores};
use shared::{Env, Source, store, subjects};

/// The event the extractor would publish for `payload` of `source`, committed now, whose object
/// is not stored yet. Its commit sha is derived from the payload, so each payload is its own
/// commit.
pub fn extraction(env: &Env, source: Source, payload: &[u8], trigger: Trigger) -> Extracted {
    let sha256 = Digest::of(payload);
    Extracted {
        dataset: shared::Dataset::US,
        dataset_sources: Vec::new(),
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        source: source.clone(),
        upstream: UpstreamRef {
            repo: format!("{source}/repo"),
            path: format!("{source}.csv"),
            commit_sha: CommitSha::new(&sha256.as_str()[..8]).expect("hex digits make a sha"),
            commit_time: Utc::now(),
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: nats::RAW_BUCKET.to_owned(),
            name: store::raw_object_name(env, &source, &sha256),
            sha256,
            bytes: payload.len() as u64,
        },
        trigger,
        fetched_at: Utc::now(),
    }
}

/// Stores `bytes` under the name `event` announces (they need not be what it promised).
pub async fn store_raw(stores: &Stores, event: &Extracted, bytes: &[u8]) {
    store::put_object_once(
        &stores.raw,
        nats::RAW_BUCKET,
        &event.object.name,
        bytes,
        HashMap::new(),
        store::OBJECT_DEADLINE,
    )
    .await
    .expect("the raw object is stored");
}

/// What the extractor does for a new payload: stores it, records it as its source's latest in KV
/// and publishes the event (the KV write first, so a transformer woken by the event finds it).
pub async fn extract(
    stores: &Stores,
    env: &Env,
    source: Source,
    payload: &[u8],
    trigger: Trigger,
) -> Extracted {
    let event = extract_quietly(stores, env, source, payload, trigger).await;
    nats::publish(&stores.js, &event)
        .await
        .expect("the extraction is published");
    event
}

/// [`extract`] without publishing the event: the payload is stored and is its source's latest.
pub async fn extract_quietly(
    stores: &Stores,
    env: &Env,
    source: Source,
    payload: &[u8],
    trigger: Trigger,
) -> Extracted {
    let event = extraction(env, source, payload, trigger);
    store_raw(stores, &event, payload).await;
    store::kv_put(
        &stores.state,
        &store::latest_key(env, &event.source),
        &event,
    )
    .await
    .expect("the latest extraction is recorded");
    event
}

/// Publishes `event` under a message id of its own (`tag` sets it apart): a delivery the stream
/// does not take for a duplicate. Returns its sequence in the stream.
pub async fn publish_again(stores: &Stores, event: &Extracted, tag: &str) -> u64 {
    // Unique per env: the stream remembers message ids for an hour.
    let msg_id = format!("test:{}:{}:{tag}", event.env, event.source);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id.as_str());
    let ack = stores
        .js
        .publish_with_headers(
            subjects::extracted(&event.env, &event.source),
            headers,
            serde_json::to_vec(event).expect("an event encodes").into(),
        )
        .await
        .expect("the event is published")
        .await
        .expect("the stream stores the event");
    assert!(!ack.duplicate, "{msg_id} was taken for a duplicate");
    ack.sequence
}
