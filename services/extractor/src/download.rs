//! Downloading a file pinned to a commit, and accepting it only when whole: never more than
//! `MAX_PAYLOAD_BYTES` held (the limit is enforced while streaming), the length GitHub announced,
//! and the git blob sha GitHub reports for the path at that commit. A body cut off by the
//! connection is tried again a few times before it counts as a failure.

use std::future::Future;
use std::time::Duration;

use sha1::{Digest, Sha1};
use shared::nats::backoff;

use crate::config::SourceSettings;
use crate::error::{DownloadError, FailureKind};
use crate::github::{BlobInfo, Github, GithubError};
use crate::progress::Progress;

/// How much of the start of a body is looked at to tell an HTML page from a CSV file.
const SNIFF_BYTES: usize = 512;

/// The git blob id of `bytes`: SHA-1 of `blob <len>\0<bytes>`, as `git hash-object` computes it.
pub fn git_blob_sha(bytes: &[u8]) -> String {
    let mut hasher = Sha1::new();
    hasher.update(format!("blob {}\0", bytes.len()).as_bytes());
    hasher.update(bytes);
    hex::encode(hasher.finalize())
}

/// Whether `start` opens an HTML document (an error or login page served with 200).
pub fn looks_like_html(start: &[u8]) -> bool {
    let start = &start[..start.len().min(SNIFF_BYTES)];
    let text = String::from_utf8_lossy(start);
    let text = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    text.starts_with("<!doctype html") || text.starts_with("<html")
}

/// How often, and how patiently, a download cut off by the connection is tried again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retry {
    /// Attempts in all, the first included.
    pub attempts: u32,
    /// The wait before the second attempt; each later wait doubles, up to `max_wait`.
    pub first_wait: Duration,
    pub max_wait: Duration,
}

/// A flaky connection usually works again within seconds; a host that keeps cutting the body off
/// is reported after three attempts, about two seconds, so a poll is not held up for long.
pub const CUT_OFF_RETRY: Retry = Retry {
    attempts: 3,
    first_wait: Duration::from_millis(500),
    max_wait: Duration::from_secs(5),
};

/// Downloads `s`'s file at `commit` and checks it against `blob`, telling `progress` as bytes
/// arrive; a body cut short (fewer bytes than announced or than GitHub reports) is a network
/// hiccup, tried again as `retry` says before it is reported.
pub async fn download(
    github: &Github,
    s: &SourceSettings,
    commit: &str,
    blob: &BlobInfo,
    limit: u64,
    retry: Retry,
    progress: &Progress,
) -> Result<Vec<u8>, DownloadError> {
    retry_cut_off(retry, || {
        download_once(github, s, commit, blob, limit, progress)
    })
    .await
}

