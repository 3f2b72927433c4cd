//! The real transformer, started in-process for an env of its own and driven through NATS:
//! raw payloads in `etl-raw`, the latest extractions in KV, events on `etl.<env>.extracted.*`.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use shared::events::{
    Extracted, Failed, SCHEMA_VERSION, Stage, Transformed, Trigger, TriggerKind, UpstreamRef,
};
use shared::hash::sha256_hex;
use shared::nats::{self, ETL_STREAM, Stores};
use shared::{Env, Source, run_id, store, subjects};
use test_support::{EventLog, Running, TestEnv, stored_count, wait_consumed};

// The tests call polars (to compute what to expect), which uses `block_in_place`: that needs
// the multi-threaded runtime, as the services' `main` has.

const WAIT: Duration = Duration::from_secs(60);

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
const JHU_NEXT: &str = "Date,Country/Region,Province/State,Recovered\n2020-01-22,US,,0\n2020-01-23,US,,1\n2020-01-24,US,,1\n";

struct Harness {
    env: Env,
    stores: Stores,
    /// Everything the ETL stream stores for the env, in order (so never a de-duplicated publish).
    events: EventLog,
    transformer: Running,
}

impl Harness {
    async fn start(extra: &[(&str, &str)]) -> Self {
        let test = TestEnv::new("tf").await;
        let events = test.events().await;
        let mut vars = test.vars();
        for (name, value) in extra {
            vars.set(*name, *value);
        }
        let config = transformer::Config::from_vars(&vars).unwrap();
        let transformer =
            Running::spawn("transformer", |shutdown| transformer::run(config, shutdown));
        let TestEnv { env, stores } = test;
        Self {
            env,
            stores,
            events,
            transformer,
        }
    }

    /// Does what the extractor does: stores the payload, records it as the source's latest in KV
    /// and publishes the extracted event.
    async fn extract(&mut self, source: Source, payload: &str, trigger: Trigger) -> Extracted {
        let sha = sha256_hex(payload.as_bytes());
        let name = store::raw_object_name(&self.env, source, &sha);
        let object = store::put_object(
            &self.stores.raw,
            nats::RAW_BUCKET,
            &name,
            payload.as_bytes(),
            HashMap::new(),
        )
        .await
        .unwrap();
        let event = Extracted {
            schema_version: SCHEMA_VERSION,
            env: self.env.clone(),
            source,
            upstream: UpstreamRef {
                repo: format!("{source}/repo"),
                path: format!("{source}.csv"),
                commit_sha: format!("commit-{}", &sha[..8]),
                commit_time: Utc::now(),
                covered_commits: vec![],
            },
            object,
            trigger,
            fetched_at: Utc::now(),
        };
        store::record_extracted(&self.stores, &event).await.unwrap();
        event
    }

    async fn next_transformed(&mut self) -> Transformed {
        let subject = subjects::transformed(&self.env);
        self.events.next_event(&subject, WAIT).await
    }

    async fn next_failed(&mut self) -> Failed {
        let subject = subjects::failed(&self.env, Stage::Transform);
        self.events.next_event(&subject, WAIT).await
    }

    /// Waits until the transformer's consumer has handled every event stored so far.
    async fn wait_handled(&self) {
        let durable = format!("transformer-{}", self.env);
        wait_consumed(&self.stores.js, ETL_STREAM, &durable, WAIT).await;
    }

    async fn stored_count(&self, subject: &str) -> usize {
        stored_count(&self.stores.js, ETL_STREAM, subject).await
    }

    async fn stop(self) {
        self.transformer.stop().await;
        test_support::clean_up(&self.env).await;
    }
}

fn commit() -> Trigger {
    Trigger::new(TriggerKind::Commit)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_waits_for_both_sources_then_stores_a_readable_dataset() {
    let mut h = Harness::start(&[]).await;
    let nyt = h.extract(Source::Nyt, NYT, commit()).await;
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
    let jhu = h.extract(Source::Jhu, JHU, commit()).await;

    let event = h.next_transformed().await;
    let expected = dataset::transform(NYT.as_bytes(), JHU.as_bytes()).unwrap();
    assert_eq!(
        event.run_id,
        run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger)
    );
    assert_eq!(event.inputs, vec![nyt.input(), jhu.input()]);
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
    let parquet = store::get_object(&h.stores.curated, &event.object.name, 1 << 20)
        .await
        .unwrap();
    assert_eq!(dataset::from_parquet(&parquet).unwrap(), expected.rows);
    let info = h.stores.curated.info(&event.object.name).await.unwrap();
    assert_eq!(
        info.metadata[store::CURATED_STARTED_AT],
        jhu.fetched_at.to_rfc3339()
    );
    assert!(info.metadata.contains_key(store::CURATED_TRANSFORMED_AT));
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_extracted_event_is_skipped() {
    let mut h = Harness::start(&[]).await;
    // A forced trigger makes the old event's run distinct, so running it again could not hide
    // behind the stream's de-duplication of a repeated run.
    let old_nyt = h
        .extract(
            Source::Nyt,
            NYT,
            Trigger::forced(TriggerKind::Manual, "old"),
        )
        .await;
    h.wait_handled().await;
    h.extract(Source::Jhu, JHU, commit()).await;
    let first = h.next_transformed().await;
    let new_nyt = h.extract(Source::Nyt, NYT_REVISED, commit()).await;
    let second = h.next_transformed().await;
    assert_eq!(second.inputs[0], new_nyt.input());

    // The old NYT event again (a redelivery), then a new JHU payload as a marker: events are
    // handled in order, so once the marker's run is out the old event has been handled.
    // Unique per env: the stream remembers message ids for an hour.
    let msg_id = format!("test:{}:redelivered", h.env);
    nats::publish_event(
        &h.stores.js,
        &subjects::extracted(&h.env, Source::Nyt),
        &msg_id,
        &old_nyt,
    )
    .await
    .unwrap();
    let jhu = h.extract(Source::Jhu, JHU_NEXT, commit()).await;
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
    let nyt = h.extract(Source::Nyt, NYT_BAD, commit()).await;
    let jhu = h.extract(Source::Jhu, JHU, commit()).await;

    let failed = h.next_failed().await;
    let expected = dataset::transform(NYT_BAD.as_bytes(), JHU.as_bytes()).unwrap_err();
    assert_eq!(failed.stage, Stage::Transform);
    assert_eq!(failed.kind, expected.kind());
    assert_eq!(failed.reason, expected.to_string());
    assert_eq!(
        failed.run_id,
        Some(run_id::of_inputs(&h.env, &nyt, &jhu, &jhu.trigger))
    );
    assert_eq!(failed.inputs, vec![nyt.input(), jhu.input()]);
    assert_eq!(failed.trigger, Some(jhu.trigger.clone()));
    assert_eq!(h.stored_count(&subjects::transformed(&h.env)).await, 0);
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payload_over_the_size_limit_fails_as_too_large() {
    let mut h = Harness::start(&[("MAX_PAYLOAD_BYTES", "100")]).await;
    let nyt = h.extract(Source::Nyt, NYT, commit()).await;
    h.extract(Source::Jhu, JHU, commit()).await; // 200+ bytes

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, "too_large");
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
