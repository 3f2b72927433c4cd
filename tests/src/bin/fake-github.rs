//! `fake-github`: replays real upstream history through a fake GitHub, for humans trying the
//! pipeline without touching github.com.
//!
//! ```text
//! fake-github --demo --every 5s
//! fake-github --dir ../shared/upstream --every 10s
//! fake-github --timeline ../shared/upstream/timeline/timeline_real.json
//! ```
//!
//! (in the target dir's `debug/` after `cargo build --workspace --all-targets`, or `release/`
//! after `scripts/run.sh`; `scripts/run.sh --demo` runs the first line for you).
//!
//! It serves the commits and contents APIs on `--api-addr` (default 127.0.0.1:8900) and the raw
//! host on `--raw-addr` (default 127.0.0.1:8901), and prints the two variables to give the
//! extractor (`GITHUB_API_URL`, `GITHUB_RAW_URL`). At start the first step is visible (the
//! versions up to the time both sources have one); each later commit is revealed one at a time,
//! every `--every` interval, or on `curl -X POST http://127.0.0.1:8900/_replay/next`
//! (`GET /_replay/status` shows how far it is). Each reveal is printed.
//!
//! `--dir` takes a folder laid out like `shared/upstream`: `nyt/history/` and `jhu/history/` of
//! files named `<UTC time with - for :>_<sha10>.csv` (a prefix before the time is allowed);
//! `--timeline` takes a `timeline_real.json`, which has full shas and commit messages.
//!
//! `--demo` needs neither: it serves the project's own synthetic history
//! (`etl_tests::fake_github::demo`), 30 days at start and one more day every `--every` (5 s
//! unless told), now and then revising an earlier day; the commits get the reveal's time, and
//! shas of their own unless `--seed` repeats an earlier demo's.
//!
//! `--api-url` and `--raw-url` are the addresses clients reach it by, when not its listening
//! ones (in a container: `--api-addr 0.0.0.0:8900 --api-url http://fake-github:8900`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use etl_tests::fake_github::{FakeGithub, demo, replay};
use tokio::signal::unix::{SignalKind, signal};

#[derive(Parser)]
#[command(about = "A fake GitHub that replays upstream file history one commit at a time")]
struct Args {
    /// A folder of versions: <dir>/nyt/history/*.csv, <dir>/jhu/history/*.csv.
    #[arg(long, required_unless_present_any = ["timeline", "demo"])]
    dir: Option<PathBuf>,
    /// A timeline_real.json.
    #[arg(long, conflicts_with = "dir")]
    timeline: Option<PathBuf>,
    /// Serve the built-in demo history (a synthetic epidemic), one day more every --every.
    #[arg(long, conflicts_with_all = ["dir", "timeline"])]
    demo: bool,
    /// With --demo: mixed into the commit shas (default: the start time), so a demo started
    /// again makes new runs.
    #[arg(long, requires = "demo")]
    seed: Option<u64>,
    /// Reveal the next commit this often (e.g. 10s, 1m); without it, only on POST /_replay/next
    /// (with --demo: every 5s).
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
    #[arg(long, default_value = "127.0.0.1:8900")]
    api_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8901")]
    raw_addr: SocketAddr,
    /// The API's URL as clients reach it, for links (default: http://<api-addr>).
    #[arg(long)]
    api_url: Option<String>,
    /// The raw host's URL as clients reach it, for links (default: http://<raw-addr>).
    #[arg(long)]
    raw_url: Option<String>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let (steps, every) = match (&args.dir, &args.timeline) {
        _ if args.demo => {
            let seed = args.seed.unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs())
            });
            let options = demo::DemoOptions {
                seed,
                ..demo::DemoOptions::default()
            };
            println!(
                "demo history: {} days from {}, then one day more per step for {} steps; an earlier day revised every {} steps",
                options.initial_days,
                demo::FIRST_DAY,
                options.steps,
                demo::REVISION_EVERY
            );
            (
                options.steps(),
                Some(args.every.unwrap_or(Duration::from_secs(5))),
            )
        }
        (Some(dir), _) => (replay::load_dir(dir)?, args.every),
        (None, Some(timeline)) => (replay::load_timeline(timeline)?, args.every),
        (None, None) => anyhow::bail!("give --dir, --timeline or --demo"),
    };
    let github =
        FakeGithub::start_advertising(args.api_addr, args.raw_addr, args.api_url, args.raw_url)
            .await?;
    github.set_verbose(true);
    github.queue_steps(steps);
    println!("fake GitHub serving; point the extractor at it with:");
    println!(
        "  export GITHUB_API_URL={} GITHUB_RAW_URL={} DATASETS=us",
        github.api_url(),
        github.raw_url()
    );
    github.reveal_next();
    match every {
        Some(every) => println!(
            "revealing the next commit every {}",
            humantime::format_duration(every)
        ),
        None => println!(
            "reveal the next commit with: curl -X POST {}/_replay/next",
            github.api_url()
        ),
    }
    let mut ticker =
        every.map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
    let mut terminate = signal(SignalKind::terminate())?;
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
            _ = terminate.recv() => break,
            _ = async { ticker.as_mut().expect("guarded").tick().await }, if ticker.is_some() => {
                if github.reveal_next().is_none() {
                    println!("all commits revealed; still serving (Ctrl-C to stop)");
                    ticker = None;
                }
            }
        }
    }
    Ok(())
}
