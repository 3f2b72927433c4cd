//! A corpus of hostile and malformed messages on every subject each stage consumes, sent to the
//! four services running as processes: none of them stops or stalls, every bad message is a dead
//! letter of each stage that consumed it (once, with a reason), and a real upstream change sent
//! after them is processed and notified exactly once.

use std::collections::BTreeMap;
use std::time::Duration;

use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use etl_tests::fake_github::FakeGithub;
use futures::StreamExt;
use serde_json::{Value, json};
use shared::events::{DeadLetter, RunStatus, Stage};
use shared::ids::Digest;
use shared::nats::{DEAD_STREAM, ETL_STREAM};
use shared::{Env, Source, subjects};
use test_support::{EventLog, TestEnv, eventually};

use crate::support::processes::{Process, next_notification};
use crate::support::{pipeline_vars, upstream_commits};

const NYT: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,150,3\n";
const JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,100,5,2\n2020-03-02,US,,150,7,3\n";
const NYT_NEXT: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,150,3\n2020-03-03,210,5\n";
const JHU_NEXT: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,100,5,2\n2020-03-02,US,,150,7,3\n2020-03-03,US,,210,8,5\n";
const PIPELINE: [&str; 4] = ["extractor", "transformer", "loader", "notifier"];

/// One hostile message: where it goes, what it holds, and which stages must dead-letter it.
struct Hostile {
    what: &'static str,
    subject: String,
    payload: Vec<u8>,
    dead_in: &'static [Stage],
}

/// The latest event of the env on `subject`, as JSON to be bent out of shape.
async fn latest_json(events: &mut EventLog, subject: &str) -> Value {
    let message = events.next_on(subject, Duration::from_secs(30)).await;
    serde_json::from_slice(&message.payload).expect("the pipeline publishes JSON")
}

fn with(mut value: Value, pointer: &str, replacement: Value) -> Vec<u8> {
    match value.pointer_mut(pointer) {
        Some(slot) => *slot = replacement,
        None => panic!("no {pointer} in the template event"),
    }
    serde_json::to_vec(&value).unwrap()
}

