//! The real transformer, started in-process for an env of its own and driven through NATS:
//! raw payloads in `etl-raw`, the latest extractions in KV, events on `etl.<env>.extracted.*`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use futures::{FutureExt, StreamExt};
use shared::events::{
    DeadLetter, Extracted, Failed, FailureKind, RunOrder, Stage, Transformed, Trigger, TriggerKind,
};
use shared::ids::TriggerId;
use shared::nats::{self, DEAD_STREAM, ETL_STREAM, Stores};
use shared::{Env, Source, run_id, store, subjects};
use test_support::{
    EventLog, Running, TestEnv, eventually, extraction, stored_count, wait_consumed,
};
use transformer::{Clock, Config};

// The tests call polars (to compute what to expect), which uses `block_in_place`: that needs
// the multi-threaded runtime, as the services' `main` has.

pub(crate) const WAIT: Duration = Duration::from_secs(60);

const NYT: &str =
    "date,cases,deaths\n2020-01-21,1,0\n2020-01-22,1,0\n2020-01-23,1,0\n2020-01-24,2,0\n";
const NYT_REVISED: &str =
    "date,cases,deaths\n2020-01-21,1,0\n2020-01-22,1,0\n2020-01-23,2,0\n2020-01-24,3,0\n";
const NYT_BAD: &str = "date,cases,deaths\n2020-01-21,1,0\n2020-01-22,many,0\n";
const JHU: &str = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
2020-01-22,US,,37.09,-95.71,1,0,0\n\
2020-01-22,Canada,Ontario,51.2,-85.3,0,0,0\n\
2020-01-23,US,,37.09,-95.71,1,0,0\n\
2020-01-24,US,,37.09,-95.71,2,0,0\n\
2020-01-25,US,,37.09,-95.71,2,0,0\n";
/// `JHU` with one figure changed: the same size, another digest.
const JHU_TAMPERED: &str = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
2020-01-22,US,,37.09,-95.71,1,0,0\n\
2020-01-22,Canada,Ontario,51.2,-85.3,0,0,0\n\
2020-01-23,US,,37.09,-95.71,1,0,0\n\
2020-01-24,US,,37.09,-95.71,9,0,0\n\
2020-01-25,US,,37.09,-95.71,2,0,0\n";
const JHU_NEXT: &str = "Date,Country/Region,Province/State,Recovered\n2020-01-22,US,,0\n2020-01-23,US,,1\n2020-01-24,US,,1\n";

fn at(day: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2030, 1, day, 12, 0, 0).unwrap()
}

pub(crate) struct Harness {
    pub env: Env,
    pub stores: Stores,
    config: Config,
    /// Everything the ETL stream stores for the env, in order (so never a de-duplicated publish).
    events: EventLog,
    transformer: Running,
}

impl Harness {
    pub(crate) async fn start(extra: &[(&str, &str)]) -> Self {
        Self::start_with(extra, Clock::default()).await
    }

    async fn start_with(extra: &[(&str, &str)], clock: Clock) -> Self {
        let test = TestEnv::new("tf").await;
        let events = test.events().await;
        let mut vars = test.vars_for(test_support::stack::Identity::Transformer);
        for (name, value) in extra {
            vars.set(*name, *value);
        }
        let config = Config {
            clock,
            ..Config::from_vars(&vars).unwrap()
        };
        let transformer = spawn(config.clone());
        let TestEnv { env, stores } = test;
        Self {
            env,
            stores,
            config,
            events,
            transformer,
        }
    }

    /// Stops the transformer and starts it again with another clock.
    async fn restart_with(&mut self, clock: Clock) {
        self.config.clock = clock;
        let running = std::mem::replace(&mut self.transformer, spawn(self.config.clone()));
        running.stop().await;
    }

    /// The event the extractor would publish for `payload`, whose object is not stored yet.
    fn extraction(&self, source: Source, payload: &str, trigger: Trigger) -> Extracted {
        extraction::extraction(&self.env, source, payload.as_bytes(), trigger)
    }

