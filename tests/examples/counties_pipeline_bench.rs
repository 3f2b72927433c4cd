//! Benchmark: the `counties` dataset at its final size through the running services, from the
//! first `extracted` event of a run to its message on `notify.<env>`.
//!
//! ```text
//! counties_pipeline_bench --dir V1 --next V2
//! ```
//!
//! V1 and V2 are folders of county files as `scripts/bench-counties.sh` generates them (V2 = V1
//! plus one day and some revisions). A fake GitHub serves V1's files; the real extractor,
//! transformer, loader and notifier (in this process, as the tests run them) and the real NATS and
//! PostgreSQL of this machine (`.stack/env`'s variables) load them; then the files V2 changes are
//! committed and a trigger makes the next run. For each run it prints the time from the first
//! extracted event (the extractor announces a dataset's files together, after checking them all)
//! to the notification, when the `transformed` and `loaded` events were stored after it, and
//! one JSON line per run (`step`: `pipeline_full_load`,
//! `pipeline_one_day_update`; `seconds`). Everything it wrote is removed at the end.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::events::RunStatus;
use shared::nats::ETL_STREAM;
use test_support::{EventLog, Pipeline, Stages, TestEnv};
use tokio::time::Instant;

const REPO: &str = "nytimes/covid-19-data";
/// Generous: a slow machine still gets an answer; only a failing run waits this long.
const RUN_WITHIN: Duration = Duration::from_secs(300);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    shared::install_crypto_provider();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .map(PathBuf::from)
    };
    let (Some(v1), Some(v2)) = (value("--dir"), value("--next")) else {
        bail!("usage: counties_pipeline_bench --dir V1 --next V2");
    };
    let first = read_dir(&v1)?;
    let next = read_dir(&v2)?;
    let changed: BTreeMap<&String, &Vec<u8>> = next
        .iter()
        .filter(|(name, bytes)| first.get(*name) != Some(*bytes))
        .collect();
    if first.keys().ne(next.keys()) || changed.is_empty() {
        bail!("V2 must hold V1's files, some of them changed");
    }

    let github = FakeGithub::start().await?;
    let test = TestEnv::new("benchpipe").await;
    let env = &test.env;
    let mut vars = test_support::stack::vars(env);
    for (name, value) in github.env_vars() {
        vars.set(name, value);
    }
    let paths: Vec<&str> = first.keys().map(String::as_str).collect();
    vars.set("DATASETS", "counties")
        .set("COUNTIES_REPO", REPO)
        .set("COUNTIES_PATHS", paths.join(","))
        // The second run is started by a trigger once all of V2's files are committed.
        .set("POLL_INTERVAL", "1h")
        .set("STALE_AFTER", "off");
    let mut notifications = test.notifications().await;
    // Every stage's events, in the order the stream stored them.
    let mut events = EventLog::open(&test.stores.js, ETL_STREAM, format!("etl.{env}.>")).await;
    let subject = |stage: &str| format!("etl.{env}.{stage}");

    github.add_many(commits(&first));
    let pipeline = Pipeline::start(&vars, Stages::All)?;
    let mut runs = Vec::new();
    for (step, what) in [
        ("pipeline_full_load", "the first full load"),
        ("pipeline_one_day_update", "one new day"),
    ] {
        if step == "pipeline_one_day_update" {
            github.add_many(commits(changed.clone()));
            trigger(env).await?;
        }
        let extracted = loop {
            let message = events
                .next_within(RUN_WITHIN)
                .await
                .with_context(|| format!("no extracted event for {what}"))?;
            if message.subject.starts_with(&subject("extracted.")) {
                break message;
            }
        };
        let announced = Instant::now();
        let notification = notifications
            .within(RUN_WITHIN)
            .await
            .with_context(|| format!("no notification for {what}"))?;
        let seconds = announced.elapsed().as_secs_f64();
        if notification.status != RunStatus::Succeeded {
            bail!("{what} failed: {}", notification.text);
        }
        // Where the time went: when the stream stored each stage's event, after the first
        // extracted one. The run's other extracted events come before its transformed one.
        let mut stages = Vec::new();
        let mut steps = String::new();
        while let Some(message) = events.next_within(Duration::from_secs(5)).await {
            let stage = message.subject.as_str();
            if stage == subject("transformed") || stage == subject("loaded") {
                stages.push(format!(
                    "{} {:.0} ms",
                    stage.rsplit('.').next().unwrap_or(stage),
                    stored_between(&extracted, &message)? * 1000.0
                ));
            }
            if stage == subject("loaded") {
                steps = timings(&message.payload)?;
                break;
            }
        }
        println!(
            "{what:<22} extracted → notification {:>7.0} ms  (after the extracted event: {})  {}",
            seconds * 1000.0,
            stages.join(", "),
            notification.subject
        );
        println!("{:<22} steps (ms): {steps}", "");
        runs.push(format!(
            "{{\"step\": \"{step}\", \"seconds\": {seconds:.3}}}"
        ));
    }
    pipeline.stop().await;
    for run in runs {
        println!("{run}");
    }
    test.clean_up().await;
    Ok(())
}

/// The CSV files of `dir` by name.
fn read_dir(dir: &Path) -> anyhow::Result<BTreeMap<String, Vec<u8>>> {
    let mut files = BTreeMap::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("read {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_some_and(|x| x == "csv") {
            let name = path
                .file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
            let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
            files.insert(name, bytes);
        }
    }
    Ok(files)
}

/// The steps a `loaded` event says its run took, the transformer's and the loader's, as
/// `name ms, …`.
fn timings(loaded: &[u8]) -> anyhow::Result<String> {
    let event: serde_json::Value = serde_json::from_slice(loaded).context("a loaded event")?;
    let steps = event["timings"].as_array().cloned().unwrap_or_default();
    Ok(steps
        .iter()
        .filter_map(|step| Some(format!("{} {}", step[0].as_str()?, step[1].as_u64()?)))
        .collect::<Vec<_>>()
        .join(", "))
}

/// Seconds between the stream storing `earlier` and storing `later`.
fn stored_between(
    earlier: &async_nats::jetstream::Message,
    later: &async_nats::jetstream::Message,
) -> anyhow::Result<f64> {
    let stored = |message: &async_nats::jetstream::Message| {
        message
            .info()
            .map(|info| info.published)
            .map_err(|err| anyhow::anyhow!("{err}"))
    };
    Ok((stored(later)? - stored(earlier)?).as_seconds_f64())
}

/// One commit per file, at the path the extractor is told to watch.
fn commits<'a>(files: impl IntoIterator<Item = (&'a String, &'a Vec<u8>)>) -> Vec<NewCommit> {
    files
        .into_iter()
        .map(|(name, bytes)| NewCommit::new(REPO, name, bytes.clone()))
        .collect()
}

/// Asks the extractor for a poll now, as `etl trigger` does.
async fn trigger(env: &shared::Env) -> anyhow::Result<()> {
    let client = shared::nats::connect(
        &test_support::stack::nats_config(test_support::stack::Identity::Operator),
        "counties-pipeline-bench",
        &shared::Shutdown::new(),
    )
    .await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        client.request(shared::subjects::trigger(env), "{}".into()),
    )
    .await
    .context("the trigger was not answered in time")??;
    Ok(())
}
