//! Reading a PostgreSQL connection string (`DATABASE_URL`): what tokio-postgres understands goes
//! to its `Config`; the TLS settings it does not know (`sslmode=verify-ca|verify-full`,
//! `sslrootcert`) are taken out first and kept beside it, with libpq's meanings.
//!
//! Both forms libpq accepts are read: the URL (`postgres://user@host/db?sslmode=verify-full`) and
//! key/value pairs (`host=db sslmode=verify-full`). `PGSSLMODE` and `PGSSLROOTCERT` apply when the
//! string does not say. No error of this module repeats the string: it may hold a password.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use crate::config::{Parser, Vars};

use super::tls::{MakeTls, TlsError};

/// libpq's environment variables for the two TLS settings.
pub const PGSSLMODE: &str = "PGSSLMODE";
pub const PGSSLROOTCERT: &str = "PGSSLROOTCERT";

/// How a connection is encrypted and how much of the server's certificate is checked (libpq's
/// `sslmode`, without `allow`, which would try an unencrypted connection first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum SslMode {
    /// Never TLS.
    Disable,
    /// TLS when the server offers it, plain otherwise (libpq's default).
    Prefer,
    /// TLS or no connection; the certificate is not checked unless a CA is given (then as
    /// `VerifyCa`, as libpq does when it finds a root certificate).
    Require,
    /// TLS, and the server's certificate chains to a trusted CA.
    VerifyCa,
    /// `VerifyCa`, and the certificate names the host connected to.
    VerifyFull,
}

impl SslMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SslMode {
    type Err = ConnectionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            other => return Err(ConnectionError::SslMode(other.chars().take(40).collect())),
        })
    }
}

/// Which CAs a server certificate may chain to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RootCert {
    /// The PEM certificates in this file (`sslrootcert=/path/ca.pem`).
    File(PathBuf),
    /// The operating system's trusted roots (`sslrootcert=system`, as in libpq 16).
    System,
}

/// The TLS half of a connection string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    pub mode: SslMode,
    /// `None`: the system's roots when the mode verifies, nothing otherwise.
    pub root_cert: Option<RootCert>,
}

impl TlsSettings {
    /// Whether the chain is checked: a verifying mode, or a CA given with `require` or `prefer`
    /// (libpq checks the chain whenever it has a root certificate).
    pub fn verifies_chain(&self) -> bool {
        self.mode >= SslMode::VerifyCa || matches!(self.root_cert, Some(RootCert::File(_)))
    }

    /// Whether the certificate must also name the host.
    pub fn verifies_host(&self) -> bool {
        self.mode == SslMode::VerifyFull
    }
}

/// The variable naming a file that holds the password for connection string variable `name`.
fn password_file_var(name: &str) -> String {
    format!(
        "{}_PASSWORD_FILE",
        name.strip_suffix("_URL").unwrap_or(name)
    )
}

/// The password in file `path`: its first line, without the line break.
fn read_password(path: &str) -> Result<String, String> {
    let text = std::fs::read_to_string(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let password = text.lines().next().unwrap_or_default();
    if password.is_empty() {
        return Err(format!("{path} holds no password"));
    }
    Ok(password.to_owned())
}

/// What is wrong with a connection string; never its text.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// tokio-postgres' own complaint, which names an option, never a value.
    #[error("is not a valid PostgreSQL connection string: {0}")]
    Syntax(String),
    #[error("sslmode `{0}` is not one of disable, prefer, require, verify-ca, verify-full")]
    SslMode(String),
    #[error(
        "sslrootcert=system needs sslmode=verify-full (the system's CAs vouch for names, not for a host)"
    )]
    SystemRootsNeedVerifyFull,
    #[error(
        "sslmode=verify-ca needs sslrootcert=FILE (any public CA would vouch for any server): give the CA, or use verify-full"
    )]
    VerifyCaNeedsRootCert,
    #[error("{0}")]
    Tls(#[from] TlsError),
}

/// A connection string read: where and as whom (`config`, with the session settings yet to be
/// applied), and how to encrypt (`tls`, ready to hand to `connect` or a pool). `Debug` shows no
/// password: tokio-postgres redacts it.
#[derive(Debug, Clone)]
pub struct Database {
    pub config: tokio_postgres::Config,
    pub tls: MakeTls,
}

