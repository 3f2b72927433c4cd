//! One run applied to a real PostgreSQL, directly through `loader::apply::apply_run`; each test
//! works in a schema of its own.

use std::time::Instant;

use crate::support::*;
use chrono::Duration;
use loader::apply::{Applied, RunToLoad, apply_run};
use loader::error::LoadError;
use loader::{db, migrate};
use shared::events::{Counts, FailureKind, Field, Loaded, MAX_CORRECTIONS_IN_EVENT, RunOrder};
use shared::ids::{Digest, RunId};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const SHARE: f64 = 0.05;

async fn fresh() -> (Client, shared::Env) {
    let mut client = connect().await;
    let env = unique_env("load");
    migrate::migrate(&mut client, &env).await.unwrap();
    (client, env)
}

fn run(env: &shared::Env, tag: &str, rows: &[dataset::DailyRow]) -> RunToLoad {
    RunToLoad {
        transformed: transformed(env, tag, rows, no_object(env)),
        rows: rows.to_vec(),
        started_at: now(),
        transformed_at: now(),
        timings: vec![],
    }
}

async fn load(client: &mut Client, run: &RunToLoad) -> Box<Loaded> {
    match apply_run(client, run, SHARE).await.unwrap() {
        Applied::Loaded(loaded) => loaded,
        other => panic!("expected the run to load, got {other:?}"),
    }
}

#[tokio::test]
async fn migrations_are_idempotent_even_when_run_concurrently() {
    let env = unique_env("load");
    let (mut a, mut b) = (connect().await, connect().await);
    let (first, second) = tokio::join!(
        migrate::migrate(&mut a, &env),
        migrate::migrate(&mut b, &env)
    );
    let mut applied = [first.unwrap(), second.unwrap()];
    applied.sort();
    let all: Vec<i32> = migrate::MIGRATIONS.iter().map(|m| m.version).collect();
    assert_eq!(
        applied,
        [vec![], all],
        "exactly one of them applies the migrations"
    );
    assert_eq!(
        migrate::migrate(&mut a, &env).await.unwrap(),
        Vec::<i32>::new()
    );
    let tables: i64 = a
        .query_one(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = $1
             AND table_name IN ('us_daily', 'us_daily_changes', 'etl_runs', $2)",
            &[&env.as_str(), &migrate::TRACKING_TABLE],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 4);
    assert!(migrate::known_envs(&a).await.unwrap().contains(&env));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_first_run_inserts_every_date_and_records_itself() {
    let (mut client, env) = fresh().await;
    let data = rows(1, &growing(5));
    let run = run(&env, "a", &data);
    let loaded = load(&mut client, &run).await;

    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 5,
            updated: 0,
            unchanged: 0,
            removed: 0,
            revised: 0
        }
    );
    assert_eq!((loaded.rows, loaded.corrections_total), (5, 0));
    assert_eq!(db::stored_rows(&client, &env).await.unwrap(), data);
    let names: Vec<&str> = loaded.timings.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "transform.read",
            "transform.transform",
            "load.lock",
            "load.diff",
            "load.copy",
            "load.apply"
        ]
    );

    let row = client
        .query_one(
            &format!(
                "SELECT status, stage, inserted, unchanged, inputs, trigger->>'kind', error, duration_ms,
                        finished_at >= started_at
                 FROM \"{env}\".etl_runs WHERE run_id = $1"
            ),
            &[&loaded.run_id.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, String>(1), "load");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (5, 0));
    let inputs: serde_json::Value = row.get(4);
    assert_eq!(
        inputs[0]["upstream"]["commit_sha"],
        commit_of("nyt-a").as_str()
    );
    assert_eq!(inputs[1]["object"]["sha256"], Digest::of(b"jhu-a").as_str());
    assert_eq!(row.get::<_, String>(5), "commit");
    assert_eq!(row.get::<_, Option<String>>(6), None);
    assert!(row.get::<_, i64>(7) >= 0);
    assert!(row.get::<_, bool>(8));
    drop_schema(&env).await;
}

