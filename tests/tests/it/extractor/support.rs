//! A real extractor, in-process, against the fake GitHub and the real NATS, in an env of its own.

use std::time::Duration;

use etl_tests::fake_github::{FakeCommit, FakeGithub, NewCommit};
use futures::StreamExt;
use shared::events::{Extracted, Failed};
use shared::nats::Stores;
use shared::{Env, Source};
use test_support::{EventLog, Running, TestEnv};
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
    events: EventLog,
    running: Option<Running>,
}

impl Harness {
    /// A fake GitHub, a fresh env, and extractor settings (fast polls) plus `settings`.
    pub async fn new(settings: &[(&str, &str)]) -> Harness {
        let test = TestEnv::new("tx").await;
        let github = FakeGithub::start().await.expect("fake GitHub starts");
        let mut vars = crate::support::pipeline_vars(&test.env, &github);
        vars.set("POLL_INTERVAL", "200ms")
            .set("REQUEST_TIMEOUT", "5s");
        for (name, value) in settings {
            vars.set(*name, *value);
        }
        let vars =
            test_support::stack::as_identity(&vars, test_support::stack::Identity::Extractor);
        let config = extractor::Config::from_vars(&vars).expect("test settings are valid");
        let events = test.events().await;
        let TestEnv { env, stores } = test;
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
        let config = self.config.clone();
        self.running = Some(Running::spawn("extractor", |shutdown| {
            extractor::run(config, shutdown)
        }));
    }

    /// Stops the extractor and checks it ended cleanly.
    pub async fn stop(&mut self) {
        let running = self.running.take().expect("the extractor is running");
        running.stop_within(WAIT).await;
    }

    /// Whether the extractor task is still running (it must never crash).
    pub fn is_running(&self) -> bool {
        self.running.as_ref().is_some_and(Running::is_running)
    }

    /// The next extracted or failed event.
    pub async fn next_event(&mut self, timeout: Duration) -> Option<Event> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let message = self.events.next_within(left).await?;
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
        assert_eq!(sources, [Source::JHU, Source::NYT]);
        (commits[0].clone(), commits[1].clone())
    }

    pub async fn latest(&self, source: Source) -> Option<Extracted> {
        shared::store::latest_extracted(&self.stores.state, &self.env, &source)
            .await
            .unwrap()
    }

    /// The source's trouble as the extractor keeps it in KV for `etl status`.
    pub async fn latest_trouble(&self, source: Source) -> Option<extractor::trouble::Trouble> {
        shared::store::kv_get(
            &self.stores.state,
            &shared::store::trouble_key(&self.env, &source),
        )
        .await
        .unwrap()
    }

    /// Whether the source's trouble leaves KV within `timeout`: the extractor clears it once the
    /// source works again, just after announcing what it extracted.
    pub async fn trouble_cleared(&self, source: Source, timeout: Duration) -> bool {
        use async_nats::jetstream::kv::Operation;
        let key = shared::store::trouble_key(&self.env, &source);
        let mut watch = self
            .stores
            .state
            .watch_with_history(&key)
            .await
            .expect("KV watch");
        let deadline = Instant::now() + timeout;
        while let Ok(Some(entry)) = tokio::time::timeout_at(deadline, watch.next()).await {
            let entry = entry.expect("KV watch entry");
            if matches!(entry.operation, Operation::Delete | Operation::Purge) {
                return true;
            }
        }
        false
    }

    pub async fn object_exists(&self, source: Source, content: &[u8]) -> bool {
        let name =
            shared::store::raw_object_name(&self.env, &source, &shared::ids::Digest::of(content));
        self.stores.raw.info(&name).await.is_ok()
    }

    /// Sends a trigger request and returns the reply.
    pub async fn trigger(&self, body: serde_json::Value) -> shared::events::TriggerReply {
        let client = operator_client().await;
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

    /// Stops the extractor and removes what the env left.
    pub async fn finish(mut self) {
        if self.running.is_some() {
            self.stop().await;
        }
        test_support::clean_up(&self.env).await;
    }
}

/// What the extractor publishes on the env's failed subjects, duplicates included: a core
/// subscription sees every publish, also those the stream's de-duplication would drop.
pub struct Publishes {
    _client: async_nats::Client,
    subscriber: async_nats::Subscriber,
    seen: usize,
}

impl Publishes {
    /// The publishes so far, once none has arrived for a moment.
    pub async fn count(&mut self) -> usize {
        while let Ok(Some(_)) =
            tokio::time::timeout(Duration::from_millis(200), self.subscriber.next()).await
        {
            self.seen += 1;
        }
        self.seen
    }
}

impl Harness {
    /// Starts counting failed publishes from now.
    pub async fn failed_publishes(&self) -> Publishes {
        let client = operator_client().await;
        let subscriber = client
            .subscribe(format!("etl.{}.failed.>", self.env))
            .await
            .expect("subscribed");
        test_support::round_trip(&client).await;
        Publishes {
            _client: client,
            subscriber,
            seen: 0,
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

/// A connection of the test's own, as the operator (who may trigger runs and watch any subject).
async fn operator_client() -> async_nats::Client {
    shared::nats::connect(
        &test_support::stack::nats_config(test_support::stack::Identity::Operator),
        "covid-etl-test",
        &shared::Shutdown::new(),
    )
    .await
    .expect("NATS runs on this machine")
}