/// Every kind of bad message, built from the real events of the first run.
async fn corpus(test: &TestEnv, extracted: &Value, transformed: &Value) -> Vec<Hostile> {
    let env = &test.env;
    let nyt = subjects::extracted(env, &Source::NYT);
    let transformed_subject = subjects::transformed(env);
    let loaded = subjects::loaded(env);
    let failed = subjects::failed(env, Stage::Transform);
    const TRANSFORM: &[Stage] = &[Stage::Transform];
    const LOAD: &[Stage] = &[Stage::Load];
    const NOTIFY: &[Stage] = &[Stage::Notify];
    const LOAD_AND_NOTIFY: &[Stage] = &[Stage::Load, Stage::Notify];

    // A curated object that exists but is not Parquet, announced with its true digest, and one
    // that exists but whose digest is not the one announced. A run id of their own each, and an
    // upstream time far ahead, so neither can be taken for an older, superseded run.
    let garbage = b"PAR1 this is not a parquet file".to_vec();
    let mut objects = Vec::new();
    for (run_id, announced) in [
        ("hostile0corrupt000000001", Digest::of(&garbage)),
        ("hostile0mismatch00000001", Digest::of(b"something else")),
    ] {
        let name = format!("{env}/{run_id}.parquet");
        test.stores
            .curated
            .put(name.as_str(), &mut garbage.as_slice())
            .await
            .expect("object stored");
        let mut event = transformed.clone();
        event["run_id"] = json!(run_id);
        event["object"]["name"] = json!(name);
        event["object"]["sha256"] = json!(announced.as_str());
        event["object"]["bytes"] = json!(garbage.len());
        event["order"]["upstream_time"] = json!("2100-01-01T00:00:00Z");
        objects.push(serde_json::to_vec(&event).unwrap());
    }
    let mut missing = transformed.clone();
    missing["run_id"] = json!("hostile0missing000000001");
    missing["object"]["name"] = json!(format!("{env}/hostile0missing000000001.parquet"));
    missing["order"]["upstream_time"] = json!("2100-01-01T00:00:00Z");
    let over_limit = {
        let mut body = serde_json::to_vec(transformed).unwrap();
        body.truncate(body.len() - 1);
        body.extend_from_slice(b",\"padding\":\"");
        body.extend(std::iter::repeat_n(b'x', shared::message::MAX_EVENT_BYTES));
        body.extend_from_slice(b"\"}");
        body
    };

    let hostile = |what, subject: &String, payload, dead_in| Hostile {
        what,
        subject: subject.clone(),
        payload,
        dead_in,
    };
    vec![
        hostile("non-JSON extracted", &nyt, b"{\"schema_version\":1,".to_vec(), TRANSFORM),
        hostile("extracted of another schema version", &nyt, with(extracted.clone(), "/schema_version", json!(99)), TRANSFORM),
        hostile("a line break in a trigger id", &nyt, with(extracted.clone(), "/trigger", json!({"kind": "manual", "force": true, "id": "a\nb"})), TRANSFORM),
        hostile("a wildcard in a commit sha", &nyt, with(extracted.clone(), "/upstream/commit_sha", json!("abc.*>")), TRANSFORM),
        hostile("an env in the body that is not the subject's", &nyt, with(extracted.clone(), "/env", json!("prod")), TRANSFORM),
        hostile("a reserved env name", &nyt, with(extracted.clone(), "/env", json!("pg_catalog")), TRANSFORM),
        hostile("a foreign raw object", &nyt, with(extracted.clone(), "/object/name", json!("prod/nyt/0000000000000000000000000000000000000000000000000000000000000000")), TRANSFORM),
        hostile("a line break in a run id", &transformed_subject, with(transformed.clone(), "/run_id", json!("a\nb")), LOAD),
        hostile("a wildcard in a run id", &transformed_subject, with(transformed.clone(), "/run_id", json!("run.*")), LOAD),
        hostile("a curated object of another env", &transformed_subject, with(transformed.clone(), "/object/name", json!("prod/x.parquet")), LOAD),
        hostile("a missing curated object", &transformed_subject, serde_json::to_vec(&missing).unwrap(), LOAD),
        hostile("a corrupt curated object", &transformed_subject, objects[0].clone(), LOAD),
        hostile("a curated object that is not the one announced", &transformed_subject, objects[1].clone(), LOAD),
        hostile("a body over the size limit", &transformed_subject, over_limit, LOAD),
        hostile("non-JSON loaded", &loaded, b"<html>".to_vec(), NOTIFY),
        hostile("a failed event with an env that is not the subject's", &failed, serde_json::to_vec(&json!({"schema_version": 1, "env": "prod", "stage": "transform", "kind": "invalid_data", "reason": "r", "inputs": [], "failed_at": "2026-01-01T00:00:00Z"})).unwrap(), LOAD_AND_NOTIFY),
    ]
}

/// Trigger requests the extractor must refuse and survive.
fn hostile_triggers() -> Vec<Vec<u8>> {
    vec![
        br#"{"force":true,"id":"a\nb"}"#.to_vec(),
        br#"{"force":true,"id":"a.*>"}"#.to_vec(),
        b"not json".to_vec(),
        vec![b'{'; shared::message::MAX_EVENT_BYTES + 1],
    ]
}

async fn dead_letters(js: &jetstream::Context, env: &Env) -> Vec<DeadLetter> {
    let mut stream = js
        .get_stream(DEAD_STREAM)
        .await
        .expect("the DEAD stream exists");
    let filter = format!("etl.{env}.dead.*");
    let pending = stream
        .info()
        .await
        .map(|info| info.state.messages)
        .unwrap_or(0);
    if pending == 0 {
        return Vec::new();
    }
    let mut messages = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await
        .expect("an ordered consumer of DEAD")
        .messages()
        .await
        .expect("DEAD is readable");
    let mut letters = Vec::new();
    while let Ok(Some(Ok(message))) =
        tokio::time::timeout(Duration::from_secs(2), messages.next()).await
    {
        letters.push(serde_json::from_slice(&message.payload).expect("a dead letter"));
    }
    letters
}

