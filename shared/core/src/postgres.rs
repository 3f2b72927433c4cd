//! The session settings every PostgreSQL connection of ours carries, so that a held lock, a
//! runaway statement, a forgotten transaction or a silently vanished server fails one request
//! (which the caller may retry) instead of hanging a service.
//!
//! The timeouts travel as `-c name=value` startup options (the `options` connection parameter),
//! so they hold from the first statement of every connection, pooled or not, with no extra round
//! trip. A setting the operator already wrote into `DATABASE_URL`'s `options` is left as it is,
//! and so are keepalive parameters given in the URL.
//!
//! Every connection is also opened here, one way: [`Database`] reads the connection string
//! (`connection.rs`: `sslmode`, `sslrootcert`, `PGSSLMODE`, `PGSSLROOTCERT` with libpq's
//! meanings) and carries the TLS connector (`tls.rs`: rustls with ring) that every client and
//! pool hands to tokio-postgres.

mod connection;
mod tls;

use std::time::Duration;

use crate::config::Parser;

pub use connection::{
    ConnectionError, Database, PGSSLMODE, PGSSLROOTCERT, RootCert, SslMode, TlsSettings, split,
};
pub use tls::{MakeTls, RustlsConnect, RustlsStream, TlsError};

/// An error of tokio-postgres with its causes, which its `Display` leaves out ("error performing
/// TLS handshake: invalid peer certificate: UnknownIssuer", "db error: ERROR: permission denied
/// …"). Causes name options and server messages, never a connection string's values.
pub fn explain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut cause = err.source();
    while let Some(source) = cause {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = source.source();
    }
    text
}

/// Probe an idle connection after 30 s, then every 10 s, and give up after 3 unanswered probes:
/// a server that vanished without closing the socket (a host lost, a NAT or firewall that forgot
/// the flow) is noticed within about a minute, not the kernel's two hours, and idle pooled
/// connections keep their NAT mappings alive.
pub const KEEPALIVES_IDLE: Duration = Duration::from_secs(30);
pub const KEEPALIVES_INTERVAL: Duration = Duration::from_secs(10);
pub const KEEPALIVES_RETRIES: u32 = 3;

/// libpq's (and tokio-postgres') default `keepalives_idle`: a config still holding it was not
/// given one in the URL.
const DEFAULT_KEEPALIVES_IDLE: Duration = Duration::from_secs(2 * 60 * 60);

/// PostgreSQL stores these timeouts as an `int` of milliseconds.
const MAX_TIMEOUT_MS: u128 = i32::MAX as u128;

/// The server-side timeouts of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionSettings {
    /// `statement_timeout` (`DB_STATEMENT_TIMEOUT`): the longest any one statement may run.
    pub statement_timeout: Duration,
    /// `lock_timeout` (`DB_LOCK_TIMEOUT`): the longest a statement may wait for any one lock,
    /// advisory locks (`pg_advisory_xact_lock`) included. A timeout is SQLSTATE 55P03.
    pub lock_timeout: Duration,
    /// `idle_in_transaction_session_timeout`: a session idle this long inside a transaction is
    /// closed by the server, releasing its locks. Not a variable of its own: no statement of ours
    /// waits on anything between the statements of a transaction, so this only ever ends a
    /// session that is stuck; `DATABASE_URL`'s `options` can still set it.
    pub idle_in_transaction_timeout: Duration,
}

impl SessionSettings {
    /// The loader and `etl`: loads take well under a second and hold the env's load lock only that
    /// long, so a 10 s wait for a lock means something is wrong (the load is retried later), and
    /// 30 s leaves room for a migration on a large table.
    pub const WRITER: SessionSettings = SessionSettings {
        statement_timeout: Duration::from_secs(30),
        lock_timeout: Duration::from_secs(10),
        idle_in_transaction_timeout: Duration::from_secs(60),
    };

    /// The dashboard: its queries take milliseconds and a request should fail rather than hold
    /// one of the pool's connections (and a browser) for long.
    pub const READER: SessionSettings = SessionSettings {
        statement_timeout: Duration::from_secs(10),
        lock_timeout: Duration::from_secs(5),
        idle_in_transaction_timeout: Duration::from_secs(60),
    };