#[tokio::test]
async fn revising_an_old_day_updates_it_and_the_next_day_and_records_the_correction() {
    let (mut client, env) = fresh().await;
    let before = rows(1, &growing(6));
    load(&mut client, &run(&env, "a", &before)).await;

    let mut after = before.clone();
    after[2].cases += 40; // upstream corrected day 3's cumulative cases
    let after = with_deltas(&after);
    let loaded = load(&mut client, &run(&env, "b", &after)).await;

    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 0,
            updated: 2,
            unchanged: 4,
            removed: 0,
            revised: 1
        }
    );
    assert_eq!(loaded.corrections.len(), 1);
    let c = &loaded.corrections[0];
    assert_eq!(
        (c.date, c.field, c.old, c.new),
        (
            day(3),
            Field::Cases,
            Some(before[2].cases),
            Some(before[2].cases + 40)
        )
    );
    assert_eq!(db::stored_rows(&client, &env).await.unwrap(), after);

    let changes = client
        .query(
            &format!(
                "SELECT run_id, date, field, old_value, new_value FROM \"{env}\".us_daily_changes"
            ),
            &[],
        )
        .await
        .unwrap();
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].get::<_, String>(0), loaded.run_id.as_str());
    assert_eq!(changes[0].get::<_, chrono::NaiveDate>(1), day(3));
    assert_eq!(changes[0].get::<_, String>(2), "cases");
    assert_eq!(changes[0].get::<_, Option<i64>>(3), Some(before[2].cases));
    assert_eq!(
        changes[0].get::<_, Option<i64>>(4),
        Some(before[2].cases + 40)
    );

    let touched: Vec<chrono::NaiveDate> = client
        .query(
            &format!("SELECT date FROM \"{env}\".us_daily WHERE run_id = $1 ORDER BY date"),
            &[&loaded.run_id.as_str()],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        touched,
        [day(3), day(4)],
        "only the revised day and the next one change"
    );
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_new_day_is_inserted_and_a_departed_day_removed() {
    let (mut client, env) = fresh().await;
    let before = rows(1, &growing(21));
    load(&mut client, &run(&env, "a", &before)).await;

    // The last day leaves (1 of 21 stored dates, under 5 %), and nothing else changes.
    let after = &before[..20];
    let loaded = load(&mut client, &run(&env, "b", after)).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 0,
            updated: 0,
            unchanged: 20,
            removed: 1,
            revised: 0
        }
    );

    let next = rows(1, &growing(22));
    let loaded = load(&mut client, &run(&env, "c", &next)).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 2,
            updated: 0,
            unchanged: 20,
            removed: 0,
            revised: 0
        }
    );
    assert_eq!(db::stored_rows(&client, &env).await.unwrap(), next);
    drop_schema(&env).await;
}

#[tokio::test]
async fn an_unchanged_republish_changes_no_row() {
    let (mut client, env) = fresh().await;
    let data = rows(1, &growing(8));
    load(&mut client, &run(&env, "a", &data)).await;
    let before = snapshot(&client, &env).await;

    let loaded = load(&mut client, &run(&env, "b", &data)).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 0,
            updated: 0,
            unchanged: 8,
            removed: 0,
            revised: 0
        }
    );
    assert_eq!(
        snapshot(&client, &env).await,
        before,
        "not even updated_at moves"
    );
    drop_schema(&env).await;
}

