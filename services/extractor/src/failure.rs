//! What a failed check means for its source: what to call it, how long polls leave the source
//! alone, and whether a person must hear of it. `cycle.rs` applies the [`Verdict`].
//!
//! | failure | source waits | reported as a failed extract |
//! |---|---|---|
//! | rate limit (403/429 `API rate limit exceeded`, secondary limit) | until GitHub's limit lifts, every source alike | no: it passes by itself |
//! | 403 `too_large` from the contents API, a rejected download | from a poll interval, doubling, up to 30 minutes | yes, once per kind and commit |
//! | any other 403 (access) | `permission_backoff` (30 minutes) | yes, once |
//! | 404 for the repository or branch | `permission_backoff` | yes, once |
//! | 5xx, timeouts, bad JSON, KV | the next poll, which backs off as a whole | after 5 in a row, once |

use std::time::Duration;

use shared::nats::backoff;
use tokio::time::Instant;

use crate::config::SourceSettings;
use crate::error::FailureKind;
use crate::github::GithubError;
use crate::poller::CheckError;
use crate::trouble::Cause;

/// After this many transient failures in a row, a source's trouble is reported as a failed extract.
pub(crate) const REPORT_AFTER_FAILURES: u32 = 5;
/// The longest a source waits after a failed download before polls try it again.
pub(crate) const MAX_SOURCE_RETRY: Duration = Duration::from_secs(30 * 60);

/// How long polls leave a source alone after a failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Wait {
    /// The next poll tries again (after API trouble the poll itself backs off).
    NextPoll,
    /// This source waits; the other keeps its pace.
    Source(Duration),
    /// GitHub's rate limit holds every request until then: the source keeps its place.
    RateLimit(Instant),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Verdict {
    /// A machine word for `etl status`: the failed extract's kind, or `rate_limited`.
    pub kind: &'static str,
    /// One sentence naming the source and the cause.
    pub reason: String,
    pub wait: Wait,
    /// Whether it counts as a failure of the source (rate limits do not).
    pub counts: bool,
    /// The cause to report as a failed extract, unless it is the one reported last.
    pub report: Option<Cause>,
}

