//! The stack's PostgreSQL: connections, and an env's schema made by the loader's own migrations.

use shared::Env;
use tokio_postgres::{Client, NoTls};

use crate::stack;

/// A connection to the stack's database, driven on a task of its own.
pub async fn connect() -> Client {
    connect_to(&stack::database_url()).await
}

/// A connection to `url` (the stack's database as another role, say).
pub async fn connect_to(url: &str) -> Client {
    let (client, connection) = tokio_postgres::connect(url, NoTls)
        .await
        .expect("PostgreSQL is reachable (scripts/stack.sh up)");
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
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
