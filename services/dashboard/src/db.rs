//! Reading the env's schema: a small pool of read-only sessions and one method per question.
//!
//! Every statement is parameterised; the only name spliced into SQL is the schema, which is the
//! validated env (`[a-z][a-z0-9_]*`) quoted as an identifier. A schema or table that does not exist
//! yet (the loader has not run its migrations) reads as empty rather than as an error.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use serde::Serialize;
use shared::postgres::{Database, SessionSettings};
use shared::{Env, daily};
use tokio_postgres::Row;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;

/// Enough for 50 concurrent API clients on a 2-core host without queueing on connections for long.
const POOL_SIZE: usize = 16;
const POOL_WAIT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("no PostgreSQL connection is available: {0}")]
    Unavailable(#[from] deadpool_postgres::PoolError),
    #[error("reading {what} failed: {source}")]
    Query {
        what: &'static str,
        source: tokio_postgres::Error,
    },
}

/// One day of `us_daily`, read with the mapping the loader and `etl` use.
pub use shared::daily::DailyRow;

/// One row of `etl_runs`, as the loader's migrations define it.
#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub run_id: String,
    pub status: Option<String>,
    pub trigger: Option<String>,
    pub inputs: Option<serde_json::Value>,
    pub inserted: Option<i64>,
    pub updated: Option<i64>,
    pub unchanged: Option<i64>,
    pub removed: Option<i64>,
    pub revised: Option<i64>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub error: Option<String>,
    pub stage: Option<String>,
    pub kind: Option<String>,
    /// `us`, `states` or `counties`.
    pub dataset: String,
}

/// One upstream correction from `us_daily_changes`, with when its run finished.
#[derive(Debug, Clone, Serialize)]
pub struct ChangeRow {
    pub run_id: Option<String>,
    pub date: NaiveDate,
    pub field: String,
    pub old_value: Option<i64>,
    pub new_value: Option<i64>,
    pub changed_at: Option<DateTime<Utc>>,
}

/// What is in `us_daily` as a whole.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyStats {
    pub rows: i64,
    pub first_date: Option<NaiveDate>,
    pub last_date: Option<NaiveDate>,
    pub recovered_last_reported: Option<NaiveDate>,
}

/// A cheap summary that changes whenever anything the API shows changes: each load writes an
/// `etl_runs` row, and each changed `us_daily` row either changes the row count or gets a new
/// `updated_at`. Conditional requests compare it before running the real query.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DataVersion {
    pub days: i64,
    pub days_updated_at: Option<DateTime<Utc>>,
    pub runs: i64,
    pub runs_changed_at: Option<DateTime<Utc>>,
    pub changes: i64,
    /// Set when a table is missing (a schema not, or only partly, migrated): then no version can
    /// be trusted, every token is new, and no answer is ever a 304.
    pub unversioned: bool,
}

static UNVERSIONED: AtomicU64 = AtomicU64::new(0);

impl DataVersion {
    /// A stable string form, hashed into ETags.
    pub fn token(&self) -> String {
        if self.unversioned {
            let n = UNVERSIONED.fetch_add(1, Ordering::Relaxed);
            return format!("unversioned:{}:{n}", std::process::id());
        }
        let ts = |t: Option<DateTime<Utc>>| t.map(|t| t.timestamp_micros()).unwrap_or(0);
        format!(
            "{}:{}:{}:{}:{}",
            self.days,
            ts(self.days_updated_at),
            self.runs,
            ts(self.runs_changed_at),
            self.changes
        )
    }

    /// When the data last changed, for `Last-Modified`.
    pub fn last_modified(&self) -> Option<DateTime<Utc>> {
        self.days_updated_at.max(self.runs_changed_at)
    }
}

/// The SQL of each question, with the schema spliced in once.
struct Statements {
    version: String,
    daily: String,
    stats: String,
    runs: String,
    last_success: String,
    changes: String,
}

