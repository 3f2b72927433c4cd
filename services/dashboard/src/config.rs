//! The dashboard's settings: where to listen, which env's schema to read, how to reach
//! PostgreSQL (with `DB_STATEMENT_TIMEOUT` and `DB_LOCK_TIMEOUT`) and NATS, and the limits that
//! keep one client from taking the server ([`Limits`]).

use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

use shared::Env;
use shared::config::{ConfigError, NatsConfig, Parser, Secret, Spec, Var, Vars};
use shared::postgres::{Database, SessionSettings};

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/covid";

#[derive(Debug, Clone)]
pub struct Config {
    /// `DASHBOARD_ADDR`; port 0 picks a free port (tests read it back from the `Application`).
    pub addr: SocketAddr,
    /// `DATABASE_URL`. The dashboard only reads, so this should name a role with SELECT on the
    /// env's schema and nothing more (see the crate README); it may hold a password, hence secret.
    pub database_url: Secret,
    /// `DATABASE_URL` read: connection settings and TLS (`sslmode`, `sslrootcert`), without the
    /// session timeouts ([`Config::database`] adds them).
    pub database: Database,
    /// The timeouts of every session, put on the connection settings by [`Config::pg_config`].
    pub session: SessionSettings,
    /// `ETL_ENV`: whose schema and subjects to show.
    pub env: Env,
    pub nats: NatsConfig,
    pub limits: Limits,
}

/// What one client, or all of them together, may hold of the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// `DASHBOARD_HEADER_TIMEOUT`: a connection that has not sent a whole request head within
    /// this (from its opening, or from the end of its previous request) is closed.
    pub header_timeout: Duration,
    /// `DASHBOARD_REQUEST_TIMEOUT`: the longest a request may take to be answered (503 after);
    /// the live event stream is exempt, it is meant to stay open.
    pub request_timeout: Duration,
    /// `DASHBOARD_MAX_CONNECTIONS`: open connections at most; further ones wait in the kernel's
    /// accept queue until one closes.
    pub max_connections: usize,
    /// `DASHBOARD_MAX_REQUESTS`: requests being answered at once at most; a further one is
    /// answered 503 at once.
    pub max_requests: usize,
    /// `DASHBOARD_MAX_STREAMS`: live event streams open at once at most (503 beyond).
    pub max_streams: usize,
    /// `DASHBOARD_MAX_STREAMS_PER_CLIENT`: live event streams one IP address may hold (429
    /// beyond).
    pub max_streams_per_client: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 512,
            max_requests: 128,
            max_streams: 256,
            max_streams_per_client: 8,
        }
    }
}

impl Limits {
    fn parse(p: &mut Parser<'_>) -> Self {
        let default = Limits::default();
        let limits = Limits {
            header_timeout: p.duration("DASHBOARD_HEADER_TIMEOUT", "10s"),
            request_timeout: p.duration("DASHBOARD_REQUEST_TIMEOUT", "30s"),
            max_connections: count(p, "DASHBOARD_MAX_CONNECTIONS", default.max_connections),
            max_requests: count(p, "DASHBOARD_MAX_REQUESTS", default.max_requests),
            max_streams: count(p, "DASHBOARD_MAX_STREAMS", default.max_streams),
            max_streams_per_client: count(
                p,
                "DASHBOARD_MAX_STREAMS_PER_CLIENT",
                default.max_streams_per_client,
            ),
        };
        if limits.max_streams >= limits.max_connections {
            p.error(
                "DASHBOARD_MAX_STREAMS",
                format!(
                    "must be below DASHBOARD_MAX_CONNECTIONS ({}): every stream holds a connection, and the page needs others for its data",
                    limits.max_connections
                ),
            );
        }
        limits
    }
}

