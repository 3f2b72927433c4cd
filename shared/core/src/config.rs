//! Configuration from environment variables: typed, validated once at start, every bad value
//! reported on its own line.
//!
//! Variables are read from a [`Vars`] snapshot rather than the process environment, so a test can
//! start a service with settings of its own while other tests run beside it.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::env::{Env, EnvScope};

pub mod cli;

pub use cli::{Kind, Spec, Var, check_table, load_or_exit};

/// A snapshot of configuration variables.
///
/// A snapshot made [`Vars::recording`] also notes the name of every variable looked up in it (by
/// any clone), so a test can compare what a parser reads with the table `--help` is built from.
#[derive(Debug, Clone, Default)]
pub struct Vars {
    values: HashMap<String, String>,
    reads: Option<Arc<Mutex<BTreeSet<String>>>>,
}

impl Vars {
    pub fn from_env() -> Self {
        Self::from_pairs(std::env::vars())
    }

    pub fn from_pairs<K: Into<String>, V: Into<String>>(
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        Self {
            values: pairs
                .into_iter()
                .map(|(k, v)| (k.into(), v.into()))
                .collect(),
            reads: None,
        }
    }

    /// This snapshot, noting from now on the name of every variable looked up (see
    /// [`Vars::reads`]).
    pub fn recording(mut self) -> Self {
        self.reads = Some(Arc::default());
        self
    }

    /// The names looked up since [`Vars::recording`], sorted; a family looked up by prefix
    /// ([`Vars::with_prefix`]) appears as `PREFIX*`.
    pub fn reads(&self) -> Vec<String> {
        self.reads.as_ref().map_or_else(Vec::new, |reads| {
            reads
                .lock()
                .map(|names| names.iter().cloned().collect())
                .unwrap_or_default()
        })
    }

    fn note(&self, name: &str) {
        if let Some(reads) = &self.reads
            && let Ok(mut names) = reads.lock()
            && !names.contains(name)
        {
            names.insert(name.to_owned());
        }
    }

    pub fn set(&mut self, name: impl Into<String>, value: impl Into<String>) -> &mut Self {
        self.values.insert(name.into(), value.into());
        self
    }

    /// Every set variable whose name starts with `prefix`, as `(name, value)`, sorted by name
    /// (for families such as `EMAIL_TO_<ENV>`).
    pub fn with_prefix(&self, prefix: &str) -> Vec<(&str, &str)> {
        self.note(&format!("{prefix}*"));
        let mut found: Vec<(&str, &str)> = self
            .values
            .iter()
            .filter(|(name, value)| name.starts_with(prefix) && !value.trim().is_empty())
            .map(|(name, value)| (name.as_str(), value.as_str()))
            .collect();
        found.sort_unstable();
        found
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.values.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    /// The value of `name`; an empty value counts as unset.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.note(name);
        self.values
            .get(name)
            .map(String::as_str)
            .filter(|v| !v.trim().is_empty())
    }
}

/// A value that must never be printed: `Debug` and `Display` show `[redacted]`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// Every problem found in the configuration, one line each.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid configuration:\n{}", .lines.join("\n"))]
pub struct ConfigError {
    pub lines: Vec<String>,
}

/// Reads typed values, falling back to defaults, and collects every error instead of stopping at
/// the first, so one start shows all that is wrong.
pub struct Parser<'a> {
    vars: &'a Vars,
    errors: Vec<String>,
}

impl<'a> Parser<'a> {
    pub fn new(vars: &'a Vars) -> Self {
        Self {
            vars,
            errors: Vec::new(),
        }
    }

    pub fn vars(&self) -> &Vars {
        self.vars
    }

    /// Records a problem with `name`.
    pub fn error(&mut self, name: &str, problem: impl fmt::Display) {
        self.errors.push(format!("{name}: {problem}"));
    }

