//! The loader's durable consumer: what it takes, how long one message may take, and how long a
//! message is retried before it is given up on.
//!
//! A transient failure (PostgreSQL down or locked, NATS unreachable) is retried with a back-off
//! that doubles from a second to five minutes, for [`MAX_DELIVER`] deliveries: about an hour of
//! PostgreSQL outage is waited out without anyone's help. Past that, the settle step reports the
//! message (`etl.<env>.failed.load`) and dead-letters it; `etl dead retry` publishes it again once
//! the database is back. Retrying for ever instead would hide an outage that needs a person.

use std::time::Duration;

use shared::EnvScope;
use shared::consumer::ConsumerSpec;
use shared::events::Stage;
use shared::nats::{self, backoff};
use shared::postgres::SessionSettings;
use shared::subjects::{self, Filter};

/// Deliveries of one message. With [`retry_delay`], the 20 waits between the 21 deliveries add up
/// to at least 63 minutes (at most half as much again, with jitter): an hour of outage.
pub const MAX_DELIVER: i64 = 21;

/// The first wait before a delivery again, doubled each time up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(1);

/// The longest wait between two deliveries: a database back from an outage is used within five
/// minutes, and a short hiccup (a restart, a lock held for seconds) costs seconds.
pub const RETRY_MAX: Duration = Duration::from_secs(5 * 60);

/// Headroom of the deadline over the waits PostgreSQL itself bounds, for the COPY's data, the
/// Parquet decoding and the publish of the result.
const DEADLINE_MARGIN: Duration = Duration::from_secs(10);

/// The wait before the delivery after delivery number `delivered` (1 on the first).
pub fn retry_delay(delivered: u64) -> Duration {
    let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
    backoff(attempt, RETRY_FIRST, RETRY_MAX)
}

/// The longest one message may be in hand: the curated read (bounded by `read_deadline`), one
/// lock wait (`lock_timeout`: the env's load lock or a table lock held elsewhere) and a load
/// (each statement bounded by `statement_timeout`), plus a margin. PostgreSQL's own timeouts thus
/// fire first and name the cause precisely; the deadline only stops a handler stuck elsewhere.
pub fn deadline(session: &SessionSettings, read_deadline: Duration) -> Duration {
    read_deadline + session.lock_timeout + session.statement_timeout + DEADLINE_MARGIN
}

/// The loader's consumer for `scope`: every transformed run, and every stage's failure reports
/// (recorded in `etl_runs`, its own included).
pub fn spec(scope: &EnvScope, session: &SessionSettings, read_deadline: Duration) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        nats::ETL_STREAM,
        format!("loader-{}", scope.label()),
        Stage::Load,
        subjects::filters(scope, &[Filter::Transformed, Filter::Failed]),
    );
    spec.max_deliver = MAX_DELIVER;
    spec.deadline = deadline(session, read_deadline);
    spec
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The waits before deliveries 2 to `MAX_DELIVER`, without jitter (which only adds).
    fn least_total_wait() -> Duration {
        (1..MAX_DELIVER as u64)
            .map(|delivered| {
                let doubled = RETRY_FIRST.saturating_mul(1 << (delivered - 1).min(16));
                doubled.min(RETRY_MAX)
            })
            .sum()
    }

    #[test]
    fn an_hour_of_outage_is_waited_out_but_not_a_day() {
        let least = least_total_wait();
        assert!(least >= Duration::from_secs(3600), "{least:?}");
        // Jitter adds at most half of each wait; each failing attempt ends within the deadline.
        let most = least.mul_f64(1.5)
            + deadline(&SessionSettings::WRITER, Duration::from_secs(15)) * MAX_DELIVER as u32;
        assert!(most <= Duration::from_secs(3 * 3600), "{most:?}");
    }

    #[test]
    fn retries_start_short_and_are_capped() {
        assert!(retry_delay(1) < Duration::from_secs(2));
        for delivered in [9, 20, 1000] {
            let delay = retry_delay(delivered);
            assert!(delay >= Duration::from_secs(250), "{delivered}: {delay:?}");
            assert!(delay <= RETRY_MAX.mul_f64(1.5), "{delivered}: {delay:?}");
        }
    }

    #[test]
    fn the_deadline_outlasts_a_lock_wait_and_a_statement() {
        let session = SessionSettings::WRITER;
        let read = Duration::from_secs(15);
        let deadline = deadline(&session, read);
        assert!(deadline > read + session.lock_timeout + session.statement_timeout);
        assert_eq!(deadline, Duration::from_secs(65));
    }

    #[test]
    fn the_spec_takes_runs_and_every_failure_report() {
        let scope: EnvScope = "prod".parse().unwrap();
        let spec = spec(&scope, &SessionSettings::WRITER, Duration::from_secs(15));
        assert_eq!(spec.filters, ["etl.prod.transformed", "etl.prod.failed.*"]);
        assert_eq!(spec.durable, "loader-prod");
        assert_eq!((spec.stage, spec.max_deliver), (Stage::Load, MAX_DELIVER));
    }
}
