//! A small migration runner: versioned SQL files under `services/loader/migrations`, applied to
//! an env's schema (named after the env) and recorded in that schema's `schema_migrations`.
//!
//! Each env is migrated in one transaction under an advisory lock, so loaders starting together
//! (or a loader meeting a new env twice) neither race on `CREATE SCHEMA` nor apply a file twice.

use shared::Env;
use tokio_postgres::Client;

use crate::db;

/// One schema change, applied once per env schema.
#[derive(Debug, Clone, Copy)]
pub struct Migration {
    pub version: i32,
    pub name: &'static str,
    pub sql: &'static str,
}

/// Every migration, in order. Never edit one that has shipped: add the next version.
pub const MIGRATIONS: &[Migration] = &[
    Migration {
        version: 1,
        name: "init",
        sql: include_str!("../migrations/0001_init.sql"),
    },
    Migration {
        version: 2,
        name: "reader_grants",
        sql: include_str!("../migrations/0002_reader_grants.sql"),
    },
];

#[derive(Debug, thiserror::Error)]
#[error("could not migrate schema {env} (step: {step}): {source}")]
pub struct MigrateError {
    pub env: Env,
    pub step: &'static str,
    pub source: tokio_postgres::Error,
}

impl MigrateError {
    pub fn is_transient(&self) -> bool {
        db::is_transient(&self.source)
    }
}

/// Brings `env`'s schema up to date; returns the versions it applied (empty when none were due).
pub async fn migrate(client: &mut Client, env: &Env) -> Result<Vec<i32>, MigrateError> {
    let err = |step: &'static str| {
        move |source| MigrateError {
            env: env.clone(),
            step,
            source,
        }
    };
    let schema = db::schema(env);
    let tx = client.transaction().await.map_err(err("begin"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&db::lock_key("migrate", env)],
    )
    .await
    .map_err(err("lock"))?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {schema};
         CREATE TABLE IF NOT EXISTS {schema}.schema_migrations (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(err("create schema"))?;
    let applied: Vec<i32> = tx
        .query(
            &format!("SELECT version FROM {schema}.schema_migrations"),
            &[],
        )
        .await
        .map_err(err("read applied versions"))?
        .iter()
        .map(|row| row.get(0))
        .collect();

    let mut done = Vec::new();
    for migration in MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)) {
        // SET LOCAL lasts until the end of this transaction, so the files can name tables plainly.
        tx.batch_execute(&format!(
            "SET LOCAL search_path TO {schema}; {}",
            migration.sql
        ))
        .await
        .map_err(err(migration.name))?;
        tx.execute(
            &format!("INSERT INTO {schema}.schema_migrations (version, name) VALUES ($1, $2)"),
            &[&migration.version, &migration.name],
        )
        .await
        .map_err(err("record version"))?;
        done.push(migration.version);
    }
    tx.commit().await.map_err(err("commit"))?;
    if !done.is_empty() {
        tracing::info!(%env, versions = ?done, "applied migrations");
    }
    Ok(done)
}

/// The envs that already have a schema of ours (one holding `schema_migrations`).
pub async fn known_envs(client: &Client) -> Result<Vec<Env>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT table_schema FROM information_schema.tables
             WHERE table_name = 'schema_migrations' ORDER BY table_schema",
            &[],
        )
        .await?;
    Ok(rows
        .iter()
        .filter_map(|row| Env::new(row.get::<_, String>(0)).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_increase_without_gaps() {
        for (i, migration) in MIGRATIONS.iter().enumerate() {
            assert_eq!(migration.version, i as i32 + 1, "{}", migration.name);
        }
    }
}
