//! Load-time benchmark of the keyed datasets against the local PostgreSQL, at final size: a
//! synthetic `counties` dataset (3,250 counties × 780 dates ≈ 2.5 M rows) made in memory as the
//! contract's CSV in the order the transformer writes it (by state, county, date), then
//!
//! 1. a first reconcile into the empty `counties_daily`;
//! 2. a delta on top: one new day (3,250 rows) and 50 revised values (each changing its row and the
//!    next day's delta: 100 rows);
//! 3. a second reconcile of the same dataset (nothing changes).
//!
//! Each phase is one transaction, timed to its commit. The scratch schema is dropped afterwards.
//!
//! ```text
//! cargo run --release --example bench_keyed_load -- [COUNTIES]   # default 3250
//! ```
//!
//! `DATABASE_URL` as the loader reads it (default `postgres://postgres@127.0.0.1:5432/covid`).

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use chrono::NaiveDate;
use loader::keyed::{self, Applied, Delta, DeltaOutcome, Table};
use shared::ids::RunId;

/// Counties by default; the first argument sets another number (a quick run).
const COUNTIES_AT_FINAL_SIZE: usize = 3_250;
const DATES: u32 = 780;
const REVISED: usize = 50;
/// The date whose values are revised.
const REVISED_DATE: u32 = 400;
const SHARE: f64 = 0.05;

fn counties() -> usize {
    static COUNTIES: std::sync::OnceLock<usize> = std::sync::OnceLock::new();
    *COUNTIES.get_or_init(|| {
        std::env::args()
            .nth(1)
            .and_then(|n| n.parse().ok())
            .unwrap_or(COUNTIES_AT_FINAL_SIZE)
    })
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| loader::config::DEFAULT_DATABASE_URL.to_owned());
    shared::install_crypto_provider();
    let mut client = shared::postgres::Database::from_url(&url)?
        .connect()
        .await
        .map_err(|err| anyhow::anyhow!(shared::postgres::explain(&err)))
        .context("connect to PostgreSQL")?;
    let env = test_support::unique_env("benchkeyed");
    loader::migrate::migrate(&mut client, &env).await?;
    let table = &Table::COUNTIES;

    let started = Instant::now();
    let first = full_csv(DATES, false);
    let generate = started.elapsed();
    let first_rows = counties() as u64 * u64::from(DATES);
    println!(
        "keyed load benchmark: counties_daily, {} counties x {DATES} dates = {first_rows} rows \
         ({:.1} MB of CSV, made in {})",
        counties(),
        first.len() as f64 / 1e6,
        ms(generate)
    );

    let run_a = RunId::new("bench-a")?;
    let (applied, took) = timed(async {
        let tx = client.transaction().await?;
        let applied = keyed::reconcile(&tx, &env, table, &run_a, &first, None, SHARE).await?;
        tx.commit().await?;
        anyhow::Ok(applied)
    })
    .await?;
    drop(first);
    report("1. first reconcile into an empty table", &applied, took);
    expect(&applied, [first_rows, 0, 0, 0, 0])?;

    let (rows, removed, changes) = delta_csv();
    let run_b = RunId::new("bench-b")?;
    let (outcome, took) = timed(async {
        let tx = client.transaction().await?;
        let delta = Delta {
            base_run_id: &run_a,
            rows: &rows,
            removed: &removed,
            changes: &changes,
        };
        let outcome = keyed::apply_delta(&tx, &env, table, &run_b, &delta, SHARE).await?;
        tx.commit().await?;
        anyhow::Ok(outcome)
    })
    .await?;
    let DeltaOutcome::Applied(applied) = outcome else {
        bail!("the delta did not apply: {outcome:?}");
    };
    report("2. delta: one new day + 50 revised values", &applied, took);
    expect(
        &applied,
        [
            counties() as u64,
            2 * REVISED as u64,
            first_rows - 2 * REVISED as u64,
            0,
            REVISED as u64,
        ],
    )?;

    let second = full_csv(DATES + 1, true);
    let run_c = RunId::new("bench-c")?;
    let (applied, took) = timed(async {
        let tx = client.transaction().await?;
        let applied = keyed::reconcile(&tx, &env, table, &run_c, &second, None, SHARE).await?;
        tx.commit().await?;
        anyhow::Ok(applied)
    })
    .await?;
    report("3. second reconcile of the same data", &applied, took);
    expect(&applied, [0, 0, first_rows + counties() as u64, 0, 0])?;

    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", loader::db::schema(&env)))
        .await?;
    Ok(())
}

