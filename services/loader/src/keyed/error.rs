//! Why a keyed table could not be applied, and what kind of failure that is.

use shared::events::FailureKind;

use crate::db;

#[derive(Debug, thiserror::Error)]
pub enum KeyedError {
    #[error("PostgreSQL failed to {step} for {table}: {}", describe(source))]
    Db {
        table: &'static str,
        step: &'static str,
        source: tokio_postgres::Error,
    },
    /// A CSV buffer PostgreSQL would not read: a bad value, a wrong header, a repeated
    /// (date, key), a missing key.
    #[error("the {what} CSV for {table} is invalid: {}", describe(source))]
    InvalidCsv {
        table: &'static str,
        what: &'static str,
        source: tokio_postgres::Error,
    },
    /// DESIGN rule 7; nothing was changed and the transaction is still usable (to record the run
    /// as failed).
    #[error(
        "the run would remove {removed} of {stored} stored rows of {table} ({}), more than the {} allowed",
        share(*removed, *stored),
        percent(*max_share)
    )]
    SuspiciousRemoval {
        table: &'static str,
        stored: u64,
        removed: u64,
        max_share: f64,
    },
    /// The table is said to hold the delta's base, yet the delta does not fit it (a removed row
    /// that is not stored, a revision whose old value is not the stored one).
    #[error("the delta for {table} does not fit its base run {base}: {problem}")]
    DeltaDisagrees {
        table: &'static str,
        base: String,
        problem: String,
    },
    /// The statements' counts contradict each other: a bug, never retried.
    #[error("the changes to {table} disagree, nothing may be committed: {problem}")]
    CountMismatch {
        table: &'static str,
        problem: String,
    },
}

impl KeyedError {
    /// A `map_err` for a failed SQL step on `table`.
    pub(crate) fn db(
        table: &'static str,
        step: &'static str,
    ) -> impl FnOnce(tokio_postgres::Error) -> KeyedError {
        move |source| KeyedError::Db {
            table,
            step,
            source,
        }
    }

    /// Whether the same call may succeed later: only PostgreSQL trouble that goes away.
    pub fn is_transient(&self) -> bool {
        match self {
            KeyedError::Db { source, .. } => db::is_transient(source),
            _ => false,
        }
    }

    /// The failure's machine word.
    pub fn kind(&self) -> FailureKind {
        match self {
            KeyedError::Db { source, .. } if db::is_transient(source) => FailureKind::Unavailable,
            KeyedError::Db { .. } => FailureKind::Internal,
            // The curated bytes are the ones announced, yet not a dataset.
            KeyedError::InvalidCsv { .. } => FailureKind::CorruptObject,
            KeyedError::SuspiciousRemoval { .. } => FailureKind::SuspiciousRemoval,
            KeyedError::DeltaDisagrees { .. } => FailureKind::InconsistentEvent,
            KeyedError::CountMismatch { .. } => FailureKind::CountMismatch,
        }
    }
}

/// A PostgreSQL error as a sentence: the server's message, detail and context (for a COPY, the
/// staging table, line and column), or the client-side cause.
pub(crate) fn describe(err: &tokio_postgres::Error) -> String {
    let Some(db) = err.as_db_error() else {
        return shared::postgres::explain(err);
    };
    let mut text = db.message().to_owned();
    for extra in [db.detail(), db.where_()].into_iter().flatten() {
        text.push_str(" (");
        text.push_str(extra);
        text.push(')');
    }
    text
}

/// `removed` as a share of `stored`; with nothing stored there is no share to give.
fn share(removed: u64, stored: u64) -> String {
    if stored == 0 {
        "none is stored".to_owned()
    } else {
        percent(removed as f64 / stored as f64)
    }
}

/// `0.05` as `5 %`, `0.125` as `12.5 %`.
fn percent(share: f64) -> String {
    let p = (share * 1000.0).round() / 10.0;
    format!("{p} %")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_suspicious_removal_names_the_table_and_the_shares() {
        let err = KeyedError::SuspiciousRemoval {
            table: "counties_daily",
            stored: 200,
            removed: 40,
            max_share: 0.05,
        };
        assert_eq!(
            err.to_string(),
            "the run would remove 40 of 200 stored rows of counties_daily (20 %), more than the 5 % allowed"
        );
        assert_eq!(err.kind(), FailureKind::SuspiciousRemoval);
        assert!(!err.is_transient());
    }

    #[test]
    fn a_removal_from_nothing_stored_gives_no_share() {
        let err = KeyedError::SuspiciousRemoval {
            table: "states_daily",
            stored: 0,
            removed: 3,
            max_share: 0.05,
        };
        assert_eq!(
            err.to_string(),
            "the run would remove 3 of 0 stored rows of states_daily (none is stored), more than the 5 % allowed"
        );
    }
}
