//! PostgreSQL plumbing: the connection pool, an env's schema name, advisory lock keys, which
//! errors are worth retrying, and reading the stored rows of an env.

use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use shared::Env;
use shared::hash::sha256_hex;
use shared::postgres::{Database, SessionSettings};
use tokio_postgres::error::SqlState;

/// The env's schema as a quoted SQL identifier. Env names are validated to `[a-z][a-z0-9_]*`, so
/// quoting only guards against reserved words (an env called `user` or `order`).
pub fn schema(env: &Env) -> String {
    format!("\"{}\"", env.as_str())
}

/// A stable advisory lock key for `purpose` in `env`: the first 8 bytes of a SHA-256, so every
/// loader process (any version) computes the same key.
pub fn lock_key(purpose: &str, env: &Env) -> i64 {
    let hex = sha256_hex(format!("covid-etl:{purpose}:{env}").as_bytes());
    u64::from_str_radix(&hex[..16], 16).expect("sha256 hex digits") as i64
}

/// Whether an error may go away by itself: the connection broke, the server is starting or
/// shutting down, or a lock or resource was briefly unavailable. Anything else (a constraint, a
/// syntax error) would fail the same way again.
pub fn is_transient(err: &tokio_postgres::Error) -> bool {
    match err.code() {
        Some(code) => transient_code(code),
        // No SQLSTATE: the error happened on our side of the wire (I/O, a closed connection).
        None => true,
    }
}

fn transient_code(code: &SqlState) -> bool {
    let class = &code.code()[..2];
    // 08 connection, 40 rollback (serialization, deadlock), 53 resources, 57 operator
    // intervention (shutdown, statement timeout), 58 system errors; 55P03 is `lock_timeout`
    // (a table or advisory lock held elsewhere for too long); 25P03 is the server closing a
    // session left idle in a transaction, which a fresh connection does not inherit.
    matches!(class, "08" | "40" | "53" | "57" | "58")
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT
}

/// `host:port/dbname` for logs, without user or password.
pub fn describe(config: &tokio_postgres::Config) -> String {
    let host = config
        .get_hosts()
        .first()
        .map(|host| match host {
            tokio_postgres::config::Host::Tcp(name) => name.clone(),
            #[cfg(unix)]
            tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
        })
        .unwrap_or_else(|| "localhost".to_owned());
    let port = config.get_ports().first().copied().unwrap_or(5432);
    let dbname = config.get_dbname().unwrap_or("postgres");
    format!("{host}:{port}/{dbname}")
}

/// A small pool: the loader applies one run at a time, plus start-up migrations.
///
/// Every connection carries the session timeouts: `Config::from_vars` has put the configured ones
/// on `database`; a config made elsewhere (a test, a benchmark) gets the defaults here, since
/// applying them never replaces a setting already present. TLS is the connection string's.
pub fn pool(database: &Database) -> Pool {
    let mut config = database.config.clone();
    SessionSettings::WRITER.apply(&mut config);
    let manager = Manager::from_config(
        config,
        database.tls.clone(),
        ManagerConfig {
            recycling_method: RecyclingMethod::Fast,
        },
    );
    Pool::builder(manager)
        .max_size(4)
        .runtime(Runtime::Tokio1)
        .create_timeout(Some(Duration::from_secs(5)))
        .wait_timeout(Some(Duration::from_secs(30)))
        .build()
        .expect("a pool with a runtime and timeouts builds")
}

/// `/readyz` needs PostgreSQL: a connection from the pool answers a trivial query. The error
/// (which can name hosts and roles) goes to the debug log, not the probe's answer.
pub fn check_readiness(readiness: &shared::metrics::Readiness, pool: &Pool) {
    let pool = pool.clone();
    readiness.set("postgres", move || {
        let pool = pool.clone();
        async move {
            let client = pool.get().await.map_err(|err| {
                tracing::debug!(error = %err, "readiness: no PostgreSQL connection");
                "unreachable"
            })?;
            client.simple_query("SELECT 1").await.map_err(|err| {
                tracing::debug!(error = %err, "readiness: PostgreSQL does not answer");
                "no answer"
            })?;
            Ok(())
        }
    });
}

/// Reading an env's stored rows in date order (also what `etl diff` and the dashboard run): one
/// mapping of `us_daily`, in `shared`.
pub use shared::daily::{stored_rows, stored_rows_sql};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_names_are_quoted_identifiers() {
        assert_eq!(schema(&Env::new("user").unwrap()), "\"user\"");
    }

    #[test]
    fn lock_keys_differ_by_env_and_purpose_and_are_stable() {
        let a = Env::new("a").unwrap();
        let b = Env::new("b").unwrap();
        assert_ne!(lock_key("load", &a), lock_key("load", &b));
        assert_ne!(lock_key("load", &a), lock_key("migrate", &a));
        assert_eq!(lock_key("load", &a), lock_key("load", &a));
    }

    #[test]
    fn lock_and_idle_timeouts_are_transient() {
        // A tokio_postgres::Error cannot be built here; the integration tests meet a real 55P03.
        for code in [
            SqlState::LOCK_NOT_AVAILABLE,
            SqlState::QUERY_CANCELED,
            SqlState::IDLE_IN_TRANSACTION_SESSION_TIMEOUT,
        ] {
            assert!(transient_code(&code), "{}", code.code());
        }
        assert!(!transient_code(&SqlState::UNIQUE_VIOLATION));
    }

    #[test]
    fn the_log_form_of_a_database_url_has_no_credentials() {
        let config: tokio_postgres::Config = "postgres://me:hunter2@db.example:6543/covid"
            .parse()
            .unwrap();
        assert_eq!(describe(&config), "db.example:6543/covid");
    }
}
