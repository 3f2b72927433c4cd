//! Times the keyed transform and delta at final size and reports the process's peak memory.
//!
//!     cargo run --release --example bench_keyed -- --generate
//!     cargo run --release --example bench_keyed -- --dir V1 [--next V2]
//!     cargo run --release --example bench_keyed -- [--states] PATH...
//!
//! `--out DIR` also writes the CSV buffers there: `full_rows.csv` (every row) and the next
//! run's `rows.csv`, `removed.csv`, `changes.csv`.
//!
//! `--generate` builds a synthetic `counties` history in memory at NYT's final size (3,250
//! counties × 780 days ≈ 2.5 M rows, a few empty counts and fips, split by year plus a 30-day
//! `us-counties-recent.csv` overlapping the last year's file) and its next version (one more
//! day, 50 revised values). `--dir V1 --next V2` reads both versions from directories (as
//! scripts/bench/generate_counties.py writes them; its `manifest.json` counts are checked when
//! present). PATHs are CSV files or directories of them (read in name order, `*recent*` last).
//!
//! Steps: the full load (read + validate + deltas, the delta against no base and its `rows` CSV,
//! the Parquet object), then the next version's run as the transformer does it (read the new
//! files, load the base from Parquet, delta, the three CSVs). Each step prints a line and a JSON
//! object (`step`, `seconds`, `peak_rss_mb`); `full_load` and `one_day_update` are the totals.
//! Peak RSS is VmHWM; each step's own peak is measured by resetting it (`/proc/self/clear_refs`).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dataset::keyed::{self, COUNTIES, Curated, STATES, Spec};

const COUNTIES_N: usize = 3_250;
const DAYS: i64 = 780;
const RECENT_DAYS: i64 = 30;
const REVISED: usize = 50;

type Files = Vec<(String, Vec<u8>)>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("{err}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &[String]) -> Result<(), String> {
    let flag = |name: &str| args.iter().any(|a| a == name);
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
    };
    // Where to write the CSV buffers (the full rows, then the next run's delta) to inspect them.
    let out = value("--out").map(PathBuf::from);
    let spec: &'static Spec = if flag("--states") { &STATES } else { &COUNTIES };
    let generate = flag("--generate");
    let (base_files, next_files, manifest) = if generate {
        (History::new(0).files(), None, None)
    } else if let Some(dir) = value("--dir") {
        let next = value("--next").map(|d| read_paths(&[d])).transpose()?;
        let manifest = std::fs::read_to_string(Path::new(dir).join("../manifest.json")).ok();
        (read_paths(&[dir])?, next, manifest)
    } else {
        let out = value("--out");
        let paths: Vec<&String> = args
            .iter()
            .filter(|a| !a.starts_with("--") && Some(*a) != out)
            .collect();
        if paths.is_empty() {
            return Err(
                "usage: bench_keyed --generate | --dir V1 [--next V2] | [--states] PATH...".into(),
            );
        }
        (read_paths(&paths)?, None, None)
    };
    let bytes: usize = base_files.iter().map(|(_, b)| b.len()).sum();
    println!(
        "inputs: {} files, {:.1} MB",
        base_files.len(),
        bytes as f64 / 1e6
    );

    // The full load.
    let (base, read) = step("read_validate_deltas", || {
        keyed::read(spec, &as_refs(&base_files))
    })?;
    println!(
        "  {} rows, {} keys, {} to {}, {} warnings",
        base.rows(),
        base.keys(),
        show(base.first_date()),
        show(base.last_date()),
        base.warnings().len()
    );
    let warnings = base.warnings();
    for warning in warnings
        .iter()
        .take(2)
        .chain(warnings.last().filter(|_| warnings.len() > 2))
    {
        println!("  warning: {warning}");
    }
    let ((inserted, csv_bytes), full) = step("full_delta_rows_csv", || {
        let full = keyed::delta(None, &base)?;
        Ok((full.counts.inserted, full.rows_csv()?.len()))
    })?;
    println!(
        "  {inserted} rows inserted, {:.1} MB of CSV",
        csv_bytes as f64 / 1e6
    );
    if let Some(dir) = &out {
        write_csv(dir, "full_rows.csv", base.rows_csv())?;
    }
    let (parquet, write) = step("to_parquet", || base.to_parquet())?;
    println!("  {:.1} MB of Parquet", parquet.len() as f64 / 1e6);
    total("full_load", read + full + write);

    // The next run: one new day (and revisions) against the base's Parquet object.
    let next_files = match next_files {
        // Generated only now, so the two versions' inputs are never in memory together.
        None if generate => Some(History::new(1).files()),
        files => files,
    };
    let Some(next_files) = next_files else {
        let ((counts, _), same) = step("delta_vs_itself", || {
            let stored = Curated::from_parquet(spec, &parquet)?;
            keyed::delta(Some(&stored), &base).map(|d| (d.counts, d.rows.height()))
        })?;
        println!("  {counts:?}");
        total("one_day_update", same);
        return Ok(());
    };
    drop((base, base_files));
    let (next, read) = step("next_read_validate_deltas", || {
        keyed::read(spec, &as_refs(&next_files))
    })?;
    // The payloads are not needed once read (the curated dataset borrows nothing from them).
    drop(next_files);
    let (stored, load) = step("base_from_parquet", || {
        Curated::from_parquet(spec, &parquet)
    })?;
    let (delta, compare) = step("delta", || keyed::delta(Some(&stored), &next))?;
    println!("  {:?}", delta.counts);
    let ((rows, removed, changes), csv) = step("delta_csvs", || {
        Ok((
            delta.rows_csv()?,
            delta.removed_csv()?,
            delta.changes_csv()?,
        ))
    })?;
    println!(
        "  rows {} B, removed {} B, changes {} B",
        rows.len(),
        removed.len(),
        changes.len()
    );
    total("one_day_update", read + load + compare + csv);
    if let Some(dir) = &out {
        write_csv(dir, "rows.csv", Ok(rows))?;
        write_csv(dir, "removed.csv", Ok(removed))?;
        write_csv(dir, "changes.csv", Ok(changes))?;
    }
    if let Some(manifest) = manifest {
        check(&manifest, &delta.counts, next.rows());
    }
    Ok(())
}

