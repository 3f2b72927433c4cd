//! The one settle step: a handler's classified result becomes ack, retry-with-delay, or
//! report-and-reject.
//!
//! A handler returns `Ok(())` when its work is durable, or a [`Failure`] saying what kind of
//! failure it was and whether it may pass by itself. [`decide`] picks what happens; for a message
//! that is given up on, [`Settle::give_up`] publishes the failure on `etl.<env>.failed.<stage>`
//! (once per message: its id is derived from the message's stream sequence) and, when the kind
//! calls for it, the message's [`DeadLetter`] on `etl.<env>.dead.<stage>`. Only then is the
//! message terminated, so no failure is ever silent.

use std::time::Duration;

use async_nats::jetstream;
use chrono::Utc;

use crate::env::Env;
use crate::events::{
    DeadLetter, Extracted, Failed, FailureKind, InputRef, SCHEMA_VERSION, Stage, Trigger,
};
use crate::ids::RunId;
use crate::message::Event;
use crate::nats::{self, NatsError, backoff};
use crate::source::{Dataset, Source};

/// Why a handler could not finish a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub kind: FailureKind,
    /// One human sentence naming what, where and why.
    pub reason: String,
    /// May pass by itself (a server unavailable, a lock held): deliver again while deliveries
    /// remain. Otherwise the same message would fail the same way: report it now.
    pub transient: bool,
    /// The earliest next delivery; by default it backs off with the number of deliveries.
    pub retry_after: Option<Duration>,
    /// The run the message was about, when the handler knows better than the message. Boxed:
    /// every handler returns `Result<(), Failure>`, and the context is rarely there.
    pub run: Option<Box<RunContext>>,
}

impl Failure {
    pub fn transient(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            transient: true,
            retry_after: None,
            run: None,
        }
    }

    pub fn permanent(kind: FailureKind, reason: impl Into<String>) -> Self {
        Self {
            kind,
            reason: reason.into(),
            transient: false,
            retry_after: None,
            run: None,
        }
    }

    pub fn retry_after(mut self, delay: Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    pub fn for_run(mut self, run: RunContext) -> Self {
        self.run = Some(Box::new(run));
        self
    }
}

/// What a failure report says about the run the message was about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunContext {
    pub dataset: Dataset,
    pub run_id: Option<RunId>,
    pub inputs: Vec<InputRef>,
    pub trigger: Option<Trigger>,
    pub source: Option<Source>,
}

impl RunContext {
    /// What the event itself tells about its run.
    pub fn of(event: &Event) -> Self {
        match event {
            Event::Extracted(e) => Self::of_extracted(e),
            Event::Transformed(e) => Self {
                dataset: e.dataset.clone(),
                run_id: Some(e.run_id.clone()),
                inputs: e.inputs.clone(),
                trigger: Some(e.trigger.clone()),
                source: None,
            },
            Event::Loaded(e) => Self {
                dataset: e.dataset.clone(),
                run_id: Some(e.run_id.clone()),
                inputs: e.inputs.clone(),
                trigger: Some(e.trigger.clone()),
                source: None,
            },
            Event::Failed(e) => Self {
                dataset: e.dataset.clone(),
                run_id: e.run_id.clone(),
                inputs: e.inputs.clone(),
                trigger: e.trigger.clone(),
                source: e.source.clone(),
            },
            Event::Dead(_)
            | Event::Notification(_)
            | Event::StaleAlert(_)
            | Event::EmailReport(_) => Self::default(),
        }
    }

    pub fn of_extracted(event: &Extracted) -> Self {
        Self {
            dataset: event.dataset.clone(),
            run_id: None,
            inputs: vec![event.input()],
            trigger: Some(event.trigger.clone()),
            source: Some(event.source.clone()),
        }
    }
}

/// What becomes of a delivered message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    Ack,
    /// Deliver again after the delay.
    Retry(Duration),
    /// Report it (and maybe dead-letter it), then never deliver it again.
    GiveUp(Failure),
}

/// The decision for a handler's result at delivery number `delivered` (1 on the first).
pub fn decide(result: Result<(), Failure>, delivered: u64, last_attempt: bool) -> Decision {
    match result {
        Ok(()) => Decision::Ack,
        Err(failure) if failure.transient && !last_attempt => Decision::Retry(
            failure
                .retry_after
                .unwrap_or_else(|| retry_delay(delivered)),
        ),
        Err(mut failure) => {
            if failure.transient {
                failure.reason =
                    format!("gave up after {delivered} deliveries: {}", failure.reason);
            }
            Decision::GiveUp(failure)
        }
    }
}

/// Backoff between deliveries: 1 s, 2 s, 4 s … up to a minute, jittered.
pub fn retry_delay(delivered: u64) -> Duration {
    let attempt = u32::try_from(delivered).unwrap_or(u32::MAX);
    backoff(attempt, Duration::from_secs(1), Duration::from_secs(60))
}

/// The message being given up on, as the settle step needs it.
#[derive(Debug)]
pub struct GivenUp<'a> {
    pub stage: Stage,
    pub consumer: &'a str,
    pub subject: &'a str,
    /// The subject's env; `None` when it names no valid env.
    pub env: Option<&'a Env>,
    /// The decoded event, when it could be decoded.
    pub event: Option<&'a Event>,
    pub payload: &'a [u8],
    pub stream_sequence: u64,
    pub delivered: u64,
}

