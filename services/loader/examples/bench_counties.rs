//! The county dataset end to end, on the files `scripts/bench-counties.sh` generates: what the
//! transformer and the loader do for a run, timed in one process against the local PostgreSQL.
//!
//! 1. `full_load`: read and validate every file of V1, per-key deltas, the rows CSV, a full
//!    reconcile into an empty `counties_daily` (one transaction, timed to its commit);
//! 2. `one_day_update`: what the running transformer does on a daily run once it has made V1's
//!    run (its caches warm: each file parsed, keyed by the payload's digest, and V1's curated
//!    dataset, the base): only the files whose digest changed read and parsed, the version
//!    combined, the delta against the base in memory and its CSVs, the curated Parquet; then the
//!    loader's apply on top of V1 (timed to its commit). The digests are taken before the clock
//!    starts: the extractor records them, the transformer never hashes a payload it has parsed.
//!
//! ```text
//! bench_counties --dir V1 --next V2
//! ```
//!
//! Prints each step, then one JSON object per total (`step`, `seconds`, `peak_rss_mb`; peak RSS is
//! the process's VmHWM). `DATABASE_URL` as the loader reads it; a scratch env schema is made and
//! dropped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, bail};
use dataset::keyed::{self, COUNTIES, ParsedFile};
use loader::keyed::{Delta, DeltaOutcome, Table};
use shared::ids::{Digest, RunId};

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

    // 1. The first run: every file read, curated and reconciled into the empty table. The parsed
    // files and the curated dataset are kept, as the transformer keeps them.
    let digests = file_digests(&v1)?;
    let started = Instant::now();
    let files = read_dir(&v1, |_| true)?;
    let mut parsed = Vec::with_capacity(files.len());
    for ((name, bytes), (_, digest)) in files.iter().zip(digests) {
        let file = keyed::parse_file(&COUNTIES, name, bytes)?;
        parsed.push((name.clone(), digest, Arc::new(file)));
    }
    drop(files);
    let base = keyed::combine(&COUNTIES, &named(&parsed))?;
    step("read V1", started);
    let at = Instant::now();
    let rows = base.rows_csv()?;
    let keys = base.keys_csv()?;
    let parquet = base.to_parquet()?;
    drop(parquet);
    step("rows CSV, key list and Parquet", at);
    let run_a = RunId::new("bench-counties-a")?;
    let at = Instant::now();
    let tx = client.transaction().await?;
    let applied = loader::keyed::reconcile(
        &tx,
        &env,
        table,
        &run_a,
        &rows,
        Some(&keys),
        MAX_REMOVED_SHARE,
    )
    .await
    .context("the first reconcile")?;
    tx.commit().await?;
    drop((rows, keys));
    step("reconcile", at);
    println!("  {:?}", applied.counts);
    total("full_load", started);

    // 2. The next run: one new day and some revisions, shipped as a delta on top of V1.
    let digests = file_digests(&v2)?;
    let started = Instant::now();
    let cached = |digest: &Digest| parsed.iter().find(|(_, d, _)| d == digest);
    let changed = read_dir(&v2, |name| {
        digests
            .iter()
            .any(|(n, digest)| n == name && cached(digest).is_none())
    })?;
    step("read the changed files", started);
    let at = Instant::now();
    let mut next_files = Vec::with_capacity(digests.len());
    for (name, digest) in &digests {
        let file = match cached(digest) {
            Some((_, _, file)) => Arc::clone(file),
            None => {
                let (_, bytes) = changed
                    .iter()
                    .find(|(n, _)| n == name)
                    .context("a changed file was not read")?;
                Arc::new(keyed::parse_file(&COUNTIES, name, bytes)?)
            }
        };
        next_files.push((name.clone(), digest.clone(), file));
    }
    drop(changed);
    step(
        &format!(
            "parse {} of {} files",
            digests.len() - reused(&parsed, &digests),
            digests.len()
        ),
        at,
    );
    let at = Instant::now();
    let next = keyed::combine(&COUNTIES, &named(&next_files))?;
    step("combine", at);
    // As the transformer does: the Parquet encoded on a thread of its own meanwhile.
    let at = Instant::now();
    let (parquet, (rows, removed, changes), counts) = std::thread::scope(|scope| {
        let parquet = scope.spawn(|| next.to_parquet());
        let delta = keyed::delta(Some(&base), &next)?;
        let csvs = (
            delta.rows_csv()?,
            delta.removed_csv()?,
            delta.changes_csv()?,
        );
        step("delta and its CSVs", at);
        let parquet = parquet
            .join()
            .expect("the Parquet encoding does not panic")?;
        anyhow::Ok((parquet, csvs, delta.counts))
    })?;
    step(
        &format!(
            "and the Parquet meanwhile ({} MB)",
            parquet.len() / 1_000_000
        ),
        at,
    );
    // The caches move on to V2: one version of each.
    drop((base, parquet, parsed));
    let _caches = (next_files, next);
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
    println!("  {:?} (the delta said {:?})", applied.counts, counts);
    total("one_day_update", started);

    client
        .batch_execute(&format!("DROP SCHEMA {} CASCADE", loader::db::schema(&env)))
        .await
        .context("drop the scratch schema")?;
    Ok(())
}

/// Each CSV file of `dir` (in `read_dir`'s order) with its bytes' digest.
fn file_digests(dir: &Path) -> anyhow::Result<Vec<(String, Digest)>> {
    let files = read_dir(dir, |_| true)?;
    Ok(files
        .into_iter()
        .map(|(name, bytes)| (name, Digest::of(&bytes)))
        .collect())
}

/// How many of `digests` are among the parsed files.
fn reused(parsed: &[(String, Digest, Arc<ParsedFile>)], digests: &[(String, Digest)]) -> usize {
    digests
        .iter()
        .filter(|(_, digest)| parsed.iter().any(|(_, d, _)| d == digest))
        .count()
}

fn named(files: &[(String, Digest, Arc<ParsedFile>)]) -> Vec<(&str, &ParsedFile)> {
    files
        .iter()
        .map(|(name, _, file)| (name.as_str(), file.as_ref()))
        .collect()
}

/// The CSV files of `dir` whose name `wanted` takes, in name order with `*recent*` last (as
/// upstream lists them).
fn read_dir(dir: &Path, wanted: impl Fn(&str) -> bool) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("read {}", dir.display()))?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|path| path.extension().is_some_and(|x| x == "csv"))
        .filter(|path| {
            path.file_name()
                .is_some_and(|n| wanted(&n.to_string_lossy()))
        })
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
