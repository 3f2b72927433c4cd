//! What the dashboard's tests share: a schema of their own in the real PostgreSQL (made by the
//! loader's own migrations, through `test_support`, and dropped afterwards), fixture rows, a
//! dashboard started in-process on port 0, and a reader for Server-Sent Events.

mod app;

use chrono::{DateTime, Days, NaiveDate, Utc};
use dashboard::Config;
use shared::Env;
use shared::events::{Trigger, TriggerKind};
use test_support::stack;
use tokio_postgres::types::Json;

pub use app::{SseReader, TestApp, loaded_event};

pub fn date(s: &str) -> NaiveDate {
    s.parse().expect("test dates are valid")
}

/// One `us_daily` row: the type the loader writes and the dashboard reads.
pub use shared::daily::DailyRow as Day;

/// `n` consecutive days from `start` that grow like an epidemic; recovered is reported for the
/// first `recovered_days` days only (as JHU stopped), and NULL after.
pub fn days(start: &str, n: usize, recovered_days: usize) -> Vec<Day> {
    let start = date(start);
    let mut out: Vec<Day> = Vec::with_capacity(n);
    for i in 0..n {
        let cases = (100.0 * 1.12f64.powi(i as i32)).round() as i64;
        let deaths = cases / 40;
        let recovered = (i < recovered_days).then_some(cases / 3);
        let previous = out.last();
        out.push(Day {
            date: start + Days::new(i as u64),
            cases,
            deaths,
            recovered,
            new_cases: Some(cases - previous.map_or(0, |p| p.cases)),
            new_deaths: Some(deaths - previous.map_or(0, |p| p.deaths)),
            new_recovered: match (recovered, previous) {
                (Some(r), Some(p)) => p.recovered.map(|pr| r - pr),
                (Some(r), None) => Some(r),
                (None, _) => None,
            },
        });
    }
    out
}

/// A schema named after a fresh env, dropped (with everything in it) when this is dropped.
pub struct TestDb {
    pub env: Env,
    pub client: tokio_postgres::Client,
    dropped: bool,
}

impl TestDb {
    /// Connects; the schema is not created until [`TestDb::create_schema`].
    pub async fn new() -> Self {
        let env = test_support::unique_env("dash");
        let client = test_support::connect().await;
        Self {
            env,
            client,
            dropped: false,
        }
    }

    /// Creates the env's schema as the loader does, with its own migrations.
    pub async fn create_schema(&self) {
        test_support::migrate(&self.env).await;
    }

    pub fn schema(&self) -> String {
        format!("\"{}\"", self.env)
    }

    /// Lists the keys `states_daily` and `counties_daily` hold in `states_keys` and
    /// `counties_keys` (migration 0006), as a reconcile of the loader does: fixtures
    /// written straight into the tables call this after each change of their keys or dates.
    pub async fn refresh_keys(&self) {
        let s = self.schema();
        self.client
            .batch_execute(&format!(
                "DELETE FROM {s}.states_keys;
                 INSERT INTO {s}.states_keys (state, fips, first_date, last_date)
                 SELECT state, (array_agg(fips ORDER BY date DESC))[1], min(date), max(date)
                 FROM {s}.states_daily GROUP BY state;
                 DELETE FROM {s}.counties_keys;
                 INSERT INTO {s}.counties_keys (state, county, fips, first_date, last_date)
                 SELECT state, county, (array_agg(fips ORDER BY date DESC))[1], min(date), max(date)
                 FROM {s}.counties_daily GROUP BY state, county;"
            ))
            .await
            .expect("the key lists are rebuilt");
    }

    pub async fn insert_days(&self, days: &[Day], run_id: &str) {
        let sql = format!(
            "INSERT INTO {}.us_daily (date, cases, deaths, recovered, new_cases, new_deaths, new_recovered, updated_at, run_id)
             VALUES ($1, $2, $3, $4, $5, $6, $7, now(), $8)",
            self.schema()
        );
        let statement = self.client.prepare(&sql).await.expect("insert prepares");
        for d in days {
            self.client
                .execute(
                    &statement,
                    &[
                        &d.date,
                        &d.cases,
                        &d.deaths,
                        &d.recovered,
                        &d.new_cases,
                        &d.new_deaths,
                        &d.new_recovered,
                        &run_id,
                    ],
                )
                .await
                .expect("day is inserted");
        }
    }

