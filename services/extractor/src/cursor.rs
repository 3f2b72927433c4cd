//! The polling cursor of a source, kept in KV (`shared::store::cursor_key`) so that a restart
//! neither downloads again nor misses a commit.

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::ids::CommitSha;
use shared::source::UpstreamLocation;
use shared::store::{StoreError, cursor_key, kv_get, kv_put};
use shared::{Env, Source};

/// The last commit seen for a source's file, and how to ask GitHub cheaply whether there is a
/// newer one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cursor {
    /// Where the file was watched: a cursor for another repo, branch or path does not apply.
    pub location: UpstreamLocation,
    pub commit_sha: CommitSha,
    pub commit_time: DateTime<Utc>,
    /// The git blob of the file at that commit: a newer commit with the same blob changed nothing.
    #[serde(default)]
    pub blob_sha: Option<String>,
    /// ETag of the first commits page that listed `commit_sha` first.
    #[serde(default)]
    pub etag: Option<String>,
}

impl Cursor {
    pub fn applies_to(&self, location: &UpstreamLocation) -> bool {
        &self.location == location
    }
}

pub async fn load(
    state: &kv::Store,
    env: &Env,
    source: &Source,
) -> Result<Option<Cursor>, StoreError> {
    kv_get(state, &cursor_key(env, source)).await
}

pub async fn save(
    state: &kv::Store,
    env: &Env,
    source: &Source,
    cursor: &Cursor,
) -> Result<(), StoreError> {
    kv_put(state, &cursor_key(env, source), cursor).await
}
