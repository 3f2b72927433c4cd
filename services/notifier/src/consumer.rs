//! The notifier's durable consumer: what it takes, how long one message may take, and how long a
//! message is retried before it is given up on.
//!
//! The one failure that lasts is a mail server that is down or deferring (a NATS or KV hiccup
//! passes in seconds). The notification is out before the email is tried, so a retry only holds
//! up the email: each delivery that finds the server unavailable is put back with a back-off that
//! doubles from a second up to `SMTP_RETRY_MAX`, and the deliveries are counted so that an
//! outage of [`OUTAGE_WAITED_OUT`] (an hour) is waited out without anyone's help — 21 deliveries
//! with the default `SMTP_RETRY_MAX` of five minutes, more when it is shorter. Past that, the
//! settle step gives the email up: it reports `etl.<env>.failed.notify` (published, not emailed:
//! see [`crate::handler`]) and dead-letters the event, which `etl dead retry` publishes again once
//! the server is back; the notice then resumes at its email. Retrying for ever instead would hide
//! an outage that needs a person.
//!
//! The ack wait keeps the shared default (10 s, kept alive by progress acks while an email is
//! being sent), so a notifier that dies mid-message has it taken up again within seconds.

use std::time::Duration;

use shared::EnvScope;
use shared::consumer::ConsumerSpec;
use shared::events::Stage;
use shared::nats::{self, backoff};
use shared::subjects::{self, Filter};

use crate::config::SmtpConfig;

/// How long a mail server may stay unavailable before an email is given up on.
pub const OUTAGE_WAITED_OUT: Duration = Duration::from_secs(60 * 60);

/// The first wait before a delivery again, doubled each time up to `SMTP_RETRY_MAX`.
pub const RETRY_FIRST: Duration = Duration::from_secs(1);

/// A bound on the deliveries however small `SMTP_RETRY_MAX` is (an hour of one-second waits).
const MAX_DELIVER_CAP: i64 = 4_000;

/// SMTP steps of one email, each bounded by `SMTP_TIMEOUT`: connect, greeting, EHLO, STARTTLS and
/// EHLO again or AUTH, MAIL, RCPT (per recipient; two assumed), DATA, the message.
const SMTP_STEPS_PER_EMAIL: u32 = 10;

/// Emails one message may send: its own, and a staleness alert for each source checked after a
/// loaded run.
const EMAILS_PER_MESSAGE: u32 = 3;

/// Headroom for the NATS and KV steps (each publish and record retried briefly on its own).
const DEADLINE_MARGIN: Duration = Duration::from_secs(30);

/// The wait before the delivery after delivery number `delivered` (1 on the first).
pub fn retry_delay(delivered: u64, retry_max: Duration) -> Duration {
    let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
    backoff(attempt, RETRY_FIRST, retry_max.max(RETRY_FIRST))
}

/// The fewest deliveries whose waits in between (without jitter, which only adds) add up to
/// `outage` with [`retry_delay`]'s back-off.
pub fn max_deliver(retry_max: Duration, outage: Duration) -> i64 {
    let cap = retry_max.max(RETRY_FIRST);
    let mut waited = Duration::ZERO;
    let mut deliveries: i64 = 1;
    while waited < outage && deliveries < MAX_DELIVER_CAP {
        let doubled = RETRY_FIRST.saturating_mul(1 << (deliveries - 1).min(16));
        waited += doubled.min(cap);
        deliveries += 1;
    }
    deliveries
}

/// The longest one message may be in hand. Every SMTP step is bounded by `SMTP_TIMEOUT`, so the
/// mail server's own timeouts fire first and name the cause; the deadline only stops a handler
/// stuck elsewhere. Cutting a send short could email twice, hence the generous bound.
pub fn deadline(smtp: &SmtpConfig) -> Duration {
    smtp.timeout * (SMTP_STEPS_PER_EMAIL * EMAILS_PER_MESSAGE) + DEADLINE_MARGIN
}

/// The notifier's consumer for `scope`: every loaded run and every stage's failure report.
pub fn spec(scope: &EnvScope, smtp: &SmtpConfig) -> ConsumerSpec {
    let mut spec = ConsumerSpec::new(
        nats::ETL_STREAM,
        crate::consumer_name(scope),
        Stage::Notify,
        subjects::filters(scope, &[Filter::Loaded, Filter::Failed]),
    );
    spec.max_deliver = max_deliver(smtp.retry_max, smtp.give_up_after);
    spec.deadline = deadline(smtp);
    spec
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Config;

    fn smtp(pairs: &[(&str, &str)]) -> SmtpConfig {
        let vars = shared::config::Vars::from_pairs(pairs.iter().copied());
        Config::from_vars(&vars).unwrap().smtp
    }

    #[test]
    fn with_the_defaults_an_hour_of_outage_takes_21_deliveries() {
        let smtp = smtp(&[]);
        assert_eq!(smtp.give_up_after, OUTAGE_WAITED_OUT);
        assert_eq!(max_deliver(smtp.retry_max, smtp.give_up_after), 21);
    }

    #[test]
    fn the_waits_cover_the_outage_whatever_the_retry_cap() {
        for retry_max in [1, 30, 300, 900] {
            let retry_max = Duration::from_secs(retry_max);
            let deliveries = max_deliver(retry_max, OUTAGE_WAITED_OUT);
            let least: Duration = (1..deliveries as u64)
                .map(|d| {
                    RETRY_FIRST
                        .saturating_mul(1 << (d - 1).min(16))
                        .min(retry_max)
                })
                .sum();
            assert!(least >= OUTAGE_WAITED_OUT, "{retry_max:?}: {least:?}");
            // One delivery fewer would not do: the count is the least that waits it out.
            let last = RETRY_FIRST
                .saturating_mul(1 << (deliveries as u64 - 2).min(16))
                .min(retry_max);
            assert!(least - last < OUTAGE_WAITED_OUT, "{retry_max:?}");
        }
    }

    #[test]
    fn a_tiny_retry_cap_cannot_make_deliveries_endless() {
        assert!(max_deliver(Duration::ZERO, OUTAGE_WAITED_OUT) <= MAX_DELIVER_CAP);
        assert!(retry_delay(5, Duration::ZERO) >= RETRY_FIRST);
    }

    #[test]
    fn retries_start_short_and_are_capped_by_smtp_retry_max() {
        let retry_max = Duration::from_secs(300);
        assert!(retry_delay(1, retry_max) < Duration::from_secs(2));
        for delivered in [9, 20, 1000] {
            let delay = retry_delay(delivered, retry_max);
            assert!(delay >= Duration::from_secs(250), "{delivered}: {delay:?}");
            assert!(delay <= retry_max.mul_f64(1.5), "{delivered}: {delay:?}");
        }
    }

    #[test]
    fn the_spec_takes_runs_and_every_failure_report() {
        let scope: EnvScope = "prod".parse().unwrap();
        let smtp = smtp(&[("SMTP_TIMEOUT", "15s")]);
        let spec = spec(&scope, &smtp);
        assert_eq!(spec.filters, ["etl.prod.loaded", "etl.prod.failed.*"]);
        assert_eq!(spec.durable, "notifier-prod");
        assert_eq!((spec.stage, spec.max_deliver), (Stage::Notify, 21));
        assert_eq!(spec.deadline, Duration::from_secs(15 * 30 + 30));
        assert_eq!(spec.ack_wait, Duration::from_secs(10));
    }
}
