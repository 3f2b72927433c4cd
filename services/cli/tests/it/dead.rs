//! `etl dead` and `etl dead retry` against the real NATS, with dead letters the settle step wrote.

use etl_cli::dead::{self, DeadError};
use shared::events::{FailureKind, Stage};
use shared::nats::{DEAD_STREAM, ETL_STREAM};
use shared::settle::Failure;

use crate::support::{DeadLetters, TRACEPARENT, TestEnv, etl, stderr, stdout};

const PAYLOAD: &[u8] = b"{\"not\": \"a transformed event\"}";

/// The listed lines of `env` (without the column titles).
async fn listed(env: &str) -> Vec<String> {
    let output = etl(&["dead", "--env", env]).await;
    assert!(output.status.success(), "etl dead: {}", stderr(&output));
    let out = stdout(&output);
    let mut lines = out.lines();
    match lines.next() {
        Some(first) if first.starts_with("no dead letters") => Vec::new(),
        Some(first) => {
            assert!(first.contains("reason"), "column titles first: {out}");
            lines.map(str::to_owned).collect()
        }
        None => panic!("etl dead printed nothing"),
    }
}

#[tokio::test]
async fn a_dead_message_is_listed_with_its_reason_and_retried_once() {
    let t = TestEnv::new("cli").await;
    let other = TestEnv::new("cli").await;
    let id = t.publish_original(PAYLOAD).await;
    let malformed = Failure::permanent(
        FailureKind::Malformed,
        "the message is not a transformed event",
    );
    t.give_up(Stage::Load, id, PAYLOAD, &malformed).await;
    // A second stage gave up on the same message: one id, one retry.
    let exhausted = Failure::transient(FailureKind::Unavailable, "the mail server\nis down");
    t.give_up(Stage::Notify, id, PAYLOAD, &exhausted).await;
    let other_id = other.publish_original(b"{}").await;
    other
        .give_up(Stage::Load, other_id, b"{}", &malformed)
        .await;

    // One line each, oldest first, only the env asked for.
    let lines = listed(t.env.as_str()).await;
    assert_eq!(lines.len(), 2, "{lines:#?}");
    let words: Vec<Vec<&str>> = lines
        .iter()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let id_text = id.to_string();
    let subject = t.subject();
    assert_eq!(
        [
            words[0][0],
            words[0][3],
            words[0][4],
            words[0][5],
            words[0][6]
        ],
        [
            id_text.as_str(),
            t.env.as_str(),
            "load",
            "malformed",
            subject.as_str()
        ]
    );
    assert!(
        lines[0].ends_with("the message is not a transformed event"),
        "{}",
        lines[0]
    );
    assert_eq!(
        [words[1][0], words[1][4], words[1][5]],
        [id_text.as_str(), "notify", "unavailable"]
    );
    assert!(
        lines[1].ends_with("the mail server is down"),
        "one line: {}",
        lines[1]
    );
    let all = etl(&["dead"]).await;
    assert!(all.status.success());
    assert!(
        stdout(&all).contains(other.env.as_str()),
        "every env without --env"
    );

    let output = etl(&["dead", "retry", &id_text]).await;
    assert!(
        output.status.success(),
        "etl dead retry: {}",
        stderr(&output)
    );
    let out = stdout(&output);
    assert!(
        out.contains(&format!("message {id} ({subject}) published again")),
        "{out}"
    );
    assert!(out.contains("dead letter of stage load"), "{out}");
    assert!(out.contains("dead letter of stage notify"), "{out}");

    // The same payload and headers on the same subject, under a message id of its own.
    let etl_stream = t.stores.js.get_stream(ETL_STREAM).await.unwrap();
    let again = etl_stream
        .get_last_raw_message_by_subject(&subject)
        .await
        .expect("the retry is stored");
    assert!(again.sequence > id);
    assert_eq!(&again.payload[..], PAYLOAD);
    assert_eq!(
        again.headers.get("traceparent").unwrap().as_str(),
        TRACEPARENT
    );
    let msg_id = again
        .headers
        .get("Nats-Msg-Id")
        .unwrap()
        .as_str()
        .to_owned();
    assert!(msg_id.starts_with(&format!("retry:{id}:")), "{msg_id}");
    assert!(
        out.contains(&format!(
            "as ETL message {} (message id {msg_id})",
            again.sequence
        )),
        "{out}"
    );

    // Listed no more, and not retried twice; the other env's dead letter is untouched.
    assert_eq!(listed(t.env.as_str()).await, Vec::<String>::new());
    let output = etl(&["dead", "retry", &id_text]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!("no dead letter has id {id}")),
        "{}",
        stderr(&output)
    );
    assert!(matches!(
        dead::retry(&t.stores.js, id).await,
        Err(DeadError::UnknownId { .. })
    ));
    assert_eq!(listed(other.env.as_str()).await.len(), 1);

    t.clean_up().await;
    other.clean_up().await;
}

#[tokio::test]
async fn a_message_gone_from_etl_cannot_be_retried_and_stays_listed() {
    let t = TestEnv::new("cli").await;
    let id = t.publish_original(PAYLOAD).await;
    let failure = Failure::permanent(FailureKind::MissingObject, "the curated object is gone");
    t.give_up(Stage::Load, id, PAYLOAD, &failure).await;
    // As if it had aged out of the stream.
    let etl_stream = t.stores.js.get_stream(ETL_STREAM).await.unwrap();
    assert!(etl_stream.delete_message(id).await.unwrap());

    let output = etl(&["dead", "retry", &id.to_string()]).await;
    assert!(!output.status.success());
    let err = stderr(&output);
    assert!(
        err.contains(&format!(
            "message {id} ({}) is no longer in stream ETL",
            t.subject()
        )),
        "{err}"
    );
    assert!(
        stdout(&output).is_empty(),
        "nothing was done: {}",
        stdout(&output)
    );
    assert!(matches!(
        dead::retry(&t.stores.js, id).await,
        Err(DeadError::AgedOut { .. })
    ));
    let lines = listed(t.env.as_str()).await;
    assert_eq!(lines.len(), 1, "the dead letter stays: {lines:#?}");
    assert!(lines[0].contains("missing_object"));

    t.clean_up().await;
}

#[tokio::test]
async fn an_unknown_id_or_env_is_refused_with_a_clear_message() {
    let output = etl(&["dead", "retry", &u64::MAX.to_string()]).await;
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains(&format!("no dead letter has id {}", u64::MAX)),
        "{}",
        stderr(&output)
    );
    let output = etl(&["dead", "--env", "Not An Env"]).await;
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--env"), "{}", stderr(&output));
    // An env with no dead letters says so, and that is no failure.
    let t = TestEnv::new("cli").await;
    let output = etl(&["dead", "--env", t.env.as_str()]).await;
    assert!(output.status.success());
    assert_eq!(
        stdout(&output).trim(),
        format!("no dead letters in env {}", t.env)
    );
    // The DEAD stream is where the settle step put them.
    assert!(t.stores.js.get_stream(DEAD_STREAM).await.is_ok());
}
