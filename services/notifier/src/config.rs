//! The notifier's settings, parsed and validated once at start.
//!
//! Recipients are routed by env: `EMAIL_TO` is for `prod`; any other env is emailed only when
//! `EMAIL_TO_<ENV>` (the env name upper-cased) is set, so a test run never mails the people who
//! watch prod. Every address is checked at start, each bad one reported on its own line.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use lettre::message::{Mailbox, Mailboxes};
use shared::config::{ConfigError, NatsConfig, Parser, Secret, Spec, Var, Vars};
use shared::{Env, EnvScope};

pub const DEFAULT_FROM: &str = "covid-etl <covid-etl@localhost>";
const TO_PREFIX: &str = "EMAIL_TO_";

#[derive(Debug, Clone)]
pub struct Config {
    pub nats: NatsConfig,
    /// `METRICS_ADDR`: where `/metrics`, `/livez` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    pub scope: EnvScope,
    pub smtp: SmtpConfig,
    pub from: Mailbox,
    pub routes: Routes,
    /// `DASHBOARD_URL`: linked from every email.
    pub dashboard_url: String,
    /// `NOTIFY_UNCHANGED`: whether a run that changed nothing is emailed.
    pub unchanged: UnchangedPolicy,
    /// `STALE_AFTER` (`off` disables): how old a source's newest commit may get before people are
    /// told.
    pub stale_after: Option<Duration>,
    /// `STALE_CHECK_INTERVAL`: how often staleness is checked besides on each loaded run.
    pub stale_check_interval: Duration,
    /// `LEASE_PERIOD`: the staleness check's lease (see [`crate::stale`]).
    pub lease_period: Duration,
}

/// How to reach the mail server. The URL may hold credentials, so it is kept as a [`Secret`] and
/// only its redacted form is ever shown.
#[derive(Debug, Clone)]
pub struct SmtpConfig {
    /// `SMTP_URL` in lettre's form: `smtp://host:port`, `smtp://host:587?tls=required`
    /// (STARTTLS), `smtps://user:pass@host:465` (implicit TLS).
    pub url: Secret,
    pub redacted_url: String,
    /// The server's name in `SMTP_URL`, which its certificate must hold.
    pub host: String,
    /// How the connection is protected, read from `SMTP_URL`'s scheme and `tls=`.
    pub tls: SmtpTls,
    /// `SMTP_CA_FILE`: the certificate authority (PEM) the server's certificate is verified
    /// against, besides the system's roots; read at start.
    pub ca: Option<CaFile>,
    /// `SMTP_USERNAME` + `SMTP_PASSWORD`, which take precedence over credentials in the URL.
    pub credentials: Option<(String, Secret)>,
    /// `SMTP_TIMEOUT`: a mail server that does not answer within it counts as down.
    pub timeout: Duration,
    /// `SMTP_RETRY_MAX`: the longest wait between two delivery attempts while the server is down
    /// or deferring.
    pub retry_max: Duration,
    /// How long an email waits for an unavailable server before it is given up on: not a
    /// setting, [`crate::consumer::OUTAGE_WAITED_OUT`], held here so tests can shorten it.
    pub give_up_after: Duration,
}

/// How the SMTP connection is protected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpTls {
    /// `smtp://host`: plain text; refused together with credentials.
    None,
    /// `smtp://host?tls=opportunistic`: STARTTLS when the server offers it. An attacker can strip
    /// the offer, so it is treated as plain text where credentials are concerned.
    Opportunistic,
    /// `smtp://host?tls=required`: STARTTLS, or no session at all.
    StartTls,
    /// `smtps://host`: TLS from the first byte.
    Implicit,
}

impl SmtpTls {
    /// Whether nothing is ever sent to the server in clear text.
    pub fn is_guaranteed(self) -> bool {
        matches!(self, SmtpTls::StartTls | SmtpTls::Implicit)
    }
}

/// A PEM file of extra trusted roots, as read at start.
#[derive(Clone)]
pub struct CaFile {
    pub path: String,
    pub pem: Vec<u8>,
}

impl fmt::Debug for CaFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CaFile").field("path", &self.path).finish()
    }
}

impl CaFile {
    /// Reads `path` and checks that it holds at least one PEM certificate and nothing broken.
    fn read(path: &str) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;

