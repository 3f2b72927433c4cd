//! The loader's fixtures: rows with DESIGN rule 5's deltas, and transformed events for them (the
//! env, connections and clean-up come from `test_support`).

use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, NaiveDate, Utc};
use dataset::DailyRow;
use shared::Env;
use shared::events::{
    Dropped, InputRef, ObjectRef, RunOrder, SCHEMA_VERSION, Transformed, Trigger, TriggerKind,
    UpstreamRef,
};
use shared::ids::{CommitSha, Digest};
use shared::{Dataset, Source, run_id, store};
use tokio_postgres::Client;

pub use test_support::stack::database_url;
pub use test_support::{connect, drop_schema, unique_env};

pub fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 1, 1).unwrap() + chrono::Days::new(u64::from(n))
}

/// Rows for consecutive days from `day(first)`, with deltas as DESIGN rule 5 defines them.
pub fn rows(first: u32, values: &[(i64, i64, Option<i64>)]) -> Vec<DailyRow> {
    let mut out: Vec<DailyRow> = Vec::with_capacity(values.len());
    for (i, &(cases, deaths, recovered)) in values.iter().enumerate() {
        let previous = out.last();
        let delta = |now: Option<i64>, before: Option<Option<i64>>| match before {
            None => now,
            Some(before) => now.zip(before).map(|(a, b)| a - b),
        };
        out.push(DailyRow {
            date: day(first + i as u32),
            cases,
            deaths,
            recovered,
            new_cases: delta(Some(cases), previous.map(|p| Some(p.cases))),
            new_deaths: delta(Some(deaths), previous.map(|p| Some(p.deaths))),
            new_recovered: delta(recovered, previous.map(|p| p.recovered)),
        });
    }
    out
}

/// `n` plausible days: cases and deaths grow, recoveries reported.
pub fn growing(n: usize) -> Vec<(i64, i64, Option<i64>)> {
    (0..n as i64)
        .map(|i| (1000 + i * i * 7 + i * 13, 10 + i * 2, Some(100 + i * 5)))
        .collect()
}

/// Recomputes the deltas after values were edited.
pub fn with_deltas(rows_in: &[DailyRow]) -> Vec<DailyRow> {
    let values: Vec<_> = rows_in
        .iter()
        .map(|r| (r.cases, r.deaths, r.recovered))
        .collect();
    let first = (rows_in[0].date - day(0)).num_days() as u32;
    rows(first, &values)
}

/// When the fixtures' upstream commits were made.
pub fn commit_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_700_000_000, 0).unwrap()
}

/// The commit a fixture input named `tag` was read at: hex digits derived from the tag.
pub fn commit_of(tag: &str) -> CommitSha {
    CommitSha::new(&Digest::of(format!("commit:{tag}").as_bytes()).as_str()[..40]).unwrap()
}

/// The raw payload of a fixture input named `tag`, as `env`'s extractor would have stored it.
pub fn input(env: &Env, source: Source, tag: &str) -> InputRef {
    let sha256 = Digest::of(tag.as_bytes());
    InputRef {
        upstream: UpstreamRef {
            repo: format!("{source}/repo"),
            path: format!("{source}.csv"),
            commit_sha: commit_of(tag),
            commit_time: commit_time(),
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: shared::nats::RAW_BUCKET.into(),
            name: store::raw_object_name(env, &source, &sha256),
            sha256,
            bytes: 10,
        },
        source,
    }
}

/// Fixture runs come in the order they are made, as runs started by successive extractions do.
static EXTRACTIONS: AtomicU64 = AtomicU64::new(1);

/// The order of a fixture run of `inputs`: after every fixture run made before it.
pub fn next_order(inputs: &[InputRef]) -> RunOrder {
    RunOrder::of(inputs, EXTRACTIONS.fetch_add(1, Ordering::Relaxed))
}

/// The transformed event of a run over `rows`; `tag` makes its inputs (and so its run id) unique.
/// Its order comes after every fixture run made before it.
pub fn transformed(env: &Env, tag: &str, rows: &[DailyRow], object: ObjectRef) -> Transformed {
    let trigger = Trigger::new(TriggerKind::Commit);
    let (nyt, jhu) = (format!("nyt-{tag}"), format!("jhu-{tag}"));
    let inputs = vec![input(env, Source::NYT, &nyt), input(env, Source::JHU, &jhu)];
    Transformed {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: Dataset::US,
        run_id: run_id::derive(env, &nyt, &jhu, &trigger),
        order: next_order(&inputs),
        trigger,
        inputs,
        object,
        rows: rows.len() as u64,
        first_date: rows.first().unwrap().date,
        last_date: rows.last().unwrap().date,
        dropped: Dropped {
            only_nyt: 1,
            only_jhu: 0,
            only_nyt_dates: vec![day(0)],
            only_jhu_dates: vec![],
        },
        warnings: vec![],
        timings: vec![("read".into(), 1), ("transform".into(), 2)],
        delta: None,
    }
}

/// A reference for runs applied straight to PostgreSQL, which read no object.
pub fn no_object(env: &Env) -> ObjectRef {
    ObjectRef {
        bucket: shared::nats::CURATED_BUCKET.into(),
        name: format!("{env}/none.parquet"),
        sha256: Digest::of(b""),
        bytes: 0,
    }
}

/// Every column of `us_daily` (including `updated_at` and `run_id`), to prove a table untouched.
pub async fn snapshot(client: &Client, env: &Env) -> Vec<String> {
    client
        .query(
            &format!("SELECT t::text FROM \"{env}\".us_daily t ORDER BY date"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect()
}

pub fn now() -> DateTime<Utc> {
    Utc::now()
}
