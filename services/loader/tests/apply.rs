//! One run applied to a real PostgreSQL, directly through `loader::apply::apply_run`; each test
//! works in a schema of its own.

mod common;

use chrono::Duration;
use common::*;
use loader::apply::{Applied, RunToLoad, apply_run};
use loader::{db, migrate};
use shared::events::{Counts, Field, Loaded, MAX_CORRECTIONS_IN_EVENT};
use tokio_postgres::Client;

const SHARE: f64 = 0.05;

async fn fresh() -> (Client, shared::Env) {
    let mut client = connect().await;
    let env = new_env();
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
    let env = new_env();
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
             AND table_name IN ('us_daily', 'us_daily_changes', 'etl_runs', 'schema_migrations')",
            &[&env.as_str()],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(tables, 4);
    assert!(migrate::known_envs(&a).await.unwrap().contains(&env));
    drop_schema(&a, &env).await;
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
            &[&loaded.run_id],
        )
        .await
        .unwrap();
    assert_eq!(row.get::<_, String>(0), "succeeded");
    assert_eq!(row.get::<_, String>(1), "load");
    assert_eq!((row.get::<_, i64>(2), row.get::<_, i64>(3)), (5, 0));
    let inputs: serde_json::Value = row.get(4);
    assert_eq!(inputs[0]["upstream"]["commit_sha"], "commit-nyt-a");
    assert_eq!(inputs[1]["object"]["sha256"], "jhu-a");
    assert_eq!(row.get::<_, String>(5), "commit");
    assert_eq!(row.get::<_, Option<String>>(6), None);
    assert!(row.get::<_, i64>(7) >= 0);
    assert!(row.get::<_, bool>(8));
    drop_schema(&client, &env).await;
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
    assert_eq!(changes[0].get::<_, String>(0), loaded.run_id);
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
            &[&loaded.run_id],
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
    drop_schema(&client, &env).await;
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
    drop_schema(&client, &env).await;
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
    drop_schema(&client, &env).await;
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
    drop_schema(&client, &env).await;
}

#[tokio::test]
async fn a_run_removing_too_many_dates_is_refused_and_changes_nothing() {
    let (mut client, env) = fresh().await;
    load(&mut client, &run(&env, "a", &rows(1, &growing(20)))).await;
    let before = snapshot(&client, &env).await;

    let short = run(&env, "b", &rows(1, &growing(10)));
    let failed = match apply_run(&mut client, &short, SHARE).await.unwrap() {
        Applied::Suspicious(failed) => failed,
        other => panic!("expected a suspicious run, got {other:?}"),
    };
    assert_eq!(failed.kind, "suspicious_removal");
    assert_eq!(
        failed.run_id.as_deref(),
        Some(short.transformed.run_id.as_str())
    );
    assert_eq!(snapshot(&client, &env).await, before);
    assert_eq!(count(&client, &env, "us_daily_changes").await, 0);

    let row = client
        .query_one(
            &format!("SELECT status, stage, kind, error FROM \"{env}\".etl_runs WHERE run_id = $1"),
            &[&short.transformed.run_id],
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
    drop_schema(&client, &env).await;
}

#[tokio::test]
async fn an_older_run_never_overwrites_a_newer_one() {
    let (mut client, env) = fresh().await;
    let mut newer = run(&env, "new", &rows(1, &growing(5)));
    newer.transformed_at = now();
    load(&mut client, &newer).await;
    let before = snapshot(&client, &env).await;

    let mut older = run(&env, "old", &rows(1, &growing(4)));
    older.transformed_at = newer.transformed_at - Duration::minutes(5);
    let applied = apply_run(&mut client, &older, SHARE).await.unwrap();
    assert_eq!(
        applied,
        Applied::Superseded {
            by: newer.transformed.run_id.clone()
        }
    );
    assert_eq!(snapshot(&client, &env).await, before);
    drop_schema(&client, &env).await;
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
    drop_schema(&client, &env).await;
}

async fn count(client: &Client, env: &shared::Env, table: &str) -> i64 {
    client
        .query_one(&format!("SELECT count(*) FROM \"{env}\".{table}"), &[])
        .await
        .unwrap()
        .get(0)
}