        let pem = std::fs::read(path).map_err(|err| format!("cannot read `{path}`: {err}"))?;
        let certificates = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| format!("`{path}` is not a PEM certificate file: {err}"))?;
        if certificates.is_empty() {
            return Err(format!("`{path}` holds no PEM certificate"));
        }
        Ok(Self {
            path: path.to_owned(),
            pem,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnchangedPolicy {
    /// Email a run that changed nothing, like any other.
    Email,
    /// Only publish it on `notify.<env>`.
    Nats,
}

impl FromStr for UnchangedPolicy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "email" => Ok(Self::Email),
            "nats" => Ok(Self::Nats),
            _ => Err("expected `email` or `nats`".to_owned()),
        }
    }
}

/// Who is emailed about each env.
#[derive(Debug, Clone, Default)]
pub struct Routes(BTreeMap<Env, Vec<Mailbox>>);

impl Routes {
    pub fn recipients(&self, env: &Env) -> &[Mailbox] {
        self.0.get(env).map(Vec::as_slice).unwrap_or_default()
    }

    fn parse(p: &mut Parser<'_>) -> Self {
        let mut routes = BTreeMap::new();
        let vars = p.vars().clone();
        if let Some(raw) = vars.get("EMAIL_TO") {
            routes.insert(Env::prod(), parse_mailboxes(p, "EMAIL_TO", raw));
        }
        for (name, raw) in vars.with_prefix(TO_PREFIX) {
            let token = name[TO_PREFIX.len()..].to_ascii_lowercase();
            match Env::new(token) {
                Ok(env) if env == Env::prod() => {
                    p.error(name, "prod's recipients are set with EMAIL_TO");
                }
                Ok(env) => {
                    routes.insert(env, parse_mailboxes(p, name, raw));
                }
                Err(err) => p.error(name, format!("does not name an environment: {err}")),
            }
        }
        Self(routes)
    }
}

impl fmt::Display for Routes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("nobody");
        }
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(env, to)| format!("{env}: {} recipient(s)", to.len()))
            .collect();
        f.write_str(&parts.join(", "))
    }
}

/// A comma-separated list of addresses. When lettre's list parser refuses it, each part is tried
/// alone so that every bad address is named on its own line.
fn parse_mailboxes(p: &mut Parser<'_>, name: &str, raw: &str) -> Vec<Mailbox> {
    if let Ok(list) = raw.trim().parse::<Mailboxes>() {
        return list.into_iter().collect();
    }
    let mut good = Vec::new();
    for part in raw.split(',').map(str::trim) {
        if part.is_empty() {
            continue;
        }
        match part.parse::<Mailbox>() {
            Ok(mailbox) => good.push(mailbox),
            Err(err) => p.error(name, format!("`{part}` is not an email address: {err}")),
        }
    }
    good
}