/// A positive whole number.
fn count(p: &mut Parser<'_>, name: &str, default: usize) -> usize {
    let value = p.parse(name, default);
    if value == 0 {
        p.error(name, "must be at least 1");
    }
    value
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let addr = p.parse(
            "DASHBOARD_ADDR",
            SocketAddr::from_str(DEFAULT_ADDR).expect("valid default"),
        );
        let (database_url, database) = database_url(&mut p);
        let session = SessionSettings::parse(&mut p, SessionSettings::READER);
        let env = p.env();
        let nats = NatsConfig::parse(&mut p);
        let limits = Limits::parse(&mut p);
        p.finish()?;
        Ok(Config {
            addr,
            database_url,
            database,
            session,
            env,
            nats,
            limits,
        })
    }

    /// The PostgreSQL connection settings with the session timeouts and keepalives (a setting
    /// already in `DATABASE_URL`'s `options` is kept); `from_vars` has already checked that
    /// they parse.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        self.database().config
    }

    /// [`Config::pg_config`] with the connection's TLS: what the pool connects with.
    pub fn database(&self) -> Database {
        let mut database = self.database.clone();
        self.session.apply(&mut database.config);
        database
    }
}

/// The dashboard's command line and every variable it reads, for `--help` and `--check-config`
/// (a unit test keeps it in step with [`Config::from_vars`]).
pub fn spec() -> Spec {
    let limits = Limits::default();
    let human = shared::config::human_duration;
    let mut vars = vec![
        Var::new(
            "DASHBOARD_ADDR",
            "Where the dashboard listens (host:port; port 0 picks a free one)",
        )
        .default_value(DEFAULT_ADDR),
    ];
    vars.extend(shared::config::database_vars(
        DEFAULT_DATABASE_URL,
        SessionSettings::READER,
    ));
    vars.push(shared::config::env_var());
    vars.extend(shared::config::nats_vars());
    vars.extend([
        Var::new(
            "DASHBOARD_HEADER_TIMEOUT",
            "A connection that sends no whole request head within this is closed",
        )
        .default_value(human(limits.header_timeout)),
        Var::new(
            "DASHBOARD_REQUEST_TIMEOUT",
            "The longest a request may take (503 after); the live stream is exempt",
        )
        .default_value(human(limits.request_timeout)),
        Var::new("DASHBOARD_MAX_CONNECTIONS", "Open connections at most")
            .default_value(limits.max_connections),
        Var::new(
            "DASHBOARD_MAX_REQUESTS",
            "Requests answered at once at most (503 beyond)",
        )
        .default_value(limits.max_requests),
        Var::new(
            "DASHBOARD_MAX_STREAMS",
            "Live event streams open at once at most (503 beyond); below \
             DASHBOARD_MAX_CONNECTIONS",
        )
        .default_value(limits.max_streams),
        Var::new(
            "DASHBOARD_MAX_STREAMS_PER_CLIENT",
            "Live event streams one IP address may hold (429 beyond)",
        )
        .default_value(limits.max_streams_per_client),
    ]);
    Spec::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        "Serves the charts and JSON API of one env's curated data from PostgreSQL, with live \
         updates from NATS",
        vars,
    )
}

/// `DATABASE_URL` as given (secret) and read; a bad one is reported by the parser without its
/// text, which may carry a password.
fn database_url(p: &mut Parser<'_>) -> (Secret, Database) {
    let raw = p
        .secret("DATABASE_URL")
        .map(|raw| Secret::new(raw.expose().trim()))
        .unwrap_or_else(|| Secret::new(DEFAULT_DATABASE_URL));
    let database = Database::from_url_var(p, "DATABASE_URL", DEFAULT_DATABASE_URL);
    (raw, database)
}

