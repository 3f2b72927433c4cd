//! `etl dead`: the messages a stage gave up on, and `etl dead retry ID`, which publishes one again
//! once its cause is fixed.
//!
//! A stage that gives up on a message (malformed, or failing through every delivery) publishes a
//! [`DeadLetter`] on `etl.<env>.dead.<stage>` (stream `DEAD`) and leaves the message itself in
//! stream `ETL`. The id shown here is that message's `ETL` sequence: one number names the message
//! whichever stages gave up on it. A retry reads the message back from `ETL`, publishes it on its
//! subject with its payload and headers, and then removes its dead letters.

use std::process::ExitCode;
use std::time::Duration;

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::consumer::pull;
use async_nats::jetstream::context::GetStreamErrorKind;
use async_nats::jetstream::message::PublishMessage;
use async_nats::jetstream::stream::{DeleteMessageErrorKind, RawMessageErrorKind};
use async_nats::jetstream::{self, stream::Stream};
use async_nats::{HeaderMap, HeaderValue};
use futures::StreamExt;
use shared::events::{DeadLetter, Stage};
use shared::message::{self, Event};
use shared::nats::{DEAD_STREAM, ETL_STREAM, MSG_ID_HEADER};
use shared::subjects::{self, Filter, UNKNOWN_ENV_TOKEN};
use shared::{Env, EnvScope};

use crate::runs::one_line;
use crate::{Connections, say};

/// How long reading waits for the next stored message the server said is there.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum DeadError {
    #[error("could not open stream {stream}: {source}")]
    Open {
        stream: &'static str,
        source: async_nats::Error,
    },
    #[error("could not read stream {stream}: {source}")]
    Read {
        stream: &'static str,
        source: async_nats::Error,
    },
    #[error(
        "no dead letter has id {id} (the ids are those `etl dead` lists; a retried message is no longer listed)"
    )]
    UnknownId { id: u64 },
    #[error(
        "message {id} ({subject}) is no longer in stream ETL: it aged out or was purged, so it cannot be retried; its dead letter stays listed until it ages out of DEAD too"
    )]
    AgedOut { id: u64, subject: String },
    #[error(
        "ETL message {id} is {found}, not the dead message ({expected}): stream ETL was re-created since, and the dead message is gone"
    )]
    NotTheDeadMessage {
        id: u64,
        found: String,
        expected: String,
    },
    #[error("could not publish message {id} again on {subject}: {source}")]
    Publish {
        id: u64,
        subject: String,
        source: async_nats::Error,
    },
    #[error(
        "message {id} was published again as ETL message {sequence}, but its dead letter (DEAD sequence {dead_sequence}) could not be removed: {source}; the same retry run again soon removes it without publishing twice"
    )]
    Remove {
        id: u64,
        sequence: u64,
        dead_sequence: u64,
        source: async_nats::Error,
    },
}

/// One message of stream `DEAD`.
#[derive(Debug, Clone, PartialEq)]
pub struct DeadEntry {
    /// The dead letter's own sequence in `DEAD`.
    pub sequence: u64,
    /// The dead letter's subject, `etl.<env>.dead.<stage>`.
    pub subject: String,
    /// The dead letter, or why it does not decode (written by a newer version, say).
    pub letter: Result<DeadLetter, String>,
}

/// The dead letters of `env` (of every env when `None`), oldest first.
pub async fn list(js: &jetstream::Context, env: Option<&Env>) -> Result<Vec<DeadEntry>, DeadError> {
    let mut stream = match js.get_stream(DEAD_STREAM).await {
        Ok(stream) => stream,
        // Declared by every service at start: none has run yet, so nothing died.
        Err(err)
            if matches!(err.kind(), GetStreamErrorKind::JetStream(e)
                if e.error_code() == ErrorCode::STREAM_NOT_FOUND) =>
        {
            return Ok(Vec::new());
        }
        Err(err) => {
            return Err(DeadError::Open {
                stream: DEAD_STREAM,
                source: err.into(),
            });
        }
    };
    let read = |source: async_nats::Error| DeadError::Read {
        stream: DEAD_STREAM,
        source,
    };
    let scope = env.map_or(EnvScope::All, |env| EnvScope::Only(vec![env.clone()]));
    let filter_subject = subjects::filters(&scope, &[Filter::Dead]).concat();
    let consumer = stream
        .create_consumer(pull::OrderedConfig {
            filter_subject,
            ..Default::default()
        })
        .await
        .map_err(|err| read(err.into()))?;
    let mut pending = consumer.cached_info().num_pending;
    let mut entries = Vec::new();
    if pending == 0 {
        return Ok(entries);
    }
    let mut messages = consumer.messages().await.map_err(|err| read(err.into()))?;
    while pending > 0 {
        let message = match tokio::time::timeout(READ_TIMEOUT, messages.next()).await {
            Ok(Some(message)) => message.map_err(|err| read(err.into()))?,
            Ok(None) => return Err(read("the ordered consumer ended".into())),
            Err(_) => {
                // Letters removed while we read (an env cleaned up, an `etl dead retry`) are
                // counted in `pending` but never come: the listing ends with what is left.
                let stored_at_start = stream.cached_info().state.messages;
                let stored_now = stream.info().await.map_err(|err| read(err.into()))?;
                if stored_now.state.messages < stored_at_start {
                    break;
                }
                return Err(read(
                    format!("the next dead letter did not come within {READ_TIMEOUT:?}").into(),
                ));
            }
        };
        let info = message.info().map_err(read)?;
        let sequence = info.stream_sequence;
        pending = info.pending;
        let letter = match message::decode(message.subject.as_str(), &message.payload) {
            Ok(Event::Dead(letter)) => Ok(*letter),
            Ok(_) => Err("not a dead letter".to_owned()),
            Err(err) => Err(err.to_string()),
        };
        entries.push(DeadEntry {
            sequence,
            subject: message.subject.to_string(),
            letter,
        });
    }
    Ok(entries)
}