    pub fn optional_string(&self, name: &str) -> Option<String> {
        self.vars.get(name).map(|v| v.trim().to_owned())
    }

    pub fn string(&self, name: &str, default: &str) -> String {
        self.optional_string(name)
            .unwrap_or_else(|| default.to_owned())
    }

    pub fn secret(&self, name: &str) -> Option<Secret> {
        self.vars.get(name).map(Secret::new)
    }

    /// Parses `name` with `FromStr`, or `default` when unset.
    pub fn parse<T>(&mut self, name: &str, default: T) -> T
    where
        T: FromStr,
        T::Err: fmt::Display,
    {
        match self.vars.get(name) {
            None => default,
            Some(raw) => match raw.trim().parse() {
                Ok(value) => value,
                Err(err) => {
                    self.error(name, format!("`{}` is invalid: {err}", raw.trim()));
                    default
                }
            },
        }
    }

    /// A duration such as `60s`, `5m` or `1h 30m` (humantime syntax); must not be zero.
    pub fn duration(&mut self, name: &str, default: &str) -> Duration {
        let fallback = humantime::parse_duration(default).expect("default durations are valid");
        match self.vars.get(name) {
            None => fallback,
            Some(raw) => match humantime::parse_duration(raw.trim()) {
                Ok(d) if d.is_zero() => {
                    self.error(name, "must be greater than zero");
                    fallback
                }
                Ok(d) => d,
                Err(err) => {
                    self.error(
                        name,
                        format!(
                            "`{}` is not a duration such as 60s or 5m: {err}",
                            raw.trim()
                        ),
                    );
                    fallback
                }
            },
        }
    }

    /// An absolute URL whose scheme is one of `schemes`.
    pub fn url(&mut self, name: &str, default: &str, schemes: &[&str]) -> url::Url {
        let fallback = url::Url::parse(default).expect("default URLs are valid");
        let Some(raw) = self.vars.get(name) else {
            return fallback;
        };
        match check_url(raw, schemes) {
            Ok(url) => url,
            Err(problem) => {
                self.error(name, problem);
                fallback
            }
        }
    }

    /// One URL or several, comma-separated (the servers of a cluster), each as [`Parser::url`]
    /// reads it; a problem names the URL by its place in the list.
    pub fn url_list(&mut self, name: &str, default: &str, schemes: &[&str]) -> Vec<url::Url> {
        let fallback = vec![url::Url::parse(default).expect("default URLs are valid")];
        let Some(raw) = self.vars.get(name) else {
            return fallback;
        };
        let items: Vec<&str> = raw.split(',').map(str::trim).collect();
        let mut urls = Vec::with_capacity(items.len());
        for (place, item) in items.iter().enumerate() {
            match check_url(item, schemes) {
                Ok(url) => urls.push(url),
                Err(problem) if items.len() == 1 => self.error(name, problem),
                Err(problem) => self.error(
                    name,
                    format!("URL {} of {}: {problem}", place + 1, items.len()),
                ),
            }
        }
        if urls.len() == items.len() {
            urls
        } else {
            fallback
        }
    }

    /// `MAX_REMOVED_SHARE`: DESIGN rule 7, the largest share of stored dates a run may remove
    /// (a fraction from 0 to 1, default 0.05). Read by the loader and `etl diff`.
    pub fn max_removed_share(&mut self) -> f64 {
        const DEFAULT: f64 = 0.05;
        let Some(raw) = self.optional_string("MAX_REMOVED_SHARE") else {
            return DEFAULT;
        };
        match raw.parse::<f64>() {
            Ok(share) if (0.0..=1.0).contains(&share) => share,
            _ => {
                self.error(
                    "MAX_REMOVED_SHARE",
                    format!("`{raw}` is not a fraction between 0 and 1 (such as 0.05)"),
                );
                DEFAULT
            }
        }
    }

