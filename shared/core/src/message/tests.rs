use chrono::{DateTime, NaiveDate};
use serde_json::{Value, json};

use super::*;
use crate::events::{Dropped, ObjectRef, RunOrder, Trigger, TriggerKind, UpstreamRef};
use crate::ids::{Digest, RunId};
use crate::source::Source;

fn env() -> Env {
    Env::new("t_msg").unwrap()
}

fn extracted(source: Source) -> Extracted {
    let sha256 = Digest::of(source.as_str().as_bytes());
    let at = DateTime::from_timestamp(1_600_000_000, 0).unwrap();
    Extracted {
        dataset: crate::Dataset::US,
        dataset_sources: Vec::new(),
        schema_version: SCHEMA_VERSION,
        env: env(),
        source: source.clone(),
        upstream: UpstreamRef {
            repo: "o/r".into(),
            path: "us.csv".into(),
            commit_sha: "0123456789abcdef0123456789abcdef01234567".parse().unwrap(),
            commit_time: at,
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: RAW_BUCKET.into(),
            name: store::raw_object_name(&env(), &source, &sha256),
            sha256,
            bytes: 3,
        },
        trigger: Trigger::new(TriggerKind::Commit),
        fetched_at: at,
    }
}

fn transformed() -> Transformed {
    let run_id = RunId::new("0123456789abcdef01234567").unwrap();
    let inputs = vec![
        extracted(Source::NYT).input(),
        extracted(Source::JHU).input(),
    ];
    let day = NaiveDate::from_ymd_opt(2020, 3, 1).unwrap();
    Transformed {
        dataset: crate::Dataset::US,
        delta: None,
        schema_version: SCHEMA_VERSION,
        env: env(),
        order: RunOrder::of(&inputs, 7),
        object: ObjectRef {
            bucket: CURATED_BUCKET.into(),
            name: store::curated_object_name(&env(), &run_id),
            sha256: Digest::of(b"parquet"),
            bytes: 7,
        },
        run_id,
        trigger: Trigger::new(TriggerKind::Commit),
        inputs,
        rows: 1,
        first_date: day,
        last_date: day,
        dropped: Dropped::default(),
        warnings: vec![],
        timings: vec![],
    }
}

fn json_of(event: &impl Serialize) -> Value {
    serde_json::to_value(event).unwrap()
}

fn decode_json(subject: &str, value: &Value) -> Result<Event, DecodeError> {
    decode(subject, &serde_json::to_vec(value).unwrap())
}

#[test]
fn a_valid_event_decodes_as_its_subject_says() {
    let event = extracted(Source::JHU);
    let decoded = decode_json(&event.subject().to_string(), &json_of(&event)).unwrap();
    assert_eq!(decoded, Event::Extracted(Box::new(event)));
    let event = transformed();
    let decoded = decode_json("etl.t_msg.transformed", &json_of(&event)).unwrap();
    assert_eq!(decoded, Event::Transformed(Box::new(event)));
}

#[test]
fn a_line_break_in_any_identifier_is_refused() {
    let mut value = json_of(&transformed());
    value["run_id"] = json!("a\nb");
    let err = decode_json("etl.t_msg.transformed", &value).unwrap_err();
    assert!(err.to_string().contains("run id"), "{err}");

    let mut value = json_of(&extracted(Source::NYT));
    value["trigger"] = json!({"kind": "manual", "force": true, "id": "x\r\nNats-Msg-Id: y"});
    assert!(decode_json("etl.t_msg.extracted.nyt", &value).is_err());

    let mut value = json_of(&extracted(Source::NYT));
    value["upstream"]["commit_sha"] = json!("abc*>");
    assert!(decode_json("etl.t_msg.extracted.nyt", &value).is_err());
}

#[test]
fn the_body_env_must_be_the_subject_env() {
    let value = json_of(&transformed());
    let err = decode_json("etl.prod.transformed", &value).unwrap_err();
    assert!(matches!(err, DecodeError::EnvMismatch { .. }), "{err}");
}