impl Statements {
    fn new(schema: &str) -> Self {
        // A schema the loader has not migrated to 0005 yet has no `dataset` column: its runs
        // are all `us`.
        let dataset = "coalesce(to_jsonb(r)->>'dataset', 'us')";
        let runs_columns = format!(
            "run_id, status, trigger->>'kind', inputs, \
            inserted, updated, unchanged, removed, revised, started_at, finished_at, error, stage, \
            kind, {dataset}"
        );
        Self {
            version: format!(
                "SELECT (SELECT count(*) FROM {schema}.us_daily), \
                        (SELECT max(updated_at) FROM {schema}.us_daily), \
                        (SELECT count(*) FROM {schema}.etl_runs), \
                        (SELECT max(greatest(started_at, finished_at)) FROM {schema}.etl_runs), \
                        (SELECT count(*) FROM {schema}.us_daily_changes)"
            ),
            daily: format!(
                "SELECT {columns} FROM {schema}.us_daily \
                 WHERE ($1::date IS NULL OR date >= $1) AND ($2::date IS NULL OR date <= $2) \
                 ORDER BY date LIMIT $3",
                columns = daily::COLUMNS
            ),
            stats: format!(
                "SELECT count(*), min(date), max(date), max(date) FILTER (WHERE recovered IS NOT NULL) \
                 FROM {schema}.us_daily"
            ),
            runs: format!(
                "SELECT {runs_columns} FROM {schema}.etl_runs r \
                 ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST, run_id LIMIT $1"
            ),
            last_success: format!(
                "SELECT {runs_columns} FROM {schema}.etl_runs r \
                 WHERE status = 'succeeded' AND {dataset} = 'us' \
                 ORDER BY finished_at DESC NULLS LAST, run_id LIMIT 1"
            ),
            // Ordered by when the run finished.
            changes: format!(
                "SELECT c.run_id, c.date, c.field, c.old_value, c.new_value, r.finished_at AS at \
                 FROM {schema}.us_daily_changes c LEFT JOIN {schema}.etl_runs r ON r.run_id = c.run_id \
                 ORDER BY at DESC NULLS LAST, c.date DESC, c.field LIMIT $1"
            ),
        }
    }
}

#[derive(Clone)]
pub struct Db {
    pool: Pool,
    sql: std::sync::Arc<Statements>,
}

impl Db {
    /// Builds the pool; no connection is made until the first query, so the dashboard starts (and
    /// reports itself not ready) while PostgreSQL is down.
    ///
    /// `database` normally comes from [`Config::database`](crate::config::Config::database) with the
    /// configured timeouts; any it lacks get the dashboard's defaults, so no session of the pool
    /// waits on a lock or a statement without bound.
    pub fn new(database: Database, env: &Env) -> Self {
        let Database {
            config: mut pg,
            tls,
        } = database;
        SessionSettings::READER.apply(&mut pg);
        // Read-only sessions even if the role could write, and UTC timestamps whatever the
        // server's default. Appended last, so they win over the URL's options: both are
        // invariants of the dashboard, not preferences.
        let mut options = pg.get_options().map(str::to_owned).unwrap_or_default();
        options.push_str(" -c default_transaction_read_only=on -c TimeZone=UTC");
        pg.options(options.trim());
        pg.application_name("dashboard");
        pg.connect_timeout(Duration::from_secs(5));
        let manager = Manager::from_config(
            pg,
            tls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(POOL_SIZE)
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(POOL_WAIT))
            .create_timeout(Some(Duration::from_secs(5)))
            .recycle_timeout(Some(Duration::from_secs(5)))
            .build()
            .expect("a runtime is given, so building the pool cannot fail");
        Self {
            pool,
            sql: std::sync::Arc::new(Statements::new(&quote_ident(env.as_str()))),
        }
    }

    /// Whether PostgreSQL answers.
    pub async fn ping(&self) -> Result<(), DbError> {
        let client = self.pool.get().await?;
        client
            .simple_query("SELECT 1")
            .await
            .map_err(|source| DbError::Query {
                what: "ping",
                source,
            })?;
        Ok(())
    }

    pub async fn version(&self) -> Result<DataVersion, DbError> {
        let Some(rows) = self
            .query_or_missing("the data version", &self.sql.version, &[])
            .await?
        else {
            return Ok(DataVersion {
                unversioned: true,
                ..DataVersion::default()
            });
        };
        Ok(rows
            .first()
            .map_or_else(DataVersion::default, |row| DataVersion {
                days: row.get(0),
                days_updated_at: row.get(1),
                runs: row.get(2),
                runs_changed_at: row.get(3),
                changes: row.get(4),
                unversioned: false,
            }))
    }