/// The column titles of [`DeadEntry::render`].
pub fn header() -> String {
    format!(
        "{:>8}  {:<19}  {:<12} {:<9} {:<18} {:<28} reason",
        "id", "dead at (UTC)", "env", "stage", "kind", "subject"
    )
}

impl DeadEntry {
    /// One line: id, when, env, stage, kind, the dead message's subject, and the reason.
    pub fn render(&self) -> String {
        match &self.letter {
            Ok(letter) => format!(
                "{:>8}  {:<19}  {:<12} {:<9} {:<18} {:<28} {}",
                letter.stream_sequence,
                letter.dead_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                letter.env.as_ref().map_or(UNKNOWN_ENV_TOKEN, Env::as_str),
                letter.stage.as_str(),
                letter.kind.as_str(),
                one_line(&letter.subject),
                one_line(&letter.reason),
            ),
            Err(err) => format!(
                "{:>8}  {:<19}  {:<12} {:<9} {:<18} {:<28} unreadable dead letter (DEAD sequence {}): {}",
                "?",
                "",
                "",
                "",
                "",
                one_line(&self.subject),
                self.sequence,
                one_line(err),
            ),
        }
    }
}

/// What a retry did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Retried {
    /// The message's `ETL` sequence: the id retried.
    pub id: u64,
    pub subject: String,
    /// Its new `ETL` sequence.
    pub sequence: u64,
    pub msg_id: String,
    /// The stream already held this retry (an earlier one stopped before removing the dead
    /// letter), so it was not stored twice.
    pub duplicate: bool,
    /// The dead letters removed: their `DEAD` sequence and stage.
    pub removed: Vec<(u64, Stage)>,
}

/// The message id of a retry of message `id` whose latest dead letter is `dead_sequence` in
/// `DEAD`.
///
/// Not the event's own id ([`shared::message::Publish::msg_id`], which is derived from its
/// content): within the duplicate window the stream would drop the retry as a repeat of the
/// original. Nor a random one: a retry run twice (the first stopped before removing the dead
/// letter) must publish once. The dead letter's sequence tells a later death of the same message
/// (a stage still redelivering it gave up after the retry) from the one already retried.
pub fn retry_msg_id(id: u64, dead_sequence: u64) -> String {
    format!("retry:{id}:{dead_sequence}")
}