    /// `ETL_ENV`: the environment a single-env service (extractor, dashboard) works for.
    pub fn env(&mut self) -> Env {
        self.parse("ETL_ENV", Env::prod())
    }

    /// `ETL_ENVS`: the environments a pipeline service serves, `*` (default) for all.
    pub fn env_scope(&mut self) -> EnvScope {
        self.parse("ETL_ENVS", EnvScope::All)
    }

    pub fn finish(self) -> Result<(), ConfigError> {
        if self.errors.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { lines: self.errors })
        }
    }
}

/// `raw` as a URL with one of `schemes`, or why not. The problem never echoes `raw`: it may hold
/// credentials.
fn check_url(raw: &str, schemes: &[&str]) -> Result<url::Url, String> {
    match url::Url::parse(raw.trim()) {
        Ok(url) if schemes.contains(&url.scheme()) => Ok(url),
        Ok(url) => Err(format!(
            "scheme `{}` is not one of {}",
            url.scheme(),
            schemes.join(", ")
        )),
        Err(err) => Err(format!("is not a valid URL: {err}")),
    }
}

/// The largest replica count JetStream allows for a stream.
pub const MAX_NATS_REPLICAS: usize = 5;

/// How to reach NATS: `NATS_URL`, one server or the servers of a cluster, comma-separated; who we are, when the server needs it: `NATS_NKEY_FILE` (a
/// file holding the identity's NKEY seed, `SU…`), `NATS_CREDS`, `NATS_USER` + `NATS_PASSWORD` or
/// `NATS_TOKEN`, else credentials in the URL (`nats://user:password@…`, `nats://token@…`, taken
/// out of the URL kept in `url`); and TLS: `NATS_CA_FILE` (PEM certificates of the CA that signed
/// the server's certificate). TLS is required when a URL says `tls://` or a CA file is given.
/// `NATS_REPLICAS`: how many copies of each stream, object store and bucket JetStream keeps (1, or
/// 3 on a three-node cluster).
#[derive(Debug, Clone)]
pub struct NatsConfig {
    /// The servers, comma-separated, without credentials.
    pub url: String,
    pub auth: NatsAuth,
    pub tls: NatsTls,
    pub replicas: usize,
}

#[derive(Debug, Clone)]
pub enum NatsAuth {
    None,
    /// An NKEY seed, read from `NATS_NKEY_FILE` at start and checked to be a user seed.
    Nkey(Secret),
    CredsFile(String),
    UserPassword {
        user: String,
        password: Secret,
    },
    Token(Secret),
}

/// TLS to the broker.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NatsTls {
    /// Refuse a connection that is not TLS.
    pub required: bool,
    /// Trust the certificates in this file (and only them) for the server's certificate.
    pub ca_file: Option<std::path::PathBuf>,
}

