//! A real extractor, in-process, against the fake GitHub and the real NATS, in an env of its own.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use etl_tests::fake_github::{FakeCommit, FakeGithub, NewCommit};
use futures::StreamExt;
use shared::config::Vars;
use shared::events::{Extracted, Failed};
use shared::nats::Stores;
use shared::{Env, Shutdown, Source};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub const NYT_REPO: &str = "nytimes/covid-19-data";
pub const NYT_PATH: &str = "us.csv";
pub const JHU_REPO: &str = "datasets/covid-19";
pub const JHU_PATH: &str = "data/time-series-19-covid-combined.csv";
pub const WAIT: Duration = Duration::from_secs(10);

/// A small NYT-shaped file; `salt` changes the last day's figures.
pub fn nyt_csv(days: u32, salt: u32) -> String {
    let mut csv = String::from("date,cases,deaths");
    for day in 0..days {
        let date =
            chrono::NaiveDate::from_ymd_opt(2020, 1, 21).unwrap() + chrono::Days::new(day.into());
        let extra = if day + 1 == days { salt } else { 0 };
        csv.push_str(&format!("\n{date},{},{}", day * 10 + extra, day));
    }
    csv
}

/// A small JHU-shaped file with a US row per day.
pub fn jhu_csv(days: u32, salt: u32) -> String {
    let mut csv =
        String::from("Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n");
    for day in 0..days {
        let date =
            chrono::NaiveDate::from_ymd_opt(2020, 1, 22).unwrap() + chrono::Days::new(day.into());
        let extra = if day + 1 == days { salt } else { 0 };
        csv.push_str(&format!(
            "{date},US,,40.0,-100.0,{},{},{}\n",
            day * 10 + extra,
            day * 2,
            day
        ));
    }
    csv
}

pub fn nyt_commit(days: u32, salt: u32) -> NewCommit {
    NewCommit::new(NYT_REPO, NYT_PATH, nyt_csv(days, salt))
}

pub fn jhu_commit(days: u32, salt: u32) -> NewCommit {
    NewCommit::new(JHU_REPO, JHU_PATH, jhu_csv(days, salt))
}

/// What the extractor published, with when it arrived.
#[derive(Debug)]
pub enum Event {
    Extracted(Box<Extracted>, Instant),
    Failed(Box<Failed>, Instant),
}

pub struct Harness {
    pub github: FakeGithub,
    pub env: Env,
    pub stores: Stores,
    pub config: extractor::Config,
    /// What the ETL stream stored for the env (so duplicates the stream dropped are not seen).
    events: async_nats::jetstream::consumer::pull::Ordered,
    running: Option<(Shutdown, JoinHandle<anyhow::Result<()>>)>,
}

fn unique_env() -> Env {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    Env::new(format!(
        "tx_{nanos:x}_{}",
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ))
    .unwrap()
}

