//! `etl trigger`: ask the extractor of an env to check upstream now, optionally forcing a run.
//! With `--wait`, each stage of the run is shown on stderr as it happens (extracted →
//! transformed → loaded → notified, each with the time since the trigger), then the run's
//! notification on stdout; with `--json`, one document with the stages and their timings. While
//! the extractor downloads, a progress bar per file is drawn on a terminal ([`crate::download_bar`]).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures::StreamExt;
use serde::Serialize;
use shared::Env;
use shared::events::{Notification, RunStatus, TriggerReply, TriggerRequest};
use shared::ids::{RunId, TriggerId};
use shared::message::{self, Event};
use shared::subjects;

use crate::{Connections, say};

#[derive(Debug, Clone)]
pub struct Options {
    pub force: bool,
    pub wait: bool,
    pub timeout: Duration,
    pub json: bool,
}

/// `etl trigger --json`.
#[derive(Debug, Clone, Serialize)]
pub struct TriggerResult {
    pub env: String,
    /// The extractor's answer, one sentence.
    pub message: String,
    /// Sources of which a new payload was extracted.
    pub extracted: Vec<String>,
    pub run_id: Option<String>,
    /// With `--wait`: each stage reached, in order, with the milliseconds since the trigger.
    pub stages: Vec<StageTiming>,
    /// With `--wait`: `succeeded` or `failed`.
    pub status: Option<String>,
    /// With `--wait`: the run's notification (subject, text, counts…).
    pub notification: Option<Notification>,
}

/// One stage of the run, as its event was seen.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StageTiming {
    /// `extracted`, `transformed`, `loaded`, `failed`, `notified`, `emailed`.
    pub stage: String,
    pub elapsed_ms: u64,
    /// One line about it (rows, counts, the failure).
    pub detail: String,
}

pub async fn run(
    connections: &Connections,
    env: &Env,
    options: &Options,
) -> anyhow::Result<ExitCode> {
    let started = Instant::now();
    let timeout = options.timeout;
    let client = connections.connect_nats("etl-trigger").await?;
    // Subscribe before asking, so a fast run's events cannot slip past.
    let mut notifications = client.subscribe(subjects::notify(env)).await?;
    let mut events = client.subscribe(format!("etl.{env}.>")).await?;
    client.flush().await?;

    let request = TriggerRequest {
        force: options.force,
        id: options.force.then(new_trigger_id),
    };
    // The extractor answers once it has checked upstream and downloaded what is new: the
    // downloads are drawn as they go.
    let ask = tokio::time::timeout(
        timeout,
        client.request(subjects::trigger(env), serde_json::to_vec(&request)?.into()),
    );
    let reply = crate::download_bar::show_while(&client, env, options.json, ask)
        .await
        .with_context(|| format!("no answer from the extractor of env {env} within {timeout:?}"))?
        .with_context(|| {
            format!("no extractor answers for env {env} (is it running with ETL_ENV={env}?)")
        })?;
    let reply: TriggerReply = serde_json::from_slice(&reply.payload)
        .context("the extractor's answer is not a trigger reply")?;
    let mut result = TriggerResult {
        env: env.to_string(),
        message: reply.message.clone(),
        extracted: reply.extracted.iter().map(ToString::to_string).collect(),
        run_id: reply.run_id.as_ref().map(ToString::to_string),
        stages: Vec::new(),
        status: None,
        notification: None,
    };
    let finish = |result: &TriggerResult| {
        if options.json {
            crate::output::json(result);
        }
    };
    if !options.json {
        say!("{}", reply.message);
    }
    let run_id = match (&reply.run_id, options.wait) {
        (Some(run_id), true) => run_id.clone(),
        (None, true) => {
            if !options.json {
                say!("no run was started, nothing to wait for");
            }
            finish(&result);
            return Ok(ExitCode::SUCCESS);
        }
        (_, false) => {
            finish(&result);
            return Ok(ExitCode::SUCCESS);
        }
    };
    let mut progress = Progress {
        started,
        quiet: options.json,
        stages: Vec::new(),
    };
    progress.reached(
        "extracted",
        format!("{} (run {run_id})", result.extracted.join(", ")),
    );

    let deadline = tokio::time::Instant::now() + timeout;
    let notification = loop {
        // The server sends a run's events before its notification (the notifier reacts to
        // them), and one connection keeps that order: polling the events first never takes a
        // notification ahead of a stage already received.
        let message = tokio::select! {
            biased;
            message = events.next() => message,
            message = notifications.next() => message,
            _ = tokio::time::sleep_until(deadline) => {
                bail!("run {run_id} was not notified within {timeout:?}")
            }
        };
        let Some(message) = message else {
            bail!("the NATS subscription ended before run {run_id} was notified");
        };
        // Other runs' events, alerts and messages that do not decode are not this run's.
        let event = match message::decode(&message.subject, &message.payload) {
            Ok(event) => event,
            Err(err) => {
                tracing::debug!(error = %err, "skipping a message that does not decode");
                continue;
            }
        };
        if let Some(notification) = progress.see(&event, &run_id) {
            break notification;
        }
    };
    result.stages = progress.stages;
    result.status = Some(status_word(notification.status).to_owned());
    let code = match notification.status {
        RunStatus::Succeeded => ExitCode::SUCCESS,
        RunStatus::Failed => ExitCode::FAILURE,
    };
    if options.json {
        result.notification = Some(notification);
        finish(&result);
    } else {
        say!("\n{}\n\n{}", notification.subject, notification.text);
    }
    Ok(code)
}

