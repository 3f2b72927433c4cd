//! `etl status`: the pipeline as NATS sees it (streams, durable consumers and their lag) and the
//! latest run of each env in PostgreSQL.

use std::process::ExitCode;

use futures::TryStreamExt;
use shared::nats::{ETL_STREAM, NOTIFY_STREAM};

use crate::{Connections, db};

pub async fn run(connections: &Connections) -> anyhow::Result<ExitCode> {
    let client = shared::nats::connect(&connections.nats, "etl-status", &shared::Shutdown::new()).await?;
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
        println!("stream {name}: {} messages, {} bytes", info.state.messages, info.state.bytes);
        let consumers: Vec<_> = stream.consumers().try_collect().await?;
        for consumer in consumers {
            println!(
                "  consumer {:<28} lag {:>5}  in flight {:>3}  redelivered {:>3}",
                consumer.name, consumer.num_pending, consumer.num_ack_pending, consumer.num_redelivered
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
