//! Environment names (`prod`, `test`, one per test run): they isolate subjects, object names,
//! KV keys and the PostgreSQL schema, so a name must be safe in all four.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A validated environment name: a lowercase letter, then up to 39 lowercase letters, digits or
/// `_`. That keeps it a plain SQL identifier, a single NATS subject token and a KV key part.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Env(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{0:?} is not a valid environment name: use a lowercase letter followed by up to 39 lowercase letters, digits or underscores, other than PostgreSQL's own schema names (public, information_schema, pg_*)"
)]
pub struct InvalidEnv(pub String);

/// Schema names PostgreSQL keeps for itself: an env of that name would put our tables among its
/// own (or be refused by it).
fn is_reserved(name: &str) -> bool {
    name == "public" || name == "information_schema" || name.starts_with("pg_")
}

impl Env {
    pub fn new(name: impl Into<String>) -> Result<Self, InvalidEnv> {
        let name = name.into();
        let mut chars = name.chars();
        let valid = matches!(chars.next(), Some('a'..='z'))
            && name.len() <= 40
            && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
            && !is_reserved(&name);
        if valid {
            Ok(Self(name))
        } else {
            // Cut short: a hostile name must not flood a log line.
            Err(InvalidEnv(name.chars().take(60).collect()))
        }
    }

    pub fn prod() -> Self {
        Self("prod".to_owned())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Env {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for Env {
    type Err = InvalidEnv;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::new(s)
    }
}

impl TryFrom<String> for Env {
    type Error = InvalidEnv;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::new(s)
    }
}

impl From<Env> for String {
    fn from(env: Env) -> String {
        env.0
    }
}

/// Which environments a pipeline service (transformer, loader, notifier) serves: all of them, so
/// one running stack handles `prod` and the smoke test's `test`, or a fixed list, so tests that
/// run side by side each get services of their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EnvScope {
    All,
    Only(Vec<Env>),
}

impl EnvScope {
    pub fn includes(&self, env: &Env) -> bool {
        match self {
            EnvScope::All => true,
            EnvScope::Only(envs) => envs.contains(env),
        }
    }

    /// A short, stable label for consumer names: `all`, or the envs joined by `-`.
    pub fn label(&self) -> String {
        match self {
            EnvScope::All => "all".to_owned(),
            EnvScope::Only(envs) => envs.iter().map(Env::as_str).collect::<Vec<_>>().join("-"),
        }
    }

    /// The subject tokens that stand for the env in a consumer filter: `*` or each env.
    pub fn subject_tokens(&self) -> Vec<String> {
        match self {
            EnvScope::All => vec!["*".to_owned()],
            EnvScope::Only(envs) => envs.iter().map(|e| e.as_str().to_owned()).collect(),
        }
    }
}

impl FromStr for EnvScope {
    type Err = InvalidEnv;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" || s.is_empty() {
            return Ok(EnvScope::All);
        }
        let envs = s
            .split(',')
            .map(|part| Env::new(part.trim()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(EnvScope::Only(envs))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_plain_lowercase_names() {
        for name in ["prod", "test", "e2e_1", "a"] {
            assert!(Env::new(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn rejects_names_unsafe_for_sql_or_subjects() {
        for name in [
            "",
            "Prod",
            "1abc",
            "a.b",
            "a*",
            "a b",
            "a-b",
            "drop;table",
            "a\nb",
            "public",
            "information_schema",
            "pg_catalog",
            "pg_temp_1",
            &"a".repeat(41),
        ] {
            assert!(Env::new(name).is_err(), "{name}");
        }
    }

    #[test]
    fn scope_parses_star_and_lists() {
        assert_eq!("*".parse::<EnvScope>().unwrap(), EnvScope::All);
        let scope: EnvScope = "test, e2e".parse().unwrap();
        assert!(scope.includes(&Env::new("e2e").unwrap()));
        assert!(!scope.includes(&Env::prod()));
        assert_eq!(scope.label(), "test-e2e");
    }
}
