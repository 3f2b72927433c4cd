//! Why a run could not be loaded, and what kind of failure that is for the settle step: transient
//! trouble (PostgreSQL or NATS unavailable, a lock held, a slow read) is retried; anything else
//! would fail the same way again and is reported at once.

use dataset::DataError;
use shared::events::FailureKind;
use shared::nats::NatsError;
use shared::settle::Failure;
use shared::store::StoreError;

use crate::db;
use crate::keyed::KeyedError;
use crate::migrate::MigrateError;

#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("could not get a PostgreSQL connection: {0}")]
    Pool(#[from] deadpool_postgres::PoolError),
    #[error("PostgreSQL failed to {step}: {source}")]
    Db {
        step: &'static str,
        source: tokio_postgres::Error,
    },
    #[error(transparent)]
    Migrate(#[from] MigrateError),
    #[error("could not read the curated dataset {name}: {error}")]
    ReadCurated { name: String, error: StoreError },
    #[error("the curated dataset {name} is unreadable: {error}")]
    Parquet { name: String, error: DataError },
    #[error("decoding the curated dataset stopped unexpectedly: {0}")]
    Decode(String),
    #[error(
        "the transformed event announces {announced} rows but its dataset {name} holds {found}"
    )]
    RowCount {
        name: String,
        announced: u64,
        found: usize,
    },
    /// The dataset does not have a value its event announced (a keyed run's first or last date).
    #[error(
        "the transformed event announces {field} {announced} but its dataset {name} has {found}"
    )]
    Announced {
        name: String,
        field: &'static str,
        announced: String,
        found: String,
    },
    /// The database did something other than what the diff predicted: a bug, never retried.
    #[error("the database changes disagree with the diff, nothing was committed: {0}")]
    CountMismatch(String),
    /// A dataset this version does not load (neither `us` nor a keyed one).
    #[error("the transformed event is for dataset {0:?}, which this loader does not know")]
    UnknownDataset(String),
    /// An object the event names is not where the run's objects are kept.
    #[error("the transformed event names {field} {found:?}, expected {expected:?}")]
    ObjectName {
        field: &'static str,
        found: String,
        expected: String,
    },
    #[error(transparent)]
    Keyed(#[from] KeyedError),
    #[error("could not publish {what}: {error}")]
    Publish {
        what: &'static str,
        error: NatsError,
    },
}

impl LoadError {
    /// A `map_err` for a failed SQL step.
    pub fn db(step: &'static str) -> impl FnOnce(tokio_postgres::Error) -> LoadError {
        move |source| LoadError::Db { step, source }
    }

    /// Whether the same message may succeed on the delivery after number `delivered` (1 is the
    /// first): a server back, a lock released, a read that was cut short.
    pub fn is_transient(&self, delivered: u64) -> bool {
        match self {
            LoadError::Pool(_) | LoadError::Publish { .. } => true,
            LoadError::Db { source, .. } => db::is_transient(source),
            LoadError::Migrate(err) => err.is_transient(),
            // The store's rule: a missing or oversized object stays so; bytes that are not the
            // announced ones are read once more, then given up on.
            LoadError::ReadCurated { error, .. } => error.is_transient(delivered),
            LoadError::Keyed(err) => err.is_transient(),
            LoadError::Parquet { .. }
            | LoadError::Decode(_)
            | LoadError::RowCount { .. }
            | LoadError::Announced { .. }
            | LoadError::CountMismatch(_)
            | LoadError::UnknownDataset(_)
            | LoadError::ObjectName { .. } => false,
        }
    }

