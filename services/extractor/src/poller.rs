//! Checking one source: one conditional request for the commits touching its file; when there are
//! new ones, every commit since the last one seen (paging back as far as needed), then the newest
//! commit's file, downloaded pinned to its sha, verified, and stored once in `etl-raw`.
//!
//! [`Poller`] owns the per-source state (cursor, latest payload, trouble); `cycle.rs` runs a check
//! of every source and publishes the results.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::events::{Extracted, ObjectRef, UpstreamRef};
use shared::ids::{CommitSha, Digest};
use shared::nats::{RAW_BUCKET, Stores};
use shared::store::{StoreError, latest_extracted, put_object, raw_object_name};
use shared::{Env, Source};
use tokio::time::Instant;
use tracing::Instrument;
use url::Url;

use crate::config::{Config, SourceSettings};
use crate::cursor::{self, Cursor};
use crate::download::{Retry, download, short};
use crate::error::{DownloadError, FailureKind};
use crate::github::{CommitSummary, CommitsPage, Github, GithubError};
use crate::progress::Progress;
use crate::trouble::{self, Trouble};

/// How many commit pages are read back looking for the last commit seen before giving up on it
/// (history rewritten, or the extractor was off for very long).
const MAX_PAGES: usize = 10;

/// What one check found.
#[derive(Debug)]
pub(crate) enum Check {
    /// No new commit. Carries a cursor to save when only the ETag changed.
    Unchanged(Option<Cursor>),
    /// New commits, but the file's bytes are the ones already stored: nothing to announce.
    SameContent(Cursor),
    /// A new payload is stored in `etl-raw`; announce it, then save the cursor.
    New(Box<NewPayload>),
}