#[test]
fn reserved_and_invalid_envs_are_refused_in_subjects_and_bodies() {
    let mut value = json_of(&transformed());
    value["env"] = json!("pg_catalog");
    assert!(decode_json("etl.pg_catalog.transformed", &value).is_err());
    assert!(decode_json("etl.t_msg.transformed", &value).is_err());
}

#[test]
fn object_names_must_belong_to_the_event() {
    let mut value = json_of(&transformed());
    value["object"]["name"] = json!("prod/0123456789abcdef01234567.parquet");
    let err = decode_json("etl.t_msg.transformed", &value).unwrap_err();
    assert!(err.to_string().contains("object.name"), "{err}");

    let mut value = json_of(&transformed());
    value["object"]["name"] = json!("t_msg/ffffffffffffffffffffffff.parquet");
    assert!(decode_json("etl.t_msg.transformed", &value).is_err());

    let mut value = json_of(&extracted(Source::NYT));
    value["object"]["bucket"] = json!("etl-curated");
    assert!(decode_json("etl.t_msg.extracted.nyt", &value).is_err());

    // The payload of one source announced on the other's subject.
    let value = json_of(&extracted(Source::NYT));
    assert!(decode_json("etl.t_msg.extracted.jhu", &value).is_err());
}

#[test]
fn another_schema_version_is_named_as_such() {
    let mut value = json_of(&transformed());
    value["schema_version"] = json!(2);
    let err = decode_json("etl.t_msg.transformed", &value).unwrap_err();
    assert!(
        matches!(err, DecodeError::SchemaVersion { found: 2, .. }),
        "{err}"
    );
}

#[test]
fn non_json_oversized_and_foreign_messages_are_refused() {
    assert!(matches!(
        decode("etl.t_msg.loaded", b"<html>"),
        Err(DecodeError::Body { .. })
    ));
    let big = vec![b' '; MAX_EVENT_BYTES + 1];
    assert!(matches!(
        decode("etl.t_msg.loaded", &big),
        Err(DecodeError::TooLarge { .. })
    ));
    assert!(matches!(
        decode("etl.t_msg.bogus", b"{}"),
        Err(DecodeError::UnknownSubject { .. })
    ));
    assert!(matches!(
        decode("etl.t_msg.trigger", b"{}"),
        Err(DecodeError::NotAnEvent { .. })
    ));
}

#[test]
fn notify_messages_are_told_apart_by_their_marker_field() {
    let report = EmailReport {
        schema_version: SCHEMA_VERSION,
        report: "email".into(),
        env: env(),
        about: RunId::new("r1").unwrap(),
        email: crate::events::EmailFate::Sent,
        subject: "s".into(),
        recipients: 1,
        email_note: None,
        at: DateTime::from_timestamp(1_600_000_000, 0).unwrap(),
    };
    let decoded = decode_json("notify.t_msg", &json_of(&report)).unwrap();
    assert!(matches!(decoded, Event::EmailReport(_)));
}

#[test]
fn message_ids_are_deterministic_and_valid_headers() {
    let event = transformed();
    assert_eq!(event.msg_id(), transformed().msg_id());
    let mut forced = extracted(Source::NYT);
    forced.trigger = Trigger::forced(TriggerKind::Manual, "daily:2026-03-01".parse().unwrap());
    assert_ne!(forced.msg_id(), extracted(Source::NYT).msg_id());
    for id in [event.msg_id(), forced.msg_id()] {
        assert!(!id.contains(['\r', '\n', ' ']), "{id}");
    }
}

#[test]
fn an_empty_trigger_request_is_a_plain_check() {
    assert_eq!(decode_trigger(b" \n").unwrap(), TriggerRequest::default());
    assert!(decode_trigger(br#"{"force":true,"id":"a\nb"}"#).is_err());
    let request = decode_trigger(br#"{"force":true,"id":"t-1"}"#).unwrap();
    assert!(request.force);
}
