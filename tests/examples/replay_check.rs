//! Replays real upstream history through the whole running pipeline and checks the result.
//!
//! ```text
//! cargo run -p etl-tests --example replay_check [-- TIMELINE_JSON [ENV]]
//! ```
//!
//! Reads a `timeline_real.json` (default `../shared/upstream/timeline/timeline_real.json`, at run
//! time, never copied), serves it through the fake GitHub one commit at a time, and runs the real
//! extractor, transformer, loader and notifier against the local NATS and PostgreSQL
//! (`NATS_URL`, `DATABASE_URL`, `SMTP_URL` or their defaults). After each commit it waits for the
//! run's notification. At the end it checks that
//!
//! - `<env>.us_daily` equals the transform rules applied to the last version of both files, every
//!   column of every row, and
//! - `<env>.us_daily_changes` holds exactly the upstream corrections between successive versions
//!   (each revised NYT or JHU value, old → new).
//!
//! ENV defaults to a fresh `replay_<random>` env, which is left in place for inspection (the
//! dashboard shows it with `ETL_ENV=<env>`). Exits 1 on any difference.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use dataset::DailyRow;
use etl_tests::fake_github::{FakeGithub, replay};
use shared::config::Vars;
use shared::events::RunStatus;
use shared::{Env, Source};
use test_support::{Pipeline, Stages, TestEnv, unique_env};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let timeline = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/upstream/timeline/timeline_real.json"
        ))
    });
    let env = match args.next() {
        Some(name) => Env::new(name)?,
        None => unique_env("replay"),
    };
    let test = TestEnv::named(env.clone()).await;
    let steps = replay::load_timeline(&timeline)
        .with_context(|| format!("reading {}", timeline.display()))?;
    let nyt_path = Source::NYT.default_location().unwrap().path;

    let github = FakeGithub::start().await?;
    github.queue_steps(steps.clone());
    let mut vars = Vars::from_env();
    for (name, value) in github.env_vars() {
        vars.set(name, value);
    }
    vars.set("ETL_ENV", env.as_str())
        .set("ETL_ENVS", env.as_str())
        .set("POLL_INTERVAL", "200ms")
        .set("STALE_AFTER", "off");
    let mut notifications = test.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All)?;

    // Replay, keeping the versions each run saw, to compute what the database should hold.
    let (mut nyt, mut jhu) = (Vec::new(), Vec::new());
    let mut expected_changes = BTreeSet::new();
    let mut previous: Option<Vec<DailyRow>> = None;
    let mut runs = 0;
    while let Some(revealed) = github.reveal_next() {
        let mut changed = false;
        for commit in &revealed {
            let slot = if commit.path == nyt_path {
                &mut nyt
            } else {
                &mut jhu
            };
            changed |= *slot != commit.content;
            *slot = commit.content.to_vec();
        }
        if !changed {
            continue;
        }
        let notification = notifications
            .within(Duration::from_secs(30))
            .await
            .context("no notification within 30 s")?;
        runs += 1;
        println!("{:>2} {}", runs, notification.subject);
        if notification.status != RunStatus::Succeeded {
            bail!(
                "run {} failed: {}",
                notification.run_id,
                notification.reason.unwrap_or_default()
            );
        }
        let rows = dataset::transform(&nyt, &jhu)?.rows;
        if let Some(before) = &previous {
            for c in dataset::diff::diff(before, &rows).corrections {
                expected_changes.insert((
                    c.date.to_string(),
                    c.field.as_str().to_owned(),
                    c.old,
                    c.new,
                ));
            }
        }
        previous = Some(rows);
    }
    pipeline.stop().await;

    let expected = previous.context("the timeline has no versions")?;
    let client = test_support::connect().await;
    let stored: Vec<DailyRow> = client
        .query(
            &format!("SELECT date, cases, deaths, recovered, new_cases, new_deaths, new_recovered FROM \"{env}\".us_daily ORDER BY date"),
            &[],
        )
        .await?
        .iter()
        .map(|r| DailyRow {
            date: r.get(0),
            cases: r.get(1),
            deaths: r.get(2),
            recovered: r.get(3),
            new_cases: r.get(4),
            new_deaths: r.get(5),
            new_recovered: r.get(6),
        })
        .collect();
    let recorded: BTreeSet<(String, String, Option<i64>, Option<i64>)> = client
        .query(
            &format!(
                "SELECT date::text, field, old_value, new_value FROM \"{env}\".us_daily_changes"
            ),
            &[],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();

    println!(
        "\nreplayed {} steps, {runs} runs into env {env}",
        steps.len()
    );
    let rows_match = stored == expected;
    println!(
        "{env}.us_daily: {} rows, {} to {}: {}",
        stored.len(),
        stored
            .first()
            .map(|r| r.date.to_string())
            .unwrap_or_default(),
        stored
            .last()
            .map(|r| r.date.to_string())
            .unwrap_or_default(),
        if rows_match {
            "equal to the rules applied to the last versions"
        } else {
            "DIFFERENT from the expected rows"
        }
    );
    let revised_days: BTreeSet<&String> = recorded.iter().map(|(date, ..)| date).collect();
    println!(
        "{env}.us_daily_changes: {} corrections on {} days: {}",
        recorded.len(),
        revised_days.len(),
        if recorded == expected_changes {
            "exactly the upstream revisions"
        } else {
            "DIFFERENT from the upstream revisions"
        }
    );
    if !rows_match || recorded != expected_changes {
        for missing in expected_changes.difference(&recorded) {
            println!("  missing correction: {missing:?}");
        }
        for extra in recorded.difference(&expected_changes) {
            println!("  unexpected correction: {extra:?}");
        }
        std::process::exit(1);
    }
    Ok(())
}
