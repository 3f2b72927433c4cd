//! `etl`, the operator's command-line tool: trigger runs, list them and show one, show the
//! pipeline's state, list and retry dead letters, preview what a pair of files would change,
//! export the curated dataset, run the smoke test against a running stack, and declare (or scale
//! up) the JetStream resources.
//!
//! Each command has its own module; [`Connections`] reads the shared variables (`NATS_URL`,
//! `DATABASE_URL`, `DB_STATEMENT_TIMEOUT`, `DB_LOCK_TIMEOUT`) the same way the services do, and
//! bounds every connection attempt ([`Connections::connect_timeout`]). What a script may rely on
//! is in [`exit`] (the exit codes) and [`output`] (`--json`: one JSON document on stdout, nothing
//! else there; logs on stderr, quiet unless `-v`).

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Args, CommandFactory, Parser, Subcommand};
use shared::Env;
use shared::config::{NatsConfig, Vars};

pub mod db;
pub mod dead;
pub mod diff;
pub mod diff_keyed;
pub mod download_bar;
pub mod exit;
pub mod export;
pub mod logging;
pub mod output;
pub mod runs;
pub mod setup;
pub mod show;
pub mod smoke;
pub mod status;
pub mod trigger;

pub use exit::Unreachable;

#[derive(Debug, Parser)]
#[command(
    name = "etl",
    version,
    about = "Operate the covid-etl pipeline",
    after_help = EXIT_CODES,
    after_long_help = format!("{EXIT_CODES}\n\n{VARIABLES}")
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

/// What `etl --help` says about exit codes (see [`exit`]).
pub const EXIT_CODES: &str = "Exit codes: 0 ok; 1 failed (what was asked about is failed or \
    unhealthy, or the operation failed); 2 usage (a bad flag or variable); 3 unreachable (NATS \
    or PostgreSQL could not be reached within --connect-timeout).";

/// The variables `etl` reads besides its flags' own, as `etl --help` lists them.
pub const VARIABLES: &str = "\
Variables (the services' own, read the same way):
  ETL_ENV                 the environment of --env (default prod)
  ETL_CONNECT_TIMEOUT     --connect-timeout (default 5s)
  NATS_URL                NATS (default nats://127.0.0.1:4222; tls:// requires TLS)
  NATS_NKEY_FILE          file holding the operator's NKEY seed; or NATS_CREDS, NATS_USER +
                          NATS_PASSWORD, NATS_TOKEN
  NATS_CA_FILE            CA certificates for NATS's TLS certificate (requires TLS)
  DATABASE_URL            PostgreSQL (default postgres://postgres@127.0.0.1:5432/covid; TLS by
                          sslmode / sslrootcert, or PGSSLMODE / PGSSLROOTCERT)
  DATABASE_PASSWORD_FILE  file holding DATABASE_URL's password
  DB_STATEMENT_TIMEOUT    longest statement (default 30s)
  DB_LOCK_TIMEOUT         longest wait for a lock (default 10s)
  MAX_REMOVED_SHARE       `etl diff`: share of stored dates a run may remove (default 0.05)
  RUST_LOG, LOG_FORMAT    log filter (overrides -v) and format (json) on stderr";

/// Flags every command takes.
#[derive(Debug, Clone, Args)]
pub struct Global {
    /// Print one JSON document on stdout instead of text (commands that print data).
    #[arg(long, global = true)]
    pub json: bool,
    /// Log to stderr: -v info, -vv debug, -vvv trace (`RUST_LOG` overrides). Quiet otherwise.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    /// How long each connection to NATS or PostgreSQL may take before the command gives up with
    /// exit code 3 (`5s`, `500ms`, or seconds).
    #[arg(
        long,
        env = "ETL_CONNECT_TIMEOUT",
        default_value = "5s",
        value_parser = parse_duration,
        global = true
    )]
    pub connect_timeout: Duration,
}

