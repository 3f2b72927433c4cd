//! Reading emails back from a Maildir, and SMTP servers of the tests' own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::Env;
use tokio::process::{Child, Command};

use super::{WAIT, root};

/// One email as read back from a Maildir.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: PathBuf,
    pub subject: String,
    pub to: String,
    pub from: String,
    pub message_id: String,
    pub text: String,
    pub html: String,
}

fn read_mail(file: &Path) -> Option<Mail> {
    let bytes = std::fs::read(file).ok()?;
    let parsed = mailparse::parse_mail(&bytes).ok()?;
    let header = |name: &str| {
        parsed
            .headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    let part = |mime: &str| {
        // MIME bodies travel with CRLF line ends.
        parsed
            .subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .map(|p| p.get_body().unwrap().replace("\r\n", "\n"))
            .unwrap_or_default()
    };
    assert_eq!(
        parsed.ctype.mimetype,
        "multipart/alternative",
        "{}",
        file.display()
    );
    Some(Mail {
        file: file.to_owned(),
        subject: header("Subject"),
        to: header("To"),
        from: header("From"),
        message_id: header("Message-ID"),
        text: part("text/plain"),
        html: part("text/html"),
    })
}

impl Mail {
    /// The HTML part as a reader sees it: tags dropped, entities decoded, spaces collapsed.
    pub fn html_visible(&self) -> String {
        let mut out = String::new();
        let mut in_tag = false;
        for c in self.html.chars() {
            match c {
                '<' => in_tag = true,
                '>' if in_tag => {
                    in_tag = false;
                    out.push(' ');
                }
                _ if !in_tag => out.push(c),
                _ => {}
            }
        }
        let decoded = out
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&");
        decoded.split_whitespace().collect::<Vec<_>>().join(" ")
    }

    /// A `label: value` fact, in both parts (a table row in HTML).
    pub fn assert_fact(&self, label: &str, value: &str) {
        let line = format!("  {label}: {value}\n");
        assert!(
            self.text.contains(&line),
            "text part lacks {line:?}:\n{}",
            self.text
        );
        let cells = format!("{label} {value}");
        assert!(
            self.html_visible().contains(&cells),
            "HTML part lacks {cells:?}:\n{}",
            self.html
        );
    }

    /// A sentence or list item, in both parts.
    pub fn assert_line(&self, line: &str) {
        assert!(
            self.text.contains(line),
            "text part lacks {line:?}:\n{}",
            self.text
        );
        assert!(
            self.html_visible().contains(line),
            "HTML part lacks {line:?}:\n{}",
            self.html
        );
    }
}

/// The emails in `maildir` whose subject starts with `[env]`.
pub fn mails(maildir: &Path, env: &Env) -> Vec<Mail> {
    let prefix = format!("[{env}]");
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return vec![];
    };
    let mut found: Vec<Mail> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| read_mail(&e.path()))
        .filter(|m| m.subject.starts_with(&prefix))
        .collect();
    found.sort_by(|a, b| a.file.cmp(&b.file));
    found
}

/// Waits (bounded) until `maildir` holds at least `n` emails for `env`, and returns them.
pub async fn wait_for_mails(maildir: &Path, env: &Env, n: usize) -> Vec<Mail> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let found = mails(maildir, env);
        if found.len() >= n {
            return found;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "expected {n} email(s) for {env}, found {}",
            found.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The stack's SMTP server (scripts/stack.sh) and its Maildir.
pub fn stack_smtp() -> (String, PathBuf) {
    let url = std::env::var("SMTP_URL").unwrap_or_else(|_| "smtp://127.0.0.1:1025".into());
    let maildir = std::env::var("SMTP_MAILDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".stack/mail"));
    (url, maildir)
}

pub fn remove_mails(mails: &[Mail]) {
    for mail in mails {
        let _ = std::fs::remove_file(&mail.file);
    }
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
            .unwrap_or_else(|_| root().join(".stack/venv/bin/python"));
        let child = Command::new(&python)
            .arg(root().join("scripts/smtp_sink.py"))
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
        let deadline = tokio::time::Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "SMTP sink did not listen on {}",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills the server; connections to its port are refused until [`SmtpSink::resume`].
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}