    /// The failure's machine word.
    pub fn kind(&self) -> FailureKind {
        match self {
            LoadError::Pool(_) | LoadError::Publish { .. } => FailureKind::Unavailable,
            LoadError::Db { source, .. } if db::is_transient(source) => FailureKind::Unavailable,
            LoadError::Migrate(err) if err.is_transient() => FailureKind::Unavailable,
            LoadError::Db { .. } | LoadError::Migrate(_) | LoadError::Decode(_) => {
                FailureKind::Internal
            }
            LoadError::ReadCurated { error, .. } => error.kind(),
            // The bytes are the ones the event announced, yet they are not a dataset.
            LoadError::Parquet { .. } => FailureKind::CorruptObject,
            LoadError::RowCount { .. } | LoadError::Announced { .. } => {
                FailureKind::InconsistentEvent
            }
            LoadError::CountMismatch(_) => FailureKind::CountMismatch,
            LoadError::UnknownDataset(_) | LoadError::ObjectName { .. } => FailureKind::Malformed,
            LoadError::Keyed(err) => err.kind(),
        }
    }

    /// The classified failure the settle step acts on, at delivery number `delivered`.
    pub fn failure(&self, delivered: u64) -> Failure {
        if self.is_transient(delivered) {
            Failure::transient(self.kind(), self.to_string())
        } else {
            Failure::permanent(self.kind(), self.to_string())
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn pool_and_broker_trouble_is_retried() {
        let err = LoadError::Publish {
            what: "the loaded event",
            error: NatsError::ShutDown,
        };
        assert!(err.is_transient(1));
        assert_eq!(err.kind(), FailureKind::Unavailable);
        let err = LoadError::ReadCurated {
            name: "e/r.parquet".into(),
            error: StoreError::Nats(NatsError::ShutDown),
        };
        assert!(err.failure(5).transient);
    }

    #[test]
    fn a_curated_object_that_is_gone_is_given_up_at_once_and_a_slow_read_is_retried() {
        let gone = LoadError::ReadCurated {
            name: "e/r.parquet".into(),
            error: StoreError::Missing {
                name: "e/r.parquet".into(),
                bucket: "etl-curated".into(),
            },
        };
        let failure = gone.failure(1);
        assert_eq!(
            (failure.kind, failure.transient),
            (FailureKind::MissingObject, false)
        );
        let slow = LoadError::ReadCurated {
            name: "e/r.parquet".into(),
            error: StoreError::Timeout {
                name: "e/r.parquet".into(),
                operation: "read",
                deadline: Duration::from_secs(30),
            },
        };
        let failure = slow.failure(3);
        assert_eq!(
            (failure.kind, failure.transient),
            (FailureKind::Timeout, true)
        );
    }

    #[test]
    fn a_count_mismatch_is_a_permanent_bug() {
        let err = LoadError::CountMismatch("inserted 2 rows, the diff expected 1".into());
        let failure = err.failure(1);
        assert!(!failure.transient);
        assert_eq!(failure.kind, FailureKind::CountMismatch);
        assert!(failure.reason.contains("nothing was committed"));
    }

    #[test]
    fn an_unknown_dataset_or_a_foreign_object_is_a_malformed_event() {
        let unknown = LoadError::UnknownDataset("cities".into()).failure(1);
        assert_eq!(
            (unknown.kind, unknown.transient),
            (FailureKind::Malformed, false)
        );
        let foreign = LoadError::ObjectName {
            field: "delta.rows.name",
            found: "other/r.rows.csv".into(),
            expected: "e/r.rows.csv".into(),
        };
        assert_eq!(foreign.kind(), FailureKind::Malformed);
        assert!(!foreign.is_transient(1));
    }

    #[test]
    fn a_keyed_error_keeps_its_own_kind() {
        let err = LoadError::from(KeyedError::SuspiciousRemoval {
            table: "states_daily",
            stored: 10,
            removed: 5,
            max_share: 0.05,
        });
        assert_eq!(err.kind(), FailureKind::SuspiciousRemoval);
        assert!(!err.is_transient(1));
        assert!(err.to_string().starts_with("the run would remove 5 of 10"));
    }

    #[test]
    fn an_event_that_miscounts_its_rows_is_permanent() {
        let err = LoadError::RowCount {
            name: "e/r.parquet".into(),
            announced: 3,
            found: 2,
        };
        assert!(!err.is_transient(1));
        assert_eq!(err.kind(), FailureKind::InconsistentEvent);
    }
}
