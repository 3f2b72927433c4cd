//! The exit codes a script can rely on, and the errors that choose them.
//!
//! | code | meaning |
//! | --- | --- |
//! | 0 | ok |
//! | 1 | failed: what was asked about is failed or unhealthy, or the operation failed |
//! | 2 | usage: a bad flag or argument (clap's own errors), or a bad variable |
//! | 3 | unreachable: NATS or PostgreSQL could not be reached within `--connect-timeout` |

use std::process::ExitCode;

pub const OK: u8 = 0;
pub const FAILED: u8 = 1;
pub const USAGE: u8 = 2;
pub const UNREACHABLE: u8 = 3;

/// A server the command needs could not be reached: down, unreachable, or not answering within
/// the connect timeout. Exit code 3.
#[derive(Debug, thiserror::Error)]
pub enum Unreachable {
    #[error("NATS at {url} cannot be reached: {reason}")]
    Nats { url: String, reason: String },
    #[error("PostgreSQL at {target} cannot be reached: {reason}")]
    Postgres { target: String, reason: String },
}

impl Unreachable {
    /// `nats` or `postgres`, for `--json`.
    pub fn component(&self) -> &'static str {
        match self {
            Unreachable::Nats { .. } => "nats",
            Unreachable::Postgres { .. } => "postgres",
        }
    }
}

/// The command was used wrongly (a bad variable): exit code 2, as clap's own usage errors.
#[derive(Debug, thiserror::Error)]
#[error("{0:#}")]
pub struct Usage(pub anyhow::Error);

/// Marks `err` as a usage error.
pub fn usage(err: anyhow::Error) -> anyhow::Error {
    Usage(err).into()
}

/// The exit code for a command that ended with `err`.
pub fn code_of(err: &anyhow::Error) -> u8 {
    for cause in err.chain() {
        if cause.is::<Unreachable>() {
            return UNREACHABLE;
        }
        if cause.is::<Usage>() {
            return USAGE;
        }
    }
    FAILED
}

/// [`code_of`] as the process's exit code.
pub fn exit_code(err: &anyhow::Error) -> ExitCode {
    ExitCode::from(code_of(err))
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn an_unreachable_server_is_3_even_behind_context() {
        let err: anyhow::Error = Unreachable::Nats {
            url: "nats://127.0.0.1:1".into(),
            reason: "connection refused".into(),
        }
        .into();
        let err = Err::<(), _>(err)
            .context("listing dead letters")
            .unwrap_err();
        assert_eq!(code_of(&err), UNREACHABLE);
        assert_eq!(code_of(&usage(anyhow::anyhow!("NATS_URL: bad"))), USAGE);
        assert_eq!(code_of(&anyhow::anyhow!("no dead letter has id 7")), FAILED);
    }
}
