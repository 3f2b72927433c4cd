//! When the daily run happens.

use chrono::{DateTime, Days, NaiveTime, Utc};

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