impl SmtpConfig {
    fn parse(p: &mut Parser<'_>) -> Self {
        let url = p.url("SMTP_URL", "smtp://127.0.0.1:1025", &["smtp", "smtps"]);
        let tls_param = url
            .query_pairs()
            .find(|(k, _)| k == "tls")
            .map(|(_, v)| v.into_owned());
        let tls = match (url.scheme(), tls_param.as_deref()) {
            ("smtp", None) => Some(SmtpTls::None),
            ("smtp", Some("opportunistic")) => Some(SmtpTls::Opportunistic),
            ("smtp", Some("required")) => Some(SmtpTls::StartTls),
            ("smtps", None) => Some(SmtpTls::Implicit),
            (scheme, Some(other)) => {
                p.error(
                    "SMTP_URL",
                    format!("tls={other} is not supported with {scheme}:// (use smtp://…?tls=required for STARTTLS, or smtps:// for implicit TLS)"),
                );
                None
            }
            // `p.url` allows no other scheme (and has said so).
            _ => None,
        };
        if url.host_str().is_none_or(str::is_empty) {
            p.error("SMTP_URL", "names no host");
        }
        let credentials = match (
            p.optional_string("SMTP_USERNAME"),
            p.secret("SMTP_PASSWORD"),
        ) {
            (Some(user), Some(password)) => Some((user, password)),
            (None, None) => None,
            (Some(_), None) => {
                p.error("SMTP_PASSWORD", "must be set when SMTP_USERNAME is set");
                None
            }
            (None, Some(_)) => {
                p.error("SMTP_USERNAME", "must be set when SMTP_PASSWORD is set");
                None
            }
        };
        let has_credentials = credentials.is_some()
            || !url.username().is_empty()
            || url.password().is_some()
            || p.vars().get("SMTP_USERNAME").is_some()
            || p.vars().get("SMTP_PASSWORD").is_some();
        // An unknown `tls=` has been reported already; the rest is judged on a known mode.
        let tls = tls.unwrap_or(SmtpTls::Implicit);
        if has_credentials && !tls.is_guaranteed() {
            let why = match tls {
                SmtpTls::Opportunistic => {
                    "tls=opportunistic falls back to plain text when the server (or anyone in between) does not offer STARTTLS"
                }
                _ => "a plain smtp:// connection",
            };
            p.error(
                "SMTP_URL",
                format!("SMTP credentials are set but would cross {why}; use smtps:// (implicit TLS) or smtp://…?tls=required (STARTTLS)"),
            );
        }
        let ca = p
            .optional_string("SMTP_CA_FILE")
            .filter(|path| !path.is_empty())
            .and_then(|path| match CaFile::read(&path) {
                Ok(ca) => Some(ca),
                Err(problem) => {
                    p.error("SMTP_CA_FILE", problem);
                    None
                }
            });
        if ca.is_some() && tls == SmtpTls::None {
            p.error(
                "SMTP_CA_FILE",
                "is set but SMTP_URL uses no TLS (smtps:// or ?tls=required)",
            );
        }
        Self {
            redacted_url: shared::nats::redact_url(url.as_str()),
            host: url.host_str().unwrap_or_default().to_owned(),
            url: Secret::new(url.to_string()),
            tls,
            ca,
            credentials,
            timeout: p.duration("SMTP_TIMEOUT", "15s"),
            retry_max: p.duration("SMTP_RETRY_MAX", "5m"),
            give_up_after: crate::consumer::OUTAGE_WAITED_OUT,
        }
    }
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let nats = NatsConfig::parse(&mut p);
        let metrics_addr = shared::metrics::addr::metrics_addr(&mut p, "notifier");
        let scope = p.env_scope();
        let smtp = SmtpConfig::parse(&mut p);
        let from_raw = p.string("EMAIL_FROM", DEFAULT_FROM);
        let from = match from_raw.parse::<Mailbox>() {
            Ok(mailbox) => mailbox,
            Err(err) => {
                p.error(
                    "EMAIL_FROM",
                    format!("`{from_raw}` is not an email address: {err}"),
                );
                DEFAULT_FROM.parse().expect("the default sender is valid")
            }
        };
        let routes = Routes::parse(&mut p);
        let dashboard_url = p.url("DASHBOARD_URL", "http://127.0.0.1:8080", &["http", "https"]);
        let unchanged = p.parse("NOTIFY_UNCHANGED", UnchangedPolicy::Nats);
        let stale_after = match p.optional_string("STALE_AFTER").as_deref() {
            Some("off" | "never") => None,
            _ => Some(p.duration("STALE_AFTER", "7d")),
        };
        let stale_check_interval = p.duration("STALE_CHECK_INTERVAL", "1h");
        let lease_period = p.duration("LEASE_PERIOD", "5m");
        // Checked every eighth of it: shorter would keep the bucket busy for nothing.
        if lease_period < std::time::Duration::from_secs(1) {
            p.error("LEASE_PERIOD", "must be at least 1s");
        }
        p.finish()?;
        Ok(Config {
            metrics_addr,
            nats,
            scope,
            smtp,
            from,
            routes,
            // `Url` adds a trailing slash to a bare host; people read this link, so keep it as given.
            dashboard_url: dashboard_url.as_str().trim_end_matches('/').to_owned(),
            unchanged,
            stale_after,
            stale_check_interval,
            lease_period,
        })
    }

    /// One line for the start-up log; holds no secret.
    pub fn summary(&self) -> String {
        format!(
            "envs {}, smtp {}, from {}, emailing {}, unchanged runs by {}, stale after {}",
            self.scope.label(),
            self.smtp.redacted_url,
            self.from,
            self.routes,
            match self.unchanged {
                UnchangedPolicy::Email => "email",
                UnchangedPolicy::Nats => "nats only",
            },
            self.stale_after
                .map_or("never".to_owned(), |d| format!("{}s", d.as_secs())),
        )
    }
}

