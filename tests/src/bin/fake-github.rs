//! `fake-github`: replays real upstream history through a fake GitHub, for humans trying the
//! pipeline without touching github.com.
//!
//! ```text
//! cargo run -p etl-tests --bin fake-github -- --dir ../shared/upstream --every 10s
//! cargo run -p etl-tests --bin fake-github -- --timeline ../shared/upstream/timeline/timeline_real.json
//! ```
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

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use etl_tests::fake_github::{FakeGithub, replay};

#[derive(Parser)]
#[command(about = "A fake GitHub that replays upstream file history one commit at a time")]
struct Args {
    /// A folder of versions: <dir>/nyt/history/*.csv, <dir>/jhu/history/*.csv.
    #[arg(
        long,
        conflicts_with = "timeline",
        required_unless_present = "timeline"
    )]
    dir: Option<PathBuf>,
    /// A timeline_real.json.
    #[arg(long)]
    timeline: Option<PathBuf>,
    /// Reveal the next commit this often (e.g. 10s, 1m); without it, only on POST /_replay/next.
    #[arg(long, value_parser = humantime::parse_duration)]
    every: Option<Duration>,
    #[arg(long, default_value = "127.0.0.1:8900")]
    api_addr: SocketAddr,
    #[arg(long, default_value = "127.0.0.1:8901")]
    raw_addr: SocketAddr,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let steps = match (&args.dir, &args.timeline) {
        (Some(dir), _) => replay::load_dir(dir)?,
        (None, Some(timeline)) => replay::load_timeline(timeline)?,
        (None, None) => unreachable!("clap requires one"),
    };
    let github = FakeGithub::start_on(args.api_addr, args.raw_addr).await?;
    github.set_verbose(true);
    github.queue_steps(steps);
    println!("fake GitHub serving; point the extractor at it with:");
    println!(
        "  export GITHUB_API_URL={} GITHUB_RAW_URL={}",
        github.api_url(),
        github.raw_url()
    );
    github.reveal_next();
    match args.every {
        Some(every) => println!(
            "revealing the next commit every {}",
            humantime::format_duration(every)
        ),
        None => println!(
            "reveal the next commit with: curl -X POST {}/_replay/next",
            github.api_url()
        ),
    }
    let mut ticker = args
        .every
        .map(|every| tokio::time::interval_at(tokio::time::Instant::now() + every, every));
    loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => break,
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
