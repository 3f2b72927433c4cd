//! Registration as a NATS micro-service (ADR-32), so `nats micro ls` / `nats micro stats` and
//! `etl status` see every running stage with its counters.

use std::collections::HashMap;
use std::sync::Arc;

use async_nats::Client;
use async_nats::service::{Service, ServiceExt};
use futures::StreamExt;
use serde::{Deserialize, Serialize};

use crate::consumer::Stats;
use crate::shutdown::Shutdown;

/// The counters a service reports, as they appear in `STATS` replies (`data`) and in
/// `svc.<name>.stats` answers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counters {
    pub processed: u64,
    pub failed: u64,
    pub redelivered: u64,
}

impl Counters {
    pub fn of(stats: &Stats) -> Self {
        let (processed, failed, redelivered) = stats.snapshot();
        Self {
            processed,
            failed,
            redelivered,
        }
    }
}

/// The subject of a service's own stats endpoint.
pub fn stats_subject(name: &str) -> String {
    format!("svc.{name}.stats")
}

/// Registers `name` as a micro-service with one endpoint, `stats`, that answers with its
/// [`Counters`]; the same counters are the endpoint's `data` in `$SRV.STATS` replies. `envs` (the
/// env or scope served) goes into the service's metadata. Serves until `shutdown`, then
/// deregisters.
pub async fn register(
    client: &Client,
    name: &str,
    description: &str,
    envs: &str,
    stats: Arc<Stats>,
    shutdown: Shutdown,
) -> Result<tokio::task::JoinHandle<()>, async_nats::Error> {
    let for_handler = stats.clone();
    let metadata = HashMap::from([("envs".to_owned(), envs.to_owned())]);
    let service: Service = client
        .service_builder()
        .description(description)
        .metadata(metadata)
        .stats_handler(move |_endpoint, _stats| serde_json::json!(Counters::of(&for_handler)))
        .start(name, env!("CARGO_PKG_VERSION"))
        .await?;
    let mut endpoint = service
        .endpoint_builder()
        .name("stats")
        .add(stats_subject(name))
        .await?;
    Ok(tokio::spawn(async move {
        loop {
            tokio::select! {
                request = endpoint.next() => {
                    let Some(request) = request else { break };
                    let body = serde_json::to_vec(&Counters::of(&stats)).expect("counters serialize");
                    if let Err(err) = request.respond(Ok(body.into())).await {
                        tracing::debug!(error = %err, "could not answer a stats request");
                    }
                }
                _ = shutdown.wait() => break,
            }
        }
        let _ = endpoint.stop().await;
        if let Err(err) = service.stop().await {
            tracing::debug!(error = %err, "could not deregister the micro-service");
        }
    }))
}

/// Waits for the registration task of [`register`] to deregister after a shutdown; when the
/// service stops for another reason (an error), ends it at once.
pub async fn deregister(registration: tokio::task::JoinHandle<()>, shutdown: &Shutdown) {
    if !shutdown.is_triggered() {
        registration.abort();
    }
    let _ = registration.await;
}
