//! What a refused API request (403 or 429) means. GitHub answers 403 for a rate limit, for a file
//! too large for the contents API and for a plain lack of access, and tells them apart only in the
//! headers and the JSON body (`message`, `documentation_url`, `errors[].code`): this module is the
//! one place that reads them.

use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header::HeaderMap;

use crate::ratelimit::{Budget, header_u64};

/// The parts of GitHub's error body that tell one refusal from another.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorBody {
    pub message: String,
    pub documentation_url: String,
    /// `errors[].code`, such as `too_large`.
    pub codes: Vec<String>,
}

impl ErrorBody {
    /// Reads what it can: a body that is not the JSON expected reads as empty, so the refusal is
    /// classified by its status and headers alone.
    pub fn parse(body: &[u8]) -> ErrorBody {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else {
            return ErrorBody::default();
        };
        let text = |key: &str| {
            value
                .get(key)
                .and_then(|v| v.as_str())
                .unwrap_or_default()
                .to_owned()
        };
        let codes = value
            .get("errors")
            .and_then(|errors| errors.as_array())
            .into_iter()
            .flatten()
            .filter_map(|error| error.get("code")?.as_str().map(str::to_owned))
            .collect();
        ErrorBody {
            message: text("message"),
            documentation_url: text("documentation_url"),
            codes,
        }
    }
}

/// What a refused request asks of us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// A rate limit: send nothing to the API for `wait`; `why` says which rule applied.
    RateLimited { wait: Duration, why: String },
    /// The file is over what the contents API serves (`errors[].code` `too_large`): waiting does
    /// not help, only a smaller file upstream does.
    TooLarge,
    /// A 403 that is neither: the token (or its absence) does not allow this, or the repository is
    /// private or blocked. A person has to act.
    Forbidden,
}

