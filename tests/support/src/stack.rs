//! Where the stack the tests run against listens: the variables the services read (`NATS_URL`,
//! `DATABASE_URL`, `SMTP_URL`, and `SMTP_MAILDIR` for what the SMTP server received), or the
//! addresses `scripts/stack.sh` uses.

use std::path::PathBuf;

use shared::Env;
use shared::config::Vars;

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

pub fn nats_url() -> String {
    var_or("NATS_URL", "nats://127.0.0.1:4222")
}

pub fn database_url() -> String {
    var_or("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/covid")
}

pub fn smtp_url() -> String {
    var_or("SMTP_URL", "smtp://127.0.0.1:1025")
}

/// The repository's root (for `scripts/` and `.stack/`).
pub fn root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The Maildir where the stack's SMTP server keeps what it receives.
pub fn maildir() -> PathBuf {
    std::env::var("SMTP_MAILDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".stack/mail"))
}

/// The variables a service started by a test gets: the stack's addresses, and `env` as the only
/// env it serves (with an addressee for its emails).
pub fn vars(env: &Env) -> Vars {
    let mut vars = Vars::default();
    vars.set("NATS_URL", nats_url())
        .set("DATABASE_URL", database_url())
        .set("SMTP_URL", smtp_url())
        .set("ETL_ENV", env.as_str())
        .set("ETL_ENVS", env.as_str())
        .set(
            format!("EMAIL_TO_{}", env.as_str().to_uppercase()),
            "ops@example.com",
        )
        .set("EMAIL_FROM", "covid-etl <covid-etl@example.com>");
    vars
}
