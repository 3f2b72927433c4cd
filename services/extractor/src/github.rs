//! The GitHub client: the three requests the extractor makes (commits touching a file, the blob
//! sha of the file at a commit, the raw file at a commit), with the headers GitHub asks for, a
//! timeout on each, and the rate-limit bookkeeping that keeps it polite.
//!
//! After GitHub refuses a request for a rate limit, the client sends nothing more to the API until
//! the wait is over: a call then fails at once with [`GithubError::Holding`].

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::header::{ACCEPT, HeaderMap, IF_NONE_MATCH};
use reqwest::{Response, StatusCode};
use serde::Deserialize;
use shared::config::Secret;
use shared::ids::CommitSha;
use tokio::time::Instant;
use url::Url;

use crate::config::{Config, SourceSettings};
use crate::ratelimit::Budget;
use crate::refusal::{ErrorBody, Refusal, classify_refusal};

const API_ACCEPT: &str = "application/vnd.github+json";
const API_VERSION: &str = "2022-11-28";
/// A commits page or a contents answer is a few hundred kilobytes at most; anything much larger
/// is not GitHub talking.
const MAX_JSON_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GithubError {
    #[error("not asking GitHub before {}s from now: {why}", until.saturating_duration_since(Instant::now()).as_secs())]
    Holding { until: Instant, why: String },
    #[error("GitHub refused {url}: {why}")]
    RateLimited {
        url: String,
        until: Instant,
        why: String,
    },
    #[error(
        "GitHub refused {url} with 403 ({message}): the token is missing, lacks permission, or the repository is private"
    )]
    Forbidden { url: String, message: String },
    #[error(
        "GitHub refused {url} with 403 ({message}): the file is too large for the contents API"
    )]
    TooLarge { url: String, message: String },
    #[error("{url} was not found (404)")]
    NotFound { url: String },
    #[error("{url} answered {status}")]
    Status { url: String, status: StatusCode },
    #[error("request to {url} failed: {source}")]
    Transport { url: String, source: reqwest::Error },
    #[error("{url} sent something other than the JSON expected: {reason}")]
    Decode { url: String, reason: String },
}

/// A commit that touched the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitSummary {
    pub sha: CommitSha,
    pub time: DateTime<Utc>,
}

#[derive(Debug)]
pub enum CommitsPage {
    /// The ETag matched: nothing changed, and GitHub charged nothing.
    NotModified,
    Page {
        commits: Vec<CommitSummary>,
        etag: Option<String>,
        next: Option<Url>,
    },
}

/// The file as git stores it at a commit: its blob sha and size.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct BlobInfo {
    pub sha: String,
    pub size: u64,
}

#[derive(Deserialize)]
struct CommitItem {
    /// Checked as it is read: it ends up in events, object metadata and KV.
    sha: CommitSha,
    commit: CommitDetail,
}

#[derive(Deserialize)]
struct CommitDetail {
    committer: Option<Signature>,
    author: Option<Signature>,
}

#[derive(Deserialize)]
struct Signature {
    date: DateTime<Utc>,
}

#[derive(Deserialize)]
struct ContentsItem {
    #[serde(rename = "type")]
    kind: String,
    sha: String,
    size: u64,
}

pub struct Github {
    http: reqwest::Client,
    api: Url,
    raw: Url,
    token: Option<Secret>,
    per_page: u32,
    secondary_wait: Duration,
    hold: Option<(Instant, String)>,
    /// Rate-limit refusals in a row, for the secondary limit's exponential wait.
    refusals: u32,
    budget: Option<Budget>,
    /// Where requests and the budget are recorded, when the extractor runs with metrics.
    metrics: Option<shared::metrics::Metrics>,
}