fn write_csv(
    dir: &Path,
    name: &str,
    bytes: Result<Vec<u8>, dataset::DataError>,
) -> Result<(), String> {
    let bytes = bytes.map_err(|e| e.to_string())?;
    std::fs::write(dir.join(name), bytes).map_err(|e| format!("{}: {e}", dir.display()))
}

/// Says whether the delta's counts are the ones the generator's manifest expects.
fn check(manifest: &str, counts: &shared::events::Counts, rows: usize) {
    let Some(expected) = manifest.split("\"v2_expected\"").nth(1) else {
        return;
    };
    let number = |name: &str| -> Option<u64> {
        let rest = expected.split(&format!("\"{name}\":")).nth(1)?;
        let digits: String = rest
            .trim_start()
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        digits.parse().ok()
    };
    let got = [
        ("rows", rows as u64),
        ("inserted", counts.inserted),
        ("updated", counts.updated),
        ("unchanged", counts.unchanged),
        ("removed", counts.removed),
        ("revised", counts.revised),
    ];
    let problems: Vec<String> = got
        .iter()
        .filter(|(name, value)| number(name) != Some(*value))
        .map(|(name, value)| format!("{name} {value}, the manifest expects {:?}", number(name)))
        .collect();
    if problems.is_empty() {
        println!("counts check against manifest.json: ok");
    } else {
        println!(
            "counts check against manifest.json: FAILED: {}",
            problems.join("; ")
        );
    }
}

/// Runs one step; prints its time and its own peak RSS, as a line and as a JSON object.
fn step<T>(
    name: &str,
    run: impl FnOnce() -> Result<T, dataset::DataError>,
) -> Result<(T, Duration), String> {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let start = Instant::now();
    let out = run().map_err(|err| format!("{name}: {err}"))?;
    let elapsed = start.elapsed();
    let peak = peak_rss_kib().unwrap_or(0);
    let overall = OVERALL_PEAK.fetch_max(peak, Ordering::Relaxed).max(peak);
    let step_peak = if reset {
        format!(", step peak {:.0} MB", mb(peak))
    } else {
        String::new()
    };
    println!("{name:<28}{:>9.0} ms{step_peak}", ms(elapsed));
    println!(
        "{{\"step\": \"{name}\", \"seconds\": {:.3}, \"peak_rss_mb\": {:.1}}}",
        elapsed.as_secs_f64(),
        mb(overall)
    );
    Ok((out, elapsed))
}

