//! `etl trigger --wait` against the real extractor polling a fake GitHub (the `fake-github`
//! binary, serving a history of one commit per source from a folder), with the other stages
//! in-process: each stage is shown as it happens, and `--json` lists them with their timings.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use test_support::{Pipeline, Stages, TestEnv, eventually};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{code, etl, json, stderr, stdout};

/// `fake-github` beside `etl` (the workspace's build), or in `ETL_BIN_DIR`.
fn fake_github_bin() -> PathBuf {
    match std::env::var("ETL_BIN_DIR") {
        Ok(dir) if !dir.is_empty() => PathBuf::from(dir).join("fake-github"),
        _ => PathBuf::from(env!("CARGO_BIN_EXE_etl")).with_file_name("fake-github"),
    }
}

async fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn trigger_wait_shows_each_stage_with_its_time() {
    let history = tempfile::tempdir().unwrap();
    for (source, sha, content) in [
        ("nyt", "0123456789", etl_cli::smoke::DUMMY_NYT),
        ("jhu", "abcdef0123", etl_cli::smoke::DUMMY_JHU),
    ] {
        let folder = history.path().join(source).join("history");
        std::fs::create_dir_all(&folder).unwrap();
        std::fs::write(
            folder.join(format!("2020-03-01T00-00-00Z_{sha}.csv")),
            content,
        )
        .unwrap();
    }
    let (api, raw) = (free_port().await, free_port().await);
    let _github = tokio::process::Command::new(fake_github_bin())
        .arg("--dir")
        .arg(history.path())
        .args(["--api-addr", &format!("127.0.0.1:{api}")])
        .args(["--raw-addr", &format!("127.0.0.1:{raw}")])
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|err| panic!("{}: {err}", fake_github_bin().display()));
    eventually(
        "the fake GitHub listens",
        Duration::from_secs(10),
        || async { TcpStream::connect(("127.0.0.1", api)).await.ok() },
    )
    .await;

    let t = TestEnv::new("cli").await;
    let env = t.env.as_str().to_owned();
    let mut vars = t.vars();
    vars.set("GITHUB_API_URL", format!("http://127.0.0.1:{api}"))
        .set("GITHUB_RAW_URL", format!("http://127.0.0.1:{raw}"))
        .set("POLL_INTERVAL", "1h");
    let mut notifications = t.notifications().await;
    let pipeline = Pipeline::start(&vars, Stages::All).expect("the services start");
    // The extractor's first look makes the initial run; a forced trigger makes another.
    let initial = notifications.next("the initial run").await;

    let output = etl(&["trigger", "--env", &env, "--force", "--wait"]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let progress = stderr(&output);
    // `    0.2s  transformed  3 rows, …`: the time since the trigger, the stage, what it did.
    let stages: Vec<(f64, &str)> = progress
        .lines()
        .filter_map(|line| {
            let mut words = line.split_whitespace();
            let elapsed = words.next()?.strip_suffix('s')?.parse().ok()?;
            Some((elapsed, words.next()?))
        })
        .collect();
    let names: Vec<&str> = stages.iter().map(|(_, stage)| *stage).collect();
    assert_eq!(
        names,
        ["extracted", "transformed", "loaded", "notified"],
        "{progress}"
    );
    assert!(stages.windows(2).all(|w| w[0].0 <= w[1].0), "{progress}");
    // The extractor's answer naming the run, then the run's notification, which names it too.
    let out = stdout(&output);
    let run_id = out
        .lines()
        .next()
        .and_then(|line| line.rsplit(' ').next())
        .expect("the extractor's answer");
    assert!(out.lines().count() > 3, "{out}");
    assert_eq!(out.matches(run_id).count(), 2, "{out}");

    let output = etl(&["trigger", "--env", &env, "--force", "--wait", "--json"]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert!(stderr(&output).is_empty(), "{}", stderr(&output));
    let result = json(&output);
    assert_eq!(result["env"], env.as_str());
    assert_eq!(result["status"], "succeeded");
    let run_id = result["run_id"].as_str().unwrap();
    assert_ne!(run_id, initial.run_id.as_str(), "a forced run is a new run");
    assert_eq!(result["notification"]["run_id"], run_id);
    let stages = result["stages"].as_array().unwrap();
    let names: Vec<&str> = stages
        .iter()
        .map(|s| s["stage"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["extracted", "transformed", "loaded", "notified"]);
    let times: Vec<u64> = stages
        .iter()
        .map(|s| s["elapsed_ms"].as_u64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");

    // Without --wait: the extractor's answer only.
    let output = etl(&["trigger", "--env", &env, "--json"]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let result = json(&output);
    assert_eq!(result["stages"], serde_json::json!([]));
    assert!(result["message"].is_string());

    pipeline.stop().await;
    t.clean_up().await;
}
