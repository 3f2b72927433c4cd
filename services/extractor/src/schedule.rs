//! When the next poll and the daily run happen.

use std::time::Duration;

use chrono::{DateTime, Days, NaiveTime, Utc};
use shared::nats::backoff;
use tokio::time::Instant;

use crate::poller::Poller;

impl Poller {
    /// How long until the next poll, and why when it is later than usual.
    pub fn next_poll_in(&self) -> (Duration, Option<String>) {
        let now = Instant::now();
        let mut delay = if self.api_failures > 0 {
            backoff(
                self.api_failures,
                self.poll_interval,
                self.retry_max.max(self.poll_interval),
            )
        } else {
            self.poll_interval
        };
        let mut why =
            (self.api_failures > 0).then(|| format!("{} failed polls in a row", self.api_failures));
        if let Some(until) = self
            .github
            .held_until()
            .filter(|until| *until - now > delay)
        {
            delay = until - now;
            why = Some("GitHub's rate limit asks us to wait".to_owned());
        }
        // Each source backs off on its own; only when all of them do is there no point in polling
        // before the first is due.
        let first_due = self
            .sources
            .iter()
            .map(|s| self.state(&s.source).retry_at)
            .collect::<Option<Vec<Instant>>>()
            .and_then(|due| due.into_iter().min());
        if let Some(due) = first_due.filter(|due| *due > now && *due - now > delay) {
            delay = due - now;
            why = Some("every source is backing off after a failure (see `etl status`)".to_owned());
        }
        let per_poll = self.sources.len() as u64;
        if let Some(budget) = self.github.budget()
            && let Some(pace) = budget.pacing(Utc::now(), self.poll_interval, per_poll)
            && pace > delay
        {
            delay = pace;
            why = Some(format!(
                "only {} of {} API requests are left until {}: polls are spread so the budget lasts",
                budget.remaining,
                budget.limit,
                budget.reset.format("%H:%M:%S UTC")
            ));
        }
        (delay, why)
    }
}

/// The next time of day `at` (UTC) strictly after `now`.
pub fn next_daily(now: DateTime<Utc>, at: NaiveTime) -> DateTime<Utc> {
    let today = now.date_naive().and_time(at).and_utc();
    if today > now {
        today
    } else {
        let tomorrow = now
            .date_naive()
            .checked_add_days(Days::new(1))
            .expect("dates this side of year 262143");
        tomorrow.and_time(at).and_utc()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn later_today_when_the_time_has_not_come() {
        let at = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        assert_eq!(
            next_daily(utc("2026-03-01T05:59:59Z"), at),
            utc("2026-03-01T06:00:00Z")
        );
    }

    #[test]
    fn tomorrow_once_the_time_has_come() {
        let at = NaiveTime::from_hms_opt(6, 0, 0).unwrap();
        assert_eq!(
            next_daily(utc("2026-03-01T06:00:00Z"), at),
            utc("2026-03-02T06:00:00Z")
        );
        assert_eq!(
            next_daily(utc("2026-12-31T23:00:00Z"), at),
            utc("2027-01-01T06:00:00Z")
        );
    }
}
