//! What the fake holds: per repository and path, the commits that touched the file, in order;
//! the request budget; queued faults and replay steps.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde_json::{Value, json};
use sha1::{Digest, Sha1};

use super::{Endpoint, Fault, NewCommit, RequestRecord};

/// A commit as the fake serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FakeCommit {
    /// `owner/name`.
    pub repo: String,
    pub path: String,
    pub sha: String,
    pub time: DateTime<Utc>,
    pub message: String,
    pub content: Bytes,
    /// Order of arrival across the whole fake: a later commit has a larger `seq`.
    pub seq: u64,
}

impl FakeCommit {
    /// The git blob id of the content (what the contents API reports as `sha`).
    pub fn blob_sha(&self) -> String {
        git_blob_sha(&self.content)
    }
}

pub fn git_blob_sha(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// The primary rate limit as GitHub keeps it: a budget per hour window.
#[derive(Debug, Clone)]
pub struct RateState {
    pub limit: u64,
    pub used: u64,
    /// Epoch seconds at which the window resets.
    pub reset: i64,
}

impl RateState {
    fn roll(&mut self, now: DateTime<Utc>) {
        while now.timestamp() >= self.reset {
            self.reset += 3600;
            self.used = 0;
        }
    }

    pub fn remaining(&self) -> u64 {
        self.limit.saturating_sub(self.used)
    }
}

/// A fault waiting for its answer: for any repository, or only for `repo`.
#[derive(Debug, Clone)]
pub struct QueuedFault {
    pub repo: Option<String>,
    pub fault: Fault,
}

#[derive(Debug)]
pub struct State {
    pub commits: Vec<FakeCommit>,
    pub next_seq: u64,
    pub log: Vec<RequestRecord>,
    pub faults: HashMap<Endpoint, VecDeque<QueuedFault>>,
    pub rate: RateState,
    /// Replay: commits not yet visible, one step at a time.
    pub pending: VecDeque<Vec<NewCommit>>,
    pub revealed_steps: usize,
    /// Print each reveal to stdout (the `fake-github` binary).
    pub verbose: bool,
}

impl State {
    pub fn new() -> State {
        let now = Utc::now();
        State {
            commits: Vec::new(),
            next_seq: 1,
            log: Vec::new(),
            faults: HashMap::new(),
            rate: RateState {
                limit: 5000,
                used: 0,
                reset: now.timestamp() + 3600,
            },
            pending: VecDeque::new(),
            revealed_steps: 0,
            verbose: false,
        }
    }

    pub fn add(&mut self, new: NewCommit) -> FakeCommit {
        let seq = self.next_seq;
        self.next_seq += 1;
        let time = new.time.unwrap_or_else(|| {
            DateTime::from_timestamp(Utc::now().timestamp(), 0).expect("now is a valid time")
        });
        let sha = new.sha.unwrap_or_else(|| {
            let mut hasher = Sha1::new();
            hasher.update(format!("{}\n{}\n{seq}\n{time}\n", new.repo, new.path).as_bytes());
            hasher.update(&new.content);
            hex::encode(hasher.finalize())
        });
        let commit = FakeCommit {
            repo: new.repo,
            path: new.path,
            sha,
            time,
            message: new.message.unwrap_or_else(|| "Updating data.".to_owned()),
            content: new.content,
            seq,
        };
        self.commits.push(commit.clone());
        commit
    }

    pub fn has_repo(&self, repo: &str) -> bool {
        self.commits.iter().any(|c| c.repo == repo)
    }

    /// Resolves a `sha`/`ref` parameter within `repo`: a commit sha (or a prefix of 7+) gives that
    /// commit's position; anything else is taken as the branch, whose head is everything.
    pub fn resolve_ref(&self, repo: &str, reference: Option<&str>) -> Option<u64> {
        let Some(reference) =
            reference.filter(|r| r.len() >= 7 && r.chars().all(|c| c.is_ascii_hexdigit()))
        else {
            return Some(u64::MAX);
        };
        // A hex-looking ref that is no commit is unknown, as on GitHub.
        self.commits
            .iter()
            .find(|c| c.repo == repo && c.sha.starts_with(reference))
            .map(|commit| commit.seq)
    }

    /// Commits of `repo` (touching `path`, when given) up to position `upto`, newest first.
    pub fn history(&self, repo: &str, path: Option<&str>, upto: u64) -> Vec<&FakeCommit> {
        let mut list: Vec<&FakeCommit> = self
            .commits
            .iter()
            .filter(|c| c.repo == repo && path.is_none_or(|p| c.path == p) && c.seq <= upto)
            .collect();
        list.sort_by_key(|c| std::cmp::Reverse(c.seq));
        list
    }

    /// The file at a ref: its last version at or before that point.
    pub fn file_at(&self, repo: &str, path: &str, reference: Option<&str>) -> Option<&FakeCommit> {
        let upto = self.resolve_ref(repo, reference)?;
        self.history(repo, Some(path), upto).into_iter().next()
    }

    /// Counts a request against the budget (GitHub does not count a 304 made with a token; the
    /// fake counts no 304 at all) and returns the rate-limit headers to send.
    pub fn charge(&mut self, counted: bool) -> Vec<(&'static str, String)> {
        let now = Utc::now();
        self.rate.roll(now);
        if counted {
            self.rate.used = (self.rate.used + 1).min(self.rate.limit);
        }
        self.rate_headers()
    }

    pub fn rate_headers(&self) -> Vec<(&'static str, String)> {
        vec![
            ("x-ratelimit-limit", self.rate.limit.to_string()),
            ("x-ratelimit-remaining", self.rate.remaining().to_string()),
            ("x-ratelimit-used", self.rate.used.to_string()),
            ("x-ratelimit-reset", self.rate.reset.to_string()),
            ("x-ratelimit-resource", "core".to_owned()),
        ]
    }

    /// The first fault queued for `endpoint` that applies to `repo`, taken off the queue.
    pub fn take_fault(&mut self, endpoint: Endpoint, repo: &str) -> Option<Fault> {
        let queue = self.faults.get_mut(&endpoint)?;
        let at = queue
            .iter()
            .position(|q| q.repo.as_deref().is_none_or(|r| r == repo))?;
        queue.remove(at).map(|q| q.fault)
    }

    /// Makes the next replay step visible; returns what it revealed.
    pub fn reveal_next(&mut self) -> Option<Vec<FakeCommit>> {
        let step = self.pending.pop_front()?;
        self.revealed_steps += 1;
        let revealed: Vec<FakeCommit> = step.into_iter().map(|c| self.add(c)).collect();
        if self.verbose {
            let total = self.revealed_steps + self.pending.len();
            for c in &revealed {
                println!(
                    "step {}/{total}: revealed {} {} at {} ({}, {} bytes)",
                    self.revealed_steps,
                    c.repo,
                    c.path,
                    &c.sha[..10],
                    c.time.format("%Y-%m-%dT%H:%M:%SZ"),
                    c.content.len()
                );
            }
        }
        Some(revealed)
    }
}

/// A list item of the commits API, shaped like GitHub's.
pub fn commit_json(api: &str, c: &FakeCommit, parent: Option<&str>) -> Value {
    let signature = json!({"name": "covid-etl fake", "email": "fake@example.invalid", "date": c.time.format("%Y-%m-%dT%H:%M:%SZ").to_string()});
    let commit_url = format!("{api}/repos/{}/commits/{}", c.repo, c.sha);
    let tree = &git_blob_sha(c.sha.as_bytes());
    json!({
        "sha": c.sha,
        "node_id": format!("C_fake{}", c.seq),
        "commit": {
            "author": signature,
            "committer": signature,
            "message": c.message,
            "tree": {"sha": tree, "url": format!("{api}/repos/{}/git/trees/{tree}", c.repo)},
            "url": format!("{api}/repos/{}/git/commits/{}", c.repo, c.sha),
            "comment_count": 0,
            "verification": {"verified": false, "reason": "unsigned", "signature": null, "payload": null}
        },
        "url": commit_url,
        "html_url": format!("https://github.com/{}/commit/{}", c.repo, c.sha),
        "comments_url": format!("{commit_url}/comments"),
        "author": null,
        "committer": null,
        "parents": parent.map(|p| vec![json!({"sha": p, "url": format!("{api}/repos/{}/commits/{p}", c.repo)})]).unwrap_or_default(),
    })
}

/// An epoch-seconds reset time at least `wait` from now.
pub fn reset_after(wait: Duration) -> i64 {
    let at = Utc::now() + chrono::Duration::from_std(wait).unwrap_or_default();
    at.timestamp() + i64::from(at.timestamp_subsec_nanos() > 0)
}
