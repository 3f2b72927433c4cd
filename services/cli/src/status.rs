//! `etl status`: the pipeline as NATS sees it — every running service with its counters (NATS
//! micro-service `STATS`), the streams, each stage's durable consumer and its lag — and the latest
//! run of each env in PostgreSQL.

use std::process::ExitCode;
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use shared::nats::{ETL_STREAM, NOTIFY_STREAM};
use shared::service::Counters;

use crate::{Connections, db};

pub async fn run(connections: &Connections) -> anyhow::Result<ExitCode> {
    let client =
        shared::nats::connect(&connections.nats, "etl-status", &shared::Shutdown::new()).await?;
    print_services(&client).await?;
    let js = async_nats::jetstream::new(client);
    for name in [ETL_STREAM, NOTIFY_STREAM] {
        let mut stream = match js.get_stream(name).await {
            Ok(stream) => stream,
            Err(err) => {
                println!("stream {name}: not available ({err})");
                continue;
            }
        };
        let info = stream.info().await?;
        println!(
            "stream {name}: {} messages, {} bytes",
            info.state.messages, info.state.bytes
        );
        let consumers: Vec<_> = stream.consumers().try_collect().await?;
        for consumer in consumers {
            println!(
                "  consumer {:<28} lag {:>5}  in flight {:>3}  redelivered {:>3}",
                consumer.name,
                consumer.num_pending,
                consumer.num_ack_pending,
                consumer.num_redelivered
            );
        }
    }

    match db::connect(&connections.database_url).await {
        Ok(client) => print_latest_runs(&client).await?,
        Err(err) => println!("PostgreSQL: {err}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn print_latest_runs(client: &tokio_postgres::Client) -> anyhow::Result<()> {
    let schemas = client
        .query(
            "SELECT table_schema FROM information_schema.tables WHERE table_name = 'etl_runs' ORDER BY 1",
            &[],
        )
        .await?;
    for schema in schemas {
        let env: String = schema.get(0);
        let sql = format!(
            "SELECT run_id, status, coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), '') \
             FROM \"{env}\".etl_runs ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST LIMIT 1"
        );
        match client.query_opt(&sql, &[]).await? {
            Some(row) => println!(
                "env {env}: latest run {} {} at {} UTC",
                row.get::<_, String>(0),
                row.get::<_, String>(1),
                row.get::<_, String>(2)
            ),
            None => println!("env {env}: no runs yet"),
        }
    }
    Ok(())
}

/// Asks every micro-service for its stats and prints the answers that arrive within a moment.
async fn print_services(client: &async_nats::Client) -> anyhow::Result<()> {
    let inbox = client.new_inbox();
    let mut replies = client.subscribe(inbox.clone()).await?;
    client
        .publish_with_reply("$SRV.STATS", inbox, "".into())
        .await?;
    client.flush().await?;

    let mut services = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(750);
    while let Ok(Some(message)) = tokio::time::timeout_at(deadline, replies.next()).await {
        if let Ok(stats) = serde_json::from_slice::<async_nats::service::Stats>(&message.payload) {
            services.push(stats);
        }
    }
    services.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    if services.is_empty() {
        println!("services: none answered (is the pipeline running?)");
    }
    for service in services {
        let counters = service
            .endpoints
            .first()
            .and_then(|endpoint| endpoint.data.clone())
            .and_then(|data| serde_json::from_value::<Counters>(data).ok())
            .unwrap_or_default();
        println!(
            "service {:<12} {} v{}  processed {:>5}  failed {:>3}  redelivered {:>3}",
            service.name,
            service.id,
            service.version,
            counters.processed,
            counters.failed,
            counters.redelivered
        );
    }
    Ok(())
}
