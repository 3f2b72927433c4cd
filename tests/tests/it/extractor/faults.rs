//! Rate limits, server errors and bad downloads.

use std::time::Duration;

use etl_tests::fake_github::{Endpoint, Fault, RequestRecord};
use shared::Source;
use shared::events::Stage;

use super::support::*;

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
        event.upstream.commit_sha,
        commit.sha.as_str(),
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
async fn a_403_for_access_backs_off_its_source_only() {
    let mut h = Harness::new(&[]).await;
    h.config.permission_backoff = Duration::from_secs(2);
    h.initial_load().await;
    h.github
        .inject_for(Endpoint::Commits, NYT_REPO, Fault::Forbidden, 1);
    // The refused poll, then the one after the back-off.
    let refused = h
        .github
        .wait_for_requests(1, WAIT, |r| r.status == 403)
        .await
        .unwrap()[0]
        .clone();
    assert!(is_commits_of(NYT_PATH)(&refused), "{refused:?}");
    let next = h
        .github
        .wait_for_requests(1, WAIT, |r| is_commits_of(NYT_PATH)(r) && r.at > refused.at)
        .await
        .unwrap()[0]
        .clone();
    let waited = next.at - refused.at;
    assert!(
        waited >= Duration::from_secs(2),
        "asked again after {waited:?}"
    );
    // Meanwhile the other source kept its pace.
    let jhu_polls = h
        .github
        .requests()
        .iter()
        .filter(|r| is_commits_of(JHU_PATH)(r) && r.at > refused.at && r.at < next.at)
        .count();
    assert!(jhu_polls >= 4, "{jhu_polls} polls of jhu in {waited:?}");
    let (failed, _) = h.failed().await;
    assert_eq!(failed.kind.as_str(), "forbidden", "{}", failed.reason);
    assert!(h.is_running());
    h.finish().await;
}

