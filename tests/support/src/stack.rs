//! Where the stack the tests run against listens, and who the tests connect as.
//!
//! `scripts/stack.sh up` writes one file of variables per identity, `$STACK_DIR/env.<identity>`
//! (`STACK_DIR` defaults to `<repo>/.stack`): each service's NATS key and address, and the
//! operator's (`env.etl`, also `$STACK_DIR/env`), which the tests load into their own process.
//! A service a test starts in-process runs as itself ([`vars_for`], [`as_identity`]), so the
//! whole suite runs with every identity restricted as in production; the tests' own clients
//! (set-up, event logs, clean-up) are the operator ([`nats_config`] of [`Identity::Operator`]).
//! Without those files (a stack without keys) every identity falls back to the process's
//! variables, or `scripts/stack.sh`'s default addresses.

use std::path::PathBuf;

use shared::Env;
use shared::config::{NatsConfig, Parser, Vars};

/// Who connects: a service, or `etl`, the operator's tool (and the tests' own clients).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    Extractor,
    Transformer,
    Loader,
    Notifier,
    Dashboard,
    Operator,
}

impl Identity {
    pub const ALL: [Identity; 6] = [
        Identity::Extractor,
        Identity::Transformer,
        Identity::Loader,
        Identity::Notifier,
        Identity::Dashboard,
        Identity::Operator,
    ];

    /// The identity's name in `scripts/stack.sh` (`env.<name>`).
    pub fn name(self) -> &'static str {
        match self {
            Identity::Extractor => "extractor",
            Identity::Transformer => "transformer",
            Identity::Loader => "loader",
            Identity::Notifier => "notifier",
            Identity::Dashboard => "dashboard",
            Identity::Operator => "etl",
        }
    }

    /// The identity of a service binary (`etl` is the operator's).
    pub fn of(name: &str) -> Option<Identity> {
        Identity::ALL
            .into_iter()
            .find(|identity| identity.name() == name)
    }
}

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

/// The stack's folder: `STACK_DIR`, or `.stack` in the repository.
pub fn stack_dir() -> PathBuf {
    std::env::var("STACK_DIR")
        .ok()
        .filter(|dir| !dir.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| root().join(".stack"))
}

/// The Maildir where the stack's SMTP server keeps what it receives.
pub fn maildir() -> PathBuf {
    std::env::var("SMTP_MAILDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join(".stack/mail"))
}

/// The `nats-server` binary: `NATS_SERVER_BIN`, else the one `scripts/stack.sh` installs, else
/// one on the PATH. For tests that run servers of their own.
pub fn nats_server_binary() -> PathBuf {
    if let Ok(path) = std::env::var("NATS_SERVER_BIN") {
        return PathBuf::from(path);
    }
    let installed = stack_dir().join("venv/bin/nats-server");
    if installed.exists() {
        return installed;
    }
    PathBuf::from("nats-server")
}

/// The variables of `$STACK_DIR/env.<identity>` (`KEY=VALUE` lines), or `None` when the stack
/// wrote none.
pub fn identity_file(identity: Identity) -> Option<Vec<(String, String)>> {
    let path = stack_dir().join(format!("env.{}", identity.name()));
    let content = std::fs::read_to_string(&path).ok()?;
    Some(parse_env_file(&content))
}

fn parse_env_file(content: &str) -> Vec<(String, String)> {
    content
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .filter_map(|line| line.split_once('='))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect()
}

/// The NATS variables (`NATS_*`) of the process, for the tests' own clients.
fn process_nats_vars() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(name, value)| name.starts_with("NATS_") && !value.is_empty())
        .collect()
}

/// `vars` with `identity`'s NATS variables (its key, the CA, the address) laid over them: the
/// settings a test chose for a service, which then connects to NATS as itself. Only `NATS_*`:
/// a test's own `SMTP_URL` or `DATABASE_URL` stays. Without the identity's file, `vars`
/// unchanged.
pub fn as_identity(vars: &Vars, identity: Identity) -> Vars {
    let mut vars = vars.clone();
    for (name, value) in identity_file(identity).unwrap_or_default() {
        if name.starts_with("NATS_") {
            vars.set(name, value);
        }
    }
    vars
}

/// The variables a service started by a test gets ([`vars`]), with every variable of
/// `identity`'s file laid over them: the service runs as itself.
pub fn vars_for(identity: Identity, env: &Env) -> Vars {
    let mut vars = vars(env);
    for (name, value) in identity_file(identity).unwrap_or_default() {
        vars.set(name, value);
    }
    vars
}

/// The NATS variables of `identity`: its file's, or for the operator the process's (the tests
/// load `$STACK_DIR/env`), falling back to its file when the process has none.
pub fn nats_vars(identity: Identity) -> Vars {
    let process = process_nats_vars();
    let chosen = if identity == Identity::Operator && !process.is_empty() {
        process
    } else {
        identity_file(identity)
            .map(|vars| {
                vars.into_iter()
                    .filter(|(name, _)| name.starts_with("NATS_"))
                    .collect()
            })
            .unwrap_or(process)
    };
    Vars::from_pairs(chosen)
}

/// How `identity` reaches NATS (see [`nats_vars`]).
pub fn nats_config(identity: Identity) -> NatsConfig {
    let vars = nats_vars(identity);
    let mut parser = Parser::new(&vars);
    let config = NatsConfig::parse(&mut parser);
    parser.finish().unwrap_or_else(|err| {
        panic!(
            "the NATS variables of {} are invalid (scripts/stack.sh up writes them): {err}",
            identity.name()
        )
    });
    config
}

/// The variables a service started by a test gets: the stack's addresses (and the process's
/// NATS identity, the operator's), and `env` as the only env it serves (with an addressee for
/// its emails), its extractor polling the `us` dataset only (the one most tests give the fake
/// GitHub; a test of the keyed datasets sets `DATASETS`). [`vars_for`] makes the service run as
/// itself.
pub fn vars(env: &Env) -> Vars {
    let mut vars = Vars::default();
    vars.set("NATS_URL", nats_url())
        .set("DATABASE_URL", database_url())
        .set("SMTP_URL", smtp_url())
        .set("ETL_ENV", env.as_str())
        .set("ETL_ENVS", env.as_str())
        .set("DATASETS", "us")
        .set(
            format!("EMAIL_TO_{}", env.as_str().to_uppercase()),
            "ops@example.com",
        )
        .set("EMAIL_FROM", "covid-etl <covid-etl@example.com>")
        // Services of parallel tests must not compete for the default metrics ports.
        .set("METRICS_ADDR", "127.0.0.1:0");
    for (name, value) in process_nats_vars() {
        vars.set(name, value);
    }
    vars
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_env_file_is_read_as_key_value_lines() {
        let vars = parse_env_file(
            "NATS_URL=tls://127.0.0.1:4222\n\n# comment\nNATS_NKEY_FILE=/s/keys/loader.nk\nDATABASE_URL=postgres://a@h/covid?x=y\n",
        );
        assert_eq!(
            vars,
            vec![
                ("NATS_URL".to_owned(), "tls://127.0.0.1:4222".to_owned()),
                ("NATS_NKEY_FILE".to_owned(), "/s/keys/loader.nk".to_owned()),
                (
                    "DATABASE_URL".to_owned(),
                    "postgres://a@h/covid?x=y".to_owned()
                ),
            ]
        );
    }

    #[test]
    fn every_identity_reads_back_from_its_name() {
        for identity in Identity::ALL {
            assert_eq!(Identity::of(identity.name()), Some(identity));
        }
        assert_eq!(Identity::of("postgres"), None);
    }
}