fn total(name: &str, elapsed: Duration) {
    let peak = mb(OVERALL_PEAK.load(Ordering::Relaxed));
    println!(
        "{name:<28}{:>9.0} ms, process peak {peak:.0} MB",
        ms(elapsed)
    );
    println!(
        "{{\"step\": \"{name}\", \"seconds\": {:.3}, \"peak_rss_mb\": {peak:.1}}}",
        elapsed.as_secs_f64()
    );
}

/// The highest VmHWM seen, kept here because each step resets the kernel's.
static OVERALL_PEAK: AtomicU64 = AtomicU64::new(0);

fn mb(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// A synthetic county history; `extra_days` more days than the base (0 for the base; 1 for
/// the next run, which also revises [`REVISED`] values of the first year).
struct History {
    extra_days: i64,
}

impl History {
    fn new(extra_days: i64) -> Self {
        History { extra_days }
    }

    fn files(&self) -> Files {
        let first = chrono::NaiveDate::from_ymd_opt(2020, 1, 21).unwrap_or_default();
        let days = DAYS + self.extra_days;
        let day = |i: i64| first + chrono::Duration::days(i);
        let last_year = {
            use chrono::Datelike;
            day(days - 1).year()
        };
        let mut files: Files = Vec::new();
        let mut recent = b"date,county,state,fips,cases,deaths\n".to_vec();
        // Revised values: every (COUNTIES_N * 7)th row in the first days, +1 case, next run only.
        let revised = |i: i64, county: usize| {
            self.extra_days > 0
                && i < 200
                && (i as usize * COUNTIES_N + county).is_multiple_of(COUNTIES_N * 4 + 1)
        };
        let mut revisions = 0;
        for i in 0..days {
            let date = day(i);
            let year = {
                use chrono::Datelike;
                date.year()
            };
            let file = file_named(&mut files, format!("us-counties-{year}.csv"));
            let in_recent = i >= days - RECENT_DAYS && year == last_year;
            for county in 0..COUNTIES_N {
                let mut line = String::with_capacity(64);
                let state = county % 55;
                let unknown = county < 55; // one "Unknown" county per state, without fips
                let name = if unknown {
                    "Unknown".to_owned()
                } else {
                    format!("County {county:04}")
                };
                let fips = if unknown {
                    String::new()
                } else {
                    format!("{:05}", 1000 + county)
                };
                let growth = 1 + (county % 7) as i64;
                let mut cases = i * growth + (county % 13) as i64;
                if revised(i, county) && revisions < REVISED {
                    cases += 1;
                    revisions += 1;
                }
                let deaths = i * growth / 50;
                // A few empty counts, as upstream has.
                let cases = if (i as usize + county) % 100_003 == 17 {
                    String::new()
                } else {
                    cases.to_string()
                };
                use std::fmt::Write;
                let _ = writeln!(
                    line,
                    "{date},{name},State {state:02},{fips},{cases},{deaths}"
                );
                files[file].1.extend_from_slice(line.as_bytes());
                if in_recent {
                    recent.extend_from_slice(line.as_bytes());
                }
            }
        }
        files.push(("us-counties-recent.csv".into(), recent));
        files
    }
}

/// The index of the file `name`, added with its header when new.
fn file_named(files: &mut Files, name: String) -> usize {
    if let Some(i) = files.iter().position(|(n, _)| *n == name) {
        return i;
    }
    files.push((name, b"date,county,state,fips,cases,deaths\n".to_vec()));
    files.len() - 1
}

fn read_paths(paths: &[&String]) -> Result<Files, String> {
    let mut found: Vec<PathBuf> = Vec::new();
    for path in paths {
        let path = Path::new(path.as_str());
        if path.is_dir() {
            let entries =
                std::fs::read_dir(path).map_err(|e| format!("{}: {e}", path.display()))?;
            let mut csvs: Vec<PathBuf> = entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "csv"))
                .collect();
            csvs.sort_by_key(|p| (p.to_string_lossy().contains("recent"), p.clone()));
            found.extend(csvs);
        } else {
            found.push(path.to_path_buf());
        }
    }
    found
        .into_iter()
        .map(|path| {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            std::fs::read(&path)
                .map(|bytes| (name, bytes))
                .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

fn as_refs(files: &[(String, Vec<u8>)]) -> Vec<(&str, &[u8])> {
    files
        .iter()
        .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
        .collect()
}

fn ms(d: std::time::Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn show(date: Option<chrono::NaiveDate>) -> String {
    date.map_or_else(|| "-".into(), |d| d.to_string())
}

/// The process's peak resident set size in KiB, from `/proc/self/status`.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}