/// `--env`: the env a command works on, `ETL_ENV` by default, else `prod`.
#[derive(Debug, Clone, Args)]
pub struct EnvArg {
    /// The environment (`ETL_ENV` when not given; `prod` when neither is).
    #[arg(long, env = "ETL_ENV", default_value = "prod")]
    pub env: Env,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Ask the extractor to check upstream now.
    Trigger {
        #[command(flatten)]
        env: EnvArg,
        /// Run even if nothing changed upstream.
        #[arg(long)]
        force: bool,
        /// Wait for the run: show each stage as it happens (on stderr), then its notification.
        #[arg(long)]
        wait: bool,
        /// Seconds to wait for the extractor's answer and, with --wait, for the notification.
        #[arg(long, default_value_t = 120)]
        timeout: u64,
    },
    /// List recent runs of an environment; `etl runs show RUN_ID` shows one.
    #[command(args_conflicts_with_subcommands = true)]
    Runs {
        #[command(flatten)]
        env: EnvArg,
        /// How many runs, newest first (at most 1000).
        #[arg(long, default_value_t = 20)]
        limit: i64,
        #[command(subcommand)]
        action: Option<RunsAction>,
    },
    /// Show services, streams, consumers and their lag, failing sources and the latest run of
    /// each environment; exit 1 when something is unhealthy, 3 when NATS or PostgreSQL is down.
    Status {
        /// The micro-services that must answer (comma-separated).
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "extractor,transformer,loader,notifier"
        )]
        expect: Vec<String>,
    },
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
        /// The dataset: `us` (from --nyt and --jhu), `states` or `counties` (from --file, once
        /// per upstream file).
        #[arg(long, default_value = "us", value_parser = ["us", "states", "counties"])]
        dataset: String,
        /// NYT's `us.csv` (dataset `us`).
        #[arg(long, required_if_eq("dataset", "us"))]
        nyt: Option<std::path::PathBuf>,
        /// JHU's file (dataset `us`).
        #[arg(long, required_if_eq("dataset", "us"))]
        jhu: Option<std::path::PathBuf>,
        /// A file of a keyed dataset (`us-states.csv`, `us-counties-2021.csv`…); rows found in
        /// two files must agree.
        #[arg(long = "file", conflicts_with_all = ["nyt", "jhu"])]
        files: Vec<std::path::PathBuf>,
        #[command(flatten)]
        env: EnvArg,
    },
    /// Write the curated dataset of the env's latest loaded run (or of --run) as CSV or Parquet.
    Export {
        /// The dataset: `us` (the US national daily series), `states` or `counties`.
        #[arg(long, value_enum, default_value_t = export::Dataset::Us)]
        dataset: export::Dataset,
        /// CSV (the columns of us_daily, a value not reported left empty) or Parquet (the
        /// curated object byte for byte).
        #[arg(long, value_enum, default_value_t = export::Format::Csv)]
        format: export::Format,
        /// Where to write it; stdout when not given (`-` too).
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
        /// This run's dataset instead of the latest loaded one.
        #[arg(long)]
        run: Option<String>,
        #[command(flatten)]
        env: EnvArg,
    },
    /// Run the smoke test against a running stack (env `test`, dummy data); exit 0 only on success.
    ///
    /// It publishes a dataset's dummy files as the extractor would, so the extractor takes no part
    /// (and DATASETS, which says what it polls, does not matter); the transformer, loader and
    /// notifier must serve env `test`.
    Smoke {
        /// The dataset whose run is tested: `us` (dummy NYT and JHU files), `states` (a dummy
        /// `us-states.csv`) or `counties` (a dummy year's file and `us-counties-recent.csv`).
        #[arg(long, value_enum, default_value_t = export::Dataset::Us)]
        dataset: export::Dataset,
        /// Seconds to wait for the notification.
        #[arg(long, default_value_t = 60)]
        timeout: u64,
    },
    /// Declare the streams, object stores and bucket with NATS_REPLICAS copies, and scale up
    /// those that have fewer (once, after moving a stack onto a cluster).
    Setup,
    /// Print a completion script for a shell: `etl completions bash > /etc/bash_completion.d/etl`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Subcommand)]
pub enum RunsAction {
    /// Everything known about one run: its row in etl_runs, its events in order with their times,
    /// its changes, its notification and what became of its email.
    Show {
        run_id: String,
        #[command(flatten)]
        env: EnvArg,
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

/// `5s`, `1m30s`, `500ms` (humantime), or a plain number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(seconds) = text.parse::<f64>() {
        if seconds.is_finite() && seconds > 0.0 && seconds < 86_400.0 {
            return Ok(Duration::from_secs_f64(seconds));
        }
        return Err("must be more than 0 and less than a day".to_owned());
    }
    match humantime::parse_duration(text) {
        Ok(duration) if !duration.is_zero() => Ok(duration),
        Ok(_) => Err("must be more than 0".to_owned()),
        Err(err) => Err(format!("{err} (say 5s, 500ms or 10)")),
    }
}

/// Where the stack is, read from the same variables the services use.
#[derive(Debug, Clone)]
pub struct Connections {
    pub nats: NatsConfig,
    /// `DATABASE_URL` with the session timeouts; its `Debug` hides the password.
    pub database_url: db::DatabaseUrl,
    /// DESIGN rule 7's threshold, as the loader applies it (`MAX_REMOVED_SHARE`).
    pub max_removed_share: f64,
    /// How long one connection attempt may take: an operator's terminal (or a script) gets an
    /// answer, not a process retrying in the background as a service would.
    pub connect_timeout: Duration,
}

/// The default of `--connect-timeout`.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