impl Database {
    /// Reads `raw`, with `PGSSLMODE` / `PGSSLROOTCERT` from `vars` when the string does not set
    /// them, and loads the CA it names.
    pub fn parse(raw: &str, vars: &Vars) -> Result<Database, ConnectionError> {
        let (config, settings) = split(raw.trim(), vars)?;
        let tls = MakeTls::new(&settings)?;
        Ok(Database { config, tls })
    }

    /// [`Database::parse`] with the process environment: for tests and tools without a
    /// configuration of their own.
    pub fn from_url(raw: &str) -> Result<Database, ConnectionError> {
        Database::parse(raw, &Vars::from_env())
    }

    /// Reads variable `name` (or `default`), reporting a bad value on `p` as one line naming it;
    /// then `default` is returned so that every other problem is still reported.
    ///
    /// The password may instead come from a file, so that it is in no variable at all (Docker
    /// secrets): `DATABASE_PASSWORD_FILE` for `DATABASE_URL`, generally `<name less _URL>_PASSWORD_FILE`.
    pub fn from_var(p: &mut Parser<'_>, name: &str, default: &str) -> Database {
        let raw = p.secret(name);
        let raw = raw.as_ref().map_or(default, |secret| secret.expose());
        match Database::parse(raw, p.vars()) {
            Ok(mut database) => {
                database.read_password_file(p, &password_file_var(name));
                database
            }
            Err(err) => {
                p.error(name, &err);
                let default = split(default, &Vars::default())
                    .expect("the default connection string parses")
                    .0;
                Database {
                    config: default,
                    tls: MakeTls::new(&TlsSettings {
                        mode: SslMode::Prefer,
                        root_cert: None,
                    })
                    .expect("an unverified TLS configuration builds"),
                }
            }
        }
    }

    /// [`Database::from_var`] for a variable that must hold a `postgres://` or `postgresql://`
    /// URL, as every covid-etl service's `DATABASE_URL` does.
    pub fn from_url_var(p: &mut Parser<'_>, name: &str, default: &str) -> Database {
        if let Some(raw) = p.optional_string(name)
            && !(raw.starts_with("postgres://") || raw.starts_with("postgresql://"))
        {
            // Never echo the value: it may hold a password.
            p.error(name, "must be a postgres:// or postgresql:// URL");
            return Database::from_var(&mut Parser::new(&Vars::default()), name, default);
        }
        Database::from_var(p, name, default)
    }

    /// Sets the password from the file that variable `var` names, when it is set: the password is
    /// then in no variable at all (Docker secrets). A file that cannot be read is reported on `p`.
    pub fn read_password_file(&mut self, p: &mut Parser<'_>, var: &str) {
        let Some(path) = p.optional_string(var) else {
            return;
        };
        match read_password(&path) {
            Ok(password) => {
                self.config.password(password);
            }
            Err(problem) => p.error(var, problem),
        }
    }

    /// Opens one connection, driven on a task of its own until the client is dropped.
    pub async fn connect(&self) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
        let (client, connection) = self.config.connect(self.tls.clone()).await?;
        tokio::spawn(async move {
            if let Err(err) = connection.await {
                tracing::debug!(error = %err, "PostgreSQL connection ended");
            }
        });
        Ok(client)
    }
}

