//! What the end-to-end tests share: a unique env per test, the stack's addresses, the real
//! services started in-process with settings of their own, and ways to wait for what they produce
//! (notifications on NATS, rows in PostgreSQL, messages at the SMTP server).

#![allow(dead_code)] // each test binary uses a different part of this module

pub mod processes;

use std::path::PathBuf;
use std::time::Duration;

use futures::StreamExt;
use shared::config::Vars;
use shared::events::Notification;
use shared::{Env, Shutdown};
use tokio::task::JoinHandle;

/// A fresh env name for one test: its subjects, objects, keys and schema are its own.
pub fn unique_env(prefix: &str) -> Env {
    let suffix = uuid_suffix();
    Env::new(format!("{prefix}_{suffix}")).expect("test env names are valid")
}

fn uuid_suffix() -> String {
    use std::hash::{BuildHasher, RandomState};
    format!(
        "{:012x}",
        RandomState::new().hash_one(std::time::SystemTime::now()) & 0xffff_ffff_ffff
    )
}

fn var_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|v| !v.is_empty())
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

/// Where the stack's SMTP server keeps what it receives (scripts/stack.sh).
pub fn maildir() -> PathBuf {
    std::env::var("SMTP_MAILDIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.stack/mail"))
}

/// The variables every service of a test's pipeline gets: the stack, and the test's env only.
pub fn base_vars(env: &Env) -> Vars {
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

/// The real services, running in this process until [`Services::stop`].
pub struct Services {
    shutdown: Shutdown,
    tasks: Vec<(&'static str, JoinHandle<anyhow::Result<()>>)>,
}

impl Services {
    /// Starts transformer, loader and notifier (and the extractor when `with_extractor`).
    pub fn start(vars: &Vars, with_extractor: bool) -> Self {
        shared::install_crypto_provider();
        let shutdown = Shutdown::new();
        let mut tasks = Vec::new();
        if with_extractor {
            let config = extractor::Config::from_vars(vars).expect("extractor config");
            tasks.push((
                "extractor",
                tokio::spawn(extractor::run(config, shutdown.clone())),
            ));
        }
        let config = transformer::Config::from_vars(vars).expect("transformer config");
        tasks.push((
            "transformer",
            tokio::spawn(transformer::run(config, shutdown.clone())),
        ));
        let config = loader::Config::from_vars(vars).expect("loader config");
        tasks.push((
            "loader",
            tokio::spawn(loader::run(config, shutdown.clone())),
        ));
        let config = notifier::Config::from_vars(vars).expect("notifier config");
        tasks.push((
            "notifier",
            tokio::spawn(notifier::run(config, shutdown.clone())),
        ));
        Self { shutdown, tasks }
    }

    /// Asks every service to stop and checks that each one returned cleanly, in bounded time.
    pub async fn stop(self) {
        self.shutdown.trigger();
        for (name, task) in self.tasks {
            let result = tokio::time::timeout(Duration::from_secs(20), task)
                .await
                .unwrap_or_else(|_| panic!("{name} did not stop within 20 s"));
            result
                .expect("service task panicked")
                .unwrap_or_else(|err| panic!("{name} failed: {err:#}"));
        }
    }
}

/// A subscription to `notify.<env>`, opened before a run starts so no notification slips past.
pub struct Notifications(async_nats::Subscriber);

impl Notifications {
    pub async fn subscribe(env: &Env) -> Self {
        let client = async_nats::connect(nats_url())
            .await
            .expect("NATS is reachable");
        let subscriber = client
            .subscribe(shared::subjects::notify(env))
            .await
            .expect("subscribe");
        client.flush().await.expect("flush");
        Self(subscriber)
    }

    /// The next run notification (other messages on the subject, such as staleness alerts, are
    /// skipped), or a panic naming what was awaited.
    pub async fn next(&mut self, what: &str) -> Notification {
        self.within(Duration::from_secs(60))
            .await
            .unwrap_or_else(|| panic!("no notification within 60 s while waiting for {what}"))
    }

    /// The next run notification within `timeout`, if one comes.
    pub async fn within(&mut self, timeout: Duration) -> Option<Notification> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.0.next())
                .await
                .ok()??;
            if let Ok(notification) = serde_json::from_slice(&message.payload) {
                return Some(notification);
            }
        }
    }

    /// Asserts that no further run notification arrives within `quiet`.
    pub async fn assert_quiet(&mut self, quiet: Duration) {
        let deadline = tokio::time::Instant::now() + quiet;
        while let Ok(Some(message)) = tokio::time::timeout_at(deadline, self.0.next()).await {
            if serde_json::from_slice::<Notification>(&message.payload).is_ok() {
                panic!(
                    "unexpected notification: {}",
                    String::from_utf8_lossy(&message.payload)
                );
            }
        }
    }
}

