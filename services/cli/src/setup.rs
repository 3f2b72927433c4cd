//! `etl setup`: declares the JetStream streams, object stores and bucket with `NATS_REPLICAS`
//! copies, as the services do, and scales up those that exist with fewer. Scaling changes a
//! stream's configuration, which only the operator's identity may do; JetStream copies the data
//! to the new replicas in place. Run it once after moving a stack onto a cluster.

use std::process::ExitCode;

use serde::Serialize;

use crate::Connections;

#[derive(Debug, Serialize)]
pub struct SetupReport {
    pub replicas: usize,
    /// Every stream behind the pipeline's resources, with its replica count now.
    pub streams: Vec<StreamReplicas>,
    /// What this run scaled up.
    pub scaled: Vec<Scaled>,
}

#[derive(Debug, Serialize)]
pub struct StreamReplicas {
    pub stream: String,
    pub replicas: usize,
}

#[derive(Debug, Serialize)]
pub struct Scaled {
    pub stream: String,
    pub from: usize,
    pub to: usize,
}

pub async fn run(connections: &Connections, json: bool) -> anyhow::Result<ExitCode> {
    let replicas = connections.nats.replicas;
    let client = connections.connect_nats("etl-setup").await?;
    let stores = shared::nats::setup(client, replicas).await?;
    let scaled = shared::nats::scale_up(&stores.js, replicas)
        .await?
        .into_iter()
        .map(|(stream, from, to)| Scaled { stream, from, to })
        .collect();
    let streams = shared::nats::replica_counts(&stores.js)
        .await?
        .into_iter()
        .map(|(stream, replicas)| StreamReplicas { stream, replicas })
        .collect();
    let report = SetupReport {
        replicas,
        streams,
        scaled,
    };
    if json {
        crate::output::json(&report);
    } else {
        for s in &report.scaled {
            crate::output::line(format!(
                "scaled {} from {} to {} replicas",
                s.stream, s.from, s.to
            ));
        }
        for s in &report.streams {
            crate::output::line(format!("{:<18} {} replica(s)", s.stream, s.replicas));
        }
    }
    Ok(ExitCode::SUCCESS)
}
