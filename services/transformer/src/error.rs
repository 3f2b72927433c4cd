//! Why a run did not finish, and how each reason is classified for the settle step: bad upstream
//! data is permanent (reported, never retried); a store or broker that is slow or away is
//! transient (retried with backoff, then given up on); an object that is not what its event
//! promised is read once more, then given up on (see [`StoreError::is_transient`]).

use dataset::DataError;
use shared::events::FailureKind;
use shared::nats::NatsError;
use shared::settle::Failure;
use shared::store::StoreError;
use shared::{Dataset, Source};

#[derive(Debug, thiserror::Error)]
pub(crate) enum RunError {
    #[error("could not read the latest {input} extraction from the state bucket: {error}")]
    ReadState { input: Source, error: StoreError },
    #[error("the {input} payload {name} is larger than the limit of {limit} bytes")]
    TooLarge {
        input: Source,
        name: String,
        limit: u64,
    },
    #[error("could not read the {input} payload: {error}")]
    ReadPayload { input: Source, error: StoreError },
    #[error(transparent)]
    Transform(#[from] DataError),
    #[error("the transform stopped unexpectedly: {0}")]
    Panicked(String),
    #[error("the transform produced no rows")]
    Empty,
    #[error("could not store the curated dataset: {0}")]
    StoreCurated(StoreError),
    /// The run's curated object was already there (an earlier delivery of the run wrote it) with
    /// other bytes than this transform's, and reading it back failed.
    #[error("the curated dataset already stored for this run cannot be used: {0}")]
    CheckCurated(StoreError),
    /// The same, but it reads back as another dataset than this transform's.
    #[error(
        "the curated dataset {name} already stored for this run holds other rows than its inputs give ({problem}); it is left as it is"
    )]
    ForeignCurated { name: String, problem: String },
    #[error("could not publish the transformed event: {0}")]
    Publish(NatsError),
    #[error("the extracted event names the dataset {dataset}, which the transformer does not know")]
    UnknownDataset { dataset: Dataset },
    #[error(
        "the extracted {input} event of the {dataset} dataset lists none of the dataset's sources"
    )]
    NoDatasetSources { input: Source, dataset: Dataset },
    #[error("{input} is not one of the sources of the {dataset} dataset ({})", names(.sources))]
    NotADatasetSource {
        input: Source,
        dataset: Dataset,
        sources: Vec<Source>,
    },
    #[error(
        "the {dataset} dataset's source list in the event names {count} sources, or one twice; at most {} distinct sources make a dataset",
        crate::keyed::MAX_DATASET_SOURCES
    )]
    TooManyDatasetSources { dataset: Dataset, count: usize },
    #[error(
        "could not read the {dataset} dataset's last curated run from the state bucket: {error}"
    )]
    ReadBase { dataset: Dataset, error: StoreError },
    #[error("could not store the delta of the run: {0}")]
    StoreDelta(StoreError),
    #[error("could not record the run as the {dataset} dataset's last curated run: {error}")]
    RecordCurated { dataset: Dataset, error: StoreError },
}

fn names(sources: &[Source]) -> String {
    let names: Vec<&str> = sources.iter().map(Source::as_str).collect();
    names.join(", ")
}