    /// Stores `bytes` under the name `event` announces.
    async fn store_raw(&self, event: &Extracted, bytes: &str) {
        extraction::store_raw(&self.stores, event, bytes.as_bytes()).await;
    }

    /// Does what the extractor does: stores the payload, records it as the source's latest in KV
    /// and publishes the extracted event.
    async fn extract(&mut self, source: Source, payload: &str, trigger: Trigger) -> Extracted {
        extraction::extract(&self.stores, &self.env, source, payload.as_bytes(), trigger).await
    }

    /// Stores the payload and records it as its source's latest, without publishing the event.
    async fn extract_quietly(&self, source: Source, payload: &str, trigger: Trigger) -> Extracted {
        extraction::extract_quietly(&self.stores, &self.env, source, payload.as_bytes(), trigger)
            .await
    }

    /// Publishes `event` again under a message id of its own: a delivery the stream does not
    /// take for a duplicate. Returns its sequence in the stream.
    async fn publish_again(&self, event: &Extracted, tag: &str) -> u64 {
        extraction::publish_again(&self.stores, event, tag).await
    }

    pub(crate) async fn next_transformed(&mut self) -> Transformed {
        let subject = subjects::transformed(&self.env);
        self.events.next_event(&subject, WAIT).await
    }

    pub(crate) async fn next_failed(&mut self) -> Failed {
        let subject = subjects::failed(&self.env, Stage::Transform);
        self.events.next_event(&subject, WAIT).await
    }

    async fn next_dead_letter(&self) -> DeadLetter {
        let subject = subjects::dead(Some(&self.env), Stage::Transform);
        let mut dead = EventLog::open(&self.stores.js, DEAD_STREAM, subject.clone()).await;
        dead.next_event(&subject, WAIT).await
    }

    /// Waits until the transformer's consumer has handled every extracted event stored so far:
    /// nothing left to deliver, nothing awaiting an ack or a redelivery.
    async fn wait_handled(&self) {
        self.wait_handled_of(&Source::US).await;
    }

    /// [`Harness::wait_handled`] for the extracted events of `sources`.
    pub(crate) async fn wait_handled_of(&self, sources: &[Source]) {
        let stream = self.stores.js.get_stream(ETL_STREAM).await.unwrap();
        let mut last = 0;
        for source in sources {
            let subject = subjects::extracted(&self.env, source);
            if let Ok(message) = stream.get_last_raw_message_by_subject(&subject).await {
                last = last.max(message.sequence);
            }
        }
        self.wait_handled_through(last).await;
        let durable = format!("transformer-{}", self.env);
        wait_consumed(&self.stores.js, ETL_STREAM, &durable, WAIT).await;
    }

    /// Waits until the transformer's consumer has settled every message up to stream sequence
    /// `sequence`: a consumer's counters alone may not count a message published a moment ago.
    async fn wait_handled_through(&self, sequence: u64) {
        let durable = format!("transformer-{}", self.env);
        let stream = self.stores.js.get_stream(ETL_STREAM).await.unwrap();
        let (stream, durable) = (&stream, durable.as_str());
        let what = format!("{durable} to settle message {sequence}");
        eventually(&what, WAIT, || async move {
            let info = stream.consumer_info(durable).await.ok()?;
            (info.ack_floor.stream_sequence >= sequence && info.num_ack_pending == 0).then_some(())
        })
        .await;
    }

    async fn stored_count(&self, subject: &str) -> usize {
        stored_count(&self.stores.js, ETL_STREAM, subject).await
    }

    async fn curated_info(
        &self,
        run_id: &shared::ids::RunId,
    ) -> async_nats::jetstream::object_store::ObjectInfo {
        let name = store::curated_object_name(&self.env, run_id);
        self.stores.curated.info(&name).await.unwrap()
    }

    pub(crate) async fn stop(self) {
        self.transformer.stop().await;
        test_support::clean_up(&self.env).await;
    }
}

fn spawn(config: Config) -> Running {
    Running::spawn("transformer", |shutdown| transformer::run(config, shutdown))
}

