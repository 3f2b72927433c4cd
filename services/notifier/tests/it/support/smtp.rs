//! SMTP servers: the stack's, and ones of the tests' own that they can stop.

use std::path::PathBuf;

use test_support::{eventually, stack};
use tokio::process::{Child, Command};

use super::WAIT;

/// The stack's SMTP server (scripts/stack.sh) and its Maildir.
pub fn stack_smtp() -> (String, PathBuf) {
    (stack::smtp_url(), stack::maildir())
}

/// An SMTP server of the test's own (scripts/smtp_sink.py), which it can stop and start again.
pub struct SmtpSink {
    pub port: u16,
    pub maildir: PathBuf,
    child: Option<Child>,
    _dir: tempfile::TempDir,
}

impl SmtpSink {
    pub async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut sink = Self {
            port,
            maildir: dir.path().join("mail"),
            child: None,
            _dir: dir,
        };
        sink.resume().await;
        sink
    }

    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Starts the server (again) on the same port and Maildir, and waits until it listens.
    pub async fn resume(&mut self) {
        let python = std::env::var("SMTP_SINK_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| stack::root().join(".stack/venv/bin/python"));
        let child = Command::new(&python)
            .arg(stack::root().join("scripts/smtp_sink.py"))
            .args(["--port", &self.port.to_string(), "--maildir"])
            .arg(&self.maildir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| {
                panic!(
                    "cannot start {} scripts/smtp_sink.py: {err}",
                    python.display()
                )
            });
        self.child = Some(child);
        let port = self.port;
        eventually(
            &format!("the SMTP sink to listen on {port}"),
            WAIT,
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
    }

    /// Kills the server; connections to its port are refused until [`SmtpSink::resume`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}
