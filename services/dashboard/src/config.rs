//! The dashboard's settings: where to listen, which env's schema to read, and how to reach
//! PostgreSQL (with `DB_STATEMENT_TIMEOUT` and `DB_LOCK_TIMEOUT`) and NATS.

use std::net::SocketAddr;
use std::str::FromStr;

use shared::Env;
use shared::config::{ConfigError, NatsConfig, Parser, Secret, Vars};
use shared::postgres::SessionSettings;

pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/covid";

#[derive(Debug, Clone)]
pub struct Config {
    /// `DASHBOARD_ADDR`; port 0 picks a free port (tests read it back from the `Application`).
    pub addr: SocketAddr,
    /// `DATABASE_URL`. The dashboard only reads, so this should name a role with SELECT on the
    /// env's schema and nothing more (see the crate README); it may hold a password, hence secret.
    pub database_url: Secret,
    /// The timeouts of every session, put on the connection settings by [`Config::pg_config`].
    pub session: SessionSettings,
    /// `ETL_ENV`: whose schema and subjects to show.
    pub env: Env,
    pub nats: NatsConfig,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let addr = p.parse(
            "DASHBOARD_ADDR",
            SocketAddr::from_str(DEFAULT_ADDR).expect("valid default"),
        );
        let database_url = database_url(&mut p);
        let session = SessionSettings::parse(&mut p, SessionSettings::READER);
        let env = p.env();
        let nats = NatsConfig::parse(&mut p);
        p.finish()?;
        Ok(Config {
            addr,
            database_url,
            session,
            env,
            nats,
        })
    }

    /// The PostgreSQL connection settings with the session timeouts and keepalives (a setting
    /// already in `DATABASE_URL`'s `options` is kept); `from_vars` has already checked that
    /// they parse.
    pub fn pg_config(&self) -> tokio_postgres::Config {
        let mut pg = tokio_postgres::Config::from_str(self.database_url.expose())
            .expect("DATABASE_URL was validated when the configuration was read");
        self.session.apply(&mut pg);
        pg
    }
}

fn database_url(p: &mut Parser<'_>) -> Secret {
    let raw = p
        .secret("DATABASE_URL")
        .unwrap_or_else(|| Secret::new(DEFAULT_DATABASE_URL));
    match tokio_postgres::Config::from_str(raw.expose().trim()) {
        Ok(_) => Secret::new(raw.expose().trim()),
        Err(err) => {
            // The value may carry a password, so only the parser's complaint is shown.
            p.error(
                "DATABASE_URL",
                format!("is not a valid PostgreSQL connection string: {err}"),
            );
            Secret::new(DEFAULT_DATABASE_URL)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_follow_the_design() {
        let config = Config::from_vars(&Vars::default()).unwrap();
        assert_eq!(config.addr.to_string(), DEFAULT_ADDR);
        assert_eq!(config.env, Env::prod());
        assert_eq!(config.database_url.expose(), DEFAULT_DATABASE_URL);
        assert_eq!(config.nats.url, "nats://127.0.0.1:4222");
        assert_eq!(config.pg_config().get_dbname(), Some("covid"));
        assert_eq!(config.session, SessionSettings::READER);
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