/// Classifies a 403/429 answer.
///
/// A `too_large` error comes first: the refused request may also have spent the last of the
/// budget, and waiting for the reset would not make the file smaller. Then GitHub's documented
/// order for rate limits: `retry-after`; a spent budget (wait until its reset); a rate limit named
/// only by the body (429, a message or documentation link about rate limits or abuse detection)
/// waits at least `secondary_wait`, doubling with each refusal in a row (`streak` counts from 1).
/// Anything else is a lack of access.
pub fn classify_refusal(
    status: StatusCode,
    headers: &HeaderMap,
    body: &ErrorBody,
    now: DateTime<Utc>,
    secondary_wait: Duration,
    streak: u32,
) -> Refusal {
    let message = body.message.to_ascii_lowercase();
    if body.codes.iter().any(|code| code == "too_large") || message.contains("too large") {
        return Refusal::TooLarge;
    }
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
    // "API rate limit exceeded for …", "You have exceeded a secondary rate limit …", the older
    // "You have triggered an abuse detection mechanism …", and their documentation links
    // (`…#secondary-rate-limits`, `…#about-secondary-rate-limits`, `…/rate-limits-for-the-rest-api`).
    let documentation = body.documentation_url.to_ascii_lowercase();
    let rate_limit = status == StatusCode::TOO_MANY_REQUESTS
        || message.contains("rate limit")
        || message.contains("abuse detection")
        || documentation.contains("rate-limit")
        || documentation.contains("abuse-rate");
    if rate_limit {
        let wait = secondary_wait.saturating_mul(1 << streak.saturating_sub(1).min(6));
        let said = if body.message.is_empty() {
            String::new()
        } else {
            format!(" ({})", body.message)
        };
        return Refusal::RateLimited {
            wait,
            why: format!(
                "GitHub answered {status} for a rate limit{said} without saying how long to wait"
            ),
        };
    }
    Refusal::Forbidden
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
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
    const HEALTHY: &[(&str, &str)] = &[
        ("x-ratelimit-limit", "5000"),
        ("x-ratelimit-remaining", "4000"),
        ("x-ratelimit-reset", "3600"),
    ];

    fn classify(status: StatusCode, h: &[(&'static str, &str)], body: &str) -> Refusal {
        classify_refusal(
            status,
            &headers(h),
            &ErrorBody::parse(body.as_bytes()),
            at(900),
            MINUTE,
            1,
        )
    }

    /// GitHub's bodies as clients have logged them.
    const TOO_LARGE: &str = r#"{"message":"This API returns blobs up to 1 MB in size. The requested blob is too large to fetch via the API, but you can use the Git Data API to request blobs up to 100 MB in size.","errors":[{"resource":"Blob","field":"data","code":"too_large"}],"documentation_url":"https://docs.github.com/rest/repos/contents#get-repository-content"}"#;
    const PRIMARY: &str = r#"{"message":"API rate limit exceeded for 203.0.113.7. (But here's the good news: Authenticated requests get a higher rate limit. Check out the documentation for more details.)","documentation_url":"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"}"#;
    const SECONDARY: &str = r#"{"documentation_url":"https://docs.github.com/free-pro-team@latest/rest/overview/rate-limits-for-the-rest-api#about-secondary-rate-limits","message":"You have exceeded a secondary rate limit. Please wait a few minutes before you try again. If you reach out to GitHub Support for help, please include the request ID FA2D:87B1:8879E3:1176C87:6570B7E6."}"#;
    const ABUSE: &str = r#"{"message":"You have triggered an abuse detection mechanism. Please wait a few minutes before you try again.","documentation_url":"https://developer.github.com/v3/#abuse-rate-limits"}"#;
    const FORBIDDEN: &str = r#"{"message":"Resource not accessible by integration","documentation_url":"https://docs.github.com/rest/repos/contents#get-repository-content","status":"403"}"#;

    #[test]
    fn the_body_is_read_whatever_else_it_holds() {
        let body = ErrorBody::parse(TOO_LARGE.as_bytes());
        assert_eq!(body.codes, ["too_large"]);
        assert!(body.message.starts_with("This API returns blobs"));
        assert!(body.documentation_url.contains("get-repository-content"));
        assert_eq!(
            ErrorBody::parse(b"<html>Forbidden</html>"),
            ErrorBody::default()
        );
        // `errors` as plain strings, as some endpoints send them.
        let strings = ErrorBody::parse(br#"{"message":"x","errors":["a","b"]}"#);
        assert!(strings.codes.is_empty());
    }

    #[test]
    fn a_too_large_file_is_neither_a_rate_limit_nor_a_permission_problem() {
        assert_eq!(
            classify(StatusCode::FORBIDDEN, HEALTHY, TOO_LARGE),
            Refusal::TooLarge
        );
        // The refused request may have spent the last of the budget: still too large.
        let spent = &[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000"),
        ];
        assert_eq!(
            classify(StatusCode::FORBIDDEN, spent, TOO_LARGE),
            Refusal::TooLarge
        );
        // The code alone is enough, and so is the message alone.
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                HEALTHY,
                r#"{"message":"","errors":[{"code":"too_large"}]}"#
            ),
            Refusal::TooLarge
        );
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                HEALTHY,
                r#"{"message":"The requested blob is too large to fetch via the API"}"#
            ),
            Refusal::TooLarge
        );
    }

    #[test]
    fn retry_after_wins_over_the_budget() {
        let h = &[("retry-after", "7"), ("x-ratelimit-remaining", "0")];
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, h, SECONDARY),
            Refusal::RateLimited { wait, .. } if wait == Duration::from_secs(7)
        ));
    }

    #[test]
    fn a_spent_budget_waits_until_just_after_the_reset() {
        let h = &[
            ("x-ratelimit-limit", "60"),
            ("x-ratelimit-remaining", "0"),
            ("x-ratelimit-reset", "1000"),
        ];
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, h, PRIMARY),
            Refusal::RateLimited { wait, .. } if wait == Duration::from_secs(101)
        ));
    }

    #[test]
    fn a_rate_limit_named_only_by_the_body_waits_a_minute_then_doubles() {
        for body in [PRIMARY, SECONDARY, ABUSE] {
            assert!(
                matches!(
                    classify(StatusCode::FORBIDDEN, HEALTHY, body),
                    Refusal::RateLimited { wait, .. } if wait == MINUTE
                ),
                "{body}"
            );
        }
        // The documentation link alone, with a message GitHub may reword.
        let link_only = r#"{"message":"Slow down.","documentation_url":"https://docs.github.com/rest/using-the-rest-api/rate-limits-for-the-rest-api#about-secondary-rate-limits"}"#;
        assert!(matches!(
            classify(StatusCode::FORBIDDEN, HEALTHY, link_only),
            Refusal::RateLimited { .. }
        ));
        assert!(matches!(
            classify(StatusCode::TOO_MANY_REQUESTS, HEALTHY, ""),
            Refusal::RateLimited { wait, .. } if wait == MINUTE
        ));
        let third = classify_refusal(
            StatusCode::FORBIDDEN,
            &headers(HEALTHY),
            &ErrorBody::parse(SECONDARY.as_bytes()),
            at(0),
            MINUTE,
            3,
        );
        assert!(matches!(third, Refusal::RateLimited { wait, .. } if wait == 4 * MINUTE));
    }

    #[test]
    fn any_other_403_is_a_lack_of_access() {
        assert_eq!(
            classify(StatusCode::FORBIDDEN, HEALTHY, FORBIDDEN),
            Refusal::Forbidden
        );
        assert_eq!(
            classify(
                StatusCode::FORBIDDEN,
                HEALTHY,
                r#"{"message":"Repository access blocked","block":{"reason":"tos"}}"#
            ),
            Refusal::Forbidden
        );
        assert_eq!(
            classify(StatusCode::FORBIDDEN, &[], "not json"),
            Refusal::Forbidden
        );
    }
}