#[tokio::test]
async fn the_same_run_twice_changes_nothing_the_second_time() {
    let (mut client, env) = fresh().await;
    load(&mut client, &run(&env, "a", &rows(1, &growing(4)))).await;
    let mut revised = rows(1, &growing(5));
    revised[1].deaths += 1;
    let revised = with_deltas(&revised);
    let second = run(&env, "b", &revised);
    let loaded = load(&mut client, &second).await;
    let tables = (
        snapshot(&client, &env).await,
        count(&client, &env, "us_daily_changes").await,
        count(&client, &env, "etl_runs").await,
    );

    let again = apply_run(&mut client, &second, SHARE).await.unwrap();
    assert_eq!(
        again,
        Applied::AlreadyLoaded(loaded),
        "the same event, rebuilt from etl_runs"
    );
    let after = (
        snapshot(&client, &env).await,
        count(&client, &env, "us_daily_changes").await,
        count(&client, &env, "etl_runs").await,
    );
    assert_eq!(after, tables);
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_run_removing_too_many_dates_is_refused_and_changes_nothing() {
    let (mut client, env) = fresh().await;
    load(&mut client, &run(&env, "a", &rows(1, &growing(20)))).await;
    let before = snapshot(&client, &env).await;

    let short = run(&env, "b", &rows(1, &growing(10)));
    let failed = match apply_run(&mut client, &short, SHARE).await.unwrap() {
        Applied::Suspicious { failed, first } => {
            assert!(first, "recorded for the first time");
            failed
        }
        other => panic!("expected a suspicious run, got {other:?}"),
    };
    assert_eq!(failed.kind, FailureKind::SuspiciousRemoval);
    assert_eq!(failed.run_id.as_ref(), Some(&short.transformed.run_id));
    assert_eq!(snapshot(&client, &env).await, before);
    assert_eq!(count(&client, &env, "us_daily_changes").await, 0);

    let row = client
        .query_one(
            &format!("SELECT status, stage, kind, error FROM \"{env}\".etl_runs WHERE run_id = $1"),
            &[&short.transformed.run_id.as_str()],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "failed");
    assert_eq!(row.get::<_, String>(1), "load");
    assert_eq!(row.get::<_, String>(2), "suspicious_removal");
    assert_eq!(row.get::<_, String>(3), failed.reason);

    // Allowed with a higher share: the same run then loads.
    match apply_run(&mut client, &short, 0.6).await.unwrap() {
        Applied::Loaded(loaded) => assert_eq!(loaded.counts.removed, 10),
        other => panic!("expected the run to load, got {other:?}"),
    }
    drop_schema(&env).await;
}

/// The `etl_runs` row of `run_id`: status, superseded_by, error, upstream_time, sequence.
async fn run_row(
    client: &Client,
    env: &shared::Env,
    run_id: &RunId,
) -> (
    String,
    Option<String>,
    Option<String>,
    Option<chrono::DateTime<chrono::Utc>>,
    Option<i64>,
) {
    let row = client
        .query_one(
            &format!(
                "SELECT status, superseded_by, error, upstream_time, sequence
                 FROM \"{env}\".etl_runs WHERE run_id = $1"
            ),
            &[&run_id.as_str()],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1), row.get(2), row.get(3), row.get(4))
}

#[tokio::test]
async fn an_earlier_run_never_overwrites_a_later_one_whatever_the_clocks_say() {
    let (mut client, env) = fresh().await;
    let later = run(&env, "later", &rows(1, &growing(5)));
    load(&mut client, &later).await;
    let before = snapshot(&client, &env).await;
    let stored = run_row(&client, &env, &later.transformed.run_id).await;
    assert_eq!(
        (stored.3, stored.4),
        (
            Some(later.transformed.order.upstream_time),
            Some(later.transformed.order.sequence as i64)
        ),
        "a succeeded run keeps its order"
    );

    // Started by an earlier extraction of the same commits, and arriving late (a retried
    // delivery); its transformer's clock even says it is the newer one.
    let mut earlier = run(&env, "earlier", &rows(1, &growing(4)));
    earlier.transformed.order = RunOrder {
        sequence: later.transformed.order.sequence - 1,
        ..later.transformed.order
    };
    earlier.transformed_at = later.transformed_at + Duration::hours(1);
    let applied = apply_run(&mut client, &earlier, SHARE).await.unwrap();
    let by = later.transformed.run_id.clone();
    assert_eq!(applied, Applied::Superseded { by: by.clone() });
    assert_eq!(snapshot(&client, &env).await, before);
    let (status, superseded_by, error, ..) =
        run_row(&client, &env, &earlier.transformed.run_id).await;
    assert_eq!(
        (status.as_str(), superseded_by.as_deref()),
        ("superseded", Some(by.as_str()))
    );
    assert!(
        error.unwrap().contains(by.as_str()),
        "the reason names the later run"
    );

    // Delivered once more, it is recorded once.
    let runs = count(&client, &env, "etl_runs").await;
    assert_eq!(
        apply_run(&mut client, &earlier, SHARE).await.unwrap(),
        Applied::Superseded { by }
    );
    assert_eq!(count(&client, &env, "etl_runs").await, runs);
    drop_schema(&env).await;
}

