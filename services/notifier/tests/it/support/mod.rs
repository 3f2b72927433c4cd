//! The notifier's fixtures: a notifier running in-process for envs of the test's own, its input
//! events, what it publishes on `notify.<env>`, and an SMTP server of the test's own that it can
//! stop. The stack's addresses, env names, clean-up and emails come from `test_support`.

mod events;
mod notify;
mod smtp;

use std::time::Duration;

use shared::Env;
use shared::config::Vars;
use shared::nats::Stores;
use test_support::Running;

pub use events::*;
pub use notify::*;
pub use smtp::*;
pub use test_support::mail::{Mail, mails, remove_mails};
pub use test_support::{clean_up, unique_env};

pub const WAIT: Duration = Duration::from_secs(20);

/// The stack's NATS, with the notifier's logs shown under `--nocapture` (`RUST_LOG` filters;
/// several tests share the process).
pub async fn stores() -> Stores {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
    test_support::stores().await
}

/// Settings for a notifier serving only `env`, mailing two addressees through `smtp_url`.
pub fn vars(env: &Env, smtp_url: &str) -> Vars {
    let mut vars = test_support::stack::vars_for(test_support::stack::Identity::Notifier, env);
    vars.set("SMTP_URL", smtp_url)
        .set("SMTP_RETRY_MAX", "1s")
        .set("SMTP_TIMEOUT", "5s")
        .set("STALE_AFTER", "off")
        .set("DASHBOARD_URL", "http://dashboard.test:8080")
        .set(
            format!("EMAIL_TO_{}", env.as_str().to_uppercase()),
            "Ops <ops@example.com>, oncall@example.com",
        );
    vars
}

/// A notifier running in this process.
pub fn start(vars: &Vars) -> Running {
    start_with(config(vars))
}

pub fn config(vars: &Vars) -> notifier::Config {
    notifier::Config::from_vars(vars).expect("test configuration is valid")
}

/// A notifier with settings no variable gives (a short outage allowance).
pub fn start_with(config: notifier::Config) -> Running {
    Running::spawn("notifier", |shutdown| notifier::run(config, shutdown))
}

/// Waits until `maildir` holds at least `count` emails for `env`.
pub async fn wait_for_mails(maildir: &std::path::Path, env: &Env, count: usize) -> Vec<Mail> {
    test_support::mail::wait_for_mails(maildir, env, count, WAIT).await
}
