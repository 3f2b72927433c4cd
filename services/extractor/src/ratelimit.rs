//! GitHub's request budget as pure functions: reading the `x-ratelimit-*` headers, and how far
//! apart polls must be so the budget lasts until it resets. What a refused request means (and how
//! long it must wait) is [`crate::refusal`].

use std::time::Duration;

use chrono::{DateTime, Utc};
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

/// A header as a number; `None` when absent or not one.
pub(crate) fn header_u64(headers: &HeaderMap, name: &str) -> Option<u64> {
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
    fn the_budget_is_read_from_the_headers_or_is_absent() {
        let h = headers(&[
            ("x-ratelimit-limit", "60".into()),
            ("x-ratelimit-remaining", "12".into()),
            ("x-ratelimit-reset", "1000".into()),
        ]);
        assert_eq!(
            Budget::from_headers(&h),
            Some(Budget {
                limit: 60,
                remaining: 12,
                reset: at(1000)
            })
        );
        // GitHub Enterprise with rate limiting off sends none of them.
        assert_eq!(Budget::from_headers(&HeaderMap::new()), None);
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