async fn consumers_settled(js: &jetstream::Context, env: &Env) -> Result<(), String> {
    let stream = js.get_stream(ETL_STREAM).await.map_err(|e| e.to_string())?;
    for stage in ["transformer", "loader", "notifier"] {
        let name = format!("{stage}-{env}");
        let info = stream
            .consumer_info(&name)
            .await
            .map_err(|e| format!("{name}: {e}"))?;
        if info.num_pending > 0 || info.num_ack_pending > 0 {
            return Err(format!(
                "{name}: {} pending, {} unacknowledged",
                info.num_pending, info.num_ack_pending
            ));
        }
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn hostile_messages_stop_no_stage_and_each_is_dead_lettered_once() {
    let test = TestEnv::new("hostile").await;
    let env = test.env.clone();
    let js = test.stores.js.clone();
    let github = FakeGithub::start().await.unwrap();
    let logs = tempfile::tempdir().unwrap();
    let mut processes: Vec<Process> = PIPELINE
        .iter()
        .map(|name| Process::spawn(name, &pipeline_vars(&env, &github), logs.path()))
        .collect();
    let pids: Vec<u32> = processes.iter().map(Process::pid).collect();

    // A first honest run: its events are the templates of the corpus.
    let mut events = test.events().await;
    let mut notifications = test.notifications().await;
    github.add_many(upstream_commits(NYT, JHU));
    let first = next_notification(&mut notifications, &processes, "the first run").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{first:?}");
    let extracted = latest_json(&mut events, &subjects::extracted(&env, &Source::NYT)).await;
    let transformed = latest_json(&mut events, &subjects::transformed(&env)).await;

    for body in hostile_triggers() {
        let reply = js
            .client()
            .request(subjects::trigger(&env), body.into())
            .await
            .expect("the extractor answers a hostile trigger");
        let reply: Value = serde_json::from_slice(&reply.payload).expect("a JSON reply");
        assert!(
            reply["run_id"].is_null(),
            "a hostile trigger started a run: {reply}"
        );
    }

    let corpus = corpus(&test, &extracted, &transformed).await;
    let mut sequences = BTreeMap::new();
    for message in &corpus {
        // Published byte for byte: no helper of ours would produce these bodies.
        let sequence = js
            .publish(message.subject.clone(), message.payload.clone().into())
            .await
            .expect("published")
            .await
            .expect("stored")
            .sequence;
        sequences.insert(sequence, message);
    }

    // Every bad message ends as a dead letter of each stage that consumed it; nothing is left
    // pending or unacknowledged behind them.
    let expected: usize = corpus.iter().map(|m| m.dead_in.len()).sum();
    let letters = eventually(
        "every hostile message dead-lettered",
        Duration::from_secs(90),
        || {
            let js = js.clone();
            let env = env.clone();
            async move {
                let letters = dead_letters(&js, &env).await;
                (letters.len() >= expected).then_some(letters)
            }
        },
    )
    .await;
    for (sequence, message) in &sequences {
        for stage in message.dead_in {
            let found: Vec<&DeadLetter> = letters
                .iter()
                .filter(|l| l.stream_sequence == *sequence && l.stage == *stage)
                .collect();
            assert_eq!(
                found.len(),
                1,
                "{} in stage {stage:?}: {found:#?}",
                message.what
            );
            assert!(!found[0].reason.is_empty(), "{}: no reason", message.what);
        }
    }
    assert_eq!(letters.len(), expected, "dead letters: {letters:#?}");
    eventually(
        "the consumers have nothing left in hand",
        Duration::from_secs(60),
        || {
            let js = js.clone();
            let env = env.clone();
            async move { consumers_settled(&js, &env).await.ok() }
        },
    )
    .await;
    for (process, pid) in processes.iter_mut().zip(&pids) {
        assert!(
            process.is_running(),
            "{} stopped; log:\n{}",
            process.name,
            process.log_text()
        );
        assert_eq!(process.pid(), *pid, "{} was restarted", process.name);
    }

    // A real upstream change after all that: one run, notified once.
    github.add_many(upstream_commits(NYT_NEXT, JHU_NEXT));
    let run = loop {
        let notification =
            next_notification(&mut notifications, &processes, "the run after the corpus").await;
        if notification.status == RunStatus::Succeeded && notification.counts.inserted == 1 {
            break notification;
        }
    };
    while let Some(again) = notifications.within(Duration::from_secs(3)).await {
        assert_ne!(again.run_id, run.run_id, "the run was notified twice");
    }

    for process in processes {
        process.terminate().await;
    }
    test.clean_up().await;
}