impl RunError {
    /// The failure the settle step reports (or retries) for this error at delivery number
    /// `delivered` (1 on the first).
    pub(crate) fn failure(&self, delivered: u64) -> Failure {
        let reason = self.to_string();
        let store = |error: &StoreError| {
            if error.is_transient(delivered) {
                Failure::transient(error.kind(), reason.clone())
            } else {
                Failure::permanent(error.kind(), reason.clone())
            }
        };
        match self {
            RunError::ReadState { error, .. }
            | RunError::ReadPayload { error, .. }
            | RunError::StoreCurated(error)
            | RunError::CheckCurated(error)
            | RunError::ReadBase { error, .. }
            | RunError::StoreDelta(error)
            | RunError::RecordCurated { error, .. } => store(error),
            RunError::TooLarge { .. } => Failure::permanent(FailureKind::TooLarge, reason),
            RunError::Transform(err) => Failure::permanent(data_kind(err), reason),
            // A panic on some input would panic again on every redelivery.
            RunError::Panicked(_) => Failure::permanent(FailureKind::Internal, reason),
            RunError::Empty => Failure::permanent(FailureKind::InvalidData, reason),
            RunError::ForeignCurated { .. } => {
                Failure::permanent(FailureKind::CorruptObject, reason)
            }
            RunError::Publish(_) => Failure::transient(FailureKind::Unavailable, reason),
            // The event contradicts what a dataset is: no delivery can make it a run.
            RunError::UnknownDataset { .. }
            | RunError::NoDatasetSources { .. }
            | RunError::NotADatasetSource { .. }
            | RunError::TooManyDatasetSources { .. } => {
                Failure::permanent(FailureKind::Malformed, reason)
            }
        }
    }
}

/// The failure kind of a transform error: the dataset's own, but for the Parquet step, which in
/// the transformer writes rows that passed validation and so can fail only by a bug.
fn data_kind(err: &DataError) -> FailureKind {
    match err {
        DataError::Parquet(_) => FailureKind::Internal,
        err => err.kind(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::ids::Digest;

    #[test]
    fn an_oversized_payload_is_permanent_and_named() {
        let err = RunError::TooLarge {
            input: Source::JHU,
            name: "e/jhu/abc".into(),
            limit: 10,
        };
        let failure = err.failure(1);
        assert_eq!(failure.kind, FailureKind::TooLarge);
        assert!(!failure.transient);
        assert_eq!(
            failure.reason,
            "the jhu payload e/jhu/abc is larger than the limit of 10 bytes"
        );
    }

    #[test]
    fn store_and_broker_trouble_is_transient() {
        let failure = RunError::Publish(NatsError::ShutDown).failure(1);
        assert!(failure.transient);
        assert_eq!(failure.kind, FailureKind::Unavailable);
        let failure = RunError::StoreCurated(StoreError::Nats(NatsError::ShutDown)).failure(3);
        assert!(failure.transient);
    }

    #[test]
    fn a_missing_payload_is_permanent() {
        let err = RunError::ReadPayload {
            input: Source::NYT,
            error: StoreError::Missing {
                name: "e/nyt/abc".into(),
                bucket: "etl-raw".into(),
            },
        };
        let failure = err.failure(1);
        assert_eq!(failure.kind, FailureKind::MissingObject);
        assert!(!failure.transient);
        assert!(failure.reason.contains("e/nyt/abc"), "{}", failure.reason);
    }

    #[test]
    fn a_payload_that_is_not_what_was_announced_is_read_once_more() {
        let err = RunError::ReadPayload {
            input: Source::JHU,
            error: StoreError::DigestMismatch {
                name: "e/jhu/abc".into(),
                expected: Digest::of(b"a"),
                found: Digest::of(b"b"),
            },
        };
        assert_eq!(err.failure(1).kind, FailureKind::CorruptObject);
        assert!(err.failure(1).transient);
        assert!(!err.failure(2).transient);
    }

    #[test]
    fn an_event_outside_its_dataset_is_permanently_malformed_and_named() {
        let err = RunError::NotADatasetSource {
            input: Source::new("us-states").unwrap(),
            dataset: Dataset::COUNTIES,
            sources: vec![
                Source::new("us-counties-2020").unwrap(),
                Source::new("us-counties-recent").unwrap(),
            ],
        };
        let failure = err.failure(1);
        assert_eq!(failure.kind, FailureKind::Malformed);
        assert!(!failure.transient);
        assert_eq!(
            failure.reason,
            "us-states is not one of the sources of the counties dataset (us-counties-2020, us-counties-recent)"
        );
    }

    #[test]
    fn bad_data_is_permanent_invalid_data() {
        let err = RunError::Transform(dataset::transform(b"date,cases\n", b"x").unwrap_err());
        let failure = err.failure(1);
        assert!(!failure.transient);
        assert_eq!(failure.kind, FailureKind::InvalidData);
    }
}
