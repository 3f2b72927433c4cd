//! An SMTP server of the test's own that speaks TLS and requires authentication:
//! `scripts/smtp_sink.py` with a certificate from the stack's own CA (`scripts/pki.sh`, made in a
//! temporary folder), keeping what it receives in a Maildir ([`crate::mail`] reads it back).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::process::{Child, Command};

use crate::{eventually, stack};

/// The user [`TlsSink`] accepts.
pub const USER: &str = "mailer";

/// How the session becomes encrypted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// TLS from the first byte (`smtps://`).
    Implicit,
    /// Plain first, then `STARTTLS`, required (`smtp://...?tls=required`).
    StartTls,
}

/// `scripts/smtp_sink.py` speaking TLS and accepting mail only after AUTH as [`USER`] with the
/// password it was started with. Stopped, and its folder removed, when dropped.
pub struct TlsSink {
    pub port: u16,
    /// Where received emails are kept (`new/`).
    pub maildir: PathBuf,
    /// The CA that signed the server's certificate (`SMTP_CA_FILE`).
    pub ca_file: PathBuf,
    pub mode: Mode,
    dir: PathBuf,
    _child: Child,
}

impl TlsSink {
    /// Starts a sink in `mode` whose only account is [`USER`] with `password`, once it listens.
    pub async fn start(mode: Mode, password: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("covid-etl-smtp-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("the sink's folder");
        let pki = dir.join("pki");
        let made = Command::new("bash")
            .arg("-c")
            .arg(r#"set -euo pipefail; . "$1/scripts/pki.sh"; pki_ca "$2"; pki_server_cert "$2" smtp"#)
            .arg("pki")
            .arg(stack::root())
            .arg(&pki)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await
            .expect("bash runs scripts/pki.sh");
        assert!(made.success(), "scripts/pki.sh made the certificates");
        let password_file = dir.join("password");
        std::fs::write(&password_file, password).expect("the sink's password file");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let maildir = dir.join("mail");
        let python = std::env::var("SMTP_SINK_PYTHON")
            .map(PathBuf::from)
            .unwrap_or_else(|_| stack::root().join(".stack/venv/bin/python"));
        let mut command = Command::new(&python);
        command
            .arg(stack::root().join("scripts/smtp_sink.py"))
            .args(["--port", &port.to_string(), "--maildir"])
            .arg(&maildir)
            .arg("--tls-cert")
            .arg(pki.join("smtp.pem"))
            .arg("--tls-key")
            .arg(pki.join("smtp.key"))
            .args(["--auth-user", USER, "--auth-password-file"])
            .arg(&password_file);
        if mode == Mode::Implicit {
            command.arg("--implicit-tls");
        }
        let child = command
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|err| panic!("cannot start {}: {err}", python.display()));
        eventually(
            &format!("the TLS SMTP sink to listen on {port}"),
            Duration::from_secs(20),
            || async move {
                tokio::net::TcpStream::connect(("127.0.0.1", port))
                    .await
                    .ok()
            },
        )
        .await;
        Self {
            port,
            maildir,
            ca_file: pki.join("ca.pem"),
            mode,
            dir,
            _child: child,
        }
    }

    /// The URL naming the address the certificate was made for.
    pub fn url(&self) -> String {
        match self.mode {
            Mode::Implicit => format!("smtps://127.0.0.1:{}", self.port),
            Mode::StartTls => format!("smtp://127.0.0.1:{}?tls=required", self.port),
        }
    }

    /// The notifier's variables that reach this server as [`USER`] with `password` and trust its
    /// CA: `SMTP_URL`, `SMTP_USERNAME`, `SMTP_PASSWORD`, `SMTP_CA_FILE`.
    pub fn smtp_vars(&self, password: &str) -> [(&'static str, String); 4] {
        [
            ("SMTP_URL", self.url()),
            ("SMTP_USERNAME", USER.to_owned()),
            ("SMTP_PASSWORD", password.to_owned()),
            ("SMTP_CA_FILE", self.ca_file.display().to_string()),
        ]
    }
}

impl Drop for TlsSink {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
