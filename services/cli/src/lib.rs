//! `etl`, the operator's command-line tool: trigger runs, list them, show the pipeline's state,
//! list and retry dead letters, preview what a pair of files would change, and run the smoke test
//! against a running stack.
//!
//! Each command has its own module; [`Connections`] reads the shared variables (`NATS_URL`,
//! `DATABASE_URL`, `DB_STATEMENT_TIMEOUT`, `DB_LOCK_TIMEOUT`) the same way the services do.

use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use shared::Env;
use shared::config::{NatsConfig, Vars};

pub mod db;
pub mod dead;
pub mod diff;
pub mod runs;
pub mod smoke;
pub mod status;
pub mod trigger;

#[derive(Debug, Parser)]
#[command(name = "etl", version, about = "Operate the covid-etl pipeline")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the extractor to check upstream now.
    Trigger {
        #[arg(long, default_value = "prod")]
        env: Env,
        /// Run even if nothing changed upstream.
        #[arg(long)]
        force: bool,
        /// Wait for the run's notification and print it.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the extractor's answer and, with --wait, for the notification.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// List recent runs of an environment.
    Runs {
        #[arg(long, default_value = "prod")]
        env: Env,
        #[arg(long, default_value_t = 20)]
        limit: i64,
    },
    /// Show streams, consumers and their lag, and the latest run of each environment.
    Status,
    /// List the messages a stage gave up on (dead letters), oldest first, with their reason;
    /// `etl dead retry ID` publishes one again.
    #[command(args_conflicts_with_subcommands = true)]
    Dead {
        /// Only this environment's dead letters.
        #[arg(long)]
        env: Option<Env>,
        #[command(subcommand)]
        action: Option<DeadAction>,
    },
    /// Print what a run with these files would change, without writing anything.
    Diff {
        #[arg(long)]
        nyt: std::path::PathBuf,
        #[arg(long)]
        jhu: std::path::PathBuf,
        #[arg(long, default_value = "prod")]
        env: Env,
    },
    /// Run the smoke test against a running stack (env `test`, dummy data); exit 0 only on success.
    Smoke {
        /// Seconds to wait for the notification.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum DeadAction {
    /// Publish a dead message again on its subject, then remove its dead letter. Every stage
    /// that consumes the subject sees it once more (stages are idempotent per run).
    Retry {
        /// The id `etl dead` lists: the message's sequence in stream ETL.
        id: u64,
    },
}

/// Where the stack is, read from the same variables the services use.
#[derive(Debug, Clone)]
pub struct Connections {
    pub nats: NatsConfig,
    /// `DATABASE_URL` with the session timeouts; its `Debug` hides the password.
    pub database_url: db::DatabaseUrl,
    /// DESIGN rule 7's threshold, as the loader applies it (`MAX_REMOVED_SHARE`).
    pub max_removed_share: f64,
}

/// How long a command waits for NATS before it gives up: an operator's terminal should get an
/// answer, not a process retrying in the background as a service would.
pub const NATS_CONNECT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

impl Connections {
    /// Connects to NATS as `name`, giving up after [`NATS_CONNECT_TIMEOUT`].
    pub async fn connect_nats(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let shutdown = shared::Shutdown::new();
        let url = shared::nats::redact_url(&self.nats.url);
        tokio::time::timeout(
            NATS_CONNECT_TIMEOUT,
            shared::nats::connect(&self.nats, name, &shutdown),
        )
        .await
        .map_err(|_| {
            anyhow::anyhow!("NATS at {url} did not answer within {NATS_CONNECT_TIMEOUT:?}")
        })?
        .map_err(Into::into)
    }

    pub fn from_vars(vars: &Vars) -> anyhow::Result<Self> {
        let mut p = shared::config::Parser::new(vars);
        let nats = NatsConfig::parse(&mut p);
        let database_url = db::DatabaseUrl::parse(&mut p);
        let max_removed_share = p.max_removed_share();
        p.finish()?;
        Ok(Self {
            nats,
            database_url,
            max_removed_share,
        })
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let connections =
        Connections::from_vars(&Vars::from_env()).context("reading the environment")?;
    match cli.command {
        Command::Trigger {
            env,
            force,
            wait,
            timeout,
        } => {
            trigger::run(
                &connections,
                &env,
                force,
                wait,
                std::time::Duration::from_secs(timeout),
            )
            .await
        }
        Command::Runs { env, limit } => runs::run(&connections, &env, limit).await,
        Command::Status => status::run(&connections).await,
        Command::Dead { env, action: None } => dead::run_list(&connections, env.as_ref()).await,
        Command::Dead {
            action: Some(DeadAction::Retry { id }),
            ..
        } => dead::run_retry(&connections, id).await,
        Command::Diff { nyt, jhu, env } => diff::run(&connections, &nyt, &jhu, &env).await,
        Command::Smoke { timeout } => {
            let report = smoke::run(&connections, std::time::Duration::from_secs(timeout)).await;
            Ok(smoke::print(&report))
        }
    }
}
