//! The demo: `fake-github --demo`, run as its own process with a short interval, feeds the real
//! pipeline, and successive commits become successive runs, notified and emailed, one of them with
//! the demo's first correction.

use std::process::Stdio;
use std::time::Duration;

use etl_tests::fake_github::demo::{DemoOptions, date_of};
use shared::events::{Correction, Field, RunStatus};
use test_support::{Pipeline, Stages, TestEnv};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::support::processes::bin_dir;
use crate::support::{emails_for, stored_values};

/// `fake-github --demo` on free ports; its output after the start goes on being read (and
/// dropped) so that the pipe never fills.
struct DemoGithub {
    child: tokio::process::Child,
    api_url: String,
    raw_url: String,
}

impl DemoGithub {
    async fn start(seed: u64, every: &str) -> DemoGithub {
        let binary = bin_dir().join("fake-github");
        assert!(
            binary.exists(),
            "{} is missing: build the binaries first (cargo build --workspace --all-targets)",
            binary.display()
        );
        let mut child = tokio::process::Command::new(&binary)
            .args(["--demo", "--every", every, "--seed", &seed.to_string()])
            .args(["--api-addr", "127.0.0.1:0", "--raw-addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("fake-github starts");
        let mut lines = BufReader::new(child.stdout.take().expect("piped")).lines();
        let urls = tokio::time::timeout(Duration::from_secs(10), async {
            while let Some(line) = lines.next_line().await.expect("readable output") {
                if let Some(exports) = line.trim().strip_prefix("export ") {
                    let value = |name: &str| {
                        exports
                            .split_whitespace()
                            .find_map(|pair| pair.strip_prefix(name))
                            .map(str::to_owned)
                    };
                    return value("GITHUB_API_URL=").zip(value("GITHUB_RAW_URL="));
                }
            }
            None
        })
        .await
        .expect("fake-github prints its URLs within 10 s")
        .expect("fake-github prints both URLs");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        DemoGithub {
            child,
            api_url: urls.0,
            raw_url: urls.1,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_demo_history_becomes_runs_notifications_emails_and_a_correction() {
    let test = TestEnv::new("demo").await;
    let env = &test.env;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos() as u64;
    let mut github = DemoGithub::start(seed, "2s").await;

    let mut vars = test_support::stack::vars(env);
    vars.set("GITHUB_API_URL", &github.api_url)
        .set("GITHUB_RAW_URL", &github.raw_url)
        .set("POLL_INTERVAL", "300ms");
    let mut notifications = test.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All).expect("the services start");

    // What the binary serves: the default demo with this seed.
    let demo = DemoOptions {
        seed,
        ..DemoOptions::default()
    };
    let initial = demo.initial_days as u64;

    // Runs until the first three versions are stored: one run per step as a rule, but a step can
    // be split (the extractor checks NYT and JHU one after the other, and a reveal can fall in
    // between: a run with the new day of one source only, dropped by the join) or two steps
    // coalesced (one poll sees both), so the test counts days rather than runs.
    let wanted_days = initial + 2;
    let mut runs = Vec::new();
    let mut days = 0u64;
    while days < wanted_days {
        let run = notifications
            .next(&format!("the demo's runs up to {wanted_days} days"))
            .await;
        assert_eq!(run.status, RunStatus::Succeeded, "{}", run.text);
        days = (days + run.counts.inserted).saturating_sub(run.counts.removed);
        runs.push(run);
        assert!(
            runs.len() <= 8,
            "too many runs for three versions: {runs:#?}"
        );
    }
    assert!(runs.len() >= 2, "at least two runs: {runs:#?}");
    assert!(
        runs[0].counts.inserted >= initial,
        "the first run loads the first version: {}",
        runs[0].text
    );

    // Step 2 revises an earlier day: exactly that correction, in one of the runs.
    let revision = demo.revision_at(2).expect("step 2 revises a day");
    let (before, after) = (demo.version(1), demo.version(2));
    let day = revision.day;
    let mut expected = vec![Correction {
        key: None,
        date: date_of(day),
        field: Field::Cases,
        old: Some(before[day].cases),
        new: Some(after[day].cases),
    }];
    if revision.added_deaths > 0 {
        expected.push(Correction {
            key: None,
            date: date_of(day),
            field: Field::Deaths,
            old: Some(before[day].deaths),
            new: Some(after[day].deaths),
        });
    }
    let mut corrections: Vec<Correction> =
        runs.iter().flat_map(|r| r.corrections.clone()).collect();
    corrections.sort_by_key(|c| (c.date, c.field));
    assert_eq!(corrections, expected, "{runs:#?}");
    let revised = runs.iter().find(|r| !r.corrections.is_empty()).unwrap();
    assert_eq!(revised.counts.revised, 1, "{}", revised.text);

    // Revisions stay in every later version, so the stored day is the revised one.
    let stored = stored_values(env).await;
    assert!(stored.len() >= demo.initial_days + 2, "{stored:?}");
    assert_eq!(
        stored[day],
        (
            date_of(day).to_string(),
            after[day].cases,
            after[day].deaths,
            Some(after[day].recovered)
        )
    );

    // Every run that changed the table is emailed (one that changed nothing is not, by default).
    let changed = runs
        .iter()
        .filter(|r| r.counts.inserted + r.counts.updated + r.counts.removed > 0)
        .count();
    assert!(changed >= 2, "{runs:#?}");
    let mails = emails_for(env, changed, Duration::from_secs(20)).await;
    assert!(mails.len() >= changed, "one email per run: {}", mails.len());

    pipeline.stop().await;
    github.child.kill().await.expect("fake-github stops");
    test.clean_up().await;
}