impl Harness {
    /// A fake GitHub, a fresh env, and extractor settings (fast polls) plus `settings`.
    pub async fn new(settings: &[(&str, &str)]) -> Harness {
        shared::install_crypto_provider();
        let github = FakeGithub::start().await.expect("fake GitHub starts");
        let env = unique_env();
        let mut vars = Vars::from_pairs(github.env_vars());
        vars.set("ETL_ENV", env.as_str())
            .set("POLL_INTERVAL", "200ms")
            .set("REQUEST_TIMEOUT", "5s");
        for (name, value) in settings {
            vars.set(*name, *value);
        }
        let config = extractor::Config::from_vars(&vars).expect("test settings are valid");
        let client = async_nats::connect(config.nats.url.as_str())
            .await
            .expect("NATS runs on this machine");
        let stores = shared::nats::setup(client).await.expect("JetStream set up");
        let stream = stores
            .js
            .get_stream(shared::nats::ETL_STREAM)
            .await
            .expect("the ETL stream exists");
        let consumer = stream
            .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
                filter_subject: format!("etl.{env}.>"),
                ..Default::default()
            })
            .await
            .expect("an ordered consumer");
        let events = consumer.messages().await.expect("consume");
        Harness {
            github,
            env,
            stores,
            config,
            events,
            running: None,
        }
    }

    pub fn start(&mut self) {
        assert!(self.running.is_none(), "the extractor is already running");
        let shutdown = Shutdown::new();
        let task = tokio::spawn(extractor::run(self.config.clone(), shutdown.clone()));
        self.running = Some((shutdown, task));
    }

    /// Stops the extractor and checks it ended cleanly.
    pub async fn stop(&mut self) {
        let (shutdown, task) = self.running.take().expect("the extractor is running");
        shutdown.trigger();
        let result = tokio::time::timeout(WAIT, task)
            .await
            .expect("the extractor stops in time");
        result
            .expect("the extractor did not panic")
            .expect("the extractor ended without error");
    }

    /// Whether the extractor task is still running (it must never crash).
    pub fn is_running(&self) -> bool {
        self.running
            .as_ref()
            .is_some_and(|(_, task)| !task.is_finished())
    }

    /// The next extracted or failed event.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let message = tokio::time::timeout_at(deadline, self.events.next())
                .await
                .ok()??
                .expect("ETL stream readable");
            let at = Instant::now();
            let subject = message.subject.as_str();
            if subject.contains(".extracted.") {
                return Some(Event::Extracted(
                    Box::new(serde_json::from_slice(&message.payload).unwrap()),
                    at,
                ));
            }
            if subject.contains(".failed.") {
                return Some(Event::Failed(
                    Box::new(serde_json::from_slice(&message.payload).unwrap()),
                    at,
                ));
            }
        }
    }

    pub async fn extracted(&mut self) -> (Extracted, Instant) {
        match self.next_event(WAIT).await {
            Some(Event::Extracted(event, at)) => (*event, at),
            other => panic!("expected an extracted event, got {other:?}"),
        }
    }

    pub async fn failed(&mut self) -> (Failed, Instant) {
        match self.next_event(WAIT).await {
            Some(Event::Failed(event, at)) => (*event, at),
            other => panic!("expected a failed event, got {other:?}"),
        }
    }

    /// Asserts no event arrives for `quiet`.
    pub async fn assert_no_event(&mut self, quiet: Duration) {
        if let Some(event) = self.next_event(quiet).await {
            panic!("expected no event, got {event:?}");
        }
    }

    /// One commit per source, then the extractor's initial load of both.
    pub async fn initial_load(&mut self) -> (FakeCommit, FakeCommit) {
        let commits = self.github.add_many([nyt_commit(5, 0), jhu_commit(5, 0)]);
        self.start();
        let (a, _) = self.extracted().await;
        let (b, _) = self.extracted().await;
        let mut sources = [a.source, b.source];
        sources.sort();
        assert_eq!(sources, [Source::Nyt, Source::Jhu]);
        (commits[0].clone(), commits[1].clone())
    }

    pub async fn latest(&self, source: Source) -> Option<Extracted> {
        shared::store::latest_extracted(&self.stores.state, &self.env, source)
            .await
            .unwrap()
    }

    pub async fn object_exists(&self, source: Source, content: &[u8]) -> bool {
        let name =
            shared::store::raw_object_name(&self.env, source, &shared::hash::sha256_hex(content));
        self.stores.raw.info(&name).await.is_ok()
    }

    /// Sends a trigger request and returns the reply.
    pub async fn trigger(&self, body: serde_json::Value) -> shared::events::TriggerReply {
        let client = async_nats::connect(self.config.nats.url.as_str())
            .await
            .unwrap();
        let subject = shared::subjects::trigger(&self.env);
        let reply = tokio::time::timeout(
            WAIT,
            client.request(subject, serde_json::to_vec(&body).unwrap().into()),
        )
        .await
        .expect("the trigger is answered in time")
        .expect("the trigger is answered");
        serde_json::from_slice(&reply.payload).expect("the reply is a TriggerReply")
    }

    /// Stops the extractor and removes what the env left in NATS.
    pub async fn finish(mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        let prefix = format!("{}.", self.env);
        if let Ok(mut keys) = self.stores.state.keys().await {
            while let Some(Ok(key)) = keys.next().await {
                if key.starts_with(&prefix) {
                    let _ = self.stores.state.purge(&key).await;
                }
            }
        }
        let prefix = format!("{}/", self.env);
        if let Ok(mut objects) = self.stores.raw.list().await {
            let mut names = Vec::new();
            while let Some(Ok(info)) = objects.next().await {
                if info.name.starts_with(&prefix) {
                    names.push(info.name);
                }
            }
            for name in names {
                let _ = self.stores.raw.delete(&name).await;
            }
        }
        if let Ok(mut stream) = self.stores.js.get_stream(shared::nats::ETL_STREAM).await {
            let _ = stream.purge().filter(format!("etl.{}.>", self.env)).await;
            let _ = stream.info().await;
        }
    }
}

/// Requests for `path`'s commits list.
pub fn is_commits_of(
    path: &'static str,
) -> impl Fn(&etl_tests::fake_github::RequestRecord) -> bool {
    move |r| {
        r.endpoint == etl_tests::fake_github::Endpoint::Commits
            && r.uri.contains(&format!("path={}", urlencode(path)))
    }
}

pub fn urlencode(path: &str) -> String {
    url::form_urlencoded::byte_serialize(path.as_bytes()).collect()
}