/// The stages seen so far; each is printed on stderr as it comes, unless `quiet`.
struct Progress {
    started: Instant,
    quiet: bool,
    stages: Vec<StageTiming>,
}

impl Progress {
    fn reached(&mut self, stage: &str, detail: String) {
        // Both extracted events wake the transformer, and each may announce the run: the
        // stream keeps one (same message id), a plain subscriber sees both.
        if self.stages.iter().any(|seen| seen.stage == stage) {
            return;
        }
        let elapsed = self.started.elapsed();
        if !self.quiet {
            eprintln!("{:>8.1}s  {stage:<12} {detail}", elapsed.as_secs_f64());
        }
        self.stages.push(StageTiming {
            stage: stage.to_owned(),
            elapsed_ms: u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX),
            detail,
        });
    }

    /// Notes `event` if it is a stage of `run_id`; the notification ends the wait.
    fn see(&mut self, event: &Event, run_id: &RunId) -> Option<Notification> {
        match event {
            Event::Transformed(e) if &e.run_id == run_id => self.reached(
                "transformed",
                format!("{} rows, {} to {}", e.rows, e.first_date, e.last_date),
            ),
            Event::Loaded(e) if &e.run_id == run_id => self.reached(
                "loaded",
                format!(
                    "inserted {}, updated {}, unchanged {}, removed {}",
                    e.counts.inserted, e.counts.updated, e.counts.unchanged, e.counts.removed
                ),
            ),
            Event::Failed(e) if e.run_id.as_ref() == Some(run_id) => self.reached(
                "failed",
                format!(
                    "{} {}: {}",
                    e.stage.as_str(),
                    e.kind.as_str(),
                    crate::runs::one_line(&e.reason)
                ),
            ),
            Event::Notification(n) if &n.run_id == run_id => {
                self.reached(
                    "notified",
                    format!("{} (email {})", status_word(n.status), n.email.as_str()),
                );
                return Some((**n).clone());
            }
            _ => {}
        }
        None
    }
}

/// `succeeded` or `failed`, as in `etl_runs`.
pub fn status_word(status: RunStatus) -> &'static str {
    match status {
        RunStatus::Succeeded => "succeeded",
        RunStatus::Failed => "failed",
    }
}

/// A unique id for a forced trigger, so each forced run is a run of its own.
pub fn new_trigger_id() -> TriggerId {
    TriggerId::new(uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid trigger id")
}