impl Connections {
    /// Connects to NATS as `name`, once, giving up after [`Connections::connect_timeout`] with
    /// [`Unreachable::Nats`]; a refused identity is a plain error (exit 1).
    pub async fn connect_nats(&self, name: &str) -> anyhow::Result<async_nats::Client> {
        let url = shared::nats::redact_url(&self.nats.url);
        let timeout = self.connect_timeout;
        let options = shared::nats::options(&self.nats, name)
            .await?
            .connection_timeout(timeout);
        let servers = shared::nats::servers(&self.nats.url)?;
        let attempt = options.connect(servers);
        match tokio::time::timeout(timeout, attempt).await {
            Err(_) => Err(Unreachable::Nats {
                url,
                reason: format!("no answer within {timeout:?}"),
            }
            .into()),
            Ok(Ok(client)) => {
                tracing::info!(%url, "connected to NATS");
                Ok(client)
            }
            Ok(Err(err)) => {
                use async_nats::ConnectErrorKind as Kind;
                match err.kind() {
                    Kind::Authentication | Kind::AuthorizationViolation | Kind::ServerParse => Err(
                        anyhow::anyhow!("NATS at {url} refused the connection: {err}"),
                    ),
                    _ => Err(Unreachable::Nats {
                        url,
                        reason: err.to_string(),
                    }
                    .into()),
                }
            }
        }
    }

    /// Connects to PostgreSQL, giving up after [`Connections::connect_timeout`] (see
    /// [`db::connect`]).
    pub async fn connect_db(&self) -> anyhow::Result<tokio_postgres::Client> {
        db::connect(&self.database_url, self.connect_timeout).await
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
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
        })
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let json = cli.global.json;
    if let Command::Completions { shell } = cli.command {
        let mut command = Cli::command();
        let mut script = Vec::new();
        clap_complete::generate(shell, &mut command, "etl", &mut script);
        output::bytes(&script);
        return Ok(ExitCode::SUCCESS);
    }
    let mut connections = Connections::from_vars(&Vars::from_env())
        .context("reading the environment")
        .map_err(exit::usage)?;
    connections.connect_timeout = cli.global.connect_timeout;
    let connections = &connections;
    match cli.command {
        Command::Trigger {
            env,
            force,
            wait,
            timeout,
        } => {
            let options = trigger::Options {
                force,
                wait,
                timeout: Duration::from_secs(timeout),
                json,
            };
            trigger::run(connections, &env.env, &options).await
        }
        Command::Runs {
            env,
            limit,
            action: None,
        } => runs::run(connections, &env.env, limit, json).await,
        Command::Runs {
            action: Some(RunsAction::Show { run_id, env }),
            ..
        } => show::run(connections, &env.env, &run_id, json).await,
        Command::Status { expect } => status::run(connections, &expect, json).await,
        Command::Dead { env, action: None } => {
            dead::run_list(connections, env.as_ref(), json).await
        }
        Command::Dead {
            action: Some(DeadAction::Retry { id }),
            ..
        } => dead::run_retry(connections, id, json).await,
        Command::Diff {
            dataset,
            nyt,
            jhu,
            files,
            env,
        } => match (dataset::keyed::Spec::by_name(&dataset), nyt, jhu) {
            (None, Some(nyt), Some(jhu)) => {
                diff::run(connections, &nyt, &jhu, &env.env, json).await
            }
            (Some(spec), _, _) if !files.is_empty() => {
                diff_keyed::run(connections, spec, &files, &env.env, json).await
            }
            _ => anyhow::bail!(
                "etl diff --dataset {dataset} needs its files: --nyt and --jhu for us, --file for states and counties"
            ),
        },
        Command::Export {
            dataset,
            format,
            output,
            run,
            env,
        } => {
            let request = export::Request {
                dataset,
                format,
                output,
                run,
            };
            export::run(connections, &env.env, &request, json).await
        }
        Command::Smoke { dataset, timeout } => {
            let report = smoke::run(connections, dataset, Duration::from_secs(timeout)).await;
            Ok(smoke::print(&report, json))
        }
        Command::Setup => setup::run(connections, json).await,
        Command::Completions { .. } => Ok(ExitCode::SUCCESS),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn a_connect_timeout_is_seconds_or_a_duration() {
        assert_eq!(parse_duration("2"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("300ms"), Ok(Duration::from_millis(300)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert!(parse_duration("0").is_err());
        assert!(parse_duration("soon").is_err());
    }

    #[test]
    fn runs_show_and_the_listing_both_parse() {
        let cli =
            Cli::try_parse_from(["etl", "runs", "show", "abc", "--env", "test", "--json"]).unwrap();
        assert!(cli.global.json);
        assert!(matches!(
            cli.command,
            Command::Runs {
                action: Some(RunsAction::Show { ref run_id, .. }),
                ..
            } if run_id == "abc"
        ));
        let cli = Cli::try_parse_from(["etl", "runs", "--limit", "3"]).unwrap();
        assert!(matches!(
            cli.command,
            Command::Runs {
                limit: 3,
                action: None,
                ..
            }
        ));
    }
}
