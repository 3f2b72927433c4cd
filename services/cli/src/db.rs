//! The few read-only queries the tool makes. The schema is the env's name, validated by [`Env`]
//! to a plain identifier, and quoted all the same.

use shared::Env;
use shared::config::Parser;
use shared::daily::DailyRow;
use shared::postgres::{Database, SessionSettings};
use tokio_postgres::Client;

use crate::exit::Unreachable;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/covid";

/// Where PostgreSQL is (`DATABASE_URL`) and how every session is bounded (`DB_STATEMENT_TIMEOUT`,
/// `DB_LOCK_TIMEOUT`, keepalives): a command waiting behind a lock or on a vanished server fails
/// with an error instead of hanging the operator's terminal; TLS as its `sslmode` and
/// `sslrootcert` say. `Debug` hides the password.
#[derive(Debug, Clone)]
pub struct DatabaseUrl(Database);

impl DatabaseUrl {
    /// Reads `DATABASE_URL` and the session timeouts, reporting a bad value on `p`.
    pub fn parse(p: &mut Parser<'_>) -> Self {
        let mut database = Database::from_url_var(p, "DATABASE_URL", DEFAULT_DATABASE_URL);
        SessionSettings::parse(p, SessionSettings::WRITER).apply(&mut database.config);
        if database.config.get_application_name().is_none() {
            database.config.application_name("etl");
        }
        Self(database)
    }

    pub fn config(&self) -> &tokio_postgres::Config {
        &self.0.config
    }
}

/// `host:port` of the first server the URL names (or its Unix socket), for messages.
pub fn target(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let port = config.get_ports().first().copied().unwrap_or(5432);
    match config.get_hosts().first() {
        Some(Host::Tcp(host)) => format!("{host}:{port}"),
        Some(Host::Unix(path)) => format!("{}", path.display()),
        None => format!("localhost:{port}"),
    }
}

/// Connects within `timeout`: a server down, unreachable or silent is [`Unreachable::Postgres`]
/// (exit 3); a server that answers with an error (a refused password, an unknown database) is a
/// plain error.
pub async fn connect(
    database: &DatabaseUrl,
    timeout: std::time::Duration,
) -> anyhow::Result<Client> {
    let target = target(database.config());
    let mut bounded = database.clone();
    if bounded
        .0
        .config
        .get_connect_timeout()
        .is_none_or(|own| *own > timeout)
    {
        bounded.0.config.connect_timeout(timeout);
    }
    match tokio::time::timeout(timeout, bounded.0.connect()).await {
        Err(_) => Err(Unreachable::Postgres {
            target,
            reason: format!("no answer within {timeout:?}"),
        }
        .into()),
        Ok(Ok(client)) => Ok(client),
        Ok(Err(err)) if err.as_db_error().is_some() => Err(anyhow::anyhow!(
            "PostgreSQL at {target} refused the connection: {}",
            shared::postgres::explain(&err)
        )),
        Ok(Err(err)) => Err(Unreachable::Postgres {
            target,
            reason: shared::postgres::explain(&err),
        }
        .into()),
    }
}

pub async fn schema_exists(client: &Client, env: &Env) -> anyhow::Result<bool> {
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables WHERE table_schema = $1 AND table_name = 'us_daily')",
            &[&env.as_str()],
        )
        .await?;
    Ok(row.get(0))
}

/// The stored rows of an env, or none when it has never been loaded.
pub async fn stored_rows(client: &Client, env: &Env) -> anyhow::Result<Vec<DailyRow>> {
    if !schema_exists(client, env).await? {
        return Ok(Vec::new());
    }
    Ok(shared::daily::stored_rows(client, env).await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shared::config::Vars;

    fn parse(vars: &[(&str, &str)]) -> Result<DatabaseUrl, shared::config::ConfigError> {
        let vars = Vars::from_pairs(vars.iter().copied());
        let mut p = Parser::new(&vars);
        let database = DatabaseUrl::parse(&mut p);
        p.finish().map(|()| database)
    }

    #[test]
    fn every_session_is_bounded_and_named() {
        let database = parse(&[("DB_LOCK_TIMEOUT", "1s")]).unwrap();
        let options = database.config().get_options().unwrap();
        assert!(options.contains("-c lock_timeout=1000"), "{options}");
        assert!(options.contains("-c statement_timeout=30000"), "{options}");
        assert_eq!(database.config().get_application_name(), Some("etl"));
        assert_eq!(database.config().get_dbname(), Some("covid"));
    }

    #[test]
    fn a_bad_value_is_one_line_naming_it_without_the_password() {
        let err = parse(&[("DATABASE_URL", "postgres://me:hunter2@db:notaport/covid")])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(err.lines[0].starts_with("DATABASE_URL: "), "{err}");
        assert!(!err.to_string().contains("hunter2"));

        let err = parse(&[("DB_STATEMENT_TIMEOUT", "never")])
            .map(|_| ())
            .unwrap_err();
        assert_eq!(err.lines.len(), 1, "{err}");
        assert!(err.lines[0].starts_with("DB_STATEMENT_TIMEOUT: "), "{err}");
    }
}
