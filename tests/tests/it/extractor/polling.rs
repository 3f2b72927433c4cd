//! Polling: conditional requests, new commits, coalesced commits, restarts.

use std::time::Duration;

use etl_tests::fake_github::{Endpoint, NewCommit};
use futures::StreamExt;
use shared::events::{DownloadProgress, TriggerKind};
use shared::{Source, subjects};

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polls_without_an_upstream_change_are_304s_and_download_nothing() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let before = h.github.requests();
    let first_polls = before
        .iter()
        .filter(|r| r.endpoint == Endpoint::Commits)
        .count();
    assert_eq!(
        first_polls, 2,
        "the initial load asks once per source: {before:#?}"
    );

    const POLLS: usize = 5;
    let polls = h
        .github
        .wait_for_requests(first_polls + 2 * POLLS, WAIT, |r| {
            r.endpoint == Endpoint::Commits
        })
        .await
        .unwrap();
    for poll in &polls[first_polls..] {
        assert!(
            poll.if_none_match,
            "every later poll is conditional: {poll:?}"
        );
        assert_eq!(poll.status, 304, "nothing changed: {poll:?}");
    }
    assert_eq!(
        h.github.requests_to(Endpoint::Raw).len(),
        2,
        "only the initial downloads"
    );
    assert_eq!(
        h.github.requests_to(Endpoint::Contents).len(),
        2,
        "no blob lookups without a new commit"
    );
    h.assert_no_event(Duration::from_millis(300)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_commit_is_extracted_within_a_second_of_the_poll_that_sees_it() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let content = nyt_csv(6, 0);
    let commit = h.github.add_commit(NYT_REPO, NYT_PATH, content.clone());
    let (event, arrived) = h.extracted().await;

    assert_eq!(event.source, Source::NYT);
    assert_eq!(event.upstream.commit_sha, commit.sha.as_str());
    assert_eq!(event.upstream.commit_time, commit.time);
    assert!(
        event.upstream.covered_commits.is_empty(),
        "one commit covers only itself"
    );
    assert_eq!(event.trigger.kind, TriggerKind::Commit);
    assert_eq!(
        event.object.sha256,
        shared::ids::Digest::of(content.as_bytes())
    );
    assert_eq!(
        event.object.name,
        shared::store::raw_object_name(&h.env, &Source::NYT, &event.object.sha256)
    );

    let seen = h
        .github
        .requests()
        .into_iter()
        .find(|r| {
            is_commits_of(NYT_PATH)(r)
                && r.status == 200
                && r.at > h.github.requests_to(Endpoint::Raw)[1].at
        })
        .expect("the poll that saw the commit is logged");
    let lag = arrived - tokio::time::Instant::from_std(seen.at);
    assert!(
        lag < Duration::from_secs(1),
        "the event followed the poll's answer after {lag:?}"
    );

    let stored = shared::store::get_object(
        &h.stores.raw,
        &event.object,
        1 << 20,
        shared::store::OBJECT_DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!(
        stored,
        content.as_bytes(),
        "the stored payload is the upstream file, byte for byte"
    );
    let info = h.stores.raw.info(&event.object.name).await.unwrap();
    assert_eq!(info.metadata.get("commit_sha"), Some(&commit.sha));
    assert_eq!(
        info.metadata.get("repo").map(String::as_str),
        Some(NYT_REPO)
    );
    assert_eq!(
        info.metadata.get("path").map(String::as_str),
        Some(NYT_PATH)
    );
    assert!(info.metadata.contains_key("commit_time") && info.metadata.contains_key("fetched_at"));
    assert_eq!(
        h.latest(Source::NYT).await.unwrap(),
        event,
        "KV holds the latest payload"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_download_tells_its_progress_until_the_whole_file_has_arrived() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let mut reports = h
        .stores
        .js
        .client()
        .subscribe(subjects::progress(&h.env, &Source::NYT))
        .await
        .unwrap();
    let content = nyt_csv(400, 0);
    let commit = h.github.add_commit(NYT_REPO, NYT_PATH, content.clone());
    h.extracted().await;

    let total = content.len() as u64;
    let mut received = Vec::new();
    while received.last() != Some(&total) {
        let message = tokio::time::timeout(WAIT, reports.next())
            .await
            .expect("progress reports until the whole file has arrived")
            .unwrap();
        let report: DownloadProgress = serde_json::from_slice(&message.payload).unwrap();
        assert_eq!(
            (report.source, report.commit.as_str(), report.total_bytes),
            (Source::NYT, commit.sha.as_str(), total)
        );
        received.push(report.received_bytes);
    }
    assert!(
        received.is_sorted(),
        "bytes received only grow: {received:?}"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_commits_between_two_polls_are_one_download_that_names_them_all() {
    // Two commits a page: the last one seen is on page 2, so paging must be followed.
    let mut h = Harness::new(&[("GITHUB_PER_PAGE", "2")]).await;
    h.initial_load().await;
    let commits = h
        .github
        .add_many([nyt_commit(6, 0), nyt_commit(6, 1), nyt_commit(7, 0)]);
    let (event, _) = h.extracted().await;

    let newest = &commits[2];
    assert_eq!(event.upstream.commit_sha, newest.sha.as_str());
    let covered: Vec<&str> = commits.iter().rev().map(|c| c.sha.as_str()).collect();
    assert_eq!(
        event.upstream.covered_commits, covered,
        "newest first, all three"
    );
    let raws = h.github.requests_to(Endpoint::Raw);
    assert_eq!(
        raws.len(),
        3,
        "two initial downloads and one for the three commits: {raws:#?}"
    );
    assert!(
        raws[2].uri.contains(&newest.sha),
        "the newest is the one downloaded"
    );
    assert!(
        h.github
            .requests()
            .iter()
            .any(|r| is_commits_of(NYT_PATH)(r) && r.uri.contains("page=2")),
        "the second page was read"
    );
    h.assert_no_event(Duration::from_millis(500)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_between_two_commits_downloads_only_the_new_one() {
    let mut h = Harness::new(&[]).await;
    let (old_nyt, _) = h.initial_load().await;
    h.stop().await;
    let log_before = h.github.requests().len();

    let new_nyt = h.github.add(nyt_commit(6, 0));
    h.start();
    let (event, _) = h.extracted().await;
    assert_eq!(event.upstream.commit_sha, new_nyt.sha.as_str());
    assert_eq!(
        event.trigger.kind,
        TriggerKind::Commit,
        "not a second initial load"
    );

    let after: Vec<_> = h.github.requests().into_iter().skip(log_before).collect();
    let raws: Vec<_> = after
        .iter()
        .filter(|r| r.endpoint == Endpoint::Raw)
        .collect();
    assert_eq!(
        raws.len(),
        1,
        "only the new commit is downloaded: {raws:#?}"
    );
    assert!(!raws[0].uri.contains(&old_nyt.sha));
    let jhu_poll = after.iter().find(|r| is_commits_of(JHU_PATH)(r)).unwrap();
    assert_eq!(jhu_poll.status, 304, "the ETag survived the restart");
    h.assert_no_event(Duration::from_millis(500)).await;
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_to_both_sources_are_both_latest_before_either_event_goes_out() {
    let mut h = Harness::new(&[]).await;
    h.initial_load().await;
    let commits = h.github.add_many([nyt_commit(6, 0), jhu_commit(6, 0)]);
    let (first, _) = h.extracted().await;
    // The transformer woken by the first event must already see the other source's new payload.
    let other = if first.source == Source::NYT {
        Source::JHU
    } else {
        Source::NYT
    };
    let other_latest = h.latest(other.clone()).await.unwrap();
    let other_commit = commits
        .iter()
        .find(|c| c.path != first.upstream.path)
        .unwrap();
    assert_eq!(other_latest.upstream.commit_sha, other_commit.sha.as_str());
    let (second, _) = h.extracted().await;
    assert_eq!(second.source, other);
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_that_leaves_the_file_as_it_was_is_not_downloaded() {
    let mut h = Harness::new(&[]).await;
    let (nyt, _) = h.initial_load().await;
    let same = h
        .github
        .add(NewCommit::new(NYT_REPO, NYT_PATH, nyt.content.clone()));
    h.github
        .wait_for_requests(1, WAIT, |r| {
            r.endpoint == Endpoint::Contents && r.uri.contains(&same.sha)
        })
        .await
        .unwrap();
    // The cursor moved on: later polls of the file are 304s again.
    let polls = h
        .github
        .requests()
        .iter()
        .filter(|r| is_commits_of(NYT_PATH)(r))
        .count();
    let later = h
        .github
        .wait_for_requests(polls + 2, WAIT, is_commits_of(NYT_PATH))
        .await
        .unwrap();
    assert_eq!(later.last().unwrap().status, 304);
    assert_eq!(
        h.github.requests_to(Endpoint::Raw).len(),
        2,
        "the same blob is not fetched again"
    );
    h.assert_no_event(Duration::from_millis(300)).await;
    h.finish().await;
}
