//! The one decoder from a received (subject, payload) to a typed, checked event, and the one place
//! that names every event's subject and message id.
//!
//! [`decode`] refuses, with a reason naming the subject and the problem, anything a stage must not
//! act on: a subject outside the contract, a body over [`MAX_EVENT_BYTES`], a body that is not the
//! subject's event (JSON, fields, identifiers), another `schema_version`, an env in the body that
//! differs from the subject's, and object names that are not the ones the event's own env, source
//! and run give. What passes can be used without further checks.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::env::Env;
use crate::events::{
    DeadLetter, EmailReport, Extracted, Failed, InputRef, Loaded, Notification, SCHEMA_VERSION,
    StaleAlert, Transformed, TriggerRequest,
};
use crate::nats::{CURATED_BUCKET, RAW_BUCKET};
use crate::store;
use crate::subjects::Subject;

/// The largest event body a stage reads. Real ones are a few kB (a `loaded` event with the most
/// corrections it carries is about 100 kB); the NATS server's own limit is 1 MB.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// A decoded, checked event.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    Extracted(Box<Extracted>),
    Transformed(Box<Transformed>),
    Loaded(Box<Loaded>),
    Failed(Box<Failed>),
    Dead(Box<DeadLetter>),
    Notification(Box<Notification>),
    StaleAlert(Box<StaleAlert>),
    EmailReport(Box<EmailReport>),
}

impl Event {
    pub fn env(&self) -> Option<&Env> {
        match self {
            Event::Extracted(e) => Some(&e.env),
            Event::Transformed(e) => Some(&e.env),
            Event::Loaded(e) => Some(&e.env),
            Event::Failed(e) => Some(&e.env),
            Event::Dead(e) => e.env.as_ref(),
            Event::Notification(e) => Some(&e.env),
            Event::StaleAlert(e) => Some(&e.env),
            Event::EmailReport(e) => Some(&e.env),
        }
    }
}

/// Why a message is not an event a stage may act on.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("{subject:?} is not a subject of the contract")]
    UnknownSubject { subject: String },
    #[error("{subject} is core NATS (a request or a progress report), not a stored event's")]
    NotAnEvent { subject: String },
    #[error("the message on {subject} is {bytes} bytes, over the limit of {limit}")]
    TooLarge {
        subject: String,
        bytes: usize,
        limit: usize,
    },
    #[error("the message on {subject} is not a valid {what} event: {source}")]
    Body {
        subject: String,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error(
        "the {what} event on {subject} has schema_version {found}; this version reads {expected}"
    )]
    SchemaVersion {
        subject: String,
        what: &'static str,
        found: u64,
        expected: u32,
    },
    #[error("the {what} event on {subject} is for env {body}, not the subject's")]
    EnvMismatch {
        subject: String,
        what: &'static str,
        body: String,
    },
    #[error("the {what} event on {subject} names {field} {found:?}, expected {expected:?}")]
    Mismatch {
        subject: String,
        what: &'static str,
        field: &'static str,
        found: String,
        expected: String,
    },
}

/// Decodes and checks the event on `subject`.
pub fn decode(subject: &str, payload: &[u8]) -> Result<Event, DecodeError> {
    let parsed = Subject::parse(subject).ok_or_else(|| DecodeError::UnknownSubject {
        subject: subject.to_owned(),
    })?;
    if payload.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge {
            subject: subject.to_owned(),
            bytes: payload.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    let body = Body { subject, payload };
    let event = match &parsed {
        Subject::Trigger(_) | Subject::Progress(..) => {
            return Err(DecodeError::NotAnEvent {
                subject: subject.to_owned(),
            });
        }
        Subject::Extracted(_, source) => {
            let event: Extracted = body.read("extracted")?;
            body.expect("source", event.source.as_str(), source.as_str())?;
            body.expect_raw_object(&event.env, &event.input())?;
            Event::Extracted(Box::new(event))
        }
        Subject::Transformed(_) => {
            let event: Transformed = body.read("transformed")?;
            let curated = store::curated_object_name(&event.env, &event.run_id);
            body.expect("object.bucket", &event.object.bucket, CURATED_BUCKET)?;
            body.expect("object.name", &event.object.name, &curated)?;
            body.expect_inputs(&event.env, &event.inputs)?;
            Event::Transformed(Box::new(event))
        }
        Subject::Loaded(_) => {
            let event: Loaded = body.read("loaded")?;
            body.expect_inputs(&event.env, &event.inputs)?;
            Event::Loaded(Box::new(event))
        }
        Subject::Failed(_, stage) => {
            let event: Failed = body.read("failed")?;
            body.expect("stage", event.stage.as_str(), stage.as_str())?;
            body.expect_inputs(&event.env, &event.inputs)?;
            Event::Failed(Box::new(event))
        }
        Subject::Dead(_, stage) => {
            let event: DeadLetter = body.read("dead-letter")?;
            body.expect("stage", event.stage.as_str(), stage.as_str())?;
            Event::Dead(Box::new(event))
        }
        Subject::Notify(_) => {
            let value: serde_json::Value =
                serde_json::from_slice(payload).map_err(|source| DecodeError::Body {
                    subject: subject.to_owned(),
                    what: "notify",
                    source,
                })?;
            if value.get("alert").is_some() {
                Event::StaleAlert(Box::new(body.read("stale alert")?))
            } else if value.get("report").is_some() {
                Event::EmailReport(Box::new(body.read("email report")?))
            } else {
                Event::Notification(Box::new(body.read("notification")?))
            }
        }
    };
    // A body for another env than its subject's would act on data the subject's permissions and
    // consumers do not cover.
    if event.env() != parsed.env() {
        return Err(DecodeError::EnvMismatch {
            subject: subject.to_owned(),
            what: "received",
            body: event.env().map_or("(none)", Env::as_str).to_owned(),
        });
    }
    Ok(event)
}

/// Decodes an `etl.<env>.trigger` request; an empty body is a plain "check now".
pub fn decode_trigger(payload: &[u8]) -> Result<TriggerRequest, DecodeError> {
    if payload.iter().all(u8::is_ascii_whitespace) {
        return Ok(TriggerRequest::default());
    }
    let subject = "the trigger request";
    if payload.len() > MAX_EVENT_BYTES {
        return Err(DecodeError::TooLarge {
            subject: subject.to_owned(),
            bytes: payload.len(),
            limit: MAX_EVENT_BYTES,
        });
    }
    serde_json::from_slice(payload).map_err(|source| DecodeError::Body {
        subject: subject.to_owned(),
        what: "trigger",
        source,
    })
}

struct Body<'a> {
    subject: &'a str,
    payload: &'a [u8],
}