/// The contents API refuses one source's file with `refusal` until `recover`: exactly one failed
/// extract however often the source is retried, and the other source keeps being polled and
/// extracted meanwhile; once the file is served, the same commit is extracted.
async fn a_contents_refusal_is_reported_once(refusal: Fault, kind: &str, says: &str) {
    let mut h = Harness::new(&[]).await;
    h.config.permission_backoff = Duration::from_millis(300);
    h.initial_load().await;
    let mut publishes = h.failed_publishes().await;
    let skip = h.github.requests().len();
    h.github
        .inject_for(Endpoint::Contents, NYT_REPO, refusal.clone(), 1000);
    let commit = h.github.add(nyt_commit(6, 1));

    let (failed, _) = h.failed().await;
    assert_eq!(failed.stage, Stage::Extract);
    assert_eq!(failed.kind.as_str(), kind, "{refusal:?}: {}", failed.reason);
    assert_eq!(failed.source, Some(Source::NYT));
    assert!(
        failed.reason.contains(NYT_REPO) && failed.reason.contains(says),
        "{refusal:?}: the reason names the source and the cause: {}",
        failed.reason
    );

    // The source is retried, less often, and never reported again.
    let is_refusal = |r: &RequestRecord| r.endpoint == Endpoint::Contents && r.status == 403;
    h.github
        .wait_for_requests(3, WAIT, is_refusal)
        .await
        .unwrap();
    let other = h.github.add(jhu_commit(6, 1));
    let (event, _) = h.extracted().await;
    assert_eq!(event.source, Source::JHU, "{refusal:?}");
    assert_eq!(event.upstream.commit_sha, other.sha.as_str());
    h.github
        .wait_for_requests(5, WAIT, is_refusal)
        .await
        .unwrap();
    assert_eq!(
        publishes.count().await,
        1,
        "{refusal:?}: one report per cause"
    );
    let trouble = h
        .latest_trouble(Source::NYT)
        .await
        .expect("the trouble is in KV, for `etl status`");
    assert_eq!(trouble.kind, kind);
    assert!(trouble.until.is_some(), "{trouble:?}");
    assert!(trouble.reported.is_some(), "{trouble:?}");

    // Served again: the commit is extracted, and the trouble is forgotten.
    h.github.clear_faults();
    let (event, _) = h.extracted().await;
    assert_eq!(event.source, Source::NYT);
    assert_eq!(event.upstream.commit_sha, commit.sha.as_str());
    assert!(h.trouble_cleared(Source::NYT, WAIT).await);
    assert!(
        h.github.requests()[skip..]
            .iter()
            .any(|r| is_commits_of(JHU_PATH)(r) && r.status != 403),
        "jhu was polled throughout"
    );
    assert_eq!(publishes.count().await, 1);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contents_403_too_large_is_one_failed_extract_and_the_other_source_goes_on() {
    a_contents_refusal_is_reported_once(Fault::TooLarge, "too_large", "too large").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contents_403_forbidden_is_one_failed_extract_and_the_other_source_goes_on() {
    a_contents_refusal_is_reported_once(
        Fault::Forbidden,
        "forbidden",
        "Resource not accessible by integration",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cause_that_returns_after_a_recovery_is_reported_again() {
    let mut h = Harness::new(&[]).await;
    h.config.permission_backoff = Duration::from_millis(300);
    h.initial_load().await;
    let mut publishes = h.failed_publishes().await;
    for round in 1..=2 {
        h.github
            .inject_for(Endpoint::Contents, NYT_REPO, Fault::Forbidden, 3);
        let commit = h.github.add(nyt_commit(6, round));
        let (failed, _) = h.failed().await;
        assert_eq!(failed.kind.as_str(), "forbidden", "round {round}");
        // After the three refusals the file is served.
        let (event, _) = h.extracted().await;
        assert_eq!(
            event.upstream.commit_sha,
            commit.sha.as_str(),
            "round {round}"
        );
    }
    assert_eq!(publishes.count().await, 2, "one report per trouble");
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_403_secondary_rate_limit_is_waited_out_and_not_reported() {
    let mut h = Harness::new(&[]).await;
    h.config.secondary_limit_wait = Duration::from_secs(1);
    h.initial_load().await;
    let mut publishes = h.failed_publishes().await;
    let skip = h.github.requests().len();
    h.github.inject(Endpoint::Commits, Fault::SecondaryLimit, 1);
    let log = h
        .github
        .wait_for_requests(skip + 3, WAIT, |_| true)
        .await
        .unwrap();
    let (refused, next) = refusal_and_next(&log, skip, 403);
    let waited = next.at - refused.at;
    assert!(
        waited >= Duration::from_secs(1),
        "asked again after {waited:?}, the secondary limit asks for the configured wait"
    );
    assert_eq!(publishes.count().await, 0, "a rate limit needs no person");
    assert!(h.is_running());
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_cut_off_once_is_fetched_again_without_a_failure() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let mut publishes = h.failed_publishes().await;
    h.github
        .inject_for(Endpoint::Raw, NYT_REPO, Fault::TruncatedBody, 1);
    let content = nyt_csv(60, 1);
    let commit = h.github.add_commit(NYT_REPO, NYT_PATH, content.clone());

    let (event, _) = h.extracted().await;
    assert_eq!(event.upstream.commit_sha, commit.sha.as_str());
    assert_eq!(
        event.object.sha256,
        shared::ids::Digest::of(content.as_bytes())
    );
    let downloads = h
        .github
        .requests_to(Endpoint::Raw)
        .into_iter()
        .filter(|r| r.uri.contains(&commit.sha))
        .count();
    assert_eq!(downloads, 2, "the cut-off body, then the whole one");
    h.assert_no_event(Duration::from_millis(500)).await;
    assert_eq!(publishes.count().await, 0, "no failure for a hiccup");
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
        let previous = h.latest(Source::NYT).await.unwrap();
        h.github.inject(Endpoint::Raw, fault.clone(), 1000);
        let content = nyt_csv(60, round as u32);
        let commit = h.github.add_commit(NYT_REPO, NYT_PATH, content.clone());

        let (failed, _) = h.failed().await;
        assert_eq!(failed.stage, Stage::Extract, "{fault:?}");
        assert_eq!(failed.kind.as_str(), kind, "{fault:?}: {}", failed.reason);
        assert_eq!(failed.source, Some(Source::NYT));
        assert!(
            failed.reason.contains(&commit.sha[..10]),
            "{fault:?}: the reason names the commit: {}",
            failed.reason
        );
        assert!(
            !h.object_exists(Source::NYT, content.as_bytes()).await,
            "{fault:?}: nothing stored"
        );
        assert_eq!(
            h.latest(Source::NYT).await.unwrap(),
            previous,
            "{fault:?}: the latest payload is unchanged"
        );

        // Once upstream serves the file whole again, the same commit is extracted.
        h.github.clear_faults();
        let (event, _) = h.extracted().await;
        assert_eq!(event.upstream.commit_sha, commit.sha.as_str(), "{fault:?}");
        assert_eq!(
            event.object.sha256,
            shared::ids::Digest::of(content.as_bytes())
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
    assert_eq!(failed.kind.as_str(), "too_large", "{}", failed.reason);
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
    assert!(!h.object_exists(Source::NYT, &big.content).await);

    // A body that never ends is cut off at the limit.
    h.github.inject(Endpoint::Raw, Fault::Endless, 1000);
    let small = h.github.add(nyt_commit(6, 0));
    let (failed, _) = h.failed().await;
    assert_eq!(failed.kind.as_str(), "too_large", "{}", failed.reason);
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
    assert!(!h.object_exists(Source::NYT, &small.content).await);
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