impl NatsConfig {
    pub fn parse(p: &mut Parser<'_>) -> Self {
        let mut urls = p.url_list(
            "NATS_URL",
            "nats://127.0.0.1:4222",
            &["nats", "tls", "ws", "wss"],
        );
        // Every URL loses its credentials; the first URL that had some gives them.
        let in_url = urls
            .iter_mut()
            .map(take_url_credentials)
            .fold(None, |found, taken| found.or(taken));
        let auth = if let Some(path) = p.optional_string("NATS_NKEY_FILE") {
            match read_nkey_seed(&path) {
                Ok(seed) => NatsAuth::Nkey(seed),
                Err(problem) => {
                    p.error("NATS_NKEY_FILE", problem);
                    NatsAuth::None
                }
            }
        } else if let Some(path) = p.optional_string("NATS_CREDS") {
            NatsAuth::CredsFile(path)
        } else if let Some(user) = p.optional_string("NATS_USER") {
            match p.secret("NATS_PASSWORD") {
                Some(password) => NatsAuth::UserPassword { user, password },
                None => {
                    p.error("NATS_PASSWORD", "must be set when NATS_USER is set");
                    NatsAuth::None
                }
            }
        } else if let Some(token) = p.secret("NATS_TOKEN") {
            NatsAuth::Token(token)
        } else if let Some(auth) = in_url {
            auth
        } else {
            NatsAuth::None
        };
        let ca_file =
            p.optional_string("NATS_CA_FILE")
                .and_then(|path| match check_ca_file(&path) {
                    Ok(()) => Some(std::path::PathBuf::from(path)),
                    Err(problem) => {
                        p.error("NATS_CA_FILE", problem);
                        None
                    }
                });
        let tls = NatsTls {
            required: urls.iter().any(|url| matches!(url.scheme(), "tls" | "wss"))
                || ca_file.is_some(),
            ca_file,
        };
        let replicas = p.parse("NATS_REPLICAS", 1usize);
        if !(1..=MAX_NATS_REPLICAS).contains(&replicas) {
            p.error(
                "NATS_REPLICAS",
                format!("must be from 1 to {MAX_NATS_REPLICAS}, not {replicas}"),
            );
        }
        Self {
            url: urls
                .iter()
                .map(url::Url::as_str)
                .collect::<Vec<_>>()
                .join(","),
            auth,
            tls,
            replicas: replicas.clamp(1, MAX_NATS_REPLICAS),
        }
    }

    pub fn local(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            auth: NatsAuth::None,
            tls: NatsTls::default(),
            replicas: 1,
        }
    }
}

/// The variables [`NatsConfig::parse`] reads, for a service's [`Spec`].
pub fn nats_vars() -> Vec<Var> {
    vec![
        Var::new(
            "NATS_URL",
            "The NATS server, or a cluster's servers comma-separated: nats:// or tls:// (TLS \
             required), ws:// or wss://; credentials in a URL are used when no variable below \
             names others",
        )
        .default_value("nats://127.0.0.1:4222")
        .url(),
        Var::new(
            "NATS_REPLICAS",
            "Copies JetStream keeps of each stream, object store and bucket: 1, or 3 on a \
             three-node cluster (at most 5); `etl setup` scales up those made with fewer",
        )
        .default_value(1),
        Var::new(
            "NATS_NKEY_FILE",
            "A file holding this service's NKEY user seed (SU…), which signs the server's \
             challenge",
        ),
        Var::new("NATS_CREDS", "A NATS credentials file (JWT and seed)"),
        Var::new("NATS_USER", "User name, with NATS_PASSWORD"),
        Var::new("NATS_PASSWORD", "Password of NATS_USER").secret(),
        Var::new("NATS_TOKEN", "An authentication token").secret(),
        Var::new(
            "NATS_CA_FILE",
            "PEM certificates of the CA that signed the server's certificate (only these are \
             trusted); makes TLS required",
        ),
    ]
}

/// `ETL_ENV`, read by [`Parser::env`].
pub fn env_var() -> Var {
    Var::new(
        "ETL_ENV",
        "The environment this service works for (prod, or a test env such as e2e_1)",
    )
    .default_value(Env::prod())
}

/// A duration as people write it and [`Parser::duration`] reads it (`30s`, `1h 30m`).
pub fn human_duration(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}

/// `METRICS_ADDR` of `service`, read by [`crate::metrics::addr::metrics_addr`].
pub fn metrics_var(service: &str) -> Var {
    Var::new(
        crate::metrics::addr::METRICS_ADDR,
        "Where /metrics (Prometheus text), /livez and /readyz are served (host:port; port 0 \
         picks a free one)",
    )
    .default_value(crate::metrics::addr::default_for(service))
}

/// `ETL_ENVS`, read by [`Parser::env_scope`].
pub fn env_scope_var() -> Var {
    Var::new(
        "ETL_ENVS",
        "The environments this service serves: * for all, or a comma-separated list",
    )
    .default_value("*")
}

