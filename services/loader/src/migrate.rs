//! A small migration runner: versioned SQL files under `services/loader/migrations`, applied to
//! an env's schema (named after the env) and recorded in that schema's [`TRACKING_TABLE`].
//!
//! Each env is migrated in one transaction under an advisory lock, so loaders starting together
//! (or a loader meeting a new env twice) neither race on `CREATE SCHEMA` nor apply a file twice.
//! The wait for that lock is bounded by the session's `lock_timeout`; a timeout is transient and
//! the migration is tried again later.

use shared::Env;
use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, GenericClient, Transaction};

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
    Migration {
        version: 3,
        name: "run_order",
        sql: include_str!("../migrations/0003_run_order.sql"),
    },
    Migration {
        version: 4,
        name: "keyed_datasets",
        sql: include_str!("../migrations/0004_keyed_datasets.sql"),
    },
    Migration {
        version: 5,
        name: "run_datasets",
        sql: include_str!("../migrations/0005_run_datasets.sql"),
    },
    Migration {
        version: 6,
        name: "keyed_keys",
        sql: include_str!("../migrations/0006_keyed_keys.sql"),
    },
];

/// The table recording an env's applied migrations. Named for us because `schema_migrations` is
/// what many tools call theirs: in a database shared with another application, a schema holding
/// one must not be taken for an env of ours.
pub const TRACKING_TABLE: &str = "covid_etl_migrations";

/// Where loaders recorded migrations before [`TRACKING_TABLE`]; taken over (rows copied, table
/// dropped) by the next migration of the env, but only when it records migrations of ours.
pub const LEGACY_TRACKING_TABLE: &str = "schema_migrations";

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
         CREATE TABLE IF NOT EXISTS {schema}.{TRACKING_TABLE} (
             version    integer PRIMARY KEY,
             name       text NOT NULL,
             applied_at timestamptz NOT NULL DEFAULT now()
         );"
    ))
    .await
    .map_err(err("create schema"))?;
    if take_over_legacy(&tx, env)
        .await
        .map_err(err("take over schema_migrations"))?
    {
        tracing::info!(
            %env,
            from = LEGACY_TRACKING_TABLE,
            to = TRACKING_TABLE,
            "took over the record of applied migrations"
        );
    }
    let applied: Vec<i32> = tx
        .query(
            &format!("SELECT version FROM {schema}.{TRACKING_TABLE}"),
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
            &format!("INSERT INTO {schema}.{TRACKING_TABLE} (version, name) VALUES ($1, $2)"),
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

/// Moves the rows of `env`'s old-style tracking table into [`TRACKING_TABLE`] and drops it, when
/// it is ours; whether it did. Runs inside the migration's locked transaction, so a concurrent
/// loader sees either the old table or the new rows, never neither.
async fn take_over_legacy(tx: &Transaction<'_>, env: &Env) -> Result<bool, tokio_postgres::Error> {
    if !holds_our_legacy_migrations(tx, env).await? {
        return Ok(false);
    }
    let schema = db::schema(env);
    tx.batch_execute(&format!(
        "INSERT INTO {schema}.{TRACKING_TABLE} (version, name, applied_at)
             SELECT version, name, applied_at FROM {schema}.{LEGACY_TRACKING_TABLE}
             ON CONFLICT (version) DO NOTHING;
         DROP TABLE {schema}.{LEGACY_TRACKING_TABLE};"
    ))
    .await?;
    Ok(true)
}

/// Whether `env`'s schema has a [`LEGACY_TRACKING_TABLE`] that the loader wrote: readable, not
/// empty, and every row one of [`MIGRATIONS`] by version and name (with the `applied_at` our runner
/// recorded). Another tool's table of that name has other columns or other names, and is left
/// alone.
async fn holds_our_legacy_migrations(
    client: &impl GenericClient,
    env: &Env,
) -> Result<bool, tokio_postgres::Error> {
    let schema = db::schema(env);
    let qualified = format!("{schema}.{LEGACY_TRACKING_TABLE}");
    let readable: bool = client
        .query_one(
            "SELECT coalesce(has_table_privilege(to_regclass($1), 'SELECT'), false)",
            &[&qualified],
        )
        .await?
        .get(0);
    if !readable {
        return Ok(false);
    }
    // Whole rows as JSON, so a table of any shape can be read without naming its columns.
    let rows = client
        .query(&format!("SELECT to_jsonb(t) FROM {qualified} t"), &[])
        .await?;
    let ours = |row: &serde_json::Value| {
        let version = row.get("version").and_then(serde_json::Value::as_i64);
        let name = row.get("name").and_then(serde_json::Value::as_str);
        row.get("applied_at").is_some()
            && MIGRATIONS
                .iter()
                .any(|m| Some(i64::from(m.version)) == version && Some(m.name) == name)
    };
    Ok(!rows.is_empty() && rows.iter().all(|row| ours(&row.get(0))))
}

/// The envs that already have a schema of ours: one holding [`TRACKING_TABLE`], or a
/// [`LEGACY_TRACKING_TABLE`] of ours not yet taken over (so that an upgraded loader still migrates
/// every env at start).
pub async fn known_envs(client: &Client) -> Result<Vec<Env>, tokio_postgres::Error> {
    let rows = client
        .query(
            "SELECT table_schema, table_name FROM information_schema.tables
             WHERE table_name IN ($1, $2) ORDER BY table_schema",
            &[&TRACKING_TABLE, &LEGACY_TRACKING_TABLE],
        )
        .await?;
    let mut envs: Vec<Env> = Vec::new();
    for row in &rows {
        let Ok(env) = Env::new(row.get::<_, String>(0)) else {
            continue;
        };
        let ours = row.get::<_, String>(1) == TRACKING_TABLE
            || match holds_our_legacy_migrations(client, &env).await {
                Ok(ours) => ours,
                // Dropped since it was listed: nothing to migrate there.
                Err(err) if is_missing(&err) => false,
                Err(err) => return Err(err),
            };
        if ours && !envs.contains(&env) {
            envs.push(env);
        }
    }
    Ok(envs)
}

fn is_missing(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME
    })
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
