//! Errors at the extractor's module boundaries.

use shared::nats::NatsError;
use shared::store::StoreError;

use crate::github::GithubError;

/// Why a source could not be extracted: the kind of its failed extract.
pub use shared::events::FailureKind;

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