/// Takes the TLS settings out of `raw` and parses the rest with tokio-postgres.
pub fn split(
    raw: &str,
    vars: &Vars,
) -> Result<(tokio_postgres::Config, TlsSettings), ConnectionError> {
    let (rest, found) = if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
        take_from_url(raw)
    } else {
        take_from_pairs(raw)
    };
    let mut config: tokio_postgres::Config = rest
        .parse()
        .map_err(|err: tokio_postgres::Error| ConnectionError::Syntax(super::explain(&err)))?;

    let root_cert = found
        .root_cert
        .or_else(|| vars.get(PGSSLROOTCERT).map(str::to_owned))
        .filter(|path| !path.is_empty())
        .map(|path| match path.as_str() {
            "system" => RootCert::System,
            _ => RootCert::File(PathBuf::from(path)),
        });
    let mode = match found
        .mode
        .or_else(|| vars.get(PGSSLMODE).map(|m| m.trim().to_owned()))
    {
        Some(mode) => mode.parse()?,
        // Whoever names a CA means to check the server against it: with no mode given, TLS is
        // required and the certificate checked in full. (libpq would still fall back to an
        // unencrypted connection under `prefer`; for `sslrootcert=system`, libpq 16 does this.)
        None if root_cert.is_some() => SslMode::VerifyFull,
        None => SslMode::Prefer,
    };
    if root_cert == Some(RootCert::System) && mode != SslMode::VerifyFull {
        return Err(ConnectionError::SystemRootsNeedVerifyFull);
    }
    // As libpq: the chain alone proves nothing unless it must end at a CA of one's own.
    if mode == SslMode::VerifyCa && !matches!(root_cert, Some(RootCert::File(_))) {
        return Err(ConnectionError::VerifyCaNeedsRootCert);
    }
    config.ssl_mode(match mode {
        SslMode::Disable => tokio_postgres::config::SslMode::Disable,
        SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
        SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
            tokio_postgres::config::SslMode::Require
        }
    });
    Ok((config, TlsSettings { mode, root_cert }))
}

/// The TLS parameters found in a connection string (the last one wins, as in libpq).
#[derive(Debug, Default, PartialEq, Eq)]
struct Found {
    mode: Option<String>,
    root_cert: Option<String>,
}

impl Found {
    /// Keeps `value` if `key` is one of ours; whether it was.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.root_cert = Some(value),
            _ => return false,
        }
        true
    }
}

/// URL form: query parameters are `&`-separated, percent-encoded `key=value` pairs.
fn take_from_url(raw: &str) -> (String, Found) {
    let mut found = Found::default();
    let Some((base, query)) = raw.split_once('?') else {
        return (raw.to_owned(), found);
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            !found.take(&percent_decode(key), percent_decode(value))
        })
        .collect();
    let rest = if kept.is_empty() {
        base.to_owned()
    } else {
        format!("{base}?{}", kept.join("&"))
    };
    (rest, found)
}

/// Key/value form, read as tokio-postgres (and libpq) read it: `key = value` pairs separated by
/// white space, a value either bare (a backslash escapes the next character) or single-quoted.
/// Pairs that are not ours are kept byte for byte.
fn take_from_pairs(raw: &str) -> (String, Found) {
    let mut found = Found::default();
    let mut rest = String::with_capacity(raw.len());
    let bytes = raw.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        let key_start = skip_space(bytes, i);
        let mut key_end = key_start;
        while key_end < bytes.len()
            && bytes[key_end] != b'='
            && !bytes[key_end].is_ascii_whitespace()
        {
            key_end += 1;
        }
        let eq = skip_space(bytes, key_end);
        if eq >= bytes.len() || bytes[eq] != b'=' {
            // Not a pair: leave the rest for tokio-postgres to complain about.
            rest.push_str(&raw[start..]);
            break;
        }
        let (value, end) = read_value(raw, skip_space(bytes, eq + 1));
        if !found.take(&raw[key_start..key_end], value) {
            rest.push_str(&raw[start..end]);
        }
        i = end;
    }
    (rest, found)
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() && bytes[i].is_ascii_whitespace() {
        i += 1;
    }
    i
}

/// A value starting at `i`, unescaped, and where it ends.
fn read_value(raw: &str, i: usize) -> (String, usize) {
    let mut value = String::new();
    let mut chars = raw[i..].char_indices();
    let quoted = raw[i..].starts_with('\'');
    if quoted {
        chars.next();
    }
    while let Some((at, c)) = chars.next() {
        match c {
            '\\' => {
                if let Some((_, escaped)) = chars.next() {
                    value.push(escaped);
                }
            }
            '\'' if quoted => return (value, i + at + 1),
            c if !quoted && c.is_ascii_whitespace() => return (value, i + at),
            c => value.push(c),
        }
    }
    (value, raw.len())
}

