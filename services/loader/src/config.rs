//! The loader's settings: `NATS_*`, `ETL_ENVS`, `DATABASE_URL` (with `DB_STATEMENT_TIMEOUT` and
//! `DB_LOCK_TIMEOUT`) and `MAX_REMOVED_SHARE`.

use std::sync::Arc;
use std::time::Duration;

use shared::EnvScope;
use shared::config::{ConfigError, NatsConfig, Parser, Spec, Vars};
use shared::postgres::{Database, SessionSettings};

use crate::curated::{READ_DEADLINE, ReadPause};

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/covid";

#[derive(Debug, Clone)]
pub struct Config {
    pub nats: NatsConfig,
    /// `METRICS_ADDR`: where `/metrics`, `/livez` and `/readyz` are served.
    pub metrics_addr: std::net::SocketAddr,
    /// The envs whose runs this instance loads (`ETL_ENVS`).
    pub scope: EnvScope,
    /// PostgreSQL (`DATABASE_URL`, TLS by its `sslmode` and `sslrootcert`) with the session
    /// timeouts and keepalives already on it, so every connection made from it (pool, tests) has
    /// them; its `Debug` hides the password.
    pub database: Database,
    /// The largest share of stored dates a run may remove (`MAX_REMOVED_SHARE`, 0 to 1).
    pub max_removed_share: f64,
    /// The session timeouts put on `database` (`DB_STATEMENT_TIMEOUT`, `DB_LOCK_TIMEOUT`): a
    /// message's deadline is made to outlast them.
    pub session: SessionSettings,
    /// The longest the curated object's read may take ([`READ_DEADLINE`]; no variable, tests
    /// shorten it).
    pub read_deadline: Duration,
    /// Test seam: when set, the loader stops once between the curated object's metadata and its
    /// content, until the test releases it. Never set outside tests.
    pub read_pause: Option<Arc<ReadPause>>,
}

impl Config {
    pub fn from_vars(vars: &Vars) -> Result<Config, ConfigError> {
        let mut p = Parser::new(vars);
        let nats = NatsConfig::parse(&mut p);
        let metrics_addr = shared::metrics::addr::metrics_addr(&mut p, "loader");
        let scope = p.env_scope();
        let mut database = database(&mut p);
        let session = SessionSettings::parse(&mut p, SessionSettings::WRITER);
        session.apply(&mut database.config);
        if database.config.get_application_name().is_none() {
            // Names the loader in pg_stat_activity, for whoever looks for a lock's holder.
            database.config.application_name("loader");
        }
        let max_removed_share = p.max_removed_share();
        p.finish()?;
        Ok(Config {
            metrics_addr,
            nats,
            scope,
            database,
            max_removed_share,
            session,
            read_deadline: READ_DEADLINE,
            read_pause: None,
        })
    }
}

/// The loader's command line and every variable it reads, for `--help` and `--check-config` (a
/// unit test keeps it in step with [`Config::from_vars`]).
pub fn spec() -> Spec {
    let mut vars = shared::config::nats_vars();
    vars.push(shared::config::metrics_var(env!("CARGO_PKG_NAME")));
    vars.push(shared::config::env_scope_var());
    vars.extend(shared::config::database_vars(
        DEFAULT_DATABASE_URL,
        SessionSettings::WRITER,
    ));
    vars.push(shared::config::max_removed_share_var());
    Spec::new(
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
        "Loads each transformed dataset into PostgreSQL (one schema per env), records the run \
         and announces it on etl.<env>.loaded",
        vars,
    )
}

fn database(p: &mut Parser<'_>) -> Database {
    Database::from_url_var(p, "DATABASE_URL", DEFAULT_DATABASE_URL)
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
        assert_eq!(config.scope, EnvScope::All);
        assert_eq!(config.max_removed_share, 0.05);
        assert_eq!(config.database.config.get_dbname(), Some("covid"));
        assert_eq!(config.database.config.get_user(), Some("postgres"));
    }

    #[test]
    fn every_connection_gets_the_session_timeouts() {
        let vars = Vars::from_pairs([("DB_LOCK_TIMEOUT", "2s")]);
        let config = Config::from_vars(&vars).unwrap();
        let options = config.database.config.get_options().unwrap();
        assert!(options.contains("-c lock_timeout=2000"), "{options}");
        assert!(options.contains("-c statement_timeout=30000"), "{options}");
        assert_eq!(
            config.database.config.get_application_name(),
            Some("loader")
        );
    }

    #[test]
    fn a_bad_timeout_stops_the_loader_with_one_line() {
        let vars = Vars::from_pairs([("DB_STATEMENT_TIMEOUT", "forever")]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(err.lines[0].starts_with("DB_STATEMENT_TIMEOUT: "), "{err}");
    }

    #[test]
    fn a_share_outside_zero_to_one_is_one_line() {
        for bad in ["1.5", "-0.1", "five", "NaN"] {
            let vars = Vars::from_pairs([("MAX_REMOVED_SHARE", bad)]);
            let err = Config::from_vars(&vars).unwrap_err();
            assert_eq!(err.lines.len(), 1, "{bad}: {err}");
            assert!(err.lines[0].starts_with("MAX_REMOVED_SHARE: "), "{err}");
        }
        let vars = Vars::from_pairs([("MAX_REMOVED_SHARE", "0.2")]);
        assert_eq!(Config::from_vars(&vars).unwrap().max_removed_share, 0.2);
    }

    #[test]
    fn a_bad_database_url_is_reported_without_its_password() {
        let vars = Vars::from_pairs([("DATABASE_URL", "mysql://root:hunter2@db/covid")]);
        let err = Config::from_vars(&vars).unwrap_err();
        assert_eq!(err.lines.len(), 1);
        assert!(err.lines[0].starts_with("DATABASE_URL: "));
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn the_configuration_never_prints_the_database_password() {
        let vars = Vars::from_pairs([("DATABASE_URL", "postgres://me:hunter2@db:5433/covid")]);
        let config = Config::from_vars(&vars).unwrap();
        assert_eq!(config.database.config.get_ports(), &[5433]);
        assert!(!format!("{config:?}").contains("hunter2"));
    }
}
