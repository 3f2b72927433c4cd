//! Load-time benchmark against the local PostgreSQL: a real-size curated set (~800 days) loaded
//! into an empty scratch env, then an incremental run (one new day and a few revised days) on top.
//! Each iteration uses a new scratch schema, dropped afterwards.
//!
//! ```text
//! cargo run --release -p loader --example bench_load -- [ITERATIONS]   # default 20
//! ```
//!
//! `DATABASE_URL` overrides the default `postgres://postgres@127.0.0.1:5432/covid`. Reported per
//! phase: decoding the Parquet dataset, and the transaction (`apply_run`: lock, diff, COPY,
//! insert / update / delete, corrections, `etl_runs`, commit).

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{NaiveDate, Utc};
use dataset::DailyRow;
use loader::apply::{Applied, RunToLoad, apply_run};
use shared::events::{
    Dropped, ObjectRef, RunOrder, SCHEMA_VERSION, Transformed, Trigger, TriggerKind,
};
use shared::ids::Digest;
use shared::{Env, run_id};

const DAYS: usize = 800;
const REVISED: usize = 3;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let iterations: usize = std::env::args()
        .nth(1)
        .map(|n| n.parse())
        .transpose()?
        .unwrap_or(20);
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| loader::config::DEFAULT_DATABASE_URL.to_owned());
    shared::install_crypto_provider();
    let mut client = shared::postgres::Database::from_url(&url)?
        .connect()
        .await
        .map_err(|err| anyhow::anyhow!(shared::postgres::explain(&err)))
        .context("connect to PostgreSQL")?;

    let initial = dataset(DAYS, 0);
    let incremental = dataset(DAYS + 1, REVISED);
    let initial_parquet = dataset::to_parquet(&initial)?;
    let incremental_parquet = dataset::to_parquet(&incremental)?;

    let (mut decode, mut initial_tx, mut incremental_tx) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..iterations {
        let env = test_support::unique_env("bench");
        loader::migrate::migrate(&mut client, &env).await?;

        let started = Instant::now();
        let rows = dataset::from_parquet(&initial_parquet)?;
        decode.push(started.elapsed());
        let started = Instant::now();
        let first = apply_run(&mut client, &run(&env, "initial", 1, rows), 0.05).await?;
        initial_tx.push(started.elapsed());

        let rows = dataset::from_parquet(&incremental_parquet)?;
        let started = Instant::now();
        let second = apply_run(&mut client, &run(&env, "incremental", 2, rows), 0.05).await?;
        incremental_tx.push(started.elapsed());

        client
            .batch_execute(&format!("DROP SCHEMA {} CASCADE", loader::db::schema(&env)))
            .await?;
        check(&first, DAYS as u64, 0)?;
        check(&second, 1, REVISED as u64)?;
    }

    println!(
        "loader benchmark: {DAYS} days, then +1 day and {REVISED} revised days; {iterations} iterations"
    );
    println!(
        "  decode Parquet ({DAYS} rows):     median {}",
        ms(median(&mut decode))
    );
    println!(
        "  initial load transaction:      median {}  (min {}, max {})",
        ms(median(&mut initial_tx)),
        ms(min(&initial_tx)),
        ms(max(&initial_tx))
    );
    println!(
        "  incremental load transaction:  median {}  (min {}, max {})",
        ms(median(&mut incremental_tx)),
        ms(min(&incremental_tx)),
        ms(max(&incremental_tx))
    );
    Ok(())
}

/// `days` days of growing figures from 2020-01-21, the last `revised` of the first 800 days
/// revised upward (as an upstream correction would), with DESIGN rule 5's deltas.
fn dataset(days: usize, revised: usize) -> Vec<DailyRow> {
    let start = NaiveDate::from_ymd_opt(2020, 1, 21).expect("valid date");
    let mut rows: Vec<DailyRow> = Vec::with_capacity(days);
    for i in 0..days {
        let n = i as i64;
        let mut cases = 1 + n * n * 45 + n * 1000;
        if i >= DAYS - 10 && i < DAYS - 10 + revised {
            cases += 17;
        }
        let deaths = n * n / 2 + n * 20;
        let recovered = (i < 330).then_some(n * n * 10);
        let previous = rows.last();
        rows.push(DailyRow {
            date: start + chrono::Days::new(i as u64),
            cases,
            deaths,
            recovered,
            new_cases: Some(previous.map_or(cases, |p| cases - p.cases)),
            new_deaths: Some(previous.map_or(deaths, |p| deaths - p.deaths)),
            new_recovered: match previous {
                None => recovered,
                Some(p) => recovered.zip(p.recovered).map(|(a, b)| a - b),
            },
        });
    }
    rows
}

/// The run `tag`, started by the `sequence`-th extraction (a later run has a larger one).
fn run(env: &Env, tag: &str, sequence: u64, rows: Vec<DailyRow>) -> RunToLoad {
    let trigger = Trigger::new(TriggerKind::Manual);
    let transformed = Transformed {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: shared::Dataset::US,
        run_id: run_id::derive(env, &format!("nyt-{tag}"), &format!("jhu-{tag}"), &trigger),
        order: RunOrder::of(&[], sequence),
        trigger,
        inputs: vec![],
        object: ObjectRef {
            bucket: "etl-curated".into(),
            name: format!("{env}/{tag}.parquet"),
            sha256: Digest::of(b""),
            bytes: 0,
        },
        rows: rows.len() as u64,
        first_date: rows[0].date,
        last_date: rows[rows.len() - 1].date,
        dropped: Dropped::default(),
        warnings: vec![],
        timings: vec![],
        delta: None,
    };
    RunToLoad {
        transformed,
        rows,
        started_at: Utc::now(),
        transformed_at: Utc::now(),
        timings: vec![],
    }
}

fn check(applied: &Applied, inserted: u64, revised: u64) -> anyhow::Result<()> {
    match applied {
        Applied::Loaded(loaded)
            if loaded.counts.inserted == inserted && loaded.counts.revised == revised =>
        {
            Ok(())
        }
        other => anyhow::bail!("unexpected result: {other:?}"),
    }
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn min(samples: &[Duration]) -> Duration {
    samples.iter().copied().min().unwrap_or_default()
}

fn max(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}