#[derive(Debug)]
pub(crate) struct NewPayload {
    pub upstream: UpstreamRef,
    pub object: ObjectRef,
    pub fetched_at: DateTime<Utc>,
    /// No payload of this source was ever extracted in this env.
    pub initial: bool,
    pub cursor: Cursor,
    /// The trace of this change; its event is published inside it.
    pub span: tracing::Span,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum CheckError {
    #[error(transparent)]
    Github(#[from] GithubError),
    /// Upstream has a new commit but its file cannot be accepted; reported as a failed extract.
    #[error("{reason}")]
    Rejected {
        kind: FailureKind,
        reason: String,
        commit: Option<CommitSha>,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

#[derive(Debug, Default)]
pub(crate) struct SourceState {
    pub cursor: Option<Cursor>,
    pub latest: Option<Extracted>,
    /// What has gone wrong since the source last worked, as kept in KV; `None` while it works.
    pub trouble: Option<Trouble>,
    /// After a failed attempt, polls leave the source alone until then (a trigger does not); the
    /// monotonic twin of `trouble.until`. Each source has its own: one source's trouble never
    /// holds up the other.
    pub retry_at: Option<Instant>,
}

pub struct Poller {
    pub(crate) env: Env,
    pub(crate) github: Github,
    pub(crate) stores: Stores,
    pub(crate) sources: Vec<SourceSettings>,
    pub(crate) max_payload: u64,
    pub(crate) poll_interval: Duration,
    pub(crate) retry_max: Duration,
    pub(crate) permission_backoff: Duration,
    pub(crate) download_retry: Retry,
    pub(crate) state: HashMap<Source, SourceState>,
    /// API requests that failed in a row (5xx, timeouts): the next poll backs off.
    pub(crate) api_failures: u32,
}

impl Poller {
    /// Loads each source's cursor, latest payload and last trouble from KV.
    pub async fn new(
        config: &Config,
        github: Github,
        stores: Stores,
    ) -> Result<Poller, StoreError> {
        let mut state = HashMap::new();
        for s in &config.sources {
            let cursor = cursor::load(&stores.state, &config.env, &s.source).await?;
            let latest = latest_extracted(&stores.state, &config.env, &s.source).await?;
            // The cause already reported is kept; a back-off is not: a restart (often after a fix,
            // such as a new GITHUB_TOKEN) checks every source at once.
            let trouble = trouble::load(&stores.state, &config.env, &s.source)
                .await
                .map(|t| Trouble { until: None, ..t });
            state.insert(
                s.source.clone(),
                SourceState {
                    cursor,
                    latest,
                    trouble,
                    retry_at: None,
                },
            );
        }
        Ok(Poller {
            env: config.env.clone(),
            github,
            stores,
            sources: config.sources.clone(),
            max_payload: config.max_payload_bytes,
            poll_interval: config.poll_interval,
            retry_max: config.retry_max,
            permission_backoff: config.permission_backoff,
            download_retry: config.download_retry,
            state,
            api_failures: 0,
        })
    }

    /// Reads each source's cursor and latest payload from KV again: what another replica of the
    /// extractor stored while this one stood by.
    pub async fn reload(&mut self) -> Result<(), StoreError> {
        for s in &self.sources {
            let cursor = cursor::load(&self.stores.state, &self.env, &s.source).await?;
            let latest = latest_extracted(&self.stores.state, &self.env, &s.source).await?;
            if let Some(state) = self.state.get_mut(&s.source) {
                state.cursor = cursor;
                state.latest = latest;
            }
        }
        Ok(())
    }

    pub(crate) fn state(&self, source: &Source) -> &SourceState {
        self.state
            .get(source)
            .expect("every configured source has a state")
    }

    pub(crate) fn state_mut(&mut self, source: &Source) -> &mut SourceState {
        self.state
            .get_mut(source)
            .expect("every configured source has a state")
    }

    pub(crate) async fn check(&mut self, s: &SourceSettings) -> Result<Check, CheckError> {
        let state = self.state(&s.source);
        let latest_sha256 = state
            .latest
            .as_ref()
            .map(|latest| latest.object.sha256.clone());
        // The latest payload is written to KV before its event goes out and the cursor after: a
        // latest ahead of the cursor means the last announcement may not have happened.
        let announced = match (&state.latest, &state.cursor) {
            (Some(latest), Some(cursor)) => latest.upstream.commit_sha == cursor.commit_sha,
            _ => false,
        };
        // Without a stored payload the cursor means nothing: start over with the initial load.
        let cursor = state
            .cursor
            .clone()
            .filter(|c| c.applies_to(&s.location) && latest_sha256.is_some());
        let (first, etag, next) = match self
            .github
            .commits(s, cursor.as_ref().and_then(|c| c.etag.as_deref()))
            .await?
        {
            CommitsPage::NotModified => return Ok(Check::Unchanged(None)),
            CommitsPage::Page {
                commits,
                etag,
                next,
            } => (commits, etag, next),
        };
        let Some(newest) = first.first().cloned() else {
            if cursor.is_none() {
                // No commit has touched the file yet: nothing to extract until one does.
                tracing::debug!(source = %s.source, "no upstream commit yet");
                return Ok(Check::Unchanged(None));
            }
            // Commits were seen before and now none are listed: history was rewritten.
            return Err(CheckError::Rejected {
                kind: FailureKind::Unavailable,
                reason: format!(
                    "GitHub lists no commit touching {} on branch {} of {}",
                    s.location.path, s.location.branch, s.location.repo
                ),
                commit: None,
            });
        };
        let covered = match &cursor {
            None => vec![newest.clone()],
            Some(c) if c.commit_sha == newest.sha => {
                // Same commit, new ETag (a changed token, or a change elsewhere): remember it.
                let refreshed = (c.etag != etag).then(|| Cursor { etag, ..c.clone() });
                return Ok(Check::Unchanged(refreshed));
            }
            Some(c) => self.commits_since(c, first, next).await?,
        };
        // Each upstream change is one trace: from here through the download and the publish to
        // the email. Polls that find nothing stay out of the traces.
        let span = tracing::info_span!(
            parent: None,
            "extract",
            otel.name = %format!("extract {}", s.source),
            source = %s.source,
            commit = %newest.sha,
            commits = covered.len(),
        );
        async {
        tracing::info!(
            source = %s.source,
            newest = short(&newest.sha),
            commits = covered.len(),
            "new upstream commit{}",
            if covered.len() > 1 { "s" } else { "" }
        );

        let blob = match self.github.blob(s, newest.sha.as_str()).await {
            Err(GithubError::NotFound { .. }) => {
                return Err(CheckError::Rejected {
                    kind: FailureKind::Unavailable,
                    reason: format!(
                        "{} has no file {} at commit {}",
                        s.location.repo,
                        s.location.path,
                        short(&newest.sha)
                    ),
                    commit: Some(newest.sha.clone()),
                });
            }
            // Over 100 MB GitHub's contents API serves not even the metadata: that version of
            // the file cannot be taken, like one over MAX_PAYLOAD_BYTES.
            Err(GithubError::TooLarge { message, .. }) => {
                return Err(CheckError::Rejected {
                    kind: FailureKind::TooLarge,
                    reason: format!(
                        "GitHub's contents API will not serve the {} file {} {} at commit {}: it is too large (403: {message})",
                        s.source,
                        s.location.repo,
                        s.location.path,
                        short(&newest.sha)
                    ),
                    commit: Some(newest.sha.clone()),
                });
            }
            other => other?,
        };
        let new_cursor = Cursor {
            location: s.location.clone(),
            commit_sha: newest.sha.clone(),
            commit_time: newest.time,
            blob_sha: Some(blob.sha.clone()),
            etag,
        };
        if cursor.as_ref().and_then(|c| c.blob_sha.as_deref()) == Some(blob.sha.as_str()) {
            tracing::info!(source = %s.source, newest = short(&newest.sha), "the new commits left the file unchanged");
            return Ok(Check::SameContent(new_cursor));
        }

        let progress = Progress::new(
            self.stores.js.client(),
            &self.env,
            &s.source,
            newest.sha.as_str(),
            blob.size,
        );
        let bytes = download(
            &self.github,
            s,
            newest.sha.as_str(),
            &blob,
            self.max_payload,
            self.download_retry,
            &progress,
        )
        .await
            .map_err(|err| match err {
                DownloadError::Rejected { kind, reason } => CheckError::Rejected {
                    kind,
                    reason,
                    commit: Some(newest.sha.clone()),
                },
                DownloadError::Github(err) => CheckError::Github(err),
            })?;
        let fetched_at = Utc::now();
        let sha256 = Digest::of(&bytes);
        if announced && latest_sha256.as_ref() == Some(&sha256) {
            tracing::info!(source = %s.source, newest = short(&newest.sha), "the file is byte-identical to the last stored version");
            return Ok(Check::SameContent(new_cursor));
        }
        let object = self.store(s, &newest, &bytes, &sha256, fetched_at).await?;
        let covered_commits = if covered.len() > 1 {
            covered.iter().map(|c| c.sha.clone()).collect()
        } else {
            Vec::new()
        };
        Ok(Check::New(Box::new(NewPayload {
            upstream: UpstreamRef {
                repo: s.location.repo.clone(),
                path: s.location.path.clone(),
                commit_sha: newest.sha.clone(),
                commit_time: newest.time,
                covered_commits,
            },
            object,
            fetched_at,
            initial: latest_sha256.is_none(),
            cursor: new_cursor,
            span: span.clone(),
        })))
        }
        .instrument(span.clone())
        .await
    }

    /// The commits after `cursor`, newest first, starting from the first page already read.
    async fn commits_since(
        &mut self,
        cursor: &Cursor,
        mut page: Vec<CommitSummary>,
        mut next: Option<Url>,
    ) -> Result<Vec<CommitSummary>, GithubError> {
        let mut since = Vec::new();
        for _ in 0..MAX_PAGES {
            if let Some(pos) = page.iter().position(|c| c.sha == cursor.commit_sha) {
                page.truncate(pos);
                since.extend(page);
                return Ok(since);
            }
            since.extend(page);
            let Some(url) = next.take() else { break };
            match self.github.commits_at(url, None).await? {
                CommitsPage::Page {
                    commits,
                    next: after,
                    ..
                } => {
                    page = commits;
                    next = after;
                }
                CommitsPage::NotModified => break,
            }
        }
        tracing::warn!(
            last_seen = short(&cursor.commit_sha),
            listed = since.len(),
            "the last commit seen is no longer in the branch's history of the file (rewritten history?); taking the newest"
        );
        Ok(since)
    }

    /// Stores the payload under its content hash, once: the same bytes at another commit (a
    /// revert) are already there.
    async fn store(
        &self,
        s: &SourceSettings,
        commit: &CommitSummary,
        bytes: &[u8],
        sha256: &Digest,
        fetched_at: DateTime<Utc>,
    ) -> Result<ObjectRef, StoreError> {
        let name = raw_object_name(&self.env, &s.source, sha256);
        let object = ObjectRef {
            bucket: RAW_BUCKET.to_owned(),
            name: name.clone(),
            sha256: sha256.clone(),
            bytes: bytes.len() as u64,
        };
        if self.stores.raw.info(&name).await.is_ok() {
            return Ok(object);
        }
        let metadata = HashMap::from([
            ("repo".to_owned(), s.location.repo.clone()),
            ("path".to_owned(), s.location.path.clone()),
            ("commit_sha".to_owned(), commit.sha.to_string()),
            ("commit_time".to_owned(), commit.time.to_rfc3339()),
            ("fetched_at".to_owned(), fetched_at.to_rfc3339()),
        ]);
        put_object(&self.stores.raw, RAW_BUCKET, &name, bytes, metadata).await
    }
}