/// Runs `attempt` until it gives something other than a truncated body, or `retry.attempts` are
/// spent; the last truncation then says how many attempts were made.
pub async fn retry_cut_off<T, F, Fut>(retry: Retry, mut attempt: F) -> Result<T, DownloadError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, DownloadError>>,
{
    let mut made = 0;
    loop {
        made += 1;
        match attempt().await {
            Err(DownloadError::Rejected {
                kind: FailureKind::Truncated,
                reason,
            }) => {
                if made >= retry.attempts {
                    let reason = if made > 1 {
                        format!("{reason}; cut off in each of {made} attempts")
                    } else {
                        reason
                    };
                    return Err(DownloadError::rejected(FailureKind::Truncated, reason));
                }
                let wait = backoff(made, retry.first_wait, retry.max_wait);
                tracing::info!(attempt = made, wait_ms = wait.as_millis() as u64, %reason, "the download was cut off; trying again");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

async fn download_once(
    github: &Github,
    s: &SourceSettings,
    commit: &str,
    blob: &BlobInfo,
    limit: u64,
    progress: &Progress,
) -> Result<Vec<u8>, DownloadError> {
    let what = format!(
        "{} {} at commit {}",
        s.location.repo,
        s.location.path,
        short(commit)
    );
    if blob.size > limit {
        return Err(DownloadError::rejected(
            FailureKind::TooLarge,
            format!(
                "GitHub reports {what} as {} bytes, over the MAX_PAYLOAD_BYTES limit of {limit}",
                blob.size
            ),
        ));
    }
    let mut response = match github.raw(s, commit).await {
        Err(GithubError::NotFound { .. }) => {
            return Err(DownloadError::rejected(
                FailureKind::Unavailable,
                format!("the raw host has no {what} (404)"),
            ));
        }
        other => other?,
    };
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    if content_type.starts_with("text/html") {
        return Err(DownloadError::rejected(
            FailureKind::NotCsv,
            format!(
                "the raw host served an HTML page (content type {content_type}) instead of {what}"
            ),
        ));
    }
    let declared: Option<u64> = response
        .headers()
        .get(reqwest::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok());
    if let Some(declared) = declared.filter(|d| *d > limit) {
        return Err(DownloadError::rejected(
            FailureKind::TooLarge,
            format!(
                "the raw host announced {declared} bytes for {what}, over the MAX_PAYLOAD_BYTES limit of {limit}"
            ),
        ));
    }

    let mut body: Vec<u8> = Vec::with_capacity(usize::try_from(blob.size).unwrap_or(0));
    let mut sniffed = false;
    loop {
        let chunk = match response.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => break,
            Err(err) => {
                let expected = declared.unwrap_or(blob.size);
                return Err(DownloadError::rejected(
                    FailureKind::Truncated,
                    format!(
                        "the download of {what} broke off after {} of {expected} bytes ({err})",
                        body.len()
                    ),
                ));
            }
        };
        if (body.len() + chunk.len()) as u64 > limit {
            return Err(DownloadError::rejected(
                FailureKind::TooLarge,
                format!(
                    "the body of {what} ran past the MAX_PAYLOAD_BYTES limit of {limit} bytes; reading stopped there"
                ),
            ));
        }
        body.extend_from_slice(&chunk);
        progress.advance(body.len() as u64).await;
        if !sniffed && body.len() >= SNIFF_BYTES {
            sniffed = true;
            reject_html(&body, &what)?;
        }
    }
    reject_html(&body, &what)?;
    check_whole(&body, declared, blob, &what)?;
    progress.finish(body.len() as u64).await;
    Ok(body)
}

fn reject_html(body: &[u8], what: &str) -> Result<(), DownloadError> {
    if looks_like_html(body) {
        return Err(DownloadError::rejected(
            FailureKind::NotCsv,
            format!("the raw host answered 200 with an HTML page instead of {what}"),
        ));
    }
    Ok(())
}

/// Length against the announced and the expected size, then content against the blob sha.
fn check_whole(
    body: &[u8],
    declared: Option<u64>,
    blob: &BlobInfo,
    what: &str,
) -> Result<(), DownloadError> {
    let got = body.len() as u64;
    if let Some(declared) = declared.filter(|d| *d != got) {
        return Err(DownloadError::rejected(
            FailureKind::Truncated,
            format!("received {got} of the {declared} bytes announced for {what}"),
        ));
    }
    if got < blob.size {
        return Err(DownloadError::rejected(
            FailureKind::Truncated,
            format!(
                "received {got} of the {} bytes GitHub reports for {what}: the body ended early",
                blob.size
            ),
        ));
    }
    if got != blob.size {
        return Err(DownloadError::rejected(
            FailureKind::Integrity,
            format!(
                "received {got} bytes for {what}, but GitHub reports {} bytes",
                blob.size
            ),
        ));
    }
    let sha = git_blob_sha(body);
    if sha != blob.sha {
        return Err(DownloadError::rejected(
            FailureKind::Integrity,
            format!(
                "the bytes received for {what} are git blob {sha}, not the blob {} GitHub reports",
                blob.sha
            ),
        ));
    }
    Ok(())
}

/// The first ten characters of a commit sha, for sentences and logs.
pub fn short<S: AsRef<str> + ?Sized>(sha: &S) -> &str {
    let sha = sha.as_ref();
    &sha[..sha.len().min(10)]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob_of(bytes: &[u8]) -> BlobInfo {
        BlobInfo {
            sha: git_blob_sha(bytes),
            size: bytes.len() as u64,
        }
    }

    fn kind(result: Result<(), DownloadError>) -> Option<FailureKind> {
        match result {
            Err(DownloadError::Rejected { kind, .. }) => Some(kind),
            _ => None,
        }
    }

    const QUICK: Retry = Retry {
        attempts: 3,
        first_wait: Duration::from_millis(1),
        max_wait: Duration::from_millis(2),
    };

    fn cut_off() -> DownloadError {
        DownloadError::rejected(
            FailureKind::Truncated,
            "received 10 of the 20 bytes announced",
        )
    }

    #[tokio::test]
    async fn a_body_cut_off_once_is_fetched_again_without_a_failure() {
        let mut made = 0;
        let result = retry_cut_off(QUICK, || {
            made += 1;
            let outcome = if made == 1 { Err(cut_off()) } else { Ok(made) };
            async move { outcome }
        })
        .await;
        assert_eq!(result.unwrap(), 2);
    }

    #[tokio::test]
    async fn a_body_cut_off_every_time_fails_after_the_last_attempt() {
        let mut made = 0;
        let result: Result<(), _> = retry_cut_off(QUICK, || {
            made += 1;
            async { Err(cut_off()) }
        })
        .await;
        assert_eq!(made, 3);
        match result {
            Err(DownloadError::Rejected {
                kind: FailureKind::Truncated,
                reason,
            }) => assert!(
                reason.ends_with("cut off in each of 3 attempts"),
                "{reason}"
            ),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn other_failures_are_not_tried_again() {
        let mut made = 0;
        let result: Result<(), _> = retry_cut_off(QUICK, || {
            made += 1;
            async { Err(DownloadError::rejected(FailureKind::Integrity, "altered")) }
        })
        .await;
        assert_eq!(made, 1);
        assert_eq!(
            kind(result),
            Some(FailureKind::Integrity),
            "an altered body is no network hiccup"
        );
    }

    #[test]
    fn blob_sha_matches_git() {
        assert_eq!(
            git_blob_sha(b""),
            "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
        );
        assert_eq!(
            git_blob_sha(b"hello\n"),
            "ce013625030ba8dba906f756967f9e9ca394464a"
        );
    }

    #[test]
    fn html_is_recognised_whatever_the_case_or_leading_space() {
        assert!(looks_like_html(
            b"<!DOCTYPE html><html><body>Oops</body></html>"
        ));
        assert!(looks_like_html(b"\xef\xbb\xbf  \n<HTML lang=en>"));
        assert!(!looks_like_html(b"date,cases,deaths\n2020-01-21,1,0"));
    }

    #[test]
    fn a_whole_body_passes() {
        let body = b"date,cases,deaths\n2020-01-21,1,0";
        assert_eq!(
            kind(check_whole(
                body,
                Some(body.len() as u64),
                &blob_of(body),
                "x"
            )),
            None
        );
        assert_eq!(kind(check_whole(body, None, &blob_of(body), "x")), None);
    }

    #[test]
    fn a_body_cut_at_a_line_end_is_truncated() {
        let full = b"date,cases,deaths\n2020-01-21,1,0\n2020-01-22,1,0";
        let cut = &full[..full.len() - 15];
        assert_eq!(
            kind(check_whole(cut, None, &blob_of(full), "x")),
            Some(FailureKind::Truncated)
        );
        assert_eq!(
            kind(check_whole(
                cut,
                Some(full.len() as u64),
                &blob_of(full),
                "x"
            )),
            Some(FailureKind::Truncated)
        );
    }

    #[test]
    fn an_altered_body_of_the_same_length_fails_integrity() {
        let full = b"date,cases,deaths\n2020-01-21,1,0";
        let altered = b"date,cases,deaths\n2020-01-21,7,0";
        assert_eq!(
            kind(check_whole(altered, None, &blob_of(full), "x")),
            Some(FailureKind::Integrity)
        );
    }
}