    /// Reads `DB_STATEMENT_TIMEOUT` and `DB_LOCK_TIMEOUT` (humantime durations such as `30s` or
    /// `500ms`, at least 1 ms), falling back to `defaults`.
    pub fn parse(p: &mut Parser<'_>, defaults: SessionSettings) -> SessionSettings {
        SessionSettings {
            statement_timeout: timeout(p, "DB_STATEMENT_TIMEOUT", defaults.statement_timeout),
            lock_timeout: timeout(p, "DB_LOCK_TIMEOUT", defaults.lock_timeout),
            idle_in_transaction_timeout: defaults.idle_in_transaction_timeout,
        }
    }

    /// Puts these timeouts and TCP keepalives on `config`, keeping whatever `config` already sets
    /// explicitly. Applying twice changes nothing the second time.
    pub fn apply(&self, config: &mut tokio_postgres::Config) {
        let mut options = config.get_options().unwrap_or_default().trim().to_owned();
        let explicit = settings_in(&options);
        for (name, value) in [
            ("statement_timeout", self.statement_timeout),
            ("lock_timeout", self.lock_timeout),
            (
                "idle_in_transaction_session_timeout",
                self.idle_in_transaction_timeout,
            ),
        ] {
            if !explicit.iter().any(|set| set == name) {
                if !options.is_empty() {
                    options.push(' ');
                }
                // Plain milliseconds: the server's unit for all three, so no unit parsing is
                // involved.
                options.push_str(&format!("-c {name}={}", value.as_millis()));
            }
        }
        config.options(options);

        // `keepalives=0` in the URL is a deliberate choice; otherwise fill in what it left out.
        if config.get_keepalives() {
            if config.get_keepalives_idle() == DEFAULT_KEEPALIVES_IDLE {
                config.keepalives_idle(KEEPALIVES_IDLE);
            }
            if config.get_keepalives_interval().is_none() {
                config.keepalives_interval(KEEPALIVES_INTERVAL);
            }
            if config.get_keepalives_retries().is_none() {
                config.keepalives_retries(KEEPALIVES_RETRIES);
            }
        }
    }
}

/// A timeout variable: a positive duration PostgreSQL can hold in whole milliseconds.
fn timeout(p: &mut Parser<'_>, name: &str, default: Duration) -> Duration {
    let Some(raw) = p.optional_string(name) else {
        return default;
    };
    match humantime::parse_duration(&raw) {
        Ok(d) if d.as_millis() == 0 => {
            // PostgreSQL reads 0 as "no timeout": refuse it rather than silently disable the bound.
            p.error(name, format!("`{raw}` must be at least 1ms"));
            default
        }
        Ok(d) if d.as_millis() > MAX_TIMEOUT_MS => {
            p.error(
                name,
                format!("`{raw}` is longer than PostgreSQL accepts (about 24 days)"),
            );
            default
        }
        Ok(d) => Duration::from_millis(d.as_millis() as u64),
        Err(err) => {
            p.error(
                name,
                format!("`{raw}` is not a duration such as 30s or 500ms: {err}"),
            );
            default
        }
    }
}

/// The names of the settings an `options` string sets, as the server reads them: words split on
/// unescaped white space (a backslash escapes the next character), settings given as `-c name=value`,
/// `-cname=value` or `--name=value`, names compared lower-cased with `-` read as `_`.
fn settings_in(options: &str) -> Vec<String> {
    let mut words = split_words(options).into_iter();
    let mut names = Vec::new();
    while let Some(word) = words.next() {
        let assignment = if word == "-c" {
            words.next()
        } else if let Some(rest) = word.strip_prefix("--") {
            Some(rest.to_owned())
        } else {
            word.strip_prefix("-c").map(str::to_owned)
        };
        if let Some((name, _)) = assignment.as_deref().and_then(|a| a.split_once('=')) {
            names.push(name.to_ascii_lowercase().replace('-', "_"));
        }
    }
    names
}