/// The notifier's command line and every variable it reads, for `--help` and `--check-config`
/// (a unit test keeps it in step with [`Config::from_vars`]).
pub fn spec() -> Spec {
    let mut vars = shared::config::nats_vars();
    vars.extend([
        shared::config::metrics_var(env!("CARGO_PKG_NAME")),
        shared::config::env_scope_var(),
        Var::new(
            "SMTP_URL",
            "The mail server: smtp://host:port (plain), smtp://host:587?tls=required (STARTTLS) \
             or smtps://host:465 (implicit TLS); credentials need TLS",
        )
        .default_value("smtp://127.0.0.1:1025")
        .url(),
        Var::new(
            "SMTP_USERNAME",
            "SMTP user, with SMTP_PASSWORD (wins over the URL's)",
        ),
        Var::new("SMTP_PASSWORD", "Password of SMTP_USERNAME").secret(),
        Var::new(
            "SMTP_CA_FILE",
            "PEM certificate(s) of a CA trusted for the mail server besides the system's",
        ),
        Var::new(
            "SMTP_TIMEOUT",
            "A mail server silent this long counts as down",
        )
        .default_value("15s"),
        Var::new(
            "SMTP_RETRY_MAX",
            "The longest wait between two delivery attempts while the server is down",
        )
        .default_value("5m"),
        Var::new("EMAIL_FROM", "The sender of every email").default_value(DEFAULT_FROM),
        Var::new(
            "EMAIL_TO",
            "Who is emailed about prod runs, comma-separated addresses (unset: nobody)",
        ),
        Var::family(
            TO_PREFIX,
            "EMAIL_TO_<ENV>",
            "Who is emailed about env <ENV> (upper-cased, such as EMAIL_TO_E2E_1); other envs \
             are emailed to nobody",
        ),
        Var::new("DASHBOARD_URL", "The dashboard, linked from every email")
            .default_value("http://127.0.0.1:8080")
            .url(),
        Var::new(
            "NOTIFY_UNCHANGED",
            "A run that changed nothing: email, or nats (published on notify.<env> only)",
        )
        .default_value("nats"),
        Var::new(
            "STALE_AFTER",
            "How old a source's newest commit may get before people are told (off: never)",
        )
        .default_value("7d"),
        Var::new(
            "STALE_CHECK_INTERVAL",
            "How often staleness is checked besides on each loaded run",
        )
        .default_value("1h"),
        Var::new(
            "LEASE_PERIOD",
            "Of several notifiers serving the same envs, one at a time checks staleness; another \
             takes over within this period. Longer than a check takes (its emails included)",
        )
        .default_value("5m"),
    ]);
    Spec::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        "Emails the people who watch each env about every loaded or failed run, and warns when \
         an upstream source goes stale",
        vars,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(pairs: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_vars(&Vars::from_pairs(pairs.iter().copied()))
    }

    #[test]
    fn help_lists_exactly_what_the_parser_reads_with_its_defaults() {
        shared::config::check_table(
            &spec(),
            Config::from_vars,
            |config| format!("{config:?}"),
            &[&[("NATS_USER", "u")]],
        )
        .unwrap_or_else(|problems| panic!("{}", problems.join("\n")));
    }

    #[test]
    fn defaults_send_to_nobody_through_the_local_sink() {
        let config = parse(&[]).unwrap();
        assert_eq!(config.smtp.redacted_url, "smtp://127.0.0.1:1025");
        assert_eq!(config.from.to_string(), DEFAULT_FROM);
        assert!(config.routes.recipients(&Env::prod()).is_empty());
        assert_eq!(config.dashboard_url, "http://127.0.0.1:8080");
        assert_eq!(config.unchanged, UnchangedPolicy::Nats);
        assert_eq!(config.stale_after, Some(Duration::from_secs(7 * 24 * 3600)));
    }

    #[test]
    fn email_to_is_for_prod_and_other_envs_need_their_own_variable() {
        let config = parse(&[
            ("EMAIL_TO", "ops@example.com, Dana <dana@example.com>"),
            ("EMAIL_TO_E2E_1", "qa@example.com"),
        ])
        .unwrap();
        assert_eq!(config.routes.recipients(&Env::prod()).len(), 2);
        assert_eq!(
            config.routes.recipients(&Env::new("e2e_1").unwrap()).len(),
            1
        );
        assert!(
            config
                .routes
                .recipients(&Env::new("test").unwrap())
                .is_empty()
        );
    }

    #[test]
    fn every_bad_address_gets_its_own_line() {
        let err = parse(&[
            ("EMAIL_TO", "ok@example.com, not an address, also@bad@x"),
            ("EMAIL_FROM", "nobody"),
            ("EMAIL_TO_BAD-ENV", "x@example.com"),
        ])
        .unwrap_err();
        assert_eq!(err.lines.len(), 4, "{err}");
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("EMAIL_TO: `not an address` is not an email address"))
        );
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("EMAIL_TO: `also@bad@x`"))
        );
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("EMAIL_FROM: `nobody`"))
        );
        assert!(
            err.lines
                .iter()
                .any(|l| l.starts_with("EMAIL_TO_BAD-ENV: does not name an environment"))
        );
    }

    #[test]
    fn smtp_credentials_never_reach_the_summary() {
        let config = parse(&[("SMTP_URL", "smtps://mailer:hunter2@mail.example.com:465")]).unwrap();
        assert_eq!(
            config.smtp.redacted_url,
            "smtps://[redacted]@mail.example.com:465"
        );
        assert!(!config.summary().contains("hunter2"));
        assert!(!format!("{config:?}").contains("hunter2"));
    }

    #[test]
    fn smtp_settings_are_checked() {
        let err = parse(&[
            ("SMTP_URL", "smtp://mail.example.com?tls=sometimes"),
            ("SMTP_USERNAME", "mailer"),
            ("NOTIFY_UNCHANGED", "sms"),
            ("STALE_AFTER", "a while"),
        ])
        .unwrap_err();
        assert_eq!(err.lines.len(), 4, "{err}");
        assert!(err.lines[0].starts_with("SMTP_URL: tls=sometimes is not supported"));
        assert!(err.lines[1].starts_with("SMTP_PASSWORD: must be set"));
        assert!(
            err.lines[2]
                .starts_with("NOTIFY_UNCHANGED: `sms` is invalid: expected `email` or `nats`")
        );
        assert!(err.lines[3].starts_with("STALE_AFTER: `a while` is not a duration"));
    }

    #[test]
    fn credentials_are_refused_unless_the_connection_is_encrypted_from_the_start() {
        for (url, user) in [
            ("smtp://mailer:hunter2@mail.example.com:587", None),
            ("smtp://mail.example.com:587", Some("mailer")),
            (
                "smtp://mailer:hunter2@mail.example.com:587?tls=opportunistic",
                None,
            ),
            (
                "smtp://mail.example.com:587?tls=opportunistic",
                Some("mailer"),
            ),
        ] {
            let mut pairs = vec![("SMTP_URL", url)];
            if let Some(user) = user {
                pairs.extend([("SMTP_USERNAME", user), ("SMTP_PASSWORD", "hunter2")]);
            }
            let err = parse(&pairs).unwrap_err();
            assert_eq!(err.lines.len(), 1, "{url}: {err}");
            assert!(
                err.lines[0].starts_with("SMTP_URL: SMTP credentials are set but would cross"),
                "{url}: {err}"
            );
            assert!(err.lines[0].contains("smtps://"), "says what to use: {err}");
            assert!(!err.to_string().contains("hunter2"));
        }
        for url in [
            "smtps://mailer:hunter2@mail.example.com",
            "smtp://mailer:hunter2@mail.example.com:587?tls=required",
        ] {
            let config = parse(&[("SMTP_URL", url)]).unwrap();
            assert!(config.smtp.tls.is_guaranteed(), "{url}");
        }
        let config = parse(&[("SMTP_URL", "smtp://127.0.0.1:1025")]).unwrap();
        assert_eq!(
            config.smtp.tls,
            SmtpTls::None,
            "no credentials, no TLS needed"
        );
    }

    #[test]
    fn the_ca_file_must_hold_a_certificate_and_be_used_with_tls() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "not a certificate").unwrap();
        for (path, problem) in [
            (&missing, "cannot read"),
            (&garbage, "holds no PEM certificate"),
        ] {
            let err = parse(&[
                ("SMTP_URL", "smtps://mail.example.com"),
                ("SMTP_CA_FILE", path.to_str().unwrap()),
            ])
            .unwrap_err();
            assert_eq!(err.lines.len(), 1, "{err}");
            assert!(err.lines[0].starts_with("SMTP_CA_FILE: "), "{err}");
            assert!(err.lines[0].contains(problem), "{err}");
        }
    }

    #[test]
    fn staleness_alerts_can_be_turned_off() {
        assert_eq!(parse(&[("STALE_AFTER", "off")]).unwrap().stale_after, None);
        assert_eq!(
            parse(&[("STALE_AFTER", "36h")]).unwrap().stale_after,
            Some(Duration::from_secs(36 * 3600))
        );
    }
}