/// The fields every event has, read before the rest so a wrong version is named as such.
#[derive(serde::Deserialize)]
struct Envelope {
    schema_version: u64,
}

impl Body<'_> {
    fn read<T: DeserializeOwned>(&self, what: &'static str) -> Result<T, DecodeError> {
        let body_error = |source| DecodeError::Body {
            subject: self.subject.to_owned(),
            what,
            source,
        };
        let envelope: Envelope = serde_json::from_slice(self.payload).map_err(body_error)?;
        if envelope.schema_version != u64::from(SCHEMA_VERSION) {
            return Err(DecodeError::SchemaVersion {
                subject: self.subject.to_owned(),
                what,
                found: envelope.schema_version,
                expected: SCHEMA_VERSION,
            });
        }
        serde_json::from_slice(self.payload).map_err(body_error)
    }

    fn expect(&self, field: &'static str, found: &str, expected: &str) -> Result<(), DecodeError> {
        if found == expected {
            return Ok(());
        }
        Err(DecodeError::Mismatch {
            subject: self.subject.to_owned(),
            what: "received",
            field,
            found: found.chars().take(120).collect(),
            expected: expected.to_owned(),
        })
    }

    /// A raw payload lives in `etl-raw` under its env, source and digest, and nowhere else.
    fn expect_raw_object(&self, env: &Env, input: &InputRef) -> Result<(), DecodeError> {
        let object = &input.object;
        self.expect("object.bucket", &object.bucket, RAW_BUCKET)?;
        let name = store::raw_object_name(env, &input.source, &object.sha256);
        self.expect("object.name", &object.name, &name)
    }

    fn expect_inputs(&self, env: &Env, inputs: &[InputRef]) -> Result<(), DecodeError> {
        inputs
            .iter()
            .try_for_each(|input| self.expect_raw_object(env, input))
    }
}

/// An event a service publishes: it names its own subject and message id, so no call site builds
/// either. Message ids are deterministic — the same event published twice is one message within
/// the stream's duplicate window — and made only of validated identifiers, so they are always
/// valid header values.
pub trait Publish: Serialize {
    fn subject(&self) -> Subject;
    fn msg_id(&self) -> String;
}

impl Publish for Extracted {
    fn subject(&self) -> Subject {
        Subject::Extracted(self.env.clone(), self.source.clone())
    }

    /// Content and commit: a revert to an earlier file is a new event, not a duplicate; a forced
    /// trigger's id makes a forced re-run one too.
    fn msg_id(&self) -> String {
        let mut id = format!(
            "extracted:{}:{}:{}:{}",
            self.env, self.source, self.object.sha256, self.upstream.commit_sha
        );
        if self.trigger.force
            && let Some(trigger) = &self.trigger.id
        {
            id.push(':');
            id.push_str(trigger.as_str());
        }
        id
    }
}

impl Publish for Transformed {
    fn subject(&self) -> Subject {
        Subject::Transformed(self.env.clone())
    }

    fn msg_id(&self) -> String {
        format!("transformed:{}:{}", self.env, self.run_id)
    }
}

impl Publish for Loaded {
    fn subject(&self) -> Subject {
        Subject::Loaded(self.env.clone())
    }

    fn msg_id(&self) -> String {
        format!("loaded:{}:{}", self.env, self.run_id)
    }
}

impl Publish for Failed {
    fn subject(&self) -> Subject {
        Subject::Failed(self.env.clone(), self.stage)
    }

    fn msg_id(&self) -> String {
        format!("failed:{}:{}:{}", self.env, self.stage.as_str(), self.id())
    }
}

impl Publish for DeadLetter {
    fn subject(&self) -> Subject {
        Subject::Dead(self.env.clone(), self.stage)
    }

    /// One dead letter per message and stage.
    fn msg_id(&self) -> String {
        format!("dead:{}:{}", self.stage.as_str(), self.stream_sequence)
    }
}

impl Publish for Notification {
    fn subject(&self) -> Subject {
        Subject::Notify(self.env.clone())
    }

    // The env is in the id although run ids are derived from it: the stream's de-duplication
    // spans every env, and ids from elsewhere (tests, hand-made events) need not be.
    fn msg_id(&self) -> String {
        format!("notify:{}:{}", self.env, self.run_id)
    }
}

impl Publish for StaleAlert {
    fn subject(&self) -> Subject {
        Subject::Notify(self.env.clone())
    }

    fn msg_id(&self) -> String {
        format!("notify:{}:stale:{}", self.env, self.id())
    }
}

impl Publish for EmailReport {
    fn subject(&self) -> Subject {
        Subject::Notify(self.env.clone())
    }

    fn msg_id(&self) -> String {
        format!("notify:{}:{}:email", self.env, self.about)
    }
}

#[cfg(test)]
mod tests;
