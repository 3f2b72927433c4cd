//! The few read-only queries the tool makes. The schema is the env's name, validated by [`Env`]
//! to a plain identifier, and quoted all the same.

use chrono::NaiveDate;
use dataset::DailyRow;
use shared::Env;
use tokio_postgres::{Client, NoTls};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/covid";

pub async fn connect(url: &str) -> anyhow::Result<Client> {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .map_err(|err| anyhow::anyhow!("cannot connect to PostgreSQL: {err}"))?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "PostgreSQL connection ended");
        }
    });
    Ok(client)
}

pub async fn schema_exists(client: &Client, env: &Env) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'us_daily')",
            &[&env.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// The stored rows of an env, or none when it has never been loaded.
pub async fn stored_rows(client: &Client, env: &Env) -> anyhow::Result<Vec<DailyRow>> {
    if !schema_exists(client, env).await? {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT date, cases, deaths, recovered, new_cases, new_deaths, new_recovered FROM \"{env}\".us_daily ORDER BY date"
    );
    let rows = client.query(&sql, &[]).await?;
    Ok(rows
        .iter()
        .map(|row| DailyRow {
            date: row.get::<_, NaiveDate>(0),
            cases: row.get(1),
            deaths: row.get(2),
            recovered: row.get(3),
            new_cases: row.get(4),
            new_deaths: row.get(5),
            new_recovered: row.get(6),
        })
        .collect())
}
