//! Why a run did not finish. Bad data is permanent (reported, never retried); trouble reaching NATS
//! or the object store is transient (retried with backoff).

use dataset::DataError;
use shared::Source;
use shared::nats::NatsError;
use shared::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error("the {input} payload {name} is larger than the limit of {limit} bytes")]
    TooLarge {
        input: Source,
        name: String,
        limit: u64,
    },
    #[error("the transform stopped unexpectedly: {0}")]
    Panicked(String),
    #[error("the transform produced no rows")]
    Empty,
    #[error("could not read the latest {input} extraction from the state bucket: {error}")]
    ReadState { input: Source, error: StoreError },
    #[error("could not read the {input} payload: {error}")]
    ReadPayload { input: Source, error: StoreError },
    #[error("could not store the curated dataset: {0}")]
    StoreCurated(StoreError),
    #[error("could not publish the transformed event: {0}")]
    Publish(NatsError),
}

impl RunError {
    /// The machine word of a permanent failure, or `None` when the error is worth retrying.
    pub(crate) fn permanent_kind(&self) -> Option<&'static str> {
        match self {
            RunError::Data(err) => Some(err.kind()),
            RunError::TooLarge { .. } => Some("too_large"),
            // A panic on some input would panic again on every redelivery.
            RunError::Panicked(_) => Some("internal"),
            RunError::Empty => Some("no_rows"),
            RunError::ReadState {
                error: StoreError::KvDecode { .. },
                ..
            } => Some("invalid_state"),
            RunError::ReadState { .. }
            | RunError::ReadPayload { .. }
            | RunError::StoreCurated(_)
            | RunError::Publish(_) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_oversized_payload_is_permanent_and_named() {
        let err = RunError::TooLarge {
            input: Source::Jhu,
            name: "e/jhu/abc".into(),
            limit: 10,
        };
        assert_eq!(err.permanent_kind(), Some("too_large"));
        assert_eq!(
            err.to_string(),
            "the jhu payload e/jhu/abc is larger than the limit of 10 bytes"
        );
    }

    #[test]
    fn store_and_broker_trouble_is_transient() {
        let err = RunError::Publish(NatsError::ShutDown);
        assert_eq!(err.permanent_kind(), None);
        let err = RunError::StoreCurated(StoreError::Nats(NatsError::ShutDown));
        assert_eq!(err.permanent_kind(), None);
    }
}
