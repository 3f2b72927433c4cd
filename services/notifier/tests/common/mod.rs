//! Test support: a notifier running in-process for one env of its own, real NATS, a real SMTP
//! server (the stack's, or one started by the test so it can be stopped), and readers for the
//! Maildir and `notify.<env>`.
#![allow(dead_code)] // each test file uses a different part of it

mod events;
mod mail;
mod notify;

use std::path::{Path, PathBuf};
use std::time::Duration;

use futures::TryStreamExt;
use shared::config::{NatsConfig, Vars};
use shared::nats::Stores;
use shared::{Env, Shutdown};

pub use events::*;
pub use mail::*;
pub use notify::*;

pub const WAIT: Duration = Duration::from_secs(20);

pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A fresh env name, so tests run side by side without sharing anything.
pub fn new_env() -> Env {
    let id = uuid::Uuid::new_v4().simple().to_string();
    Env::new(format!("t_{}", &id[..12])).unwrap()
}

pub async fn stores() -> Stores {
    shared::install_crypto_provider();
    // Logs show with `--nocapture` (RUST_LOG to filter); several tests share the process.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .with_test_writer()
        .try_init();
    let url = std::env::var("NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let client = shared::nats::connect(&NatsConfig::local(url), "notifier-test", &Shutdown::new())
        .await
        .unwrap();
    shared::nats::setup(client).await.unwrap()
}

/// Settings for a notifier serving only `env`, mailing `to@example.com` through `smtp_url`.
pub fn vars(env: &Env, smtp_url: &str) -> Vars {
    let mut vars = Vars::from_pairs([
        ("ETL_ENVS", env.as_str()),
        ("SMTP_URL", smtp_url),
        ("SMTP_RETRY_MAX", "1s"),
        ("SMTP_TIMEOUT", "5s"),
        ("STALE_AFTER", "off"),
        ("DASHBOARD_URL", "http://dashboard.test:8080"),
    ]);
    if let Ok(url) = std::env::var("NATS_URL") {
        vars.set("NATS_URL", url);
    }
    vars.set(
        format!("EMAIL_TO_{}", env.as_str().to_uppercase()),
        "Ops <ops@example.com>, oncall@example.com",
    );
    vars
}

/// A notifier running in this process.
pub struct Running {
    shutdown: Shutdown,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

pub fn start(vars: &Vars) -> Running {
    let config = notifier::Config::from_vars(vars).expect("test configuration is valid");
    let shutdown = Shutdown::new();
    let task = tokio::spawn(notifier::run(config, shutdown.clone()));
    Running { shutdown, task }
}

impl Running {
    pub async fn stop(self) {
        self.shutdown.trigger();
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("notifier stops")
            .unwrap()
            .unwrap();
    }
}

/// Removes everything a test wrote for `env`: its consumer, stream messages and KV keys.
pub async fn clean_up(stores: &Stores, env: &Env) {
    let scope: shared::EnvScope = env.as_str().parse().unwrap();
    let etl = stores
        .js
        .get_stream(shared::nats::ETL_STREAM)
        .await
        .unwrap();
    let _ = etl.delete_consumer(&notifier::consumer_name(&scope)).await;
    let _ = etl.purge().filter(format!("etl.{env}.>")).await;
    let notify = stores
        .js
        .get_stream(shared::nats::NOTIFY_STREAM)
        .await
        .unwrap();
    let _ = notify.purge().filter(shared::subjects::notify(env)).await;
    let keys: Vec<String> = stores
        .state
        .keys()
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    for key in keys.iter().filter(|k| k.starts_with(&format!("{env}."))) {
        let _ = stores.state.purge(key).await;
    }
}