impl Github {
    pub fn new(config: &Config) -> Result<Github, reqwest::Error> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("covid-etl-extractor/", env!("CARGO_PKG_VERSION")))
            .timeout(config.request_timeout)
            .connect_timeout(config.request_timeout.min(Duration::from_secs(10)))
            .build()?;
        Ok(Github {
            http,
            api: config.api_url.clone(),
            raw: config.raw_url.clone(),
            token: config.token.clone(),
            per_page: config.per_page,
            secondary_wait: config.secondary_limit_wait,
            hold: None,
            refusals: 0,
            budget: None,
            metrics: None,
        })
    }

    /// Records every request's status and GitHub's budget in `metrics`.
    pub fn with_metrics(mut self, metrics: shared::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn metrics(&self) -> Option<&shared::metrics::Metrics> {
        self.metrics.as_ref()
    }

    fn count(&self, endpoint: &'static str, result: &Result<Response, reqwest::Error>) {
        if let Some(metrics) = &self.metrics {
            let status = result.as_ref().ok().map(|r| r.status().as_u16());
            metrics.record().github_request(endpoint, status);
        }
    }

    /// The budget GitHub reported last.
    pub fn budget(&self) -> Option<Budget> {
        self.budget
    }

    /// When the API may be asked again, if a rate limit holds us off.
    pub fn held_until(&self) -> Option<Instant> {
        self.hold
            .as_ref()
            .map(|(until, _)| *until)
            .filter(|until| *until > Instant::now())
    }

    /// The first page of commits touching the file, newest first; `etag` makes it conditional.
    pub async fn commits(
        &mut self,
        s: &SourceSettings,
        etag: Option<&str>,
    ) -> Result<CommitsPage, GithubError> {
        let (owner, repo) = s.owner_repo();
        let mut url = self.api_url(&["repos", owner, repo, "commits"]);
        url.query_pairs_mut()
            .append_pair("path", &s.location.path)
            .append_pair("sha", &s.location.branch)
            .append_pair("per_page", &self.per_page.to_string());
        self.commits_at(url, etag).await
    }

    /// A further page, from a `Link: rel="next"` of an earlier answer.
    pub async fn commits_at(
        &mut self,
        url: Url,
        etag: Option<&str>,
    ) -> Result<CommitsPage, GithubError> {
        let response = self.api_get(&url, etag).await?;
        let status = response.status();
        if status == StatusCode::NOT_MODIFIED {
            return Ok(CommitsPage::NotModified);
        }
        check_success(&url, status)?;
        let etag = header_str(response.headers(), "etag");
        let next = next_link(response.headers()).filter(|next| {
            // The token must never travel to another host, whatever a Link header says.
            let same = next.origin() == self.api.origin();
            if !same {
                tracing::warn!(%next, "ignoring a next-page link to another host");
            }
            same
        });
        let items: Vec<CommitItem> = read_json(&url, response).await?;
        let commits = items
            .into_iter()
            .map(|item| {
                let signature = item.commit.committer.or(item.commit.author);
                let time = signature
                    .map(|s| s.date)
                    .ok_or_else(|| GithubError::Decode {
                        url: url.to_string(),
                        reason: format!("commit {} has no date", item.sha),
                    })?;
                Ok(CommitSummary {
                    sha: item.sha,
                    time,
                })
            })
            .collect::<Result<_, GithubError>>()?;
        Ok(CommitsPage::Page {
            commits,
            etag,
            next,
        })
    }

    /// The blob sha and size GitHub holds for the file at `sha` (contents API, default media type:
    /// only the metadata is read, so files over 1 MB work too).
    pub async fn blob(&mut self, s: &SourceSettings, sha: &str) -> Result<BlobInfo, GithubError> {
        let (owner, repo) = s.owner_repo();
        let mut segments = vec!["repos", owner, repo, "contents"];
        segments.extend(s.location.path.split('/'));
        let mut url = self.api_url(&segments);
        url.query_pairs_mut().append_pair("ref", sha);
        let response = self.api_get(&url, None).await?;
        check_success(&url, response.status())?;
        let item: ContentsItem = read_json(&url, response).await?;
        if item.kind != "file" {
            return Err(GithubError::Decode {
                url: url.to_string(),
                reason: format!("the path is a {}, not a file", item.kind),
            });
        }
        Ok(BlobInfo {
            sha: item.sha,
            size: item.size,
        })
    }

    /// Starts the download of the file pinned to commit `sha` (the raw host is outside the API's
    /// rate limit, and a commit-pinned URL is never served stale).
    pub async fn raw(&self, s: &SourceSettings, sha: &str) -> Result<Response, GithubError> {
        let (owner, repo) = s.owner_repo();
        let mut url = self.raw.clone();
        {
            let mut path = url.path_segments_mut().expect("http URLs have paths");
            path.pop_if_empty()
                .extend([owner, repo, sha])
                .extend(s.location.path.split('/'));
        }
        let response = self.http.get(url.clone()).send().await;
        self.count("raw", &response);
        let response = response.map_err(|source| GithubError::Transport {
            url: url.to_string(),
            source,
        })?;
        check_success(&url, response.status())?;
        Ok(response)
    }

    fn api_url(&self, segments: &[&str]) -> Url {
        let mut url = self.api.clone();
        url.path_segments_mut()
            .expect("http URLs have paths")
            .pop_if_empty()
            .extend(segments);
        url
    }

    async fn api_get(&mut self, url: &Url, etag: Option<&str>) -> Result<Response, GithubError> {
        if let Some(until) = self.held_until() {
            let why = self
                .hold
                .as_ref()
                .map(|(_, why)| why.clone())
                .unwrap_or_default();
            return Err(GithubError::Holding { until, why });
        }
        let mut request = self
            .http
            .get(url.clone())
            .header(ACCEPT, API_ACCEPT)
            .header("X-GitHub-Api-Version", API_VERSION);
        if let Some(token) = &self.token {
            request = request.bearer_auth(token.expose());
        }
        if let Some(etag) = etag {
            request = request.header(IF_NONE_MATCH, etag);
        }
        let response = request.send().await;
        self.count("api", &response);
        let response = response.map_err(|source| GithubError::Transport {
            url: url.to_string(),
            source,
        })?;
        if let Some(budget) = Budget::from_headers(response.headers()) {
            self.budget = Some(budget);
            if let Some(metrics) = &self.metrics {
                metrics.record().github_budget(
                    budget.limit,
                    budget.remaining,
                    budget.reset.timestamp(),
                );
            }
        }
        let status = response.status();
        if status != StatusCode::FORBIDDEN && status != StatusCode::TOO_MANY_REQUESTS {
            if status.is_success() || status == StatusCode::NOT_MODIFIED {
                self.refusals = 0;
            }
            return Ok(response);
        }
        let headers = response.headers().clone();
        // A body that cannot be read leaves the status and headers to decide.
        let body = read_body(url, response)
            .await
            .map(|bytes| ErrorBody::parse(&bytes))
            .unwrap_or_default();
        let refusals = self.refusals + 1;
        match classify_refusal(
            status,
            &headers,
            &body,
            Utc::now(),
            self.secondary_wait,
            refusals,
        ) {
            Refusal::RateLimited { wait, why } => {
                self.refusals = refusals;
                let until = Instant::now() + wait;
                tracing::warn!(%url, wait_s = wait.as_secs_f64(), %why, "rate limited by GitHub: sending nothing to the API until the wait is over");
                self.hold = Some((until, why.clone()));
                Err(GithubError::RateLimited {
                    url: url.to_string(),
                    until,
                    why,
                })
            }
            Refusal::TooLarge => Err(GithubError::TooLarge {
                url: url.to_string(),
                message: body.message,
            }),
            Refusal::Forbidden => Err(GithubError::Forbidden {
                url: url.to_string(),
                message: body.message,
            }),
        }
    }
}