#[tokio::test]
async fn runs_are_ordered_by_upstream_time_first_then_by_extraction() {
    let (mut client, env) = fresh().await;
    let first = run(&env, "first", &rows(1, &growing(5)));
    load(&mut client, &first).await;

    // Newer upstream commits, though started by an extraction that came earlier in the stream
    // (another source's poll): they are the later data, and win.
    let mut newer_commits = run(&env, "newer-commits", &rows(1, &growing(6)));
    newer_commits.transformed.order = RunOrder {
        upstream_time: first.transformed.order.upstream_time + Duration::minutes(1),
        sequence: first.transformed.order.sequence - 1,
    };
    assert!(matches!(
        apply_run(&mut client, &newer_commits, SHARE).await.unwrap(),
        Applied::Loaded(_)
    ));

    // Older upstream commits with a later sequence: superseded by the newer commits.
    let mut older_commits = run(&env, "older-commits", &rows(1, &growing(6)));
    older_commits.transformed.order = RunOrder {
        upstream_time: first.transformed.order.upstream_time - Duration::minutes(1),
        sequence: newer_commits.transformed.order.sequence + 10,
    };
    assert_eq!(
        apply_run(&mut client, &older_commits, SHARE).await.unwrap(),
        Applied::Superseded {
            by: newer_commits.transformed.run_id.clone()
        }
    );

    // The same commits extracted again later (a forced run): a later run, applied.
    let mut forced = run(&env, "forced", &rows(1, &growing(7)));
    forced.transformed.order = RunOrder {
        sequence: newer_commits.transformed.order.sequence + 1,
        ..newer_commits.transformed.order
    };
    assert!(matches!(
        apply_run(&mut client, &forced, SHARE).await.unwrap(),
        Applied::Loaded(_)
    ));
    drop_schema(&env).await;
}

#[tokio::test]
async fn runs_recorded_before_run_order_are_ordered_by_their_upstream_commits() {
    let env = unique_env("load");
    let schema = db::schema(&env);
    let mut client = connect().await;
    // The schema as a loader before migration 3 left it, with one succeeded run.
    let before_order: String = migrate::MIGRATIONS
        .iter()
        .filter(|m| m.version < 3)
        .map(|m| m.sql)
        .collect::<Vec<_>>()
        .join("\n");
    let old = run(&env, "old", &rows(1, &growing(5)));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             SET search_path TO {schema};
             {before_order}
             CREATE TABLE {tracking} (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO {tracking} (version, name) VALUES (1, 'init'), (2, 'reader_grants');
             RESET search_path;",
            tracking = migrate::TRACKING_TABLE
        ))
        .await
        .unwrap();
    client
        .execute(
            &format!(
                "INSERT INTO {schema}.etl_runs (run_id, status, stage, inputs, started_at,
                     finished_at)
                 VALUES ($1, 'succeeded', 'load', $2, now(), now())"
            ),
            &[
                &old.transformed.run_id.as_str(),
                &serde_json::to_value(&old.transformed.inputs).unwrap(),
            ],
        )
        .await
        .unwrap();
    let from_3: Vec<i32> = migrate::MIGRATIONS
        .iter()
        .map(|m| m.version)
        .filter(|&v| v >= 3)
        .collect();
    assert_eq!(migrate::migrate(&mut client, &env).await.unwrap(), from_3);
    let (status, _, _, upstream_time, sequence) =
        run_row(&client, &env, &old.transformed.run_id).await;
    assert_eq!(
        (status.as_str(), upstream_time, sequence),
        ("succeeded", Some(commit_time()), None),
        "its upstream time is read from its inputs; its sequence is unknown"
    );

    // Its sequence unknown, the old run is later than a new one only by newer commits.
    let mut older = run(&env, "older", &rows(1, &growing(5)));
    older.transformed.order.upstream_time = commit_time() - Duration::days(1);
    assert!(matches!(
        apply_run(&mut client, &older, SHARE).await.unwrap(),
        Applied::Superseded { by } if by == old.transformed.run_id
    ));
    let same = run(&env, "same", &rows(1, &growing(5)));
    assert_eq!(same.transformed.order.upstream_time, commit_time());
    assert!(matches!(
        apply_run(&mut client, &same, SHARE).await.unwrap(),
        Applied::Loaded(_)
    ));
    drop_schema(&env).await;
}

#[tokio::test]
async fn corrections_in_the_event_are_capped_but_all_recorded() {
    let (mut client, env) = fresh().await;
    let n = MAX_CORRECTIONS_IN_EVENT + 5;
    let before = rows(1, &growing(n));
    load(&mut client, &run(&env, "a", &before)).await;
    let after: Vec<_> = before
        .iter()
        .map(|r| (r.cases + 1, r.deaths, r.recovered))
        .collect();
    let loaded = load(&mut client, &run(&env, "b", &rows(1, &after))).await;

    assert_eq!(loaded.counts.revised, n as u64);
    assert_eq!(loaded.corrections.len(), MAX_CORRECTIONS_IN_EVENT);
    assert_eq!(loaded.corrections_total, n as u64);
    assert_eq!(count(&client, &env, "us_daily_changes").await, n as i64);
    drop_schema(&env).await;
}

fn all_versions() -> Vec<i32> {
    migrate::MIGRATIONS.iter().map(|m| m.version).collect()
}

