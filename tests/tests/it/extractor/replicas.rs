//! Two extractors of one env, as separate processes: one polls at a time (the holder of the
//! env's lease), the other stands by, and takes over within one lease period when the holder is
//! killed; no commit is missed or extracted twice.

use std::time::Duration;

use etl_tests::fake_github::{Endpoint, FakeGithub, Fault, RequestRecord};
use shared::Source;
use shared::events::Extracted;
use test_support::{EventLog, TestEnv, eventually};
use tokio::time::Instant;

use super::support::*;
use crate::support::pipeline_vars;
use crate::support::processes::Process;

const LEASE_PERIOD: Duration = Duration::from_secs(2);

/// The commit polls the fake GitHub answered since `from` (its log index), by token.
fn pollers(github: &FakeGithub, from: usize) -> Vec<(Instant, String)> {
    github.requests()[from..]
        .iter()
        .filter(|r: &&RequestRecord| r.endpoint == Endpoint::Commits)
        .map(|r| (Instant::from_std(r.at), r.token.clone().unwrap_or_default()))
        .collect()
}

/// The next extracted event of the env, within `timeout`.
async fn next_extracted(events: &mut EventLog, timeout: Duration) -> Option<Extracted> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let message = events.next_within(left).await?;
        if message.subject.contains(".extracted.") {
            return Some(serde_json::from_slice(&message.payload).unwrap());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_extractor_polls_at_a_time_and_another_takes_over_when_it_dies() {
    let test = TestEnv::new("lease").await;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    github.add_many([nyt_commit(5, 0), jhu_commit(5, 0)]);
    let mut events = test.events().await;
    let logs = tempfile::tempdir().unwrap();
    let replica = |token: &str| {
        let mut vars = pipeline_vars(&test.env, &github);
        vars.set("POLL_INTERVAL", "200ms")
            .set("LEASE_PERIOD", "2s")
            .set("REQUEST_TIMEOUT", "5s")
            .set("GITHUB_TOKEN", token)
            .set("METRICS_ADDR", "127.0.0.1:0");
        let dir = logs.path().join(token);
        std::fs::create_dir_all(&dir).unwrap();
        Process::spawn("extractor", &vars, &dir)
    };

    // The first extractor takes the lease and makes the initial load.
    let first = replica("replica-a");
    for _ in 0..2 {
        next_extracted(&mut events, WAIT)
            .await
            .expect("the initial load of both sources");
    }
    // The second stands by while the first polls.
    let second = replica("replica-b");
    let mark = github.requests().len();
    tokio::time::sleep(LEASE_PERIOD * 2).await;
    let polled: Vec<String> = pollers(&github, mark).into_iter().map(|(_, t)| t).collect();
    assert!(polled.len() >= 10, "the holder keeps polling: {polled:?}");
    assert!(
        polled.iter().all(|t| t == "replica-a"),
        "only the holder polls: {polled:?}"
    );

    // A commit is extracted once, by the holder, even when its download outlasts the lease
    // period: the lease is renewed beside the work, so the standby does not take over.
    let mark = github.requests().len();
    github.inject_for(
        Endpoint::Raw,
        NYT_REPO,
        Fault::Slow {
            delay: LEASE_PERIOD * 2,
        },
        1,
    );
    let one = github.add_commit(NYT_REPO, NYT_PATH, nyt_csv(6, 0));
    let event = next_extracted(&mut events, WAIT).await.expect("commit 1");
    assert_eq!(event.upstream.commit_sha, one.sha.as_str());
    let during: Vec<String> = pollers(&github, mark).into_iter().map(|(_, t)| t).collect();
    assert!(
        during.iter().all(|t| t == "replica-a"),
        "the standby never polled during the slow download: {during:?}"
    );

    // The holder dies without a word; the other polls within one lease period.
    let mark = github.requests().len();
    first.kill().await;
    let killed = Instant::now();
    let taken_over = eventually("the standby extractor polls", WAIT, || async {
        pollers(&github, mark)
            .into_iter()
            .find(|(_, token)| token == "replica-b")
            .map(|(at, _)| at)
    })
    .await;
    assert!(
        taken_over - killed <= LEASE_PERIOD + Duration::from_millis(300),
        "taken over {:?} after the kill",
        taken_over - killed
    );
    let after: Vec<String> = pollers(&github, mark)
        .into_iter()
        .filter(|(at, _)| *at > taken_over)
        .map(|(_, t)| t)
        .collect();
    assert!(
        after.iter().all(|t| t == "replica-b"),
        "only the new holder polls: {after:?}"
    );

    // The new holder extracts the next commit, once, and nothing is extracted twice.
    let two = github.add_commit(NYT_REPO, NYT_PATH, nyt_csv(7, 0));
    let event = next_extracted(&mut events, WAIT).await.expect("commit 2");
    assert_eq!(
        (event.source, event.upstream.commit_sha.as_str()),
        (Source::NYT, two.sha.as_str())
    );
    if let Some(extra) = next_extracted(&mut events, Duration::from_secs(1)).await {
        panic!("a commit was extracted again: {extra:?}");
    }
    second.terminate().await;
    test.clean_up().await;
}
