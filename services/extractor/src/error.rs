//! Errors at the extractor's module boundaries.

use shared::nats::NatsError;
use shared::store::StoreError;

use crate::github::GithubError;

/// Why a source could not be extracted; each is published as a failed extract with this `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The body ended before its announced or expected length.
    Truncated,
    /// The bytes are not the blob GitHub reports for the path at that commit.
    Integrity,
    /// Over `MAX_PAYLOAD_BYTES`, or over what GitHub's contents API serves.
    TooLarge,
    /// An HTML page where a CSV file was expected.
    NotCsv,
    /// The file cannot be had: missing at the commit, or the host keeps failing.
    Unavailable,
    /// GitHub refuses access (a 403 that is no rate limit): the token or the repository needs a
    /// person.
    Forbidden,
}

impl FailureKind {
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::Truncated => "truncated",
            FailureKind::Integrity => "integrity",
            FailureKind::TooLarge => "too_large",
            FailureKind::NotCsv => "not_csv",
            FailureKind::Unavailable => "unavailable",
            FailureKind::Forbidden => "forbidden",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DownloadError {
    /// The payload is not whole or not what upstream holds: never stored.
    #[error("{reason}")]
    Rejected { kind: FailureKind, reason: String },
    /// The request itself failed (5xx, timeout before the body, rate limit): worth another try.
    #[error(transparent)]
    Github(#[from] GithubError),
}

impl DownloadError {
    pub fn rejected(kind: FailureKind, reason: impl Into<String>) -> Self {
        DownloadError::Rejected {
            kind,
            reason: reason.into(),
        }
    }
}

/// Writing what was extracted: the object, the KV state, the events.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Nats(#[from] NatsError),
}