async fn count(client: &Client, env: &shared::Env, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM \"{env}\".{table}"), &[])
        .await
        .unwrap()
        .get(0)
}

/// A pooled connection made the way the loader makes them, from its configuration with
/// `DB_LOCK_TIMEOUT` set to `lock_timeout`.
async fn loader_pool(lock_timeout: std::time::Duration) -> deadpool_postgres::Pool {
    let vars = shared::config::Vars::from_pairs([
        ("DATABASE_URL", database_url()),
        ("DB_LOCK_TIMEOUT", format!("{}ms", lock_timeout.as_millis())),
    ]);
    let config = loader::Config::from_vars(&vars).unwrap();
    db::pool(&config.database)
}

/// Bounds a step that must end by itself within the lock timeout, so a regression (an unbounded
/// wait) fails the test instead of hanging it.
const HANG: std::time::Duration = std::time::Duration::from_secs(20);

/// Asserts `err` is PostgreSQL's `lock_timeout` (55P03) and that the loader would retry it.
fn assert_lock_timeout(err: &LoadError) {
    match err {
        LoadError::Db { source, .. } => {
            assert_eq!(source.code(), Some(&SqlState::LOCK_NOT_AVAILABLE), "{err}");
        }
        other => panic!("expected a lock timeout, got {other}"),
    }
    assert!(err.is_transient(1), "a lock timeout is retried: {err}");
    assert_eq!(err.kind(), FailureKind::Unavailable, "{err}");
}

#[tokio::test]
async fn a_load_behind_a_held_table_lock_times_out_as_transient_and_the_retry_succeeds() {
    const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(500);
    let (admin, env) = fresh().await;
    let pool = loader_pool(LOCK_TIMEOUT).await;
    let mut client = pool.get().await.unwrap();
    let data = rows(1, &growing(5));
    let run = run(&env, "a", &data);

    // Another session holds us_daily for as long as its transaction stays open.
    let mut holder = connect().await;
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute(&format!(
        "LOCK TABLE \"{env}\".us_daily IN ACCESS EXCLUSIVE MODE"
    ))
    .await
    .unwrap();

    let started = Instant::now();
    let err = tokio::time::timeout(HANG, apply_run(&mut client, &run, SHARE))
        .await
        .expect("the load gives up within the lock timeout")
        .unwrap_err();
    let waited = started.elapsed();
    eprintln!("the load saw lock_timeout={LOCK_TIMEOUT:?} fire after {waited:?}");
    assert_lock_timeout(&err);
    assert!(
        waited >= LOCK_TIMEOUT && waited < LOCK_TIMEOUT + std::time::Duration::from_secs(5),
        "waited {waited:?} for a {LOCK_TIMEOUT:?} lock timeout"
    );
    assert_eq!(
        count(&admin, &env, "etl_runs").await,
        0,
        "nothing committed"
    );

    hold.rollback().await.unwrap();
    // The retry, on the same pooled connection as the handler would get it.
    match apply_run(&mut client, &run, SHARE).await.unwrap() {
        Applied::Loaded(loaded) => assert_eq!(loaded.counts.inserted, 5),
        other => panic!("expected the retried run to load, got {other:?}"),
    }
    assert_eq!(db::stored_rows(&admin, &env).await.unwrap(), data);
    drop_schema(&env).await;
}

#[tokio::test]
async fn the_env_load_lock_is_waited_for_no_longer_than_lock_timeout() {
    const LOCK_TIMEOUT: std::time::Duration = std::time::Duration::from_millis(300);
    let (_admin, env) = fresh().await;
    let pool = loader_pool(LOCK_TIMEOUT).await;
    let mut client = pool.get().await.unwrap();
    let run = run(&env, "a", &rows(1, &growing(3)));

    // As another loader process applying a run of this env would.
    let mut holder = connect().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&db::lock_key("load", &env)],
    )
    .await
    .unwrap();

    let started = Instant::now();
    let err = tokio::time::timeout(HANG, apply_run(&mut client, &run, SHARE))
        .await
        .expect("pg_advisory_xact_lock honours lock_timeout")
        .unwrap_err();
    assert!(started.elapsed() >= LOCK_TIMEOUT);
    assert_lock_timeout(&err);
    assert!(
        matches!(err, LoadError::Db { step, .. } if step.contains("load lock")),
        "{err}"
    );

    hold.commit().await.unwrap();
    assert!(matches!(
        apply_run(&mut client, &run, SHARE).await.unwrap(),
        Applied::Loaded(_)
    ));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_migration_waits_for_its_lock_no_longer_than_lock_timeout() {
    let env = unique_env("load");
    let pool = loader_pool(std::time::Duration::from_millis(300)).await;
    let mut client = pool.get().await.unwrap();
    let mut holder = connect().await;
    let hold = holder.transaction().await.unwrap();
    hold.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&db::lock_key("migrate", &env)],
    )
    .await
    .unwrap();

    let err = tokio::time::timeout(HANG, migrate::migrate(&mut client, &env))
        .await
        .expect("the migration gives up within the lock timeout")
        .unwrap_err();
    assert_eq!(err.step, "lock", "{err}");
    assert_eq!(err.source.code(), Some(&SqlState::LOCK_NOT_AVAILABLE));
    assert!(err.is_transient());

    hold.rollback().await.unwrap();
    assert_eq!(
        migrate::migrate(&mut client, &env).await.unwrap(),
        all_versions()
    );
    drop_schema(&env).await;
}

