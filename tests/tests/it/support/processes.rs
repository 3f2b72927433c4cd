//! The services as real processes, for what in-process tasks cannot show: one `service.name` per
//! process in traces, and SIGTERM.
//!
//! The binaries come from `ETL_BIN_DIR`, or the target dir's `debug` folder; `scripts/test.sh`
//! builds them before running the tests.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use shared::config::Vars;
use shared::events::Notification;
use test_support::Notifications;

pub fn bin_dir() -> PathBuf {
    if let Ok(dir) = std::env::var("ETL_BIN_DIR") {
        return PathBuf::from(dir);
    }
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target"));
    target.join("debug")
}

/// A running service binary; killed if dropped while running.
pub struct Process {
    pub name: &'static str,
    child: tokio::process::Child,
    log: PathBuf,
}

impl Process {
    /// Starts `name` with exactly the variables in `vars` (plus PATH and HOME), connecting to
    /// NATS as itself, logging to a file.
    pub fn spawn(name: &'static str, vars: &Vars, log_dir: &std::path::Path) -> Self {
        let vars = &match test_support::stack::Identity::of(name) {
            Some(identity) => test_support::stack::as_identity(vars, identity),
            None => vars.clone(),
        };
        Self::spawn_exact(name, vars, log_dir)
    }

    /// Starts `name` with exactly the variables in `vars` (plus PATH and HOME), its NATS identity
    /// included: see [`test_support::stack::as_identity`].
    pub fn spawn_exact(name: &'static str, vars: &Vars, log_dir: &std::path::Path) -> Self {
        let binary = bin_dir().join(name);
        assert!(
            binary.exists(),
            "{} is missing: build the binaries first (scripts/test.sh does: cargo build --workspace --all-targets)",
            binary.display()
        );
        let log = log_dir.join(format!("{name}.log"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .expect("log file");
        let mut command = tokio::process::Command::new(&binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .kill_on_drop(true);
        for (key, value) in vars.iter() {
            command.env(key, value);
        }
        let child = command
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {name}: {err}"));
        Self { name, child, log }
    }

    /// The process id, fixed for the process's life: a restarted service would have another.
    pub fn pid(&self) -> u32 {
        self.child.id().unwrap_or(0)
    }

    /// Whether the process is still running (it has not exited, crashed or been killed).
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Sends SIGTERM and waits (bounded) for a clean exit.
    pub async fn terminate(mut self) {
        let pid = self.child.id().expect("still running");
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
        assert!(
            status.is_ok_and(|s| s.success()),
            "could not signal {}",
            self.name
        );
        match tokio::time::timeout(Duration::from_secs(20), self.child.wait()).await {
            Ok(Ok(status)) => assert!(
                status.success(),
                "{} exited with {status} after SIGTERM; log:\n{}",
                self.name,
                self.log_text()
            ),
            Ok(Err(err)) => panic!("waiting for {}: {err}", self.name),
            Err(_) => panic!(
                "{} did not stop within 20 s of SIGTERM; log:\n{}",
                self.name,
                self.log_text()
            ),
        }
    }

    /// Kills the process at once (SIGKILL): no clean-up, as when its machine dies.
    pub async fn kill(mut self) {
        let _ = self.child.kill().await;
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// The next run notification, or a panic that shows every process's log.
pub async fn next_notification(
    notifications: &mut Notifications,
    processes: &[Process],
    what: &str,
) -> Notification {
    match notifications.within(Duration::from_secs(60)).await {
        Some(notification) => notification,
        None => {
            let logs: Vec<String> = processes
                .iter()
                .map(|p| format!("--- {} ---\n{}", p.name, p.log_text()))
                .collect();
            panic!(
                "no notification within 60 s while waiting for {what}; logs:\n{}",
                logs.join("\n")
            );
        }
    }
}