/// Reports a message given up on. `Err` means a report could not be published: the caller
/// delivers the message again rather than let the failure go unseen.
pub async fn give_up(
    js: &jetstream::Context,
    message: &GivenUp<'_>,
    failure: &Failure,
) -> Result<(), NatsError> {
    tracing::warn!(
        stage = message.stage.as_str(),
        subject = message.subject,
        sequence = message.stream_sequence,
        kind = failure.kind.as_str(),
        reason = %failure.reason,
        "giving up on a message"
    );
    if let Some(failed) = failed_event(message, failure) {
        nats::publish(js, &failed).await?;
    }
    if failure.transient || failure.kind.is_dead_letter() {
        nats::publish(js, &dead_letter(message, failure)).await?;
    }
    Ok(())
}

/// The `failed` event for a message given up on, if one is due: never for a message whose env is
/// unknown (there is no one to tell), nor for a failure report of this very stage, which would
/// otherwise report its own failure in a loop.
fn failed_event(message: &GivenUp<'_>, failure: &Failure) -> Option<Failed> {
    let env = message.env?;
    if let Some(Event::Failed(reported)) = message.event
        && reported.stage == message.stage
    {
        return None;
    }
    let run = match (&failure.run, message.event) {
        (Some(run), _) => (**run).clone(),
        (None, Some(event)) => RunContext::of(event),
        (None, None) => RunContext::default(),
    };
    Some(Failed {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: run.dataset,
        run_id: run.run_id,
        stage: message.stage,
        kind: failure.kind,
        reason: failure.reason.clone(),
        inputs: run.inputs,
        trigger: run.trigger,
        source: run.source,
        // The message's place in the stream: every redelivery reports the same failure.
        cause: Some(format!("message:{}", message.stream_sequence)),
        failed_at: Utc::now(),
    })
}

fn dead_letter(message: &GivenUp<'_>, failure: &Failure) -> DeadLetter {
    DeadLetter {
        schema_version: SCHEMA_VERSION,
        env: message.env.cloned(),
        stage: message.stage,
        consumer: message.consumer.to_owned(),
        subject: message.subject.chars().take(256).collect(),
        stream_sequence: message.stream_sequence,
        delivered: message.delivered,
        kind: failure.kind,
        reason: failure.reason.clone(),
        payload_bytes: message.payload.len() as u64,
        payload_preview: DeadLetter::preview(message.payload),
        dead_at: Utc::now(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_acknowledged() {
        assert_eq!(decide(Ok(()), 1, false), Decision::Ack);
    }

    #[test]
    fn a_transient_failure_is_retried_while_deliveries_remain() {
        let failure = Failure::transient(FailureKind::Unavailable, "PostgreSQL is down")
            .retry_after(Duration::from_secs(7));
        assert_eq!(
            decide(Err(failure), 3, false),
            Decision::Retry(Duration::from_secs(7))
        );
    }

    #[test]
    fn a_transient_failure_on_the_last_delivery_is_given_up_and_says_so() {
        let failure = Failure::transient(FailureKind::Unavailable, "PostgreSQL is down");
        let Decision::GiveUp(given_up) = decide(Err(failure), 10, true) else {
            panic!("not given up");
        };
        assert_eq!(given_up.kind, FailureKind::Unavailable);
        assert!(
            given_up.reason.starts_with("gave up after 10 deliveries"),
            "{}",
            given_up.reason
        );
    }

    #[test]
    fn a_permanent_failure_is_given_up_at_once() {
        let failure = Failure::permanent(FailureKind::MissingObject, "gone");
        assert!(matches!(
            decide(Err(failure), 1, false),
            Decision::GiveUp(f) if f.reason == "gone"
        ));
    }

    fn given_up<'a>(env: Option<&'a Env>, event: Option<&'a Event>) -> GivenUp<'a> {
        GivenUp {
            stage: Stage::Load,
            consumer: "loader-all",
            subject: "etl.prod.transformed",
            env,
            event,
            payload: b"{not json",
            stream_sequence: 42,
            delivered: 1,
        }
    }

    #[test]
    fn a_failure_report_is_the_same_for_every_delivery_of_a_message() {
        let env = Env::prod();
        let failure = Failure::permanent(FailureKind::Malformed, "not JSON");
        let first = failed_event(&given_up(Some(&env), None), &failure).unwrap();
        let again = failed_event(&given_up(Some(&env), None), &failure).unwrap();
        assert_eq!(first.id(), again.id());
        assert_eq!(first.kind, FailureKind::Malformed);
    }

    #[test]
    fn a_message_without_a_valid_env_is_dead_lettered_but_not_reported() {
        let failure = Failure::permanent(FailureKind::Malformed, "bad env");
        assert!(failed_event(&given_up(None, None), &failure).is_none());
        let dead = dead_letter(&given_up(None, None), &failure);
        assert_eq!(dead.env, None);
        assert_eq!(dead.payload_preview, "{not json");
        assert_eq!(dead.stream_sequence, 42);
    }
}