/// Publishes message `id` of stream `ETL` again and removes its dead letters (one per stage that
/// gave up on it).
pub async fn retry(js: &jetstream::Context, id: u64) -> Result<Retried, DeadError> {
    let letters: Vec<(u64, DeadLetter)> = list(js, None)
        .await?
        .into_iter()
        .filter_map(|entry| match entry.letter {
            Ok(letter) if letter.stream_sequence == id => Some((entry.sequence, letter)),
            _ => None,
        })
        .collect();
    let Some((latest, letter)) = letters.last() else {
        return Err(DeadError::UnknownId { id });
    };

    let etl = open(js, ETL_STREAM).await?;
    let original = match etl.get_raw_message(id).await {
        Ok(message) => message,
        Err(err) if matches!(err.kind(), RawMessageErrorKind::NoMessageFound) => {
            return Err(DeadError::AgedOut {
                id,
                subject: letter.subject.clone(),
            });
        }
        Err(err) => {
            return Err(DeadError::Read {
                stream: ETL_STREAM,
                source: err.into(),
            });
        }
    };
    // Sequences start again from 1 in a re-created stream: make sure this is the dead message.
    let describe = |subject: &str, bytes: u64| format!("{bytes} bytes on {subject}");
    if original.subject.as_str() != letter.subject
        || original.payload.len() as u64 != letter.payload_bytes
    {
        return Err(DeadError::NotTheDeadMessage {
            id,
            found: describe(original.subject.as_str(), original.payload.len() as u64),
            expected: describe(&letter.subject, letter.payload_bytes),
        });
    }

    let subject = original.subject.to_string();
    let msg_id = retry_msg_id(id, *latest);
    let publish_error = |source: async_nats::Error| DeadError::Publish {
        id,
        subject: subject.clone(),
        source,
    };
    let headers = retry_headers(&original.headers, &msg_id).map_err(publish_error)?;
    let message = PublishMessage::build()
        .payload(original.payload.clone())
        .headers(headers);
    let ack = async { js.send_publish(subject.clone(), message).await?.await }
        .await
        .map_err(|err| publish_error(err.into()))?;

    let dead = open(js, DEAD_STREAM).await?;
    let mut removed = Vec::with_capacity(letters.len());
    for (dead_sequence, letter) in &letters {
        match dead.delete_message(*dead_sequence).await {
            Ok(_) => {}
            // Removed meanwhile (another retry of the same message): what was wanted.
            Err(err)
                if matches!(err.kind(), DeleteMessageErrorKind::JetStream(e)
                    if e.error_code() == ErrorCode::NO_MESSAGE_FOUND) => {}
            Err(err) => {
                return Err(DeadError::Remove {
                    id,
                    sequence: ack.sequence,
                    dead_sequence: *dead_sequence,
                    source: err.into(),
                });
            }
        }
        removed.push((*dead_sequence, letter.stage));
    }
    Ok(Retried {
        id,
        subject,
        sequence: ack.sequence,
        msg_id,
        duplicate: ack.duplicate,
        removed,
    })
}

/// The original's headers for its retry: all of them (trace context, content type…) but its
/// message id, which `msg_id` replaces, and any `Nats-Expected-*` condition, which held for the
/// first publish only.
fn retry_headers(original: &HeaderMap, msg_id: &str) -> Result<HeaderMap, async_nats::Error> {
    let mut headers = HeaderMap::new();
    for (name, values) in original.iter() {
        let name_str: &str = name.as_ref();
        let lower = name_str.to_ascii_lowercase();
        if lower == MSG_ID_HEADER.to_ascii_lowercase() || lower.starts_with("nats-expected-") {
            continue;
        }
        for value in values {
            headers.append(name.clone(), value.clone());
        }
    }
    let msg_id: HeaderValue = msg_id.parse()?;
    headers.insert(async_nats::header::NATS_MESSAGE_ID, msg_id);
    Ok(headers)
}

async fn open(js: &jetstream::Context, stream: &'static str) -> Result<Stream, DeadError> {
    js.get_stream(stream).await.map_err(|err| DeadError::Open {
        stream,
        source: err.into(),
    })
}

/// One dead letter in `etl dead --json`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DeadJson {
    /// The id `etl dead retry` takes: the dead message's sequence in `ETL` (absent when the
    /// dead letter does not decode).
    pub id: Option<u64>,
    /// The dead letter's own sequence in `DEAD`.
    pub dead_sequence: u64,
    pub dead_subject: String,
    /// The dead letter as published (env, stage, kind, reason, subject…).
    pub letter: Option<DeadLetter>,
    /// Why the dead letter does not decode.
    pub error: Option<String>,
}

impl From<&DeadEntry> for DeadJson {
    fn from(entry: &DeadEntry) -> Self {
        let (letter, error) = match &entry.letter {
            Ok(letter) => (Some(letter.clone()), None),
            Err(err) => (None, Some(err.clone())),
        };
        Self {
            id: letter.as_ref().map(|letter| letter.stream_sequence),
            dead_sequence: entry.sequence,
            dead_subject: entry.subject.clone(),
            letter,
            error,
        }
    }
}

