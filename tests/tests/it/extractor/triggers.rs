//! `etl.<env>.trigger` and the daily run.

use std::time::Duration;

use chrono::{Timelike, Utc};
use etl_tests::fake_github::Endpoint;
use serde_json::json;
use shared::Source;
use shared::events::{Trigger, TriggerKind};
use shared::ids::TriggerId;

use super::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_trigger_reruns_both_sources_without_a_new_commit() {
    let mut h = Harness::new(&[("POLL_INTERVAL", "1h")]).await;
    h.initial_load().await;
    let nyt = h.latest(Source::NYT).await.unwrap();
    let jhu = h.latest(Source::JHU).await.unwrap();

    let reply = h.trigger(json!({"force": true, "id": "t-123"})).await;
    let trigger = Trigger::forced(TriggerKind::Manual, TriggerId::new("t-123").unwrap());
    let run_id = shared::run_id::of_inputs(&h.env, &nyt, &jhu, &trigger);
    assert_eq!(reply.run_id.as_ref(), Some(&run_id), "{}", reply.message);
    assert_eq!(reply.extracted, vec![Source::NYT, Source::JHU]);
    assert_eq!(reply.env, h.env);

    for expected in [&nyt, &jhu] {
        let (event, _) = h.extracted().await;
        assert_eq!(event.source, expected.source);
        assert_eq!(event.trigger, trigger);
        assert_eq!(
            event.object, expected.object,
            "the same payload, re-published"
        );
    }
    assert_eq!(
        h.github.requests_to(Endpoint::Raw).len(),
        2,
        "nothing downloaded again"
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plain_trigger_checks_upstream_now() {
    let mut h = Harness::new(&[("POLL_INTERVAL", "1h")]).await;
    h.initial_load().await;

    let reply = h.trigger(json!({})).await;
    assert!(reply.extracted.is_empty());
    assert_eq!(reply.run_id, None);
    assert!(reply.message.contains("unchanged"), "{}", reply.message);
    h.assert_no_event(Duration::from_millis(300)).await;

    // With an hour between polls, only the trigger can notice this commit.
    let commit = h.github.add(jhu_commit(6, 0));
    let reply = h.trigger(json!({"force": false})).await;
    assert_eq!(reply.extracted, vec![Source::JHU], "{}", reply.message);
    let (event, _) = h.extracted().await;
    assert_eq!(event.upstream.commit_sha, commit.sha.as_str());
    assert_eq!(event.trigger, Trigger::new(TriggerKind::Manual));
    let nyt = h.latest(Source::NYT).await.unwrap();
    let run_id = shared::run_id::of_inputs(&h.env, &nyt, &event, &event.trigger);
    assert_eq!(reply.run_id, Some(run_id));

    let reply = h.trigger(json!({"force": "yes"})).await;
    assert!(
        reply.message.contains("not the JSON expected"),
        "{}",
        reply.message
    );
    h.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_run_reruns_without_a_new_commit() {
    let at = Utc::now() + chrono::Duration::seconds(3);
    let daily = at.format("%H:%M:%S").to_string();
    let mut h = Harness::new(&[("POLL_INTERVAL", "1h"), ("DAILY_RUN_AT", &daily)]).await;
    h.initial_load().await;
    let raws = h.github.requests_to(Endpoint::Raw).len();

    let trigger = Trigger::forced(
        TriggerKind::Daily,
        TriggerId::new(format!("daily:{}", at.date_naive())).unwrap(),
    );
    for source in [Source::NYT, Source::JHU] {
        let (event, _) = h.extracted().await;
        assert_eq!(event.source, source);
        assert_eq!(event.trigger, trigger);
    }
    assert!(
        Utc::now() >= at.with_nanosecond(0).unwrap(),
        "not before the daily time"
    );
    assert_eq!(
        h.github.requests_to(Endpoint::Raw).len(),
        raws,
        "nothing downloaded again"
    );
    h.finish().await;
}
