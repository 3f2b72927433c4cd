//! Emails as received by an SMTP server that keeps them in a Maildir (the stack's, or a test's
//! own `scripts/smtp_sink.py`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use shared::Env;

use crate::eventually;

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

impl Mail {
    /// Reads one message file; `None` if it is not (yet) a whole email.
    fn read(file: &Path) -> Option<Mail> {
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
                .and_then(|p| p.get_body().ok())
                .map(|body| body.replace("\r\n", "\n"))
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

/// Removes emails from their Maildir (the stack's is shared by every test).
pub fn remove_mails(mails: &[Mail]) {
    for mail in mails {
        let _ = std::fs::remove_file(&mail.file);
    }
}

/// The emails in `maildir` whose subject starts with `[env]`, oldest file name first.
pub fn mails(maildir: &Path, env: &Env) -> Vec<Mail> {
    let prefix = format!("[{env}]");
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else {
        return vec![];
    };
    let mut found: Vec<Mail> = entries
        .filter_map(|entry| entry.ok())
        .filter_map(|entry| Mail::read(&entry.path()))
        .filter(|mail| mail.subject.starts_with(&prefix))
        .collect();
    found.sort_by(|a, b| a.file.cmp(&b.file));
    found
}

/// Waits until `maildir` holds at least `count` emails for `env`, and returns them all; panics
/// after `timeout`.
pub async fn wait_for_mails(
    maildir: &Path,
    env: &Env,
    count: usize,
    timeout: Duration,
) -> Vec<Mail> {
    eventually(
        &format!("{count} email(s) for {env}"),
        timeout,
        move || async move {
            let found = mails(maildir, env);
            (found.len() >= count).then_some(found)
        },
    )
    .await
}
