//! The real loader, started in-process for an env of its own, driven through NATS with real
//! Parquet datasets in `etl-curated`, against the real PostgreSQL.

use std::collections::HashMap;
use std::time::Duration;

use crate::support::*;
use dataset::DailyRow;
use shared::events::{
    Counts, Failed, Loaded, SCHEMA_VERSION, Stage, Transformed, Trigger, TriggerKind,
};
use shared::nats::{self, ETL_STREAM, Stores};
use shared::{Env, Source, store, subjects};
use test_support::{EventLog, Running, TestEnv, stored_count};

const WAIT: Duration = Duration::from_secs(30);

struct Harness {
    env: Env,
    stores: Stores,
    /// Everything the ETL stream stores for the env, in order (so never a de-duplicated publish).
    events: EventLog,
    loader: Running,
}

impl Harness {
    async fn start() -> Self {
        let test = TestEnv::new("load").await;
        let events = test.events().await;
        let config = loader::Config::from_vars(&test.vars()).unwrap();
        let loader = Running::spawn("loader", |shutdown| loader::run(config, shutdown));
        let TestEnv { env, stores } = test;
        Self {
            env,
            stores,
            events,
            loader,
        }
    }

    /// Stores `rows` as the run's Parquet dataset and publishes its transformed event.
    async fn publish_run(&mut self, tag: &str, rows: &[DailyRow]) -> Transformed {
        let bytes = dataset::to_parquet(rows).unwrap();
        let placeholder = transformed(&self.env, tag, rows, no_object(&self.env));
        let name = store::curated_object_name(&self.env, &placeholder.run_id);
        let now = chrono::Utc::now().to_rfc3339();
        let metadata = HashMap::from([
            (store::CURATED_STARTED_AT.to_owned(), now.clone()),
            (store::CURATED_TRANSFORMED_AT.to_owned(), now),
        ]);
        let object = store::put_object(
            &self.stores.curated,
            nats::CURATED_BUCKET,
            &name,
            &bytes,
            metadata,
        )
        .await
        .unwrap();
        let event = Transformed {
            object,
            ..placeholder
        };
        self.publish_transformed(&event, "first").await;
        event
    }

    /// Publishes `event` under a message id of its own, as a redelivery would arrive.
    async fn publish_transformed(&self, event: &Transformed, delivery: &str) {
        let msg_id = format!("test:{}:{delivery}", event.run_id);
        nats::publish_event(
            &self.stores.js,
            &subjects::transformed(&self.env),
            &msg_id,
            event,
        )
        .await
        .unwrap();
    }

    async fn next_loaded(&mut self) -> Loaded {
        let subject = subjects::loaded(&self.env);
        self.events.next_event(&subject, WAIT).await
    }

    async fn stop(self) {
        self.loader.stop().await;
        test_support::clean_up(&self.env).await;
    }
}

#[tokio::test]
async fn a_run_is_loaded_and_announced_once_even_when_delivered_twice() {
    let mut h = Harness::start().await;
    let first = h.publish_run("a", &rows(1, &growing(6))).await;
    let loaded = h.next_loaded().await;
    assert_eq!(loaded.run_id, first.run_id);
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 6,
            updated: 0,
            unchanged: 0,
            removed: 0,
            revised: 0
        }
    );
    assert_eq!(
        (loaded.first_date, loaded.last_date, loaded.rows),
        (first.first_date, first.last_date, 6)
    );
    assert_eq!(loaded.dropped, first.dropped);
    assert!(
        loaded.timings.iter().any(|(step, _)| step == "load.read"),
        "{:?}",
        loaded.timings
    );

    // The same event again (a redelivery), then a new run as a marker: the consumer handles
    // messages in order, so once the marker is loaded the duplicate has been handled.
    h.publish_transformed(&first, "again").await;
    let mut next = rows(1, &growing(7));
    next[3].cases += 5;
    let next = with_deltas(&next);
    let marker = h.publish_run("b", &next).await;
    let loaded = h.next_loaded().await;
    assert_eq!(
        loaded.run_id, marker.run_id,
        "the duplicate produced no new event"
    );
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 1,
            updated: 2,
            unchanged: 4,
            removed: 0,
            revised: 1
        }
    );
    assert_eq!(
        stored_count(&h.stores.js, ETL_STREAM, &subjects::loaded(&h.env)).await,
        2,
        "one loaded event per run"
    );
    assert_eq!(
        stored_count(&h.stores.js, ETL_STREAM, &subjects::failed(&h.env, Stage::Load)).await,
        0
    );

    let client = connect().await;
    assert_eq!(
        loader::db::stored_rows(&client, &h.env).await.unwrap(),
        next
    );
    let runs: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{}\".etl_runs", h.env), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(runs, 2);
    h.stop().await;
}

#[tokio::test]
async fn failures_are_recorded_and_leave_the_table_untouched() {
    let mut h = Harness::start().await;
    h.publish_run("a", &rows(1, &growing(20))).await;
    h.next_loaded().await;
    let client = connect().await;
    let before = snapshot(&client, &h.env).await;

    // A failure of an earlier stage is recorded under its id.
    let failed = Failed {
        schema_version: SCHEMA_VERSION,
        env: h.env.clone(),
        run_id: Some("transform-failure".into()),
        stage: Stage::Transform,
        kind: "invalid_data".into(),
        reason: "nyt line 3: `x` is not a count".into(),
        inputs: vec![input(Source::Nyt, "n"), input(Source::Jhu, "j")],
        trigger: Some(Trigger::new(TriggerKind::Commit)),
        source: None,
        failed_at: chrono::Utc::now(),
    };
    let subject = subjects::failed(&h.env, Stage::Transform);
    // Message ids must be unique per env: the stream remembers them for an hour.
    let msg_id = format!("test:{}:failed", h.env);
    nats::publish_event(&h.stores.js, &subject, &msg_id, &failed)
        .await
        .unwrap();

    // A run that would remove half the table fails as suspicious, after the failure above.
    let short = h.publish_run("b", &rows(1, &growing(10))).await;
    let reported: Failed =
        h.events.next_event(&subjects::failed(&h.env, Stage::Load), WAIT).await;
    assert_eq!(reported.run_id.as_deref(), Some(short.run_id.as_str()));
    assert_eq!(
        (reported.stage, reported.kind.as_str()),
        (Stage::Load, "suspicious_removal")
    );
    assert_eq!(reported.inputs, short.inputs);

    assert_eq!(snapshot(&client, &h.env).await, before);
    let rows = client
        .query(&format!("SELECT run_id, stage, kind, error FROM \"{}\".etl_runs WHERE status = 'failed' ORDER BY stage", h.env), &[])
        .await
        .unwrap();
    let recorded: Vec<(String, String, String, String)> = rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3)))
        .collect();
    assert_eq!(
        recorded,
        vec![
            (
                short.run_id.clone(),
                "load".to_owned(),
                "suspicious_removal".to_owned(),
                reported.reason.clone()
            ),
            (
                "transform-failure".to_owned(),
                "transform".to_owned(),
                "invalid_data".to_owned(),
                failed.reason.clone()
            ),
        ]
    );
    h.stop().await;
}