async fn timed<T>(work: impl Future<Output = anyhow::Result<T>>) -> anyhow::Result<(T, Duration)> {
    let started = Instant::now();
    let out = work.await?;
    Ok((out, started.elapsed()))
}

fn report(phase: &str, applied: &Applied, took: Duration) {
    let c = &applied.counts;
    println!(
        "  {phase:<44} {:>10}   inserted {} updated {} unchanged {} removed {} revised {} ({} change rows)",
        ms(took),
        c.inserted,
        c.updated,
        c.unchanged,
        c.removed,
        c.revised,
        applied.changes
    );
    let steps: Vec<String> = applied
        .timings
        .iter()
        .map(|(step, ms)| format!("{step} {ms} ms"))
        .collect();
    println!("  {:<44} {}", "", steps.join(", "));
}

/// [inserted, updated, unchanged, removed, revised]
fn expect(applied: &Applied, want: [u64; 5]) -> anyhow::Result<()> {
    let c = &applied.counts;
    let got = [c.inserted, c.updated, c.unchanged, c.removed, c.revised];
    if got != want {
        bail!("counts {got:?}, expected {want:?}");
    }
    Ok(())
}

fn ms(d: Duration) -> String {
    format!("{:.0} ms", d.as_secs_f64() * 1000.0)
}

fn date(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2020, 1, 21).unwrap_or_default() + chrono::Days::new(u64::from(d))
}

/// Whether county `i` has its value at [`REVISED_DATE`] revised (50 counties, spread out).
fn is_revised(i: usize) -> bool {
    i.is_multiple_of(counties() / REVISED) && i / (counties() / REVISED) < REVISED
}

fn cases(i: usize, d: u32, revised: bool) -> Option<i64> {
    let bump = i64::from(revised && d == REVISED_DATE && is_revised(i));
    Some(i64::from(d) * (i as i64 % 97 + 1) + bump)
}

fn deaths(i: usize, d: u32) -> Option<i64> {
    (!(i + d as usize).is_multiple_of(997)).then(|| i64::from(d) * (i as i64 % 13) / 10)
}

fn minus(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.zip(b).map(|(a, b)| a - b)
}

fn num(out: &mut Vec<u8>, n: Option<i64>) {
    if let Some(n) = n {
        out.extend_from_slice(n.to_string().as_bytes());
    }
}

const HEADER: &[u8] = b"date,state,county,fips,cases,deaths,new_cases,new_deaths\n";

/// County `i`'s row at date `d`, deltas from date `d - 1`.
fn row(out: &mut Vec<u8>, i: usize, d: u32, revised: bool) {
    let (c, k) = (cases(i, d, revised), deaths(i, d));
    let (new_c, new_k) = if d == 0 {
        (c, k)
    } else {
        (
            minus(c, cases(i, d - 1, revised)),
            minus(k, deaths(i, d - 1)),
        )
    };
    let fips = if i.is_multiple_of(500) {
        String::new()
    } else {
        format!("{:05}", 1000 + i)
    };
    out.extend_from_slice(
        format!("{},State {:02},County {i:04},{fips},", date(d), i / 65).as_bytes(),
    );
    for (n, last) in [(c, false), (k, false), (new_c, false), (new_k, true)] {
        num(out, n);
        out.push(if last { b'\n' } else { b',' });
    }
}

/// Every row of `dates` dates, with or without the revisions.
fn full_csv(dates: u32, revised: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(counties() * dates as usize * 64);
    out.extend_from_slice(HEADER);
    for i in 0..counties() {
        for d in 0..dates {
            row(&mut out, i, d, revised);
        }
    }
    out
}

/// The delta from the first dataset to the second: the new day, and for each revised county its
/// revised row and the next day's (its delta changed); one `cases` line per revision.
fn delta_csv() -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let mut rows = HEADER.to_vec();
    let mut changes = b"date,state,county,field,old_value,new_value\n".to_vec();
    for i in 0..counties() {
        if is_revised(i) {
            row(&mut rows, i, REVISED_DATE, true);
            row(&mut rows, i, REVISED_DATE + 1, true);
            changes.extend_from_slice(
                format!(
                    "{},State {:02},County {i:04},cases,",
                    date(REVISED_DATE),
                    i / 65
                )
                .as_bytes(),
            );
            num(&mut changes, cases(i, REVISED_DATE, false));
            changes.push(b',');
            num(&mut changes, cases(i, REVISED_DATE, true));
            changes.push(b'\n');
        }
        row(&mut rows, i, DATES, true);
    }
    (rows, b"date,state,county\n".to_vec(), changes)
}