/// Judges the `failures`-th failure in a row of `s` (counting this one).
pub(crate) fn judge(
    s: &SourceSettings,
    err: CheckError,
    failures: u32,
    poll_interval: Duration,
    permission_backoff: Duration,
) -> Verdict {
    let source = &s.source;
    let repo = &s.location.repo;
    match err {
        CheckError::Github(
            GithubError::Holding { until, why } | GithubError::RateLimited { until, why, .. },
        ) => Verdict {
            kind: "rate_limited",
            reason: format!("GitHub's rate limit holds every request to its API: {why}"),
            wait: Wait::RateLimit(until),
            counts: false,
            report: None,
        },
        CheckError::Rejected {
            kind,
            reason,
            commit,
        } => {
            tracing::warn!(%source, kind = kind.as_str(), %reason, "extract failed; nothing stored");
            Verdict {
                kind: kind.as_str(),
                reason,
                // Upstream may fix the file or commit a new one: look again, less and less often.
                wait: Wait::Source(backoff(failures, poll_interval, MAX_SOURCE_RETRY)),
                counts: true,
                report: Some(Cause { kind, commit }),
            }
        }
        CheckError::Github(GithubError::Forbidden { url, message }) => {
            let reason = format!(
                "GitHub refused access to {repo} for {source} (403: {message}): the token is missing or lacks permission, or the repository is private or blocked; check GITHUB_TOKEN"
            );
            tracing::error!(%source, %url, %message, wait_s = permission_backoff.as_secs(), "GitHub refused access (403, not a rate limit); polls of this source wait");
            Verdict {
                kind: FailureKind::Forbidden.as_str(),
                reason,
                wait: Wait::Source(permission_backoff),
                counts: true,
                // Access does not depend on the commit asked for.
                report: Some(Cause {
                    kind: FailureKind::Forbidden,
                    commit: None,
                }),
            }
        }
        CheckError::Github(GithubError::TooLarge { url, message }) => {
            // The contents answer is turned into a rejection naming its commit (poller.rs); this
            // is a too-large answer to any other request, which names none.
            let reason = format!("GitHub refused {url} for {source} as too large (403: {message})");
            tracing::error!(%source, %reason, "GitHub refused a request as too large");
            Verdict {
                kind: FailureKind::TooLarge.as_str(),
                reason,
                wait: Wait::Source(backoff(failures, poll_interval, MAX_SOURCE_RETRY)),
                counts: true,
                report: Some(Cause {
                    kind: FailureKind::TooLarge,
                    commit: None,
                }),
            }
        }
        CheckError::Github(GithubError::NotFound { url }) => {
            let reason = format!(
                "GitHub has no repository {repo} with a branch {} for {source} ({url} answered 404)",
                s.location.branch
            );
            let var = source.as_str().to_uppercase();
            tracing::error!(%source, %reason, "check the {var}_REPO and {var}_BRANCH settings");
            Verdict {
                kind: FailureKind::Unavailable.as_str(),
                reason,
                wait: Wait::Source(permission_backoff),
                counts: true,
                report: Some(Cause {
                    kind: FailureKind::Unavailable,
                    commit: None,
                }),
            }
        }
        err => {
            tracing::warn!(%source, error = %err, failures, "could not check upstream; backing off");
            let streak = failures >= REPORT_AFTER_FAILURES;
            let reason = if streak {
                format!(
                    "{repo} could not be checked for {source} in {failures} attempts in a row: {err}"
                )
            } else {
                err.to_string()
            };
            Verdict {
                kind: FailureKind::Unavailable.as_str(),
                reason,
                wait: Wait::NextPoll,
                counts: true,
                report: streak.then_some(Cause {
                    kind: FailureKind::Unavailable,
                    commit: None,
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::Source;

    const INTERVAL: Duration = Duration::from_secs(60);
    const PERMISSION: Duration = Duration::from_secs(30 * 60);

    fn nyt() -> SourceSettings {
        SourceSettings {
            dataset: shared::Dataset::US,
            source: Source::NYT,
            location: Source::NYT.default_location().unwrap(),
        }
    }

    fn judge_nth(err: CheckError, failures: u32) -> Verdict {
        judge(&nyt(), err, failures, INTERVAL, PERMISSION)
    }

    fn sha() -> shared::ids::CommitSha {
        shared::ids::CommitSha::new("abc1234").unwrap()
    }

    fn github(err: GithubError) -> CheckError {
        CheckError::Github(err)
    }

    #[test]
    fn a_403_for_access_waits_long_and_is_reported_whatever_the_commit() {
        let verdict = judge_nth(
            github(GithubError::Forbidden {
                url: "https://api.github.com/repos/nytimes/covid-19-data/contents/us.csv".into(),
                message: "Resource not accessible by integration".into(),
            }),
            1,
        );
        assert_eq!(verdict.kind, "forbidden");
        assert_eq!(verdict.wait, Wait::Source(PERMISSION));
        assert_eq!(
            verdict.report,
            Some(Cause {
                kind: FailureKind::Forbidden,
                commit: None
            })
        );
        assert!(verdict.reason.contains("nyt"), "{}", verdict.reason);
        assert!(
            verdict
                .reason
                .contains("Resource not accessible by integration"),
            "{}",
            verdict.reason
        );
    }

    #[test]
    fn a_file_too_large_is_reported_for_its_commit_and_looked_at_again_sooner() {
        let verdict = judge_nth(
            CheckError::Rejected {
                kind: FailureKind::TooLarge,
                reason: "too large".into(),
                commit: Some(sha()),
            },
            1,
        );
        assert_eq!(verdict.kind, "too_large");
        assert_eq!(
            verdict.report,
            Some(Cause {
                kind: FailureKind::TooLarge,
                commit: Some(sha())
            })
        );
        let Wait::Source(first) = verdict.wait else {
            panic!("{verdict:?}")
        };
        assert!(first >= INTERVAL && first < 2 * INTERVAL, "{first:?}");
        let Wait::Source(late) = judge_nth(
            CheckError::Rejected {
                kind: FailureKind::TooLarge,
                reason: "too large".into(),
                commit: Some(sha()),
            },
            40,
        )
        .wait
        else {
            panic!()
        };
        assert!(late >= MAX_SOURCE_RETRY && late <= MAX_SOURCE_RETRY * 3 / 2);
    }

    #[test]
    fn a_rate_limit_is_neither_counted_nor_reported() {
        let until = Instant::now() + Duration::from_secs(90);
        let verdict = judge_nth(
            github(GithubError::RateLimited {
                url: "u".into(),
                until,
                why: "the primary rate limit of 60 requests is spent".into(),
            }),
            1,
        );
        assert_eq!(verdict.wait, Wait::RateLimit(until));
        assert!(!verdict.counts);
        assert_eq!(verdict.report, None);
    }

    #[test]
    fn transient_trouble_is_reported_only_after_a_streak() {
        let err = || {
            github(GithubError::Decode {
                url: "u".into(),
                reason: "not JSON".into(),
            })
        };
        assert_eq!(judge_nth(err(), REPORT_AFTER_FAILURES - 1).report, None);
        let streak = judge_nth(err(), REPORT_AFTER_FAILURES);
        assert_eq!(streak.wait, Wait::NextPoll);
        assert_eq!(
            streak.report,
            Some(Cause {
                kind: FailureKind::Unavailable,
                commit: None
            })
        );
        // Later failures of the same streak carry the same cause, so they are not reported again.
        assert_eq!(
            judge_nth(err(), REPORT_AFTER_FAILURES + 3).report,
            streak.report
        );
    }
}