/// Turns a freshly migrated env into what a loader before the rename left: its migrations
/// recorded in `schema_migrations`, applied at `at`.
async fn as_legacy(client: &Client, env: &shared::Env, at: &str) {
    client
        .batch_execute(&format!(
            "ALTER TABLE \"{env}\".{new} RENAME TO schema_migrations;
             UPDATE \"{env}\".schema_migrations SET applied_at = '{at}';",
            new = migrate::TRACKING_TABLE
        ))
        .await
        .unwrap();
}

async fn tables(client: &Client, env: &shared::Env) -> Vec<String> {
    client
        .query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = $1 AND table_name LIKE '%migrations' ORDER BY 1",
            &[&env.as_str()],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

#[tokio::test]
async fn an_old_schema_migrations_table_of_ours_is_taken_over() {
    let (mut client, env) = fresh().await;
    as_legacy(&client, &env, "2024-01-02 03:04:05+00").await;
    assert!(
        migrate::known_envs(&client).await.unwrap().contains(&env),
        "an env not yet migrated since the rename is still known"
    );

    assert_eq!(
        migrate::migrate(&mut client, &env).await.unwrap(),
        Vec::<i32>::new(),
        "nothing is applied again"
    );
    assert_eq!(tables(&client, &env).await, [migrate::TRACKING_TABLE]);
    let recorded: Vec<(i32, String, String)> = client
        .query(
            &format!(
                "SELECT version, name, to_char(applied_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS')
                 FROM \"{env}\".{} ORDER BY version",
                migrate::TRACKING_TABLE
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2)))
        .collect();
    let at = "2024-01-02 03:04:05".to_owned();
    let ours: Vec<(i32, String, String)> = migrate::MIGRATIONS
        .iter()
        .map(|m| (m.version, m.name.to_owned(), at.clone()))
        .collect();
    assert_eq!(recorded, ours);
    assert!(migrate::known_envs(&client).await.unwrap().contains(&env));
    drop_schema(&env).await;
}

#[tokio::test]
async fn another_applications_schema_migrations_is_neither_an_env_nor_taken_over() {
    let mut client = connect().await;
    // golang-migrate's shape, and one with our columns but another application's names.
    let (other, named) = (unique_env("load"), unique_env("load"));
    client
        .batch_execute(&format!(
            "CREATE SCHEMA \"{other}\";
             CREATE TABLE \"{other}\".schema_migrations (version bigint PRIMARY KEY, dirty boolean NOT NULL);
             INSERT INTO \"{other}\".schema_migrations VALUES (20240101000000, false);
             CREATE SCHEMA \"{named}\";
             CREATE TABLE \"{named}\".schema_migrations (
                 version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO \"{named}\".schema_migrations (version, name) VALUES (1, 'init'), (2, 'create_users');"
        ))
        .await
        .unwrap();
    let known = migrate::known_envs(&client).await.unwrap();
    assert!(
        !known.contains(&other) && !known.contains(&named),
        "{known:?}"
    );

    // Meeting such an env (a run for it arrives) migrates it beside the foreign table.
    assert_eq!(
        migrate::migrate(&mut client, &named).await.unwrap(),
        all_versions()
    );
    assert_eq!(
        tables(&client, &named).await,
        [migrate::TRACKING_TABLE, "schema_migrations"]
    );
    let theirs: i64 = client
        .query_one(
            &format!("SELECT count(*) FROM \"{named}\".schema_migrations"),
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(theirs, 2, "their rows are untouched");
    drop_schema(&other).await;
    drop_schema(&named).await;
}
