//! The county dataset end to end, on the files `scripts/bench-counties.sh` generates: what the
//! transformer and the loader do for a run, timed in one process against the local PostgreSQL.
//!
//! 1. `full_load`: read and validate every file of V1, per-key deltas, the rows CSV, a full
//!    reconcile into an empty `counties_daily` (one transaction, timed to its commit);
//! 2. `one_day_update`: read V2, the base read back from its Parquet object (as the transformer
//!    finds it in `etl-curated`), the delta, and its apply on top of V1 (timed to its commit).
//!
//! ```text
//! bench_counties --dir V1 --next V2
//! ```
//!
//! Prints each step, then one JSON object per total (`step`, `seconds`, `peak_rss_mb`; peak RSS is
//! the process's VmHWM). `DATABASE_URL` as the loader reads it; a scratch env schema is made and
//! dropped.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use dataset::keyed::{self, COUNTIES, Curated};
use loader::keyed::{Delta, DeltaOutcome, Table};
use shared::ids::RunId;

/// DESIGN rule 7's default share.
const MAX_REMOVED_SHARE: f64 = 0.05;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let (Some(v1), Some(v2)) = (value("--dir"), value("--next")) else {
        bail!("usage: bench_counties --dir V1 --next V2");
    };
    let url = std::env::var("DATABASE_URL")
        .unwrap_or_else(|_| loader::config::DEFAULT_DATABASE_URL.to_owned());
    shared::install_crypto_provider();
    let mut client = shared::postgres::Database::from_url(&url)?
        .connect()
        .await
        .map_err(|err| anyhow::anyhow!(shared::postgres::explain(&err)))
        .context("connect to PostgreSQL")?;
    let env = test_support::unique_env("benchcounties");
    loader::migrate::migrate(&mut client, &env).await?;
    let table = &Table::COUNTIES;

    // 1. The first run: every file read, curated and reconciled into the empty table.
    let started = Instant::now();
    let files = read_dir(&v1)?;
    let base = keyed::read(&COUNTIES, &as_refs(&files))?;
    drop(files);
    step("read V1", started);
    let at = Instant::now();
    let rows = base.rows_csv()?;
    let parquet = base.to_parquet()?;
    drop(base);
    step("rows CSV and Parquet", at);
    let run_a = RunId::new("bench-counties-a")?;
    let at = Instant::now();
    let tx = client.transaction().await?;
    let applied = loader::keyed::reconcile(&tx, &env, table, &run_a, &rows, MAX_REMOVED_SHARE)
        .await
        .context("the first reconcile")?;
    tx.commit().await?;
    drop(rows);
    step("reconcile", at);
    println!("  {:?}", applied.counts);
    total("full_load", started);

    // 2. The next run: one new day and some revisions, shipped as a delta on top of V1.
    let started = Instant::now();
    let files = read_dir(&v2)?;
    let next = keyed::read(&COUNTIES, &as_refs(&files))?;
    drop(files);
    step("read V2", started);
    let at = Instant::now();
    let base = Curated::from_parquet(&COUNTIES, &parquet)?;
    let delta = keyed::delta(Some(&base), &next)?;
    let (rows, removed, changes) = (
        delta.rows_csv()?,
        delta.removed_csv()?,
        delta.changes_csv()?,
    );
    drop((base, next));
    step("base from Parquet, delta", at);
    let run_b = RunId::new("bench-counties-b")?;
    let at = Instant::now();
    let tx = client.transaction().await?;
    let shipped = Delta {
        base_run_id: &run_a,
        rows: &rows,
        removed: &removed,
        changes: &changes,
    };
    let outcome =
        loader::keyed::apply_delta(&tx, &env, table, &run_b, &shipped, MAX_REMOVED_SHARE).await?;
    tx.commit().await?;
    let DeltaOutcome::Applied(applied) = outcome else {
        bail!("the delta did not apply on its base: {outcome:?}");
    };
    step("apply the delta", at);
    println!("  {:?} (the delta said {:?})", applied.counts, delta.counts);
    total("one_day_update", started);

    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", loader::db::schema(&env)))
        .await
        .context("drop the scratch schema")?;
    Ok(())
}

/// The CSV files of `dir`, in name order with `*recent*` last (as upstream lists them).
fn read_dir(dir: &Path) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "csv"))
        .collect();
    paths.sort_by_key(|p| (p.to_string_lossy().contains("recent"), p.clone()));
    paths
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            Ok((name, bytes))
        })
        .collect()
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect()
}

fn step(name: &str, since: Instant) {
    println!(
        "{name:<28}{:>9.0} ms",
        since.elapsed().as_secs_f64() * 1000.0
    );
}

fn total(name: &str, since: Instant) {
    let seconds = since.elapsed().as_secs_f64();
    let peak_mb = peak_rss_kib().unwrap_or(0) as f64 / 1024.0;
    println!(
        "{name:<28}{:>9.0} ms, process peak {peak_mb:.0} MB",
        seconds * 1000.0
    );
    println!("{{\"step\": \"{name}\", \"seconds\": {seconds:.3}, \"peak_rss_mb\": {peak_mb:.1}}}");
}

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
