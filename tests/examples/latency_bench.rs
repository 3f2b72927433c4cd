//! Benchmark: how soon after an upstream commit its extracted event is out, and how soon after
//! that the run's notification.
//!
//! ```text
//! cargo run --release -p etl-tests --example latency_bench [-- TIMELINE_JSON [COMMITS]]
//! ```
//!
//! Replays real upstream history (default `../shared/upstream/timeline/timeline_real.json`, read
//! at run time, never copied) through the fake GitHub, with the real services (extractor with
//! POLL_INTERVAL=1s, transformer, loader, notifier emailing the stack's SMTP server) and the real
//! NATS and PostgreSQL on this machine (`NATS_URL`, `DATABASE_URL`, `SMTP_URL` or their defaults).
//! After the initial load, it reveals 20 successive commits (real NYT and JHU files, 5 KB and
//! 3 MB), each at a random point of the poll cycle, and measures for each the time from the
//! commit becoming visible to its `etl.<env>.extracted.<source>` event, the part of it spent after
//! the poll that saw the commit, and the time from the extracted event to the run's message on
//! `notify.<env>`. Everything it wrote is removed at the end.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use etl_tests::fake_github::{Endpoint, FakeGithub, replay};
use shared::config::Vars;
use shared::events::Extracted;
use shared::nats::ETL_STREAM;
use test_support::{EventLog, Pipeline, Stages, TestEnv};
use tokio::time::Instant;

struct Sample {
    source: String,
    bytes: usize,
    visible_to_event: Duration,
    poll_to_event: Duration,
    event_to_notification: Duration,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let timeline = args.next().map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/upstream/timeline/timeline_real.json"
        ))
    });
    let commits: usize = args.next().map(|n| n.parse()).transpose()?.unwrap_or(20);
    let steps = replay::load_timeline(&timeline)
        .with_context(|| format!("reading {}", timeline.display()))?;
    if steps.len() <= commits {
        bail!(
            "{} has {} steps; {commits} commits after the first are needed",
            timeline.display(),
            steps.len()
        );
    }

    let github = FakeGithub::start().await?;
    github.queue_steps(steps.into_iter().take(commits + 1));
    let test = TestEnv::new("bench").await;
    let env = &test.env;
    let mut vars = Vars::from_env();
    for (name, value) in github.env_vars() {
        vars.set(name, value);
    }
    vars.set("ETL_ENV", env.as_str())
        .set("ETL_ENVS", env.as_str())
        .set("POLL_INTERVAL", "1s")
        .set(
            format!("EMAIL_TO_{}", env.as_str().to_uppercase()),
            "bench@example.com",
        )
        // Replayed 2020 commits are years old: no staleness alerts.
        .set("STALE_AFTER", "off");
    let mut notifications = test.notifications().await;
    let mut events = EventLog::open(
        &test.stores.js,
        ETL_STREAM,
        format!("etl.{env}.extracted.>"),
    )
    .await;
    let mut next_event = async || -> anyhow::Result<Extracted> {
        let message = events
            .next_within(Duration::from_secs(30))
            .await
            .context("no extracted event within 30 s")?;
        Ok(serde_json::from_slice(&message.payload)?)
    };
    let mut next_notification = async || {
        notifications
            .within(Duration::from_secs(30))
            .await
            .context("no notification within 30 s")
    };

    let initial = github.reveal_next().expect("a first step");
    let pipeline = Pipeline::start(&vars, Stages::All)?;
    for _ in &initial {
        next_event().await?;
    }
    let first = next_notification().await?;
    println!("initial load: {}", first.subject);
    println!(
        "initial load done ({} files); revealing {commits} commits, POLL_INTERVAL=1s",
        initial.len()
    );

    let mut samples = Vec::new();
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    for i in 1..=commits {
        // Land each commit at a random point of the poll cycle, as real commits do.
        seed = seed
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        tokio::time::sleep(Duration::from_millis((seed >> 33) % 1000)).await;
        let visible = Instant::now();
        let revealed = github.reveal_next().expect("queued");
        let commit = revealed.last().expect("one commit a step");
        let event = next_event().await?;
        let arrived = Instant::now();
        if event.upstream.commit_sha.as_str() != commit.sha {
            bail!(
                "expected the event of {}, got {}",
                commit.sha,
                event.upstream.commit_sha
            );
        }
        let path = commit.path.replace('/', "%2F");
        let seen = github
            .requests_to(Endpoint::Commits)
            .into_iter()
            .filter(|r| r.status == 200 && r.uri.contains(&format!("path={path}")))
            .map(|r| Instant::from_std(r.at))
            .rfind(|at| *at >= visible)
            .context("the poll that saw the commit is in the log")?;
        let notification = next_notification().await?;
        let notified = Instant::now();
        let sample = Sample {
            source: event.source.to_string(),
            bytes: commit.content.len(),
            visible_to_event: arrived - visible,
            poll_to_event: arrived - seen,
            event_to_notification: notified - arrived,
        };
        println!(
            "{i:>2} {} {:>8} bytes  visible→event {:>6.0} ms  poll answer→event {:>5.0} ms  event→notify {:>5.0} ms  ({})",
            sample.source,
            sample.bytes,
            ms(sample.visible_to_event),
            ms(sample.poll_to_event),
            ms(sample.event_to_notification),
            notification.subject,
        );
        samples.push(sample);
    }

    pipeline.stop().await;
    report(&samples);
    test.clean_up().await;
    Ok(())
}

fn report(samples: &[Sample]) {
    let stats = |name: &str,
                 pick: &dyn Fn(&Sample) -> Duration,
                 filter: &dyn Fn(&Sample) -> bool| {
        let mut values: Vec<Duration> = samples.iter().filter(|s| filter(s)).map(pick).collect();
        if values.is_empty() {
            return;
        }
        values.sort();
        let median = values[values.len() / 2];
        let max = *values.last().expect("not empty");
        println!(
            "{name:<34} n={:>2}  median {:>6.0} ms  max {:>6.0} ms",
            values.len(),
            ms(median),
            ms(max)
        );
    };
    println!();
    stats(
        "commit visible → extracted event",
        &|s| s.visible_to_event,
        &|_| true,
    );
    stats("  nyt (≈5 KB)", &|s| s.visible_to_event, &|s| {
        s.source == "nyt"
    });
    stats("  jhu (≈3 MB)", &|s| s.visible_to_event, &|s| {
        s.source == "jhu"
    });
    stats(
        "poll answer → extracted event",
        &|s| s.poll_to_event,
        &|_| true,
    );
    stats("  nyt (≈5 KB)", &|s| s.poll_to_event, &|s| {
        s.source == "nyt"
    });
    stats("  jhu (≈3 MB)", &|s| s.poll_to_event, &|s| {
        s.source == "jhu"
    });
    stats(
        "extracted event → notify.<env>",
        &|s| s.event_to_notification,
        &|_| true,
    );
    stats("  nyt (≈5 KB)", &|s| s.event_to_notification, &|s| {
        s.source == "nyt"
    });
    stats("  jhu (≈3 MB)", &|s| s.event_to_notification, &|s| {
        s.source == "jhu"
    });
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
