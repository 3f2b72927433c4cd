//! Why a run could not be loaded: transient trouble (PostgreSQL or NATS unavailable) is retried;
//! anything else is reported as a failed load and never retried.

use dataset::DataError;
use shared::nats::NatsError;
use shared::store::StoreError;

use crate::db;
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
    /// The database did something other than what the diff predicted: a bug, never retried.
    #[error("the database changes disagree with the diff, nothing was committed: {0}")]
    CountMismatch(String),
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

    /// The machine word of a permanent failure, or `None` when the error is worth retrying.
    pub fn permanent_kind(&self) -> Option<&'static str> {
        match self {
            LoadError::Pool(_) | LoadError::Publish { .. } => None,
            LoadError::Db { source, .. } if db::is_transient(source) => None,
            LoadError::Migrate(err) if err.is_transient() => None,
            LoadError::ReadCurated {
                error: StoreError::TooLarge { .. },
                ..
            } => Some("too_large"),
            LoadError::ReadCurated { .. } => None,
            LoadError::Parquet { error, .. } => Some(error.kind()),
            LoadError::RowCount { .. } => Some("inconsistent_event"),
            LoadError::Decode(_) => Some("internal"),
            LoadError::CountMismatch(_) => Some("count_mismatch"),
            LoadError::Db { .. } | LoadError::Migrate(_) => Some("internal"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_broker_trouble_is_retried() {
        let err = LoadError::Publish {
            what: "the loaded event",
            error: NatsError::ShutDown,
        };
        assert_eq!(err.permanent_kind(), None);
        let err = LoadError::ReadCurated {
            name: "e/r.parquet".into(),
            error: StoreError::Nats(NatsError::ShutDown),
        };
        assert_eq!(err.permanent_kind(), None);
    }

    #[test]
    fn a_count_mismatch_is_a_permanent_bug() {
        let err = LoadError::CountMismatch("inserted 2 rows, the diff expected 1".into());
        assert_eq!(err.permanent_kind(), Some("count_mismatch"));
        assert!(err.to_string().contains("nothing was committed"));
    }

    #[test]
    fn an_event_that_miscounts_its_rows_is_permanent() {
        let err = LoadError::RowCount {
            name: "e/r.parquet".into(),
            announced: 3,
            found: 2,
        };
        assert_eq!(err.permanent_kind(), Some("inconsistent_event"));
    }
}