/// PostgreSQL's `pg_split_opts`.
fn split_words(options: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = options.chars();
    while let Some(c) = chars.next() {
        if c.is_ascii_whitespace() {
            words.extend(word.take());
            continue;
        }
        let current = word.get_or_insert_with(String::new);
        if c == '\\' {
            current.extend(chars.next());
        } else {
            current.push(c);
        }
    }
    words.extend(word);
    words
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Vars;

    fn config(url: &str) -> tokio_postgres::Config {
        url.parse().unwrap()
    }

    #[test]
    fn every_timeout_is_added_in_milliseconds_with_keepalives() {
        let mut pg = config("postgres://u@db/covid");
        SessionSettings::WRITER.apply(&mut pg);
        assert_eq!(
            pg.get_options(),
            Some(
                "-c statement_timeout=30000 -c lock_timeout=10000 \
                 -c idle_in_transaction_session_timeout=60000"
            )
        );
        assert!(pg.get_keepalives());
        assert_eq!(pg.get_keepalives_idle(), KEEPALIVES_IDLE);
        assert_eq!(pg.get_keepalives_interval(), Some(KEEPALIVES_INTERVAL));
        assert_eq!(pg.get_keepalives_retries(), Some(KEEPALIVES_RETRIES));
    }

    #[test]
    fn a_setting_given_in_the_url_options_is_kept() {
        let mut pg = config(
            "postgres://u@db/covid?options=-c%20search_path%3Dx%20--Lock-Timeout%3D1s%20-cstatement_timeout%3D0",
        );
        SessionSettings::WRITER.apply(&mut pg);
        assert_eq!(
            pg.get_options(),
            Some(
                "-c search_path=x --Lock-Timeout=1s -cstatement_timeout=0 \
                 -c idle_in_transaction_session_timeout=60000"
            )
        );
    }

    #[test]
    fn applying_twice_changes_nothing_more() {
        let mut once = config("postgres://u@db/covid");
        SessionSettings::WRITER.apply(&mut once);
        let mut twice = once.clone();
        SessionSettings::READER.apply(&mut twice);
        assert_eq!(once.get_options(), twice.get_options());
    }

    #[test]
    fn keepalive_choices_in_the_url_are_kept() {
        let mut off = config("postgres://u@db/covid?keepalives=0");
        SessionSettings::WRITER.apply(&mut off);
        assert!(!off.get_keepalives());
        assert_eq!(off.get_keepalives_interval(), None);

        let mut own = config(
            "postgres://u@db/covid?keepalives_idle=5&keepalives_interval=2&keepalives_retries=9",
        );
        SessionSettings::WRITER.apply(&mut own);
        assert_eq!(own.get_keepalives_idle(), Duration::from_secs(5));
        assert_eq!(own.get_keepalives_interval(), Some(Duration::from_secs(2)));
        assert_eq!(own.get_keepalives_retries(), Some(9));
    }

    #[test]
    fn option_words_follow_the_servers_escaping() {
        assert_eq!(
            split_words(r" -c  a=b\ c   -c\ x=y "),
            ["-c", "a=b c", "-c x=y"]
        );
        assert_eq!(settings_in(r"-c a=b\ c"), ["a"]);
    }

    #[test]
    fn timeouts_are_read_from_the_environment() {
        let vars = Vars::from_pairs([("DB_STATEMENT_TIMEOUT", "1m"), ("DB_LOCK_TIMEOUT", "250ms")]);
        let mut p = Parser::new(&vars);
        let settings = SessionSettings::parse(&mut p, SessionSettings::WRITER);
        p.finish().unwrap();
        assert_eq!(settings.statement_timeout, Duration::from_secs(60));
        assert_eq!(settings.lock_timeout, Duration::from_millis(250));
        assert_eq!(
            settings.idle_in_transaction_timeout,
            SessionSettings::WRITER.idle_in_transaction_timeout
        );
    }

    #[test]
    fn a_bad_timeout_is_one_line_naming_its_variable() {
        for bad in ["soon", "0s", "500us", "30d"] {
            let vars = Vars::from_pairs([("DB_LOCK_TIMEOUT", bad)]);
            let mut p = Parser::new(&vars);
            SessionSettings::parse(&mut p, SessionSettings::WRITER);
            let err = p.finish().unwrap_err();
            assert_eq!(err.lines.len(), 1, "{bad}: {err}");
            assert!(err.lines[0].starts_with("DB_LOCK_TIMEOUT: "), "{err}");
        }
    }
}