    /// Records a run as the loader would.
    pub async fn insert_run(&self, run: &Run) {
        let sql = format!(
            "INSERT INTO {}.etl_runs (run_id, status, trigger, inputs, inserted, updated, unchanged, removed, revised,
                                      started_at, finished_at, error, stage, kind)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            self.schema()
        );
        self.client
            .execute(
                &sql,
                &[
                    &run.run_id,
                    &run.status,
                    &run.trigger.as_ref().map(Json),
                    &run.inputs,
                    &run.counts[0],
                    &run.counts[1],
                    &run.counts[2],
                    &run.counts[3],
                    &run.counts[4],
                    &run.started_at,
                    &run.finished_at,
                    &run.error,
                    &run.stage,
                    &run.kind,
                ],
            )
            .await
            .expect("run is inserted");
    }

    pub async fn insert_change(
        &self,
        run_id: &str,
        date: NaiveDate,
        field: &str,
        old: Option<i64>,
        new: Option<i64>,
    ) {
        let sql = format!(
            "INSERT INTO {}.us_daily_changes (run_id, date, field, old_value, new_value) VALUES ($1, $2, $3, $4, $5)",
            self.schema()
        );
        self.client
            .execute(&sql, &[&run_id, &date, &field, &old, &new])
            .await
            .expect("change is inserted");
    }

    /// The dashboard's configuration for this env, on a free port.
    pub fn config(&self) -> Config {
        config_for(&self.env, &stack::database_url())
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        if self.dropped {
            return;
        }
        self.dropped = true;
        // Drop runs outside async code (also when a test panics): clean up on a thread of its own.
        let env = self.env.clone();
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(test_support::clean_up(&env));
        })
        .join();
    }
}

pub fn config_for(env: &Env, database_url: &str) -> Config {
    let mut vars = stack::nats_vars(stack::Identity::Dashboard);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0")
        .set("ETL_ENV", env.as_str())
        .set("DATABASE_URL", database_url);
    Config::from_vars(&vars).expect("test configuration is valid")
}

/// A run row for `etl_runs`, as the loader records it.
#[derive(Debug, Clone)]
pub struct Run {
    pub run_id: String,
    pub status: String,
    pub trigger: Option<Trigger>,
    pub inputs: serde_json::Value,
    /// inserted, updated, unchanged, removed, revised
    pub counts: [Option<i64>; 5],
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    pub error: Option<String>,
    /// Where a failed run stopped; `load` for a succeeded one.
    pub stage: String,
    pub kind: Option<String>,
}

impl Run {
    pub fn succeeded(run_id: &str, finished_at: DateTime<Utc>, counts: [i64; 5]) -> Self {
        Self {
            run_id: run_id.to_owned(),
            status: "succeeded".to_owned(),
            trigger: Some(Trigger::new(TriggerKind::Commit)),
            inputs: serde_json::json!([
                {"source": "nyt", "upstream": {"repo": "nytimes/covid-19-data", "path": "us.csv",
                  "commit_sha": format!("{run_id}-nyt-sha"), "commit_time": "2023-03-24T12:00:00Z"},
                 "object": {"bucket": "etl-raw", "name": "x", "sha256": "00", "bytes": 1}},
                {"source": "jhu", "upstream": {"repo": "datasets/covid-19",
                  "path": "data/time-series-19-covid-combined.csv",
                  "commit_sha": format!("{run_id}-jhu-sha"), "commit_time": "2023-03-23T08:30:00Z"},
                 "object": {"bucket": "etl-raw", "name": "y", "sha256": "01", "bytes": 1}}
            ]),
            counts: counts.map(Some),
            started_at: finished_at - chrono::TimeDelta::seconds(3),
            finished_at,
            error: None,
            stage: "load".to_owned(),
            kind: None,
        }
    }

    pub fn failed(run_id: &str, finished_at: DateTime<Utc>, reason: &str) -> Self {
        Self {
            run_id: run_id.to_owned(),
            status: "failed".to_owned(),
            trigger: Some(Trigger::new(TriggerKind::Daily)),
            inputs: serde_json::json!([]),
            counts: [None; 5],
            started_at: finished_at - chrono::TimeDelta::seconds(1),
            finished_at,
            error: Some(reason.to_owned()),
            stage: "transform".to_owned(),
            kind: Some("invalid_data".to_owned()),
        }
    }
}

/// A dashboard over 40 days from 2020-03-01, with recovered reported for the first 30 only.
pub async fn seeded() -> (TestDb, TestApp) {
    let db = TestDb::new().await;
    db.create_schema().await;
    db.insert_days(&days("2020-03-01", 40, 30), "run-1").await;
    let app = TestApp::start(db.config()).await;
    (db, app)
}