fn check_success(url: &Url, status: StatusCode) -> Result<(), GithubError> {
    match status {
        s if s.is_success() => Ok(()),
        StatusCode::NOT_FOUND | StatusCode::GONE => Err(GithubError::NotFound {
            url: url.to_string(),
        }),
        status => Err(GithubError::Status {
            url: url.to_string(),
            status,
        }),
    }
}

async fn read_json<T: serde::de::DeserializeOwned>(
    url: &Url,
    response: Response,
) -> Result<T, GithubError> {
    let body = read_body(url, response).await?;
    serde_json::from_slice(&body).map_err(|err| GithubError::Decode {
        url: url.to_string(),
        reason: err.to_string(),
    })
}

/// The whole body of an API answer, bounded by [`MAX_JSON_BYTES`].
async fn read_body(url: &Url, mut response: Response) -> Result<Vec<u8>, GithubError> {
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|source| GithubError::Transport {
            url: url.to_string(),
            source,
        })?
    {
        body.extend_from_slice(&chunk);
        if body.len() > MAX_JSON_BYTES {
            return Err(GithubError::Decode {
                url: url.to_string(),
                reason: format!("the answer is over {MAX_JSON_BYTES} bytes"),
            });
        }
    }
    Ok(body)
}

fn header_str(headers: &HeaderMap, name: &str) -> Option<String> {
    headers.get(name)?.to_str().ok().map(str::to_owned)
}

/// The `rel="next"` target of a `Link` header (`<url>; rel="next", <url>; rel="last"`).
pub fn next_link(headers: &HeaderMap) -> Option<Url> {
    headers
        .get_all("link")
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(','))
        .find_map(|part| {
            let (target, params) = part.trim().split_once(';')?;
            let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
            // `rel` may hold several space-separated relations.
            let is_next = params.split(';').any(|param| {
                param.trim().strip_prefix("rel=").is_some_and(|rels| {
                    rels.trim_matches('"')
                        .split_whitespace()
                        .any(|rel| rel == "next")
                })
            });
            if is_next {
                Url::parse(target).ok()
            } else {
                None
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    #[test]
    fn the_next_page_is_read_from_the_link_header() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                "<https://api.github.com/repos/o/r/commits?path=a.csv&page=1>; rel=\"prev\", \
                 <https://api.github.com/repos/o/r/commits?path=a.csv&page=3>; rel=\"next\", \
                 <https://api.github.com/repos/o/r/commits?path=a.csv&page=9>; rel=\"last\"",
            ),
        );
        let next = next_link(&headers).unwrap();
        assert_eq!(
            next.as_str(),
            "https://api.github.com/repos/o/r/commits?path=a.csv&page=3"
        );
    }

    #[test]
    fn no_next_relation_means_the_last_page() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "link",
            HeaderValue::from_static(
                "<https://h/x?page=1>; rel=\"first\", <https://h/x?page=1>; rel=\"prev\"",
            ),
        );
        assert!(next_link(&headers).is_none());
        assert!(next_link(&HeaderMap::new()).is_none());
    }
}