#[cfg(test)]
mod tests {
    use super::*;

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
    fn defaults_follow_the_design() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.env, Env::prod());
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(config.pg_config().get_dbname(), Some("covid"));
        assert_eq!(config.session, SessionSettings::READER);
        assert_eq!(config.limits, Limits::default());
        assert!(
            config.addr.ip().is_loopback(),
            "listens on loopback unless told"
        );
    }

    #[test]
    fn limits_are_read_and_checked() {
        let vars = Vars::from_pairs([
            ("DASHBOARD_HEADER_TIMEOUT", "2s"),
            ("DASHBOARD_REQUEST_TIMEOUT", "5s"),
            ("DASHBOARD_MAX_CONNECTIONS", "64"),
            ("DASHBOARD_MAX_REQUESTS", "16"),
            ("DASHBOARD_MAX_STREAMS", "32"),
            ("DASHBOARD_MAX_STREAMS_PER_CLIENT", "2"),
        ]);
        let limits = Config::from_vars(&vars).unwrap().limits;
        assert_eq!(
            limits,
            Limits {
                header_timeout: Duration::from_secs(2),
                request_timeout: Duration::from_secs(5),
                max_connections: 64,
                max_requests: 16,
                max_streams: 32,
                max_streams_per_client: 2,
            }
        );
        let vars = Vars::from_pairs([
            ("DASHBOARD_HEADER_TIMEOUT", "0s"),
            ("DASHBOARD_MAX_REQUESTS", "0"),
            ("DASHBOARD_MAX_STREAMS_PER_CLIENT", "many"),
            ("DASHBOARD_MAX_CONNECTIONS", "100"),
            ("DASHBOARD_MAX_STREAMS", "100"),
        ]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 4, "{err}");
        assert!(
            err.lines[0].starts_with("DASHBOARD_HEADER_TIMEOUT: "),
            "{err}"
        );
        assert!(
            err.lines[1].starts_with("DASHBOARD_MAX_REQUESTS: must be at least 1"),
            "{err}"
        );
        assert!(
            err.lines[2].starts_with("DASHBOARD_MAX_STREAMS_PER_CLIENT: `many` is invalid"),
            "{err}"
        );
        assert!(
            err.lines[3].starts_with("DASHBOARD_MAX_STREAMS: must be below"),
            "{err}"
        );
    }

    #[test]
    fn the_timeouts_are_read_and_put_on_every_connection() {
        let vars = Vars::from_pairs([
            ("DB_STATEMENT_TIMEOUT", "3s"),
            (
                "DATABASE_URL",
                "postgres://reader@db/covid?options=-c%20lock_timeout%3D1s",
            ),
        ]);
        let options = Config::from_vars(&vars).unwrap().pg_config();
        let options = options.get_options().unwrap();
        assert!(options.contains("-c statement_timeout=3000"), "{options}");
        assert!(
            options.starts_with("-c lock_timeout=1s") && !options.contains("lock_timeout=5000"),
            "the URL's own lock_timeout wins: {options}"
        );
    }

    #[test]
    fn a_bad_timeout_is_one_line_naming_it() {
        let vars = Vars::from_pairs([("DB_LOCK_TIMEOUT", "0s")]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(err.lines[0].starts_with("DB_LOCK_TIMEOUT: "), "{err}");
    }

    #[test]
    fn every_bad_value_is_named_and_no_password_is_echoed() {
        let vars = Vars::from_pairs([
            ("DASHBOARD_ADDR", "localhost"),
            (
                "DATABASE_URL",
                "postgres://reader:hunter2@host:notaport/covid",
            ),
            ("ETL_ENV", "Prod"),
        ]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 3, "{err}");
        assert!(
            err.lines[0].starts_with("DASHBOARD_ADDR: `localhost` is invalid"),
            "{err}"
        );
        assert!(
            err.lines[1].starts_with("DATABASE_URL: is not a valid"),
            "{err}"
        );
        assert!(err.lines[2].starts_with("ETL_ENV:"), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn the_database_url_is_never_printed() {
        let vars = Vars::from_pairs([("DATABASE_URL", "postgres://reader:hunter2@db/covid")]);
        let config = Config::from_vars(&vars).unwrap();
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
