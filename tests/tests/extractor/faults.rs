//! Rate limits, server errors and bad downloads.

use std::time::Duration;

use etl_tests::fake_github::{Endpoint, Fault, RequestRecord};
use shared::Source;
use shared::events::Stage;

use crate::support::*;

/// The first request of `endpoint` answered with `status` after `skip` log entries, and the
/// request after it.
fn refusal_and_next(
    log: &[RequestRecord],
    skip: usize,
    status: u16,
) -> (RequestRecord, RequestRecord) {
    let at = log
        .iter()
        .skip(skip)
        .position(|r| r.status == status)
        .expect("the refusal was served")
        + skip;
    let next = log[at + 1..]
        .iter()
        .find(|r| r.endpoint != Endpoint::Other)
        .expect("a later request");
    (log[at].clone(), next.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_rate_limit_means_no_request_before_the_reset() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let skip = h.github.requests().len();
    h.github.inject(
        Endpoint::Commits,
        Fault::RateLimited {
            reset_in: Duration::from_secs(2),
        },
        1,
    );
    let log = h
        .github
        .wait_for_requests(skip + 3, WAIT, |_| true)
        .await
        .unwrap();
    let (refused, next) = refusal_and_next(&log, skip, 403);
    let reset = refused.rate_reset.expect("the refusal names its reset");
    assert!(
        next.at_utc.timestamp() >= reset,
        "asked again at {} before the reset at {reset}",
        next.at_utc.timestamp()
    );
    assert!(h.is_running());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_with_retry_after_is_waited_out() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let skip = h.github.requests().len();
    h.github.inject(
        Endpoint::Commits,
        Fault::TooManyRequests { retry_after: 2 },
        1,
    );
    let log = h
        .github
        .wait_for_requests(skip + 3, WAIT, |_| true)
        .await
        .unwrap();
    let (refused, next) = refusal_and_next(&log, skip, 429);
    let waited = next.at - refused.at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}, retry-after said 2s"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_server_errors_in_a_row_back_off_then_recover() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let skip = h.github.requests().len();
    h.github.inject(Endpoint::Commits, Fault::ServerError, 5);
    let commit = h.github.add(nyt_commit(6, 0));
    let (event, _) = h.extracted().await;
    assert_eq!(
        event.upstream.commit_sha, commit.sha,
        "recovered and saw the commit"
    );
    assert!(h.is_running(), "never crashed");

    // One poll asks about both sources, so the five 500s span about three polls: each waits
    // longer than the one before, and none comes sooner than the poll interval.
    let polls: Vec<_> = h
        .github
        .requests()
        .into_iter()
        .skip(skip)
        .filter(|r| is_commits_of(NYT_PATH)(r))
        .skip_while(|r| r.status != 500)
        .collect();
    let failing = polls.iter().take_while(|r| r.status == 500).count();
    assert!(failing >= 2, "{polls:#?}");
    let gaps: Vec<Duration> = polls[..=failing]
        .windows(2)
        .map(|w| w[1].at - w[0].at)
        .collect();
    assert!(gaps.last() > gaps.first(), "the waits grow: {gaps:?}");
    assert!(
        gaps.iter().all(|gap| *gap >= Duration::from_millis(200)),
        "never faster than the poll interval: {gaps:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_that_is_no_rate_limit_backs_off_long() {
    let mut h = Harness::new(&[]).await;
    h.config.permission_backoff = Duration::from_secs(2);
    h.initial_load().await;
    let skip = h.github.requests().len();
    h.github.inject(Endpoint::Commits, Fault::Forbidden, 1);
    let log = h
        .github
        .wait_for_requests(skip + 4, WAIT, |_| true)
        .await
        .unwrap();
    let at = log.iter().skip(skip).position(|r| r.status == 403).unwrap() + skip;
    // The other source is still asked in the same poll; the poll after waits out the backoff.
    let next_poll = log[at + 1..]
        .iter()
        .find(|r| is_commits_of(NYT_PATH)(r))
        .unwrap();
    let waited = next_poll.at - log[at].at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}"
    );
    assert!(h.is_running());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_altered_or_html_downloads_are_failed_extracts_and_nothing_is_stored() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let cases = [
        (Fault::TruncatedBody, "truncated"),
        (Fault::CutAtLineEnd, "truncated"),
        (Fault::Altered, "integrity"),
        (Fault::Html, "not_csv"),
        (Fault::HtmlAsText, "not_csv"),
    ];
    for (round, (fault, kind)) in cases.into_iter().enumerate() {
        let previous = h.latest(Source::Nyt).await.unwrap();
        h.github.inject(Endpoint::Raw, fault.clone(), 1000);
        let content = nyt_csv(60, round as u32);
        let commit = h.github.add_commit(NYT_REPO, NYT_PATH, content.clone());

        let (failed, _) = h.failed().await;
        assert_eq!(failed.stage, Stage::Extract, "{fault:?}");
        assert_eq!(failed.kind, kind, "{fault:?}: {}", failed.reason);
        assert_eq!(failed.source, Some(Source::Nyt));
        assert!(
            failed.reason.contains(&commit.sha[..10]),
            "{fault:?}: the reason names the commit: {}",
            failed.reason
        );
        assert!(
            !h.object_exists(Source::Nyt, content.as_bytes()).await,
            "{fault:?}: nothing stored"
        );
        assert_eq!(
            h.latest(Source::Nyt).await.unwrap(),
            previous,
            "{fault:?}: the latest payload is unchanged"
        );

        // Once upstream serves the file whole again, the same commit is extracted.
        h.github.clear_faults();
        let (event, _) = h.extracted().await;
        assert_eq!(event.upstream.commit_sha, commit.sha, "{fault:?}");
        assert_eq!(
            event.object.sha256,
            shared::hash::sha256_hex(content.as_bytes())
        );
    }
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_are_refused_without_being_held() {
    let mut h = Harness::new(&[("MAX_PAYLOAD_BYTES", "2000")]).await;
    h.initial_load().await;

    // GitHub says the file is too large: it is not even downloaded.
    let raws = h.github.requests_to(Endpoint::Raw).len();
    let big = h.github.add(nyt_commit(200, 0));
    let (failed, _) = h.failed().await;
    assert_eq!(failed.kind, "too_large", "{}", failed.reason);
    assert!(
        failed.reason.contains("MAX_PAYLOAD_BYTES"),
        "{}",
        failed.reason
    );
    assert_eq!(
        h.github.requests_to(Endpoint::Raw).len(),
        raws,
        "no download was started"
    );
    assert!(!h.object_exists(Source::Nyt, &big.content).await);

    // A body that never ends is cut off at the limit.
    h.github.inject(Endpoint::Raw, Fault::Endless, 1000);
    let small = h.github.add(nyt_commit(6, 0));
    let (failed, _) = h.failed().await;
    assert_eq!(failed.kind, "too_large", "{}", failed.reason);
    assert!(
        failed.reason.contains(&small.sha[..10]),
        "{}",
        failed.reason
    );
    assert!(
        h.github
            .requests_to(Endpoint::Raw)
            .iter()
            .any(|r| r.uri.contains(&small.sha))
    );
    assert!(!h.object_exists(Source::Nyt, &small.content).await);
    assert!(h.is_running());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_low_request_budget_spreads_polls_out_until_the_reset() {
    let mut h = Harness::new(&[]).await;
    // 15 requests left of 100; the initial load spends 4, leaving less than a fifth.
    h.github.set_rate_limit(100, 85);
    h.initial_load().await;
    let polls = h.github.requests_to(Endpoint::Commits).len();
    // At 200 ms a poll this window would hold five polls; the budget allows one every ~12 min.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        h.github.requests_to(Endpoint::Commits).len(),
        polls,
        "no poll while the budget is low"
    );
    assert!(h.is_running());
    h.finish().await;
}