pub async fn pg() -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(&database_url(), tokio_postgres::NoTls)
        .await
        .expect("PostgreSQL is reachable");
    tokio::spawn(connection);
    client
}

/// `(date, cases, deaths, recovered)` of an env's `us_daily`, by date.
pub async fn stored_values(env: &Env) -> Vec<(String, i64, i64, Option<i64>)> {
    let client = pg().await;
    let sql = format!(
        "SELECT date::text, cases, deaths, recovered FROM \"{env}\".us_daily ORDER BY date"
    );
    client
        .query(&sql, &[])
        .await
        .expect("us_daily is readable")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// `(date, field, old, new)` recorded in `us_daily_changes` for a run.
pub async fn changes_of_run(
    env: &Env,
    run_id: &str,
) -> Vec<(String, String, Option<i64>, Option<i64>)> {
    let client = pg().await;
    let sql = format!(
        "SELECT date::text, field, old_value, new_value FROM \"{env}\".us_daily_changes WHERE run_id = $1 ORDER BY date, field"
    );
    client
        .query(&sql, &[&run_id])
        .await
        .expect("us_daily_changes is readable")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// Emails received by the stack's SMTP server whose subject starts with `[<env>]`, waiting up to
/// `timeout` for at least `count` of them. Returned as (subject, plain text, html).
pub async fn emails_for(
    env: &Env,
    count: usize,
    timeout: Duration,
) -> Vec<(String, String, String)> {
    let deadline = tokio::time::Instant::now() + timeout;
    let prefix = format!("[{env}]");
    loop {
        let found = read_maildir(&prefix);
        if found.len() >= count || tokio::time::Instant::now() >= deadline {
            return found;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn read_maildir(subject_prefix: &str) -> Vec<(String, String, String)> {
    let mut found = Vec::new();
    let dir = maildir().join("new");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return found;
    };
    for entry in entries.flatten() {
        let Ok(bytes) = std::fs::read(entry.path()) else {
            continue;
        };
        let Ok(mail) = mailparse::parse_mail(&bytes) else {
            continue;
        };
        use mailparse::MailHeaderMap;
        let subject = mail.headers.get_first_value("Subject").unwrap_or_default();
        if !subject.starts_with(subject_prefix) {
            continue;
        }
        let mut text = String::new();
        let mut html = String::new();
        for part in mail.parts() {
            match part.ctype.mimetype.as_str() {
                "text/plain" => text = part.get_body().unwrap_or_default(),
                "text/html" => html = part.get_body().unwrap_or_default(),
                _ => {}
            }
        }
        found.push((subject, text, html));
    }
    found
}

/// Removes all a test env left behind: its consumers and events in both streams, its KV keys and
/// objects, and its schema. Tests call it once they have passed (a failed test's leftovers stay,
/// for looking into).
pub async fn clean_up_env(env: &Env) {
    use futures::TryStreamExt;
    use shared::nats::{ETL_STREAM, NOTIFY_STREAM};
    let client = async_nats::connect(nats_url())
        .await
        .expect("NATS is reachable");
    let stores = shared::nats::setup(client)
        .await
        .expect("JetStream resources");
    let etl = stores.js.get_stream(ETL_STREAM).await.expect("ETL stream");
    for service in ["transformer", "loader", "notifier"] {
        let _ = etl.delete_consumer(&format!("{service}-{env}")).await;
    }
    etl.purge()
        .filter(format!("etl.{env}.>"))
        .await
        .expect("purge ETL");
    let notify = stores
        .js
        .get_stream(NOTIFY_STREAM)
        .await
        .expect("NOTIFY stream");
    notify
        .purge()
        .filter(shared::subjects::notify(env))
        .await
        .expect("purge NOTIFY");
    let keys: Vec<String> = stores
        .state
        .keys()
        .await
        .expect("keys")
        .try_collect()
        .await
        .expect("keys");
    for key in keys
        .iter()
        .filter(|key| key.starts_with(&format!("{env}.")))
    {
        stores.state.purge(key).await.expect("purge key");
    }
    for store in [&stores.raw, &stores.curated] {
        let objects: Vec<_> = store
            .list()
            .await
            .expect("list")
            .try_collect()
            .await
            .expect("list");
        for object in objects
            .iter()
            .filter(|o| o.name.starts_with(&format!("{env}/")))
        {
            store.delete(&object.name).await.expect("delete object");
        }
    }
    pg().await
        .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{env}\" CASCADE"))
        .await
        .expect("drop schema");
}