/// `%XX` decoding (no `+` for space: tokio-postgres does not read one either). An invalid
/// escape is kept as it is.
fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push((hi * 16 + lo) as u8);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(raw: &str) -> (tokio_postgres::Config, TlsSettings) {
        split(raw, &Vars::default()).unwrap()
    }

    fn file(path: &str) -> Option<RootCert> {
        Some(RootCert::File(PathBuf::from(path)))
    }

    #[test]
    fn every_libpq_mode_is_read_and_the_stricter_ones_are_taken_out_of_the_url() {
        for (mode, wire) in [
            (SslMode::Disable, tokio_postgres::config::SslMode::Disable),
            (SslMode::Prefer, tokio_postgres::config::SslMode::Prefer),
            (SslMode::Require, tokio_postgres::config::SslMode::Require),
            (SslMode::VerifyCa, tokio_postgres::config::SslMode::Require),
            (
                SslMode::VerifyFull,
                tokio_postgres::config::SslMode::Require,
            ),
        ] {
            let (config, tls) = read(&format!(
                "postgres://u:pw@db:6432/covid?application_name=x&sslmode={mode}&connect_timeout=3&sslrootcert=/srv/ca.pem"
            ));
            assert_eq!(tls.mode, mode);
            assert_eq!(config.get_ssl_mode(), wire, "{mode}");
            assert_eq!(config.get_application_name(), Some("x"));
            assert_eq!(
                config.get_connect_timeout(),
                Some(&std::time::Duration::from_secs(3))
            );
            assert_eq!(config.get_ports(), &[6432]);
        }
    }

    #[test]
    fn verify_ca_without_a_ca_file_is_refused_as_libpq_does() {
        for url in [
            "postgres://u@db/covid?sslmode=verify-ca",
            "postgres://u@db/covid?sslmode=verify-ca&sslrootcert=system",
        ] {
            let err = split(url, &Vars::default()).unwrap_err();
            assert!(
                matches!(
                    err,
                    ConnectionError::VerifyCaNeedsRootCert
                        | ConnectionError::SystemRootsNeedVerifyFull
                ),
                "{url}: {err}"
            );
        }
    }

    #[test]
    fn without_sslmode_tls_is_preferred_as_libpq_does() {
        let (config, tls) = read("postgres://u@db/covid");
        assert_eq!(tls.mode, SslMode::Prefer);
        assert_eq!(tls.root_cert, None);
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Prefer
        );
        assert!(!tls.verifies_chain());
    }

    #[test]
    fn sslrootcert_is_percent_decoded_and_the_last_value_wins() {
        let (config, tls) = read(
            "postgresql://u@db/covid?sslrootcert=%2Fetc%2Fca%20one.pem&sslmode=verify-ca&sslrootcert=/srv/ca.pem",
        );
        assert_eq!(tls.root_cert, file("/srv/ca.pem"));
        assert_eq!(tls.mode, SslMode::VerifyCa);
        assert!(tls.verifies_chain() && !tls.verifies_host());
        assert_eq!(config.get_dbname(), Some("covid"));
    }

    #[test]
    fn the_environment_applies_only_where_the_string_is_silent() {
        let vars = Vars::from_pairs([(PGSSLMODE, "verify-full"), (PGSSLROOTCERT, "/env/ca.pem")]);
        let (_, tls) = split("postgres://u@db/covid", &vars).unwrap();
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, file("/env/ca.pem"));

        let (_, tls) = split(
            "postgres://u@db/covid?sslmode=disable&sslrootcert=/url/ca.pem",
            &vars,
        )
        .unwrap();
        assert_eq!(tls.mode, SslMode::Disable);
        assert_eq!(tls.root_cert, file("/url/ca.pem"));
    }

    #[test]
    fn a_root_certificate_makes_require_check_the_chain_as_libpq_does() {
        let (_, tls) = read("postgres://u@db/covid?sslmode=require&sslrootcert=/ca.pem");
        assert!(tls.verifies_chain());
        assert!(!tls.verifies_host());
        let (_, tls) = read("postgres://u@db/covid?sslmode=require");
        assert!(!tls.verifies_chain());
        let (_, tls) = read("postgres://u@db/covid?sslmode=verify-full");
        assert!(tls.verifies_chain() && tls.verifies_host());
    }

    #[test]
    fn system_roots_mean_verify_full() {
        let (_, tls) = read("postgres://u@db/covid?sslrootcert=system");
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, Some(RootCert::System));
        let err = split(
            "postgres://u@db/covid?sslrootcert=system&sslmode=require",
            &Vars::default(),
        )
        .unwrap_err();
        assert!(
            matches!(err, ConnectionError::SystemRootsNeedVerifyFull),
            "{err}"
        );
    }

    #[test]
    fn key_value_strings_are_read_too_and_other_pairs_kept_verbatim() {
        let (config, tls) = read(
            r"host=db  sslmode = verify-full sslrootcert='/a b/c\'s.pem' password='x y' dbname=covid",
        );
        assert_eq!(tls.mode, SslMode::VerifyFull);
        assert_eq!(tls.root_cert, file("/a b/c's.pem"));
        assert_eq!(config.get_password(), Some(&b"x y"[..]));
        assert_eq!(config.get_dbname(), Some("covid"));
        assert_eq!(
            config.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );
    }

    #[test]
    fn an_unknown_mode_is_named_and_the_password_never_shown() {
        for raw in [
            "postgres://u:hunter2@db/covid?sslmode=allow",
            "user=u password=hunter2 sslmode=verify_full",
        ] {
            let err = split(raw, &Vars::default()).unwrap_err();
            assert!(matches!(err, ConnectionError::SslMode(_)), "{err}");
            assert!(err.to_string().starts_with("sslmode `"), "{err}");
            assert!(!err.to_string().contains("hunter2"), "{err}");
        }
        let err = split("postgres://u:hunter2@db:port/covid", &Vars::default()).unwrap_err();
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }

    #[test]
    fn a_bad_value_is_one_line_naming_the_variable() {
        let vars = Vars::from_pairs([(
            "DATABASE_URL",
            "postgres://u:hunter2@db/covid?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )]);
        let mut p = Parser::new(&vars);
        let database = Database::from_var(
            &mut p,
            "DATABASE_URL",
            "postgres://postgres@127.0.0.1/covid",
        );
        let err = p.finish().unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(err.lines[0].starts_with("DATABASE_URL: "), "{err}");
        assert!(err.lines[0].contains("/nonexistent/ca.pem"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
        assert_eq!(database.config.get_user(), Some("postgres"));
        assert!(!format!("{database:?}").contains("hunter2"));
    }

    #[test]
    fn the_debug_form_shows_no_password() {
        let database = Database::parse(
            "postgres://me:hunter2@db/covid?sslmode=require",
            &Vars::default(),
        )
        .unwrap();
        let shown = format!("{database:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("require"), "{shown}");
    }

    #[test]
    fn a_password_file_sets_the_password_and_a_bad_one_is_named() {
        let file = std::env::temp_dir().join(format!("covid-etl-password-{}", std::process::id()));
        std::fs::write(&file, "s3cret\n").unwrap();
        let vars = Vars::from_pairs([
            ("DATABASE_URL", "postgres://covid_loader@db/covid"),
            ("DATABASE_PASSWORD_FILE", file.to_str().unwrap()),
        ]);
        let mut p = Parser::new(&vars);
        let database = Database::from_var(&mut p, "DATABASE_URL", "postgres://localhost/covid");
        p.finish().unwrap();
        assert_eq!(database.config.get_password(), Some(&b"s3cret"[..]));
        std::fs::remove_file(&file).unwrap();

        let vars = Vars::from_pairs([("DASHBOARD_DATABASE_PASSWORD_FILE", "/nonexistent/pw")]);
        let mut p = Parser::new(&vars);
        Database::from_var(
            &mut p,
            "DASHBOARD_DATABASE_URL",
            "postgres://localhost/covid",
        );
        let err = p.finish().unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(
            err.lines[0]
                .starts_with("DASHBOARD_DATABASE_PASSWORD_FILE: cannot read /nonexistent/pw"),
            "{err}"
        );
    }
}
