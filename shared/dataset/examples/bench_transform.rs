//! Times the dataset steps on real-size inputs and reports the process's peak memory.
//!
//!     cargo run --release -p dataset --example bench_transform -- NYT_CSV JHU_CSV [REPEAT]
//!
//! Prints the median and minimum of REPEAT runs (default 50, after one warm-up run) of
//! parse + validate + transform (also: its first, cold call, and the same with the JHU file cut
//! to its US rows, which shows what scanning the other 115 000 rows costs), the Parquet write,
//! and a diff against a stored table that differs in a few rows, then the peak RSS (VmHWM) of
//! the whole process.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use dataset::{DailyRow, diff, to_parquet, transform};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (Some(nyt_path), Some(jhu_path)) = (args.first(), args.get(1)) else {
        eprintln!("usage: bench_transform NYT_CSV JHU_CSV [REPEAT]");
        return ExitCode::from(2);
    };
    let repeat: usize = match args.get(2).map(|r| r.parse()) {
        None => 50,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("REPEAT must be a whole number above 0");
            return ExitCode::from(2);
        }
    };
    let read = |path: &str| std::fs::read(path).map_err(|err| format!("cannot read {path}: {err}"));
    let (nyt, jhu) = match (read(nyt_path), read(jhu_path)) {
        (Ok(nyt), Ok(jhu)) => (nyt, jhu),
        (Err(err), _) | (_, Err(err)) => {
            eprintln!("{err}");
            return ExitCode::FAILURE;
        }
    };

    // The first call also starts polars' thread pool: a service pays this once per process.
    let cold = Instant::now();
    let first = transform(&nyt, &jhu);
    let cold = cold.elapsed();
    let curated = match first {
        Ok(curated) => curated,
        Err(err) => {
            eprintln!("the transform refused the inputs: {err}");
            return ExitCode::FAILURE;
        }
    };
    let stored = revised_copy(&curated.rows);

    let transform_times = time(repeat, || transform(&nyt, &jhu).map(|c| c.rows.len()));
    let jhu_us = us_national_rows(&jhu);
    let us_only_times = time(repeat, || transform(&nyt, &jhu_us).map(|c| c.rows.len()));
    let parquet_times = time(repeat, || to_parquet(&curated.rows).map(|b| b.len()));
    let diff_times = time(repeat, || {
        Ok::<_, ()>(diff::diff(&stored, &curated.rows).corrections.len())
    });
    let parquet_bytes = to_parquet(&curated.rows).map(|b| b.len()).unwrap_or(0);
    let counts = diff::diff(&stored, &curated.rows).counts();

    println!(
        "inputs: nyt {} bytes, jhu {} bytes; {repeat} runs after a warm-up",
        nyt.len(),
        jhu.len()
    );
    println!(
        "result: {} rows ({} to {}); dropped {} days only in NYT, {} only in JHU; {} warnings",
        curated.rows.len(),
        curated
            .rows
            .first()
            .map(|r| r.date.to_string())
            .unwrap_or_default(),
        curated
            .rows
            .last()
            .map(|r| r.date.to_string())
            .unwrap_or_default(),
        curated.dropped.only_nyt,
        curated.dropped.only_jhu,
        curated.warnings.len()
    );
    for warning in &curated.warnings {
        println!("  warning: {warning}");
    }
    println!("{:<44}{:>12}{:>12}", "step", "median ms", "min ms");
    report("parse + validate + transform", &transform_times);
    report("  first call in the process (cold)", &[cold]);
    report(
        &format!("  same, JHU cut to its {} bytes of US rows", jhu_us.len()),
        &us_only_times,
    );
    report(
        &format!("parquet write ({parquet_bytes} bytes)"),
        &parquet_times,
    );
    report(
        &format!(
            "diff ({} updated, {} revised)",
            counts.updated, counts.revised
        ),
        &diff_times,
    );
    match peak_rss_kib() {
        Some(kib) => println!("peak RSS (VmHWM): {:.1} MB", kib as f64 / 1024.0),
        None => println!("peak RSS: unknown (no VmHWM in /proc/self/status)"),
    }
    ExitCode::SUCCESS
}

/// The stored table as an earlier run could have left it: the last day not there yet, and two
/// days whose cases upstream has revised since (each changes its own delta and the next day's).
fn revised_copy(rows: &[DailyRow]) -> Vec<DailyRow> {
    let mut stored: Vec<DailyRow> = rows
        .iter()
        .take(rows.len().saturating_sub(1))
        .cloned()
        .collect();
    for index in [stored.len() / 3, stored.len() / 2] {
        if index + 1 < stored.len() {
            stored[index].cases += 10;
            stored[index].new_cases = stored[index].new_cases.map(|d| d + 10);
            stored[index + 1].new_cases = stored[index + 1].new_cases.map(|d| d - 10);
        }
    }
    stored
}

/// The JHU header and its US national rows only: the transform minus the scan of other rows.
/// (A text filter is enough for this comparison, on the real file's format.)
fn us_national_rows(jhu: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(jhu);
    let mut lines = text.lines();
    let mut out: Vec<&str> = lines.next().into_iter().collect();
    out.extend(lines.filter(|line| line.contains(",US,,")));
    (out.join("\n") + "\n").into_bytes()
}

/// Runs `step` once to warm up, then `repeat` times; returns the sorted durations.
fn time<T, E: std::fmt::Debug>(
    repeat: usize,
    mut step: impl FnMut() -> Result<T, E>,
) -> Vec<Duration> {
    step().expect("the step failed on its warm-up run");
    let mut times: Vec<Duration> = (0..repeat)
        .map(|_| {
            let start = Instant::now();
            let out = step();
            let elapsed = start.elapsed();
            std::hint::black_box(out.expect("the step failed"));
            elapsed
        })
        .collect();
    times.sort();
    times
}

fn report(step: &str, sorted: &[Duration]) {
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{step:<44}{:>12.3}{:>12.3}",
        ms(sorted[sorted.len() / 2]),
        ms(sorted[0])
    );
}

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