/// `etl dead [--env E]`.
pub async fn run_list(
    connections: &Connections,
    env: Option<&Env>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let js = jetstream::new(connections.connect_nats("etl-dead").await?);
    let entries = list(&js, env).await?;
    if json {
        let letters: Vec<DeadJson> = entries.iter().map(DeadJson::from).collect();
        crate::output::json(&serde_json::json!({
            "env": env.map(Env::as_str),
            "dead_letters": letters,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    if entries.is_empty() {
        match env {
            Some(env) => say!("no dead letters in env {env}"),
            None => say!("no dead letters"),
        }
        return Ok(ExitCode::SUCCESS);
    }
    say!("{}", header());
    for entry in &entries {
        say!("{}", entry.render());
    }
    Ok(ExitCode::SUCCESS)
}

/// `etl dead retry ID`.
pub async fn run_retry(connections: &Connections, id: u64, json: bool) -> anyhow::Result<ExitCode> {
    let js = jetstream::new(connections.connect_nats("etl-dead").await?);
    let retried = retry(&js, id).await?;
    if json {
        let removed: Vec<serde_json::Value> = retried
            .removed
            .iter()
            .map(|(sequence, stage)| {
                serde_json::json!({"dead_sequence": sequence, "stage": stage.as_str()})
            })
            .collect();
        crate::output::json(&serde_json::json!({
            "id": retried.id,
            "subject": retried.subject,
            "sequence": retried.sequence,
            "msg_id": retried.msg_id,
            "duplicate": retried.duplicate,
            "removed": removed,
        }));
        return Ok(ExitCode::SUCCESS);
    }
    let how = if retried.duplicate {
        "was already published again by an earlier retry"
    } else {
        "published again"
    };
    say!(
        "message {} ({}) {how} as ETL message {} (message id {})",
        retried.id,
        retried.subject,
        retried.sequence,
        retried.msg_id
    );
    for (sequence, stage) in &retried.removed {
        say!(
            "removed its dead letter of stage {} (DEAD sequence {sequence})",
            stage.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{TimeZone, Utc};
    use shared::events::{FailureKind, SCHEMA_VERSION};

    fn letter() -> DeadLetter {
        DeadLetter {
            schema_version: SCHEMA_VERSION,
            env: Some(Env::prod()),
            stage: Stage::Load,
            consumer: "loader-all".into(),
            subject: "etl.prod.transformed".into(),
            stream_sequence: 42,
            delivered: 10,
            kind: FailureKind::Unavailable,
            reason: "gave up after 10 deliveries:\nPostgreSQL is down".into(),
            payload_bytes: 3,
            payload_preview: "{}".into(),
            dead_at: Utc.with_ymd_and_hms(2024, 5, 1, 12, 0, 3).unwrap(),
        }
    }

    #[test]
    fn a_dead_letter_is_one_line_with_id_when_env_stage_kind_subject_and_reason() {
        let entry = DeadEntry {
            sequence: 7,
            subject: "etl.prod.dead.load".into(),
            letter: Ok(letter()),
        };
        let line = entry.render();
        let words: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(
            words[..8],
            [
                "42",
                "2024-05-01",
                "12:00:03",
                "prod",
                "load",
                "unavailable",
                "etl.prod.transformed",
                "gave"
            ]
        );
        assert!(line.ends_with("deliveries: PostgreSQL is down"), "{line}");
        assert_eq!(
            header().find("subject"),
            line.find("etl.prod.transformed"),
            "columns line up"
        );
    }

    #[test]
    fn a_dead_letter_without_env_or_unreadable_is_still_listed() {
        let mut no_env = letter();
        no_env.env = None;
        let entry = DeadEntry {
            sequence: 7,
            subject: "etl._.dead.load".into(),
            letter: Ok(no_env),
        };
        assert!(entry.render().contains(" _ "), "{}", entry.render());
        let unreadable = DeadEntry {
            sequence: 8,
            subject: "etl.prod.dead.load".into(),
            letter: Err("schema_version 2".into()),
        };
        let line = unreadable.render();
        assert!(line.trim_start().starts_with('?'), "{line}");
        assert!(
            line.contains("unreadable dead letter (DEAD sequence 8): schema_version 2"),
            "{line}"
        );
    }

    #[test]
    fn a_retry_keeps_the_headers_but_the_message_id_and_preconditions() {
        let mut original = HeaderMap::new();
        original.insert(async_nats::header::NATS_MESSAGE_ID, "transformed:prod:r1");
        original.insert("traceparent", "00-abc-def-01");
        original.insert("Nats-Expected-Last-Sequence", "41");
        let headers = retry_headers(&original, &retry_msg_id(42, 7)).unwrap();
        assert_eq!(
            headers
                .get(async_nats::header::NATS_MESSAGE_ID)
                .unwrap()
                .as_str(),
            "retry:42:7"
        );
        assert_eq!(
            headers.get("traceparent").unwrap().as_str(),
            "00-abc-def-01"
        );
        assert!(headers.get("Nats-Expected-Last-Sequence").is_none());
        assert_eq!(headers.len(), 2);
    }
}
