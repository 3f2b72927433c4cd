//! A dummy upstream file stored in `etl-raw` as the extractor stores a download, and the
//! `extracted` event that announces it.

use std::collections::HashMap;

use shared::events::{Extracted, SCHEMA_VERSION, Trigger, UpstreamRef};
use shared::ids::{CommitSha, Digest, RunId};
use shared::nats::{RAW_BUCKET, Stores};
use shared::{Dataset, Env, Source, store};

/// The repository the smoke's files claim to come from.
const REPO: &str = "smoke-test";

/// What the smoke published: the run the payloads make, and a line saying what they are.
pub(super) struct Published {
    pub run_id: RunId,
    pub what: String,
}

/// One dummy file of a dataset: `source`'s file at `path`, upstream.
pub(super) struct File<'a> {
    pub dataset: &'a Dataset,
    /// Every source of the dataset, as a keyed dataset's events list them (empty for `us`).
    pub dataset_sources: &'a [Source],
    pub source: Source,
    pub path: &'a str,
    pub content: &'a str,
}

/// Stores `file` and returns the event announcing it, neither recorded as its source's latest
/// nor published yet.
pub(super) async fn store(
    stores: &Stores,
    env: &Env,
    file: File<'_>,
    trigger: &Trigger,
) -> anyhow::Result<Extracted> {
    let sha256 = Digest::of(file.content.as_bytes());
    // A commit id must be hex; the payload's own digest stands in for the commit it was read at.
    let commit_sha = CommitSha::new(&sha256.as_str()[..40])?;
    let now = chrono::Utc::now();
    let metadata = HashMap::from([
        ("repo".to_owned(), REPO.to_owned()),
        ("path".to_owned(), file.path.to_owned()),
        ("commit_sha".to_owned(), commit_sha.to_string()),
        ("commit_time".to_owned(), now.to_rfc3339()),
        ("fetched_at".to_owned(), now.to_rfc3339()),
    ]);
    let name = store::raw_object_name(env, &file.source, &sha256);
    let object = store::put_object(
        &stores.raw,
        RAW_BUCKET,
        &name,
        file.content.as_bytes(),
        metadata,
    )
    .await?;
    Ok(Extracted {
        dataset: file.dataset.clone(),
        dataset_sources: file.dataset_sources.to_vec(),
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        source: file.source,
        upstream: UpstreamRef {
            repo: REPO.to_owned(),
            path: file.path.to_owned(),
            commit_sha,
            commit_time: now,
            covered_commits: Vec::new(),
        },
        object,
        trigger: trigger.clone(),
        fetched_at: now,
    })
}
