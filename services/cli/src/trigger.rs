//! `etl trigger`: ask the extractor of an env to check upstream now, optionally forcing a run,
//! and with `--wait` print the run's notification.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use futures::StreamExt;
use shared::Env;
use shared::events::{RunStatus, TriggerReply, TriggerRequest};
use shared::ids::TriggerId;
use shared::message::{self, Event};
use shared::subjects;

use crate::Connections;

pub async fn run(
    connections: &Connections,
    env: &Env,
    force: bool,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    let client = connections.connect_nats("etl-trigger").await?;
    // Subscribe before asking, so a fast run's notification cannot slip past.
    let mut notifications = client.subscribe(subjects::notify(env)).await?;

    let request = TriggerRequest {
        force,
        id: force.then(new_trigger_id),
    };
    let reply = tokio::time::timeout(
        timeout,
        client.request(subjects::trigger(env), serde_json::to_vec(&request)?.into()),
    )
    .await
    .with_context(|| format!("no answer from the extractor of env {env} within {timeout:?}"))?
    .with_context(|| {
        format!("no extractor answers for env {env} (is it running with ETL_ENV={env}?)")
    })?;
    let reply: TriggerReply = serde_json::from_slice(&reply.payload)
        .context("the extractor's answer is not a trigger reply")?;
    println!("{}", reply.message);

    if !wait {
        return Ok(ExitCode::SUCCESS);
    }
    let Some(run_id) = reply.run_id else {
        println!("no run was started, nothing to wait for");
        return Ok(ExitCode::SUCCESS);
    };
    println!("waiting for run {run_id} …");
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let message = match tokio::time::timeout_at(deadline, notifications.next()).await {
            Ok(Some(message)) => message,
            Ok(None) => bail!("the NATS subscription ended before run {run_id} was notified"),
            Err(_) => bail!("run {run_id} was not notified within {timeout:?}"),
        };
        // Alerts, email reports and messages of other runs are not the answer.
        let notification = match message::decode(&message.subject, &message.payload) {
            Ok(Event::Notification(notification)) if notification.run_id == run_id => notification,
            Ok(_) => continue,
            Err(err) => {
                tracing::debug!(error = %err, "skipping a message that does not decode");
                continue;
            }
        };
        println!("{}\n\n{}", notification.subject, notification.text);
        return Ok(match notification.status {
            RunStatus::Succeeded => ExitCode::SUCCESS,
            RunStatus::Failed => ExitCode::FAILURE,
        });
    }
}

/// A unique id for a forced trigger, so each forced run is a run of its own.
pub fn new_trigger_id() -> TriggerId {
    TriggerId::new(uuid::Uuid::new_v4().to_string()).expect("a UUID is a valid trigger id")
}
