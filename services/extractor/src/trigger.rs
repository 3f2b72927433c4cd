//! The trigger service: `etl.<env>.trigger` as a NATS micro-service endpoint (request-reply, so
//! it also answers `$SRV.PING` and `$SRV.STATS`). Each request is handed to the worker, which owns
//! the polling state, and its [`TriggerReply`] goes back as JSON.

use async_nats::Client;
use async_nats::service::ServiceExt;
use futures::StreamExt;
use shared::events::{TriggerReply, TriggerRequest};
use shared::{Env, Shutdown, subjects};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// A trigger request on its way to the worker, with where its answer goes.
#[derive(Debug)]
pub struct TriggerCommand {
    pub request: TriggerRequest,
    /// `None`: this extractor is on standby and leaves the answer to the one that polls.
    pub reply: oneshot::Sender<Option<TriggerReply>>,
}

#[derive(Debug, thiserror::Error)]
#[error("could not start the trigger service on {subject}: {source}")]
pub struct ServeError {
    pub subject: String,
    pub source: async_nats::Error,
}

/// Starts answering triggers for `env` until `shutdown`, as the replica `replica`. Every replica
/// of the env's extractor receives each trigger (each is a queue group of its own); only the one
/// that holds the polling lease answers it.
pub async fn serve(
    client: Client,
    env: Env,
    replica: &str,
    commands: mpsc::Sender<TriggerCommand>,
    shutdown: Shutdown,
) -> Result<JoinHandle<()>, ServeError> {
    let subject = subjects::trigger(&env);
    let fail = |source: async_nats::Error| ServeError {
        subject: subject.clone(),
        source,
    };
    let service = client
        .service_builder()
        .description("covid-etl extractor: checks upstream now, or re-runs with force")
        .metadata([("env".to_owned(), env.to_string())].into())
        .queue_group(replica)
        .start("extractor", env!("CARGO_PKG_VERSION"))
        .await
        .map_err(fail)?;
    let mut endpoint = service
        .endpoint_builder()
        .name("trigger")
        .add(subject.clone())
        .await
        .map_err(fail)?;
    tracing::info!(%subject, "answering triggers");
    Ok(tokio::spawn(async move {
        loop {
            let request = tokio::select! {
                request = endpoint.next() => request,
                _ = shutdown.wait() => break,
            };
            let Some(request) = request else { break };
            let Some(reply) = answer(&env, &request.message.payload, &commands, &shutdown).await
            else {
                continue;
            };
            let body = serde_json::to_vec(&reply).expect("replies serialize");
            if let Err(err) = request.respond(Ok(body.into())).await {
                tracing::warn!(error = %err, "could not answer a trigger");
            }
        }
        if let Err(err) = service.stop().await {
            tracing::debug!(error = %err, "trigger service did not stop cleanly");
        }
    }))
}

async fn answer(
    env: &Env,
    payload: &[u8],
    commands: &mpsc::Sender<TriggerCommand>,
    shutdown: &Shutdown,
) -> Option<TriggerReply> {
    let refuse = |message: String| {
        Some(TriggerReply {
            env: env.clone(),
            extracted: Vec::new(),
            run_id: None,
            message,
        })
    };
    // The one decoder: an empty body is a plain "check now"; a bad id or size is refused.
    let request = match shared::message::decode_trigger(payload) {
        Ok(request) => request,
        Err(err) => {
            return refuse(format!(
                "the trigger request is not the JSON expected ({{\"force\": bool, \"id\": string}}): {err}"
            ));
        }
    };
    tracing::info!(force = request.force, id = ?request.id, "trigger received");
    let (reply, answer) = oneshot::channel();
    if commands
        .send(TriggerCommand { request, reply })
        .await
        .is_err()
    {
        return refuse("the extractor is shutting down; nothing was checked".to_owned());
    }
    tokio::select! {
        answer = answer => answer.unwrap_or_else(|_| refuse("the extractor stopped before answering".to_owned())),
        _ = shutdown.wait() => refuse("the extractor is shutting down; nothing was checked".to_owned()),
    }
}
