//! `etl runs`: the recent runs of an env, newest first.

use std::process::ExitCode;

use shared::Env;

use crate::Connections;
use crate::db;

pub async fn run(connections: &Connections, env: &Env, limit: i64) -> anyhow::Result<ExitCode> {
    let client = db::connect(&connections.database_url).await?;
    if !db::schema_exists(&client, env).await? {
        println!("env {env} has no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    let sql = format!(
        "SELECT run_id, status, coalesce(trigger->>'kind', ''), \
                coalesce(inserted, 0)::bigint, coalesce(updated, 0)::bigint, coalesce(unchanged, 0)::bigint, \
                coalesce(removed, 0)::bigint, coalesce(revised, 0)::bigint, \
                coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ''), coalesce(error, '') \
         FROM \"{env}\".etl_runs ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST LIMIT $1"
    );
    let rows = client.query(&sql, &[&limit.clamp(1, 1000)]).await?;
    println!(
        "{:<24} {:<9} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  error",
        "run",
        "status",
        "trigger",
        "inserted",
        "updated",
        "unchanged",
        "removed",
        "revised",
        "finished (UTC)"
    );
    for row in rows {
        println!(
            "{:<24} {:<9} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  {}",
            row.get::<_, String>(0),
            row.get::<_, String>(1),
            row.get::<_, String>(2),
            row.get::<_, i64>(3),
            row.get::<_, i64>(4),
            row.get::<_, i64>(5),
            row.get::<_, i64>(6),
            row.get::<_, i64>(7),
            row.get::<_, String>(8),
            row.get::<_, String>(9),
        );
    }
    Ok(ExitCode::SUCCESS)
}
