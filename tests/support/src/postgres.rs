//! The stack's PostgreSQL: connections, and an env's schema made by the loader's own migrations.

use shared::Env;
use shared::postgres::Database;
use tokio_postgres::Client;

use crate::stack;

/// A connection to the stack's database, driven on a task of its own.
pub async fn connect() -> Client {
    connect_to(&stack::database_url()).await
}

/// A connection to `url` (the stack's database as another role, say), with TLS as its `sslmode`
/// and `sslrootcert` say.
pub async fn connect_to(url: &str) -> Client {
    try_connect_to(url)
        .await
        .unwrap_or_else(|err| panic!("PostgreSQL is reachable (scripts/stack.sh up): {err}"))
}

/// A connection to `url`, or why there is none (the cause included: a TLS or authentication
/// failure, say), for tests that expect a refusal.
pub async fn try_connect_to(url: &str) -> Result<Client, String> {
    let database = Database::from_url(url).map_err(|err| err.to_string())?;
    database
        .connect()
        .await
        .map_err(|err| shared::postgres::explain(&err))
}

/// Creates `env`'s schema with the loader's migrations (exactly what the loader runs at start),
/// and returns a connection to the stack's database.
pub async fn migrate(env: &Env) -> Client {
    let mut client = connect().await;
    loader::migrate::migrate(&mut client, env)
        .await
        .unwrap_or_else(|err| panic!("the loader's migrations for {env}: {err}"));
    client
}

/// Drops `env`'s schema and everything in it, if there is one.
pub async fn drop_schema(env: &Env) {
    connect()
        .await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{env}\" CASCADE"))
        .await
        .unwrap_or_else(|err| panic!("dropping schema {env}: {err}"));
}