fn commit() -> Trigger {
    Trigger::new(TriggerKind::Commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_both_sources_then_stores_a_readable_dataset() {
    let mut h = Harness::start_with(&[], Clock::fixed(at(5))).await;
    let nyt = h.extract(Source::NYT, NYT, commit()).await;
    h.wait_handled().await;
    assert_eq!(
        h.stored_count(&subjects::transformed(&h.env)).await,
        0,
        "no run with one source"
    );
    assert_eq!(
        h.stored_count(&subjects::failed(&h.env, Stage::Transform))
            .await,
        0
    );
    let jhu = h.extract(Source::JHU, JHU, commit()).await;

    let jhu_message = h
        .events
        .next_on(&subjects::extracted(&h.env, &Source::JHU), WAIT)
        .await;
    let jhu_sequence = jhu_message.info().unwrap().stream_sequence;
    let event = h.next_transformed().await;
    let expected = dataset::transform(NYT.as_bytes(), JHU.as_bytes()).unwrap();
    assert_eq!(
        event.run_id,
        run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger)
    );
    assert_eq!(event.inputs, vec![nyt.input(), jhu.input()]);
    assert_eq!(event.order, RunOrder::of(&event.inputs, jhu_sequence));
    assert_eq!(event.rows, expected.rows.len() as u64);
    assert_eq!(event.first_date, expected.rows[0].date);
    assert_eq!(event.last_date, expected.rows.last().unwrap().date);
    assert_eq!(event.dropped, expected.dropped);
    assert_eq!(event.warnings, expected.warnings);
    let steps: Vec<&str> = event.timings.iter().map(|(s, _)| s.as_str()).collect();
    assert_eq!(steps, ["read", "transform", "parquet", "store"]);

    assert_eq!(
        event.object.name,
        store::curated_object_name(&h.env, &event.run_id)
    );
    let parquet = store::get_object(
        &h.stores.curated,
        &event.object,
        1 << 20,
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap();
    assert_eq!(dataset::from_parquet(&parquet).unwrap(), expected.rows);
    let info = h.curated_info(&event.run_id).await;
    assert_eq!(
        info.metadata[store::CURATED_STARTED_AT],
        jhu.fetched_at.to_rfc3339()
    );
    assert_eq!(
        info.metadata[store::CURATED_TRANSFORMED_AT],
        at(5).to_rfc3339(),
        "transformed_at comes from the injected clock"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_extracted_event_is_skipped() {
    let mut h = Harness::start(&[]).await;
    // A forced trigger makes the old event's run distinct, so running it again could not hide
    // behind the stream's de-duplication of a repeated run.
    let old = Trigger::forced(TriggerKind::Manual, TriggerId::new("old").unwrap());
    let old_nyt = h.extract(Source::NYT, NYT, old).await;
    h.wait_handled().await;
    h.extract(Source::JHU, JHU, commit()).await;
    let _first = h.next_transformed().await;
    let new_nyt = h.extract(Source::NYT, NYT_REVISED, commit()).await;
    let second = h.next_transformed().await;
    assert_eq!(second.inputs[0], new_nyt.input());

    // The old NYT event again (a redelivery), then a new JHU payload as a marker: events are
    // handled in order, so once the marker's run is out the old event has been handled.
    let _ = h.publish_again(&old_nyt, "redelivered").await;
    let jhu = h.extract(Source::JHU, JHU_NEXT, commit()).await;
    let third = h.next_transformed().await;
    assert_eq!(third.inputs, vec![new_nyt.input(), jhu.input()]);
    assert_eq!(
        h.stored_count(&subjects::transformed(&h.env)).await,
        3,
        "the stale event ran nothing"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_data_fails_the_transform_with_the_dataset_reason() {
    let mut h = Harness::start(&[]).await;
    let nyt = h.extract(Source::NYT, NYT_BAD, commit()).await;
    let jhu = h.extract(Source::JHU, JHU, commit()).await;

    let failed = h.next_failed().await;
    let expected = dataset::transform(NYT_BAD.as_bytes(), JHU.as_bytes()).unwrap_err();
    assert_eq!(failed.stage, Stage::Transform);
    assert_eq!(failed.kind, FailureKind::InvalidData);
    assert_eq!(failed.reason, expected.to_string());
    assert_eq!(
        failed.run_id,
        Some(run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger))
    );
    assert_eq!(failed.inputs, vec![nyt.input(), jhu.input()]);
    assert_eq!(failed.trigger, Some(jhu.trigger.clone()));
    h.wait_handled().await;
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 0);
    assert_eq!(
        stored_count(
            &h.stores.js,
            DEAD_STREAM,
            &subjects::dead(Some(&h.env), Stage::Transform)
        )
        .await,
        0,
        "bad upstream data is an answer, not a dead letter"
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_size_limit_fails_as_too_large() {
    let mut h = Harness::start(&[("MAX_PAYLOAD_BYTES", "100")]).await;
    let nyt = h.extract(Source::NYT, NYT, commit()).await;
    h.extract(Source::JHU, JHU, commit()).await; // 200+ bytes

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, FailureKind::TooLarge);
    assert!(
        failed.reason.starts_with("the jhu payload "),
        "{}",
        failed.reason
    );
    assert!(
        failed
            .reason
            .ends_with("is larger than the limit of 100 bytes"),
        "{}",
        failed.reason
    );
    assert_eq!(failed.inputs[0], nyt.input());
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_raw_object_is_reported_once_and_dead_lettered() {
    let mut h = Harness::start(&[]).await;
    let nyt = h.extract(Source::NYT, NYT, commit()).await;
    // The NYT event waits for JHU: only the JHU event runs (and fails), once.
    h.wait_handled().await;
    // Recorded and announced, but its object was never stored (or was removed since).
    let jhu = h.extraction(Source::JHU, JHU, commit());
    store::record_extracted(&h.stores, &jhu).await.unwrap();

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, FailureKind::MissingObject);
    assert!(
        failed.reason.contains(&jhu.object.name),
        "{}",
        failed.reason
    );
    assert_eq!(
        failed.run_id,
        Some(run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger))
    );
    assert_eq!(failed.inputs, vec![nyt.input(), jhu.input()]);
    let dead = h.next_dead_letter().await;
    assert_eq!(dead.kind, FailureKind::MissingObject);
    assert_eq!(dead.subject, subjects::extracted(&h.env, &Source::JHU));
    assert_eq!(dead.delivered, 1, "a missing object is not retried");

    h.wait_handled().await;
    let failures = h
        .stored_count(&subjects::failed(&h.env, Stage::Transform))
        .await;
    assert_eq!(failures, 1);
    let dead_letters = stored_count(
        &h.stores.js,
        DEAD_STREAM,
        &subjects::dead(Some(&h.env), Stage::Transform),
    )
    .await;
    assert_eq!(dead_letters, 1);
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_object_that_is_not_the_announced_payload_fails_as_corrupt_after_one_reread() {
    let mut h = Harness::start(&[]).await;
    h.extract(Source::NYT, NYT, commit()).await;
    h.wait_handled().await;
    let jhu = h.extraction(Source::JHU, JHU, commit());
    h.store_raw(&jhu, JHU_TAMPERED).await;
    store::record_extracted(&h.stores, &jhu).await.unwrap();

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, FailureKind::CorruptObject);
    assert!(
        failed.reason.contains(&jhu.object.name),
        "{}",
        failed.reason
    );
    assert!(
        failed.reason.contains(jhu.object.sha256.as_str()),
        "names the announced digest: {}",
        failed.reason
    );
    let dead = h.next_dead_letter().await;
    assert_eq!(dead.kind, FailureKind::CorruptObject);
    assert_eq!(dead.delivered, 2, "read once more, then given up on");
    h.wait_handled().await;
    assert_eq!(
        h.stored_count(&subjects::failed(&h.env, Stage::Transform))
            .await,
        1
    );
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_events_delivered_twice_at_once_make_one_curated_object_and_one_event() {
    let h = Harness::start(&[]).await;
    let nyt = h
        .extract_quietly(Source::NYT, NYT, Trigger::new(TriggerKind::Initial))
        .await;
    let jhu = h
        .extract_quietly(Source::JHU, JHU, Trigger::new(TriggerKind::Initial))
        .await;
    let run_id = run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger);
    let name = store::curated_object_name(&h.env, &run_id);
    // Every write of an object publishes its info on the bucket's meta subjects; a subscriber
    // sees each one, even those a later write rolls up.
    let client = h.stores.js.client();
    let mut writes = client
        .subscribe(format!("$O.{}.M.>", nats::CURATED_BUCKET))
        .await
        .unwrap();
    test_support::round_trip(&client).await;

    // Both sources' first events, each delivered twice (distinct message ids, so the stream keeps
    // all four), back to back.
    let mut last = 0;
    for round in ["first", "second"] {
        h.publish_again(&nyt, round).await;
        last = h.publish_again(&jhu, round).await;
    }
    h.wait_handled_through(last).await;

    assert_eq!(
        h.stored_count(&subjects::extracted(&h.env, &Source::NYT))
            .await
            + h.stored_count(&subjects::extracted(&h.env, &Source::JHU))
                .await,
        4,
        "four deliveries"
    );
    assert_eq!(
        h.stored_count(&subjects::transformed(&h.env)).await,
        1,
        "one transformed event"
    );
    // The writes reached this connection before the consumer's state did (one connection, in
    // order), so they are all buffered by now.
    let mut ours = 0;
    while let Some(Some(message)) = writes.next().now_or_never() {
        let info: serde_json::Value = serde_json::from_slice(&message.payload).unwrap();
        if info["name"] == name.as_str() {
            ours += 1;
        }
    }
    assert_eq!(ours, 1, "one write of {name}");
    assert_eq!(
        h.stored_count(&subjects::failed(&h.env, Stage::Transform))
            .await,
        0
    );
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runs_curated_object_is_never_rewritten() {
    let mut h = Harness::start_with(&[], Clock::fixed(at(1))).await;
    h.extract(Source::NYT, NYT, commit()).await;
    let jhu = h.extract(Source::JHU, JHU, commit()).await;
    let event = h.next_transformed().await;
    let first = h.curated_info(&event.run_id).await;

    // The same run again, by a transformer whose clock says another day: a rewrite would show
    // in the object's nuid and in its `transformed_at`.
    h.restart_with(Clock::fixed(at(2))).await;
    let again = h.publish_again(&jhu, "again").await;
    h.wait_handled_through(again).await;

    let after = h.curated_info(&event.run_id).await;
    assert_eq!(after.nuid, first.nuid);
    assert_eq!(after.modified, first.modified);
    assert_eq!(
        after.metadata[store::CURATED_TRANSFORMED_AT],
        at(1).to_rfc3339()
    );
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 1);
    // What the event promised is still what is stored.
    store::get_object(
        &h.stores.curated,
        &event.object,
        1 << 20,
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_foreign_object_under_a_runs_name_is_left_alone_and_fails_the_run() {
    let mut h = Harness::start(&[]).await;
    let nyt = h.extraction(Source::NYT, NYT, commit());
    let jhu = h.extraction(Source::JHU, JHU, commit());
    let run_id = run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger);
    let name = store::curated_object_name(&h.env, &run_id);
    store::put_object_once(
        &h.stores.curated,
        nats::CURATED_BUCKET,
        &name,
        b"not parquet",
        HashMap::new(),
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap();
    let before = h.curated_info(&run_id).await;
    for (event, payload) in [(&nyt, NYT), (&jhu, JHU)] {
        h.store_raw(event, payload).await;
        store::record_extracted(&h.stores, event).await.unwrap();
    }

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, FailureKind::CorruptObject);
    assert_eq!(failed.run_id, Some(run_id.clone()));
    assert!(failed.reason.contains(&name), "{}", failed.reason);
    h.wait_handled().await;
    assert_eq!(h.curated_info(&run_id).await.nuid, before.nuid);
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 0);
    h.stop().await;
}