/// `MAX_REMOVED_SHARE`, read by [`Parser::max_removed_share`].
pub fn max_removed_share_var() -> Var {
    Var::new(
        "MAX_REMOVED_SHARE",
        "The largest share of stored dates one run may remove (0 to 1); a run removing more is \
         refused",
    )
    .default_value("0.05")
}

/// The variables of a PostgreSQL connection read by
/// [`crate::postgres::Database::from_url_var`] and [`crate::postgres::SessionSettings::parse`],
/// with the service's defaults.
pub fn database_vars(default_url: &str, session: crate::postgres::SessionSettings) -> Vec<Var> {
    vec![
        Var::new(
            "DATABASE_URL",
            "PostgreSQL, as a postgres:// URL (TLS by its sslmode and sslrootcert, as libpq)",
        )
        .default_value(default_url)
        .url(),
        Var::new(
            "DATABASE_PASSWORD_FILE",
            "A file whose first line is the password (instead of one in DATABASE_URL)",
        ),
        Var::new(
            crate::postgres::PGSSLMODE,
            "sslmode when DATABASE_URL gives none (disable, prefer, require, verify-ca, \
             verify-full)",
        ),
        Var::new(
            crate::postgres::PGSSLROOTCERT,
            "sslrootcert when DATABASE_URL gives none: the CA file, or system",
        ),
        Var::new(
            "DB_STATEMENT_TIMEOUT",
            "The longest one SQL statement may run",
        )
        .default_value(human_duration(session.statement_timeout)),
        Var::new(
            "DB_LOCK_TIMEOUT",
            "The longest a statement may wait for a lock",
        )
        .default_value(human_duration(session.lock_timeout)),
    ]
}

/// The NKEY seed in `path`: one line, a user seed (`SU…`). The problem, if any, never quotes the
/// file's content.
fn read_nkey_seed(path: &str) -> Result<Secret, String> {
    let content =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    let seed = content.trim();
    if seed.is_empty() {
        return Err(format!("{path} is empty; it must hold an NKEY seed (SU…)"));
    }
    match nkeys::KeyPair::from_seed(seed) {
        Ok(pair) if pair.key_pair_type() == nkeys::KeyPairType::User => Ok(Secret::new(seed)),
        Ok(_) => Err(format!(
            "{path} holds an NKEY seed that is not a user's (a user seed starts with SU)"
        )),
        Err(err) => Err(format!("{path} does not hold a valid NKEY seed: {err}")),
    }
}

/// A CA file must be readable and hold at least one PEM certificate.
fn check_ca_file(path: &str) -> Result<(), String> {
    let content =
        std::fs::read_to_string(path).map_err(|err| format!("cannot read {path}: {err}"))?;
    if content.contains("-----BEGIN CERTIFICATE-----") {
        Ok(())
    } else {
        Err(format!("{path} holds no PEM certificate"))
    }
}

/// Takes the credentials out of a NATS URL (`nats://user:password@host`, `nats://token@host`):
/// they become the connection's [`NatsAuth`] unless a variable names another, and the URL kept
/// holds none, so nothing that prints it (the NATS client logs its server addresses with `Debug`)
/// can show them.
fn take_url_credentials(url: &mut url::Url) -> Option<NatsAuth> {
    let user = percent_decode(url.username());
    let password = url.password().map(percent_decode);
    // Both only fail for URLs without a host, which hold no credentials.
    let _ = url.set_username("");
    let _ = url.set_password(None);
    match (user.is_empty(), password) {
        (_, Some(password)) => Some(NatsAuth::UserPassword {
            user,
            password: Secret::new(password),
        }),
        (false, None) => Some(NatsAuth::Token(Secret::new(user))),
        (true, None) => None,
    }
}