    /// Days in `[from, to]` (either end open), at most `limit`, oldest first.
    pub async fn daily(
        &self,
        from: Option<NaiveDate>,
        to: Option<NaiveDate>,
        limit: i64,
    ) -> Result<Vec<DailyRow>, DbError> {
        let rows = self
            .query("us_daily", &self.sql.daily, &[&from, &to, &limit])
            .await?;
        rows.iter()
            .map(DailyRow::from_row)
            .collect::<Result<_, _>>()
            .map_err(|source| DbError::Query {
                what: "us_daily",
                source,
            })
    }

    pub async fn stats(&self) -> Result<DailyStats, DbError> {
        let rows = self
            .query("us_daily statistics", &self.sql.stats, &[])
            .await?;
        Ok(rows
            .first()
            .map_or_else(DailyStats::default, |row| DailyStats {
                rows: row.get(0),
                first_date: row.get(1),
                last_date: row.get(2),
                recovered_last_reported: row.get(3),
            }))
    }

    /// The latest runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<RunRow>, DbError> {
        let rows = self.query("etl_runs", &self.sql.runs, &[&limit]).await?;
        Ok(rows.iter().map(run_row).collect())
    }

    pub async fn last_success(&self) -> Result<Option<RunRow>, DbError> {
        let rows = self
            .query("the last successful run", &self.sql.last_success, &[])
            .await?;
        Ok(rows.first().map(run_row))
    }

    /// The latest upstream corrections, newest run first.
    pub async fn changes(&self, limit: i64) -> Result<Vec<ChangeRow>, DbError> {
        let rows = self
            .query("us_daily_changes", &self.sql.changes, &[&limit])
            .await?;
        Ok(rows
            .iter()
            .map(|row| ChangeRow {
                run_id: row.get(0),
                date: row.get(1),
                field: row.get(2),
                old_value: row.get(3),
                new_value: row.get(4),
                changed_at: row.get(5),
            })
            .collect())
    }

    /// Runs `sql`; a schema or table that does not exist yet gives no rows.
    pub(crate) async fn query(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        Ok(self
            .query_or_missing(what, sql, params)
            .await?
            .unwrap_or_default())
    }

    /// Runs `sql`; `None` when a schema or table it reads does not exist yet.
    pub(crate) async fn query_or_missing(
        &self,
        what: &'static str,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Option<Vec<Row>>, DbError> {
        let client = self.pool.get().await?;
        let result = match client.prepare_cached(sql).await {
            Ok(statement) => client.query(&statement, params).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(rows) => Ok(Some(rows)),
            Err(err) if is_missing_relation(&err) => {
                tracing::debug!(
                    what,
                    "schema or table does not exist yet; reading it as empty"
                );
                Ok(None)
            }
            Err(source) => Err(DbError::Query { what, source }),
        }
    }
}

fn run_row(row: &Row) -> RunRow {
    RunRow {
        run_id: row.get(0),
        status: row.get(1),
        trigger: row.get(2),
        inputs: row.get(3),
        inserted: row.get(4),
        updated: row.get(5),
        unchanged: row.get(6),
        removed: row.get(7),
        revised: row.get(8),
        started_at: row.get(9),
        finished_at: row.get(10),
        error: row.get(11),
        stage: row.get(12),
        kind: row.get(13),
        dataset: row.get(14),
    }
}

fn is_missing_relation(err: &tokio_postgres::Error) -> bool {
    err.code().is_some_and(|code| {
        *code == SqlState::UNDEFINED_TABLE || *code == SqlState::INVALID_SCHEMA_NAME
    })
}

/// `name` as a quoted SQL identifier.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_are_quoted_and_embedded_quotes_doubled() {
        assert_eq!(quote_ident("prod"), "\"prod\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }

    #[test]
    fn the_version_token_changes_with_any_part() {
        let base = DataVersion::default();
        let more_runs = DataVersion {
            runs: 1,
            ..DataVersion::default()
        };
        let updated = DataVersion {
            days_updated_at: Some(Utc::now()),
            ..DataVersion::default()
        };
        assert_ne!(base.token(), more_runs.token());
        assert_ne!(base.token(), updated.token());
        assert_eq!(base.last_modified(), None);
        let unknown = DataVersion {
            unversioned: true,
            ..DataVersion::default()
        };
        assert_ne!(
            unknown.token(),
            unknown.token(),
            "an unmigrated schema never matches"
        );
        assert_eq!(updated.last_modified(), updated.days_updated_at);
    }
}
