//! The exit codes scripts rely on: 2 for a bad flag or variable, 3 — promptly — when NATS or
//! PostgreSQL cannot be reached, whether nothing listens or something listens and never answers;
//! and a closed stdout (`etl status | head -c1`) ends the output without a panic.

use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::AsyncReadExt;
use tokio::net::TcpListener;

use crate::support::{code, etl, etl_with, json, stderr, stdout};

/// A local port nobody listens on (bound, then freed).
async fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

/// A port that accepts connections and never says a word, as a hung server or a black-holed
/// route would: a client must give up by its own timeout.
async fn silent_port() -> (u16, tokio::task::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let task = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    (port, task)
}

#[tokio::test]
async fn a_bad_flag_or_variable_is_a_usage_error() {
    let output = etl(&["status", "--no-such-flag"]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    let output = etl(&["runs", "--limit", "many"]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));
    let output = etl(&["frobnicate"]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));
    let output = etl(&["status", "--connect-timeout", "soon"]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));

    let output = etl_with(&["runs"], &[("NATS_URL", "ftp://127.0.0.1:4222")]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));
    assert!(stderr(&output).contains("NATS_URL"), "{}", stderr(&output));
}

#[tokio::test]
async fn help_version_and_completions_need_no_server() {
    let port = closed_port().await;
    let nats = format!("nats://127.0.0.1:{port}");
    for args in [
        &["--help"][..],
        &["--version"],
        &["runs", "show", "--help"],
        &["completions", "bash"],
        &["completions", "zsh"],
        &["completions", "fish"],
    ] {
        let started = Instant::now();
        let output = etl_with(args, &[("NATS_URL", &nats)]).await;
        assert_eq!(code(&output), Some(0), "{args:?}: {}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(1), "{args:?}");
        assert!(!stdout(&output).is_empty(), "{args:?}");
    }
    let bash = etl(&["completions", "bash"]).await;
    assert!(stdout(&bash).contains("complete -F"), "{}", stdout(&bash));
    assert!(
        stdout(&bash).contains("export"),
        "every command is completed"
    );
    let help = etl(&["--help"]).await;
    assert!(stdout(&help).contains("3 unreachable"), "{}", stdout(&help));
}

#[tokio::test]
async fn nats_nobody_listens_on_is_exit_3_at_once() {
    let port = closed_port().await;
    let nats = format!("nats://127.0.0.1:{port}");
    for args in [&["status"][..], &["dead"], &["trigger", "--env", "x"]] {
        let started = Instant::now();
        let output = etl_with(args, &[("NATS_URL", &nats)]).await;
        let took = started.elapsed();
        assert_eq!(code(&output), Some(3), "{args:?}: {}", stderr(&output));
        assert!(took < Duration::from_secs(3), "{args:?} took {took:?}");
        let out = format!("{}{}", stdout(&output), stderr(&output));
        assert!(out.contains("NATS"), "{args:?} says what is down: {out}");
    }
}

#[tokio::test]
async fn nats_that_never_answers_is_exit_3_within_the_connect_timeout() {
    let (port, server) = silent_port().await;
    let nats = format!("nats://127.0.0.1:{port}");
    let started = Instant::now();
    let output = etl_with(
        &["status", "--json", "--connect-timeout", "1500ms"],
        &[("NATS_URL", &nats)],
    )
    .await;
    let took = started.elapsed();
    assert_eq!(code(&output), Some(3), "{}", stderr(&output));
    assert!(took >= Duration::from_millis(1400), "it waited: {took:?}");
    assert!(
        took < Duration::from_secs(5),
        "but not much longer: {took:?}"
    );
    let status = json(&output);
    assert_eq!(status["healthy"], false);
    assert_eq!(status["nats"]["reachable"], false);
    assert_eq!(status["postgres"]["reachable"], true, "{status:#}");
    assert!(
        status["problems"][0]
            .as_str()
            .unwrap()
            .starts_with("NATS is down"),
        "{status:#}"
    );

    // The variable sets it too.
    let started = Instant::now();
    let output = etl_with(
        &["dead"],
        &[("NATS_URL", &nats), ("ETL_CONNECT_TIMEOUT", "1")],
    )
    .await;
    assert_eq!(code(&output), Some(3), "{}", stderr(&output));
    assert!(started.elapsed() < Duration::from_secs(4));
    let err = stderr(&output);
    assert_eq!(err.lines().count(), 1, "one clear line: {err}");
    assert!(err.contains("cannot be reached"), "{err}");
    server.abort();
}

#[tokio::test]
async fn postgres_down_or_silent_is_exit_3_and_status_says_so() {
    let port = closed_port().await;
    let refused = format!("postgres://covid_loader@127.0.0.1:{port}/covid?sslmode=disable");
    let (silent, server) = silent_port().await;
    let silent = format!("postgres://covid_loader@127.0.0.1:{silent}/covid?sslmode=disable");
    for (url, within) in [(&refused, 3), (&silent, 5)] {
        let started = Instant::now();
        let output = etl_with(
            &["runs", "--env", "prod", "--connect-timeout", "2"],
            &[("DATABASE_URL", url)],
        )
        .await;
        assert_eq!(code(&output), Some(3), "{url}: {}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(within), "{url}");
        assert!(
            stderr(&output).contains("PostgreSQL"),
            "{}",
            stderr(&output)
        );

        let started = Instant::now();
        let output = etl_with(
            &["status", "--json", "--connect-timeout", "2"],
            &[("DATABASE_URL", url)],
        )
        .await;
        assert_eq!(code(&output), Some(3), "{url}: {}", stderr(&output));
        assert!(started.elapsed() < Duration::from_secs(within), "{url}");
        let status = json(&output);
        assert_eq!(status["nats"]["reachable"], true, "{status:#}");
        assert_eq!(status["postgres"]["reachable"], false, "{status:#}");
        let problems = status["problems"].to_string();
        assert!(problems.contains("PostgreSQL is down"), "{problems}");
    }
    server.abort();
}

#[tokio::test]
async fn a_closed_stdout_ends_the_output_without_a_panic() {
    // `etl status | head -c1`: the reader takes one byte and goes away.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_etl"))
        .arg("status")
        .env("NATS_URL", test_support::stack::nats_url())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = child.stdout.take().unwrap();
    let mut first = [0u8; 1];
    out.read_exact(&mut first).await.unwrap();
    drop(out);
    let output = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
        .await
        .expect("etl ends")
        .unwrap();
    let err = stderr(&output);
    assert!(!err.contains("panicked"), "{err}");
    assert!(!err.contains("Broken pipe"), "quietly: {err}");
    // Its verdict stands (healthy or not, the stack of other tests decides), a panic's 101 not.
    assert!(
        matches!(code(&output), Some(0 | 1)),
        "{:?}: {err}",
        code(&output)
    );

    // And through a shell, as an operator types it.
    let shell = tokio::process::Command::new("bash")
        .arg("-c")
        .arg("set -o pipefail; \"$ETL\" status | head -c1 >/dev/null; echo \"${PIPESTATUS[0]}\"")
        .env("ETL", env!("CARGO_BIN_EXE_etl"))
        .env("NATS_URL", test_support::stack::nats_url())
        .output()
        .await
        .unwrap();
    let status: i32 = stdout(&shell)
        .trim()
        .parse()
        .expect("bash printed the status");
    assert!(
        matches!(status, 0 | 1),
        "etl exited {status}: {}",
        stderr(&shell)
    );
    assert!(!stderr(&shell).contains("panicked"), "{}", stderr(&shell));
}