/// `%XX` escapes decoded (a URL's user and password are percent-encoded).
fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let escaped = bytes
            .get(i + 1..i + 3)
            .filter(|_| bytes[i] == b'%')
            .and_then(|hex| std::str::from_utf8(hex).ok())
            .and_then(|hex| u8::from_str_radix(hex, 16).ok());
        match escaped {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bad_value_is_reported_on_its_own_line() {
        let vars = Vars::from_pairs([
            ("POLL_INTERVAL", "soon"),
            ("NATS_URL", "http://x"),
            ("ETL_ENV", "Prod!"),
        ]);
        let mut p = Parser::new(&vars);
        p.duration("POLL_INTERVAL", "60s");
        NatsConfig::parse(&mut p);
        p.env();
        let err = p.finish().unwrap_err();
        assert_eq!(err.lines.len(), 3, "{err}");
        assert!(err.lines[0].starts_with("POLL_INTERVAL: `soon` is not a duration"));
        assert!(err.lines[1].starts_with("NATS_URL: scheme `http`"));
        assert!(err.lines[2].starts_with("ETL_ENV: `Prod!` is invalid"));
    }

    #[test]
    fn defaults_apply_when_unset_or_empty() {
        let vars = Vars::from_pairs([("POLL_INTERVAL", "")]);
        let mut p = Parser::new(&vars);
        assert_eq!(p.duration("POLL_INTERVAL", "60s"), Duration::from_secs(60));
        assert_eq!(p.env(), Env::prod());
        assert_eq!(p.env_scope(), EnvScope::All);
        assert!(p.finish().is_ok());
    }

    #[test]
    fn a_family_of_variables_is_listed_by_prefix() {
        let vars = Vars::from_pairs([
            ("EMAIL_TO_TEST", "a@x"),
            ("EMAIL_TO", "b@x"),
            ("EMAIL_TO_E2E", " "),
        ]);
        assert_eq!(
            vars.with_prefix("EMAIL_TO_"),
            vec![("EMAIL_TO_TEST", "a@x")]
        );
    }

    #[test]
    fn credentials_in_nats_url_become_its_auth_and_leave_the_url() {
        let (config, result) = nats(&[("NATS_URL", "nats://ops:p%40ss%3Aword@nats.example:4222")]);
        result.unwrap();
        assert_eq!(config.url, "nats://nats.example:4222");
        match &config.auth {
            NatsAuth::UserPassword { user, password } => {
                assert_eq!((user.as_str(), password.expose()), ("ops", "p@ss:word"));
            }
            other => panic!("expected user and password, got {other:?}"),
        }
        assert!(!format!("{config:?}").contains("p@ss"), "{config:?}");

        let (config, _) = nats(&[("NATS_URL", "tls://s3cr3t-token@nats.example:4222")]);
        assert_eq!(config.url, "tls://nats.example:4222");
        assert!(matches!(&config.auth, NatsAuth::Token(token) if token.expose() == "s3cr3t-token"));

        // A variable naming the credentials wins; the URL's are dropped all the same.
        let (config, _) = nats(&[
            ("NATS_URL", "nats://ops:from-url@nats.example:4222"),
            ("NATS_USER", "svc"),
            ("NATS_PASSWORD", "from-variable"),
        ]);
        assert_eq!(config.url, "nats://nats.example:4222");
        assert!(matches!(&config.auth, NatsAuth::UserPassword { user, .. } if user == "svc"));
    }

    #[test]
    fn secrets_never_print() {
        let secret = Secret::new("hunter2");
        assert_eq!(format!("{secret:?} {secret}"), "[redacted] [redacted]");
    }

    /// A file in a fresh temporary folder, removed with it.
    fn temp_file(name: &str, content: &str) -> (std::path::PathBuf, String) {
        let dir = std::env::temp_dir().join(format!("nats-config-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, content).unwrap();
        let text = path.to_string_lossy().into_owned();
        (dir, text)
    }

    fn nats(pairs: &[(&str, &str)]) -> (NatsConfig, Result<(), ConfigError>) {
        let vars = Vars::from_pairs(pairs.iter().copied());
        let mut p = Parser::new(&vars);
        let config = NatsConfig::parse(&mut p);
        (config, p.finish())
    }

    // The example seed of the NKEY documentation.
    const USER_SEED: &str = "SUANQDPB2RUOE4ETUA26CNX7FUKE5ZZKFCQIIW63OX225F2CO7UEXTM7ZY";

    #[test]
    fn an_nkey_seed_is_read_from_its_file_and_never_printed() {
        let (dir, path) = temp_file("loader.nk", &format!("{USER_SEED}\n"));
        let (config, result) = nats(&[("NATS_NKEY_FILE", &path)]);
        result.unwrap();
        match &config.auth {
            NatsAuth::Nkey(seed) => assert_eq!(seed.expose(), USER_SEED),
            other => panic!("expected an NKEY, got {other:?}"),
        }
        assert!(!format!("{config:?}").contains(USER_SEED));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_missing_or_bad_nkey_file_is_one_error_naming_the_variable() {
        let (config, result) = nats(&[("NATS_NKEY_FILE", "/nonexistent/loader.nk")]);
        let err = result.unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(
            err.lines[0].starts_with("NATS_NKEY_FILE: cannot read /nonexistent/loader.nk"),
            "{err}"
        );
        assert!(matches!(config.auth, NatsAuth::None));

        // One character changed: the checksum fails. The error must not quote the seed.
        let broken = USER_SEED.replacen('Q', "R", 1);
        let (dir, path) = temp_file("bad.nk", &broken);
        let err = nats(&[("NATS_NKEY_FILE", &path)]).1.unwrap_err();
        assert!(
            err.lines[0].starts_with("NATS_NKEY_FILE: ")
                && err.lines[0].contains("does not hold a valid NKEY seed"),
            "{err}"
        );
        assert!(!err.to_string().contains(&broken));
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_public_key_is_not_a_seed() {
        let (dir, path) = temp_file(
            "public.nk",
            "UAMMBNV2EYR65NYZZ7IAK5SIR5ODNTTERJOBOF4KJLMWI45YOXOSWULM",
        );
        let err = nats(&[("NATS_NKEY_FILE", &path)]).1.unwrap_err();
        assert!(
            err.lines[0].contains("does not hold a valid NKEY seed"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn tls_is_required_by_a_tls_url_or_a_ca_file() {
        let (config, result) = nats(&[("NATS_URL", "tls://127.0.0.1:4222")]);
        result.unwrap();
        assert_eq!(
            config.tls,
            NatsTls {
                required: true,
                ca_file: None
            }
        );

        let (dir, ca) = temp_file(
            "ca.pem",
            "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
        );
        let (config, result) = nats(&[("NATS_CA_FILE", &ca)]);
        result.unwrap();
        assert!(config.tls.required);
        assert_eq!(config.tls.ca_file, Some(std::path::PathBuf::from(&ca)));

        let (config, result) = nats(&[]);
        result.unwrap();
        assert_eq!(config.tls, NatsTls::default());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_ca_file_without_a_certificate_is_refused() {
        let (dir, ca) = temp_file("ca.pem", "not a certificate");
        let err = nats(&[("NATS_CA_FILE", &ca)]).1.unwrap_err();
        assert_eq!(
            err.lines,
            vec![format!("NATS_CA_FILE: {ca} holds no PEM certificate")]
        );
        let err = nats(&[("NATS_CA_FILE", "/nonexistent/ca.pem")])
            .1
            .unwrap_err();
        assert!(
            err.lines[0].starts_with("NATS_CA_FILE: cannot read /nonexistent/ca.pem"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn a_bad_url_is_reported_without_its_credentials() {
        let vars = Vars::from_pairs([("NATS_URL", "nats://user:hunter2@[bad")]);
        let mut p = Parser::new(&vars);
        NatsConfig::parse(&mut p);
        let err = p.finish().unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
    }
}
