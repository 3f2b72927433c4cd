//! GitHub's rate-limit rules as pure functions: reading the `x-ratelimit-*` headers, deciding how
//! long a refused request (403/429) must wait, and how far apart polls must be so the budget lasts
//! until it resets.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

/// The request budget GitHub reported on its last answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub limit: u64,
    pub remaining: u64,
    pub reset: DateTime<Utc>,
}

impl Budget {
    /// Reads `x-ratelimit-limit`, `-remaining` and `-reset` (epoch seconds); `None` when absent,
    /// as on GitHub Enterprise with rate limiting off.
    pub fn from_headers(headers: &HeaderMap) -> Option<Budget> {
        let limit = header_u64(headers, "x-ratelimit-limit")?;
        let remaining = header_u64(headers, "x-ratelimit-remaining")?;
        let reset = header_u64(headers, "x-ratelimit-reset")?;
        let reset = DateTime::from_timestamp(i64::try_from(reset).ok()?, 0)?;
        Some(Budget {
            limit,
            remaining,
            reset,
        })
    }

    /// How far apart polls must be for the remaining budget to last until the reset, when that is
    /// longer than `interval`; `requests_per_poll` is what one poll costs at most.
    ///
    /// Only once less than a fifth of the budget is left: conditional polls answered 304 cost
    /// nothing with a token, so the worst case must not slow polls while the budget is healthy.
    pub fn pacing(
        &self,
        now: DateTime<Utc>,
        interval: Duration,
        requests_per_poll: u64,
    ) -> Option<Duration> {
        if self.remaining > self.limit / 5 {
            return None;
        }
        let until_reset = (self.reset - now).to_std().ok()?;
        let polls_left = self.remaining / requests_per_poll.max(1);
        let spacing = if polls_left == 0 {
            until_reset
        } else {
            until_reset / u32::try_from(polls_left).unwrap_or(u32::MAX)
        };
        (spacing > interval).then_some(spacing)
    }
}

/// What a refused request asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rate limit: send nothing to the API for `wait`; `why` says which rule applied.
    RateLimited { wait: Duration, why: String },
    /// A 403 that is no rate limit: the token (or its absence) does not allow this.
    Permission,
}

/// Applies GitHub's documented order for 403/429: `retry-after` first; then, when the budget is
/// spent, the reset time; then, for a secondary limit without either, at least `secondary_wait`,
/// doubling with each refusal in a row (`streak` counts from 1).
pub fn classify_refusal(
    status: StatusCode,
    headers: &HeaderMap,
    message: &str,
    now: DateTime<Utc>,
    secondary_wait: Duration,
    streak: u32,
) -> Refusal {
    if let Some(seconds) = header_u64(headers, "retry-after") {
        return Refusal::RateLimited {
            wait: Duration::from_secs(seconds),
            why: format!("GitHub answered {status} with retry-after {seconds}s"),
        };
    }
    if let Some(budget) = Budget::from_headers(headers).filter(|b| b.remaining == 0) {
        // One second past the reset, so the first request lands in the new window.
        let wait = (budget.reset - now).to_std().unwrap_or_default() + Duration::from_secs(1);
        return Refusal::RateLimited {
            wait,
            why: format!(
                "the primary rate limit of {} requests is spent until {}",
                budget.limit,
                budget.reset.format("%H:%M:%S UTC")
            ),
        };
    }
    // GitHub only tells a secondary limit apart from a permission problem by its message.
    let secondary = status == StatusCode::TOO_MANY_REQUESTS
        || message.to_ascii_lowercase().contains("rate limit");
    if secondary {
        let wait = secondary_wait.saturating_mul(1 << streak.saturating_sub(1).min(6));
        return Refusal::RateLimited {
            wait,
            why: format!(
                "GitHub answered {status} (a secondary rate limit) without saying how long to wait"
            ),
        };
    }
    Refusal::Permission
}

fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
    headers.get(name)?.to_str().ok()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_str(value).unwrap());
        }
        map
    }

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(secs, 0).unwrap()
    }

    const MINUTE: Duration = Duration::from_secs(60);

    #[test]
    fn retry_after_wins_over_everything_else() {
        let h = headers(&[
            ("retry-after", "7".into()),
            ("x-ratelimit-remaining", "0".into()),
        ]);
        let refusal = classify_refusal(StatusCode::FORBIDDEN, &h, "", at(0), MINUTE, 1);
        assert!(
            matches!(refusal, Refusal::RateLimited { wait, .. } if wait == Duration::from_secs(7))
        );
    }

    #[test]
    fn a_spent_budget_waits_until_just_after_the_reset() {
        let h = headers(&[
            ("x-ratelimit-limit", "60".into()),
            ("x-ratelimit-remaining", "0".into()),
            ("x-ratelimit-reset", "1000".into()),
        ]);
        let refusal = classify_refusal(
            StatusCode::FORBIDDEN,
            &h,
            "API rate limit exceeded",
            at(900),
            MINUTE,
            1,
        );
        assert!(
            matches!(refusal, Refusal::RateLimited { wait, .. } if wait == Duration::from_secs(101))
        );
    }

    #[test]
    fn a_secondary_limit_without_a_time_waits_a_minute_then_doubles() {
        let h = headers(&[("x-ratelimit-remaining", "4000".into())]);
        let first = classify_refusal(StatusCode::TOO_MANY_REQUESTS, &h, "", at(0), MINUTE, 1);
        let third = classify_refusal(
            StatusCode::FORBIDDEN,
            &h,
            "You have exceeded a secondary rate limit",
            at(0),
            MINUTE,
            3,
        );
        assert!(matches!(first, Refusal::RateLimited { wait, .. } if wait == MINUTE));
        assert!(matches!(third, Refusal::RateLimited { wait, .. } if wait == 4 * MINUTE));
    }

    #[test]
    fn a_plain_403_is_a_permission_problem() {
        let h = headers(&[("x-ratelimit-remaining", "4000".into())]);
        let refusal = classify_refusal(
            StatusCode::FORBIDDEN,
            &h,
            "Resource not accessible by integration",
            at(0),
            MINUTE,
            1,
        );
        assert_eq!(refusal, Refusal::Permission);
    }

    #[test]
    fn polls_spread_out_when_the_budget_would_not_last() {
        let budget = Budget {
            limit: 60,
            remaining: 10,
            reset: at(3600),
        };
        // 10 requests, 2 per poll: 5 polls for an hour, one every 12 minutes.
        assert_eq!(
            budget.pacing(at(0), MINUTE, 2),
            Some(Duration::from_secs(720))
        );
        let healthy = Budget {
            limit: 60,
            remaining: 30,
            reset: at(3600),
        };
        assert_eq!(
            healthy.pacing(at(0), MINUTE, 2),
            None,
            "more than a fifth left"
        );
        let plenty = Budget {
            limit: 5000,
            remaining: 900,
            reset: at(3600),
        };
        assert_eq!(
            plenty.pacing(at(0), MINUTE, 2),
            None,
            "8 s apart is sooner than the interval"
        );
        let spent = Budget {
            limit: 60,
            remaining: 1,
            reset: at(600),
        };
        assert_eq!(
            spent.pacing(at(0), MINUTE, 2),
            Some(Duration::from_secs(600))
        );
    }
}
