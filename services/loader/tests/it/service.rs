//! The real loader, started in-process for an env of its own, driven through NATS with real
//! Parquet datasets in `etl-curated`, against the real PostgreSQL.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::support::*;
use dataset::DailyRow;
use shared::events::{
    Counts, DeadLetter, Failed, FailureKind, Loaded, SCHEMA_VERSION, Stage, Transformed, Trigger,
    TriggerKind,
};
use shared::ids::RunId;
use shared::nats::{self, CURATED_BUCKET, DEAD_STREAM, ETL_STREAM, Stores};
use shared::{Dataset, Env, Source, store, subjects};
use test_support::{EventLog, Running, TestEnv, eventually, stored_count, wait_consumed};

const WAIT: Duration = Duration::from_secs(30);

pub(crate) struct Harness {
    pub(crate) env: Env,
    pub(crate) stores: Stores,
    /// Everything the ETL stream stores for the env, in order (so never a de-duplicated publish).
    events: EventLog,
    /// What the DEAD stream stores for the env.
    dead: EventLog,
    /// The loader's consumer and the deadline it gives each message.
    durable: String,
    deadline: Duration,
    loader: Running,
}

impl Harness {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[], |_| {}).await
    }

    /// Starts the loader with `vars` added to the env's, and its configuration then `adjust`ed
    /// (the test seams).
    pub(crate) async fn start_with(
        vars: &[(&str, &str)],
        adjust: impl FnOnce(&mut loader::Config),
    ) -> Self {
        let test = TestEnv::new("load").await;
        let events = test.events().await;
        let dead = EventLog::open(
            &test.stores.js,
            DEAD_STREAM,
            format!("etl.{}.dead.>", test.env),
        )
        .await;
        let mut all = test.vars_for(test_support::stack::Identity::Loader);
        for (name, value) in vars {
            all.set(*name, *value);
        }
        let mut config = loader::Config::from_vars(&all).unwrap();
        adjust(&mut config);
        let spec = loader::consumer::spec(&config.scope, &config.session, config.read_deadline);
        let loader = Running::spawn("loader", |shutdown| loader::run(config, shutdown));
        let TestEnv { env, stores } = test;
        Self {
            env,
            stores,
            events,
            dead,
            durable: spec.durable,
            deadline: spec.deadline,
            loader,
        }
    }

    /// Stores `rows` as the run's Parquet dataset and publishes its transformed event.
    async fn publish_run(&mut self, tag: &str, rows: &[DailyRow]) -> Transformed {
        let event = self.store_run(tag, rows).await;
        self.publish_transformed(&event, "first").await;
        event
    }

    /// Stores `rows` as the run's Parquet dataset; returns the run's transformed event.
    pub(crate) async fn store_run(&self, tag: &str, rows: &[DailyRow]) -> Transformed {
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
            CURATED_BUCKET,
            &name,
            &bytes,
            metadata,
        )
        .await
        .unwrap();
        Transformed {
            object,
            ..placeholder
        }
    }

    /// Publishes `event` under a message id of its own, as a redelivery would arrive.
    pub(crate) async fn publish_transformed(&self, event: &Transformed, delivery: &str) {
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

    pub(crate) async fn next_loaded(&mut self) -> Loaded {
        let subject = subjects::loaded(&self.env);
        self.events.next_event(&subject, WAIT).await
    }

    pub(crate) async fn next_failed_load(&mut self) -> Failed {
        let subject = subjects::failed(&self.env, Stage::Load);
        self.events.next_event(&subject, WAIT).await
    }

    async fn next_dead_letter(&mut self) -> DeadLetter {
        let subject = subjects::dead(Some(&self.env), Stage::Load);
        self.dead.next_event(&subject, WAIT).await
    }

    /// The stream sequence of the next transformed event the stream stores.
    async fn next_transformed_sequence(&mut self) -> u64 {
        let subject = subjects::transformed(&self.env);
        let message = self.events.next_on(&subject, WAIT).await;
        message.info().unwrap().stream_sequence
    }

    pub(crate) async fn stored(&self, subject: &str) -> usize {
        stored_count(&self.stores.js, ETL_STREAM, subject).await
    }

    /// Waits until the loader has settled every message stored so far.
    pub(crate) async fn settled(&self) {
        wait_consumed(&self.stores.js, ETL_STREAM, &self.durable, WAIT).await;
    }

    /// Waits until `run_id`'s `etl_runs` row has `status`; returns its kind and error.
    pub(crate) async fn run_row(
        &self,
        run_id: &RunId,
        status: &str,
    ) -> (Option<String>, Option<String>) {
        let client = connect().await;
        let sql = format!(
            "SELECT status, kind, error FROM \"{}\".etl_runs WHERE run_id = $1",
            self.env
        );
        eventually(
            &format!("run {run_id} recorded as {status}"),
            WAIT,
            || async {
                let row = client.query_opt(&sql, &[&run_id.as_str()]).await.unwrap()?;
                (row.get::<_, String>(0) == status).then(|| (row.get(1), row.get(2)))
            },
        )
        .await
    }

    pub(crate) async fn stop(self) {
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
        h.stored(&subjects::loaded(&h.env)).await,
        2,
        "one loaded event per run"
    );
    assert_eq!(h.stored(&subjects::failed(&h.env, Stage::Load)).await, 0);

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
        dataset: Dataset::US,
        run_id: Some(RunId::new("transform-failure").unwrap()),
        stage: Stage::Transform,
        kind: FailureKind::InvalidData,
        reason: "nyt line 3: `x` is not a count".into(),
        inputs: vec![
            input(&h.env, Source::NYT, "n"),
            input(&h.env, Source::JHU, "j"),
        ],
        trigger: Some(Trigger::new(TriggerKind::Commit)),
        source: None,
        cause: None,
        failed_at: chrono::Utc::now(),
    };
    nats::publish(&h.stores.js, &failed).await.unwrap();

    // A run that would remove half the table fails as suspicious, after the failure above. The
    // loader announces that answer itself (it handled the message), and records it once though
    // its own report comes back to it.
    let short = h.publish_run("b", &rows(1, &growing(10))).await;
    let reported = h.next_failed_load().await;
    assert_eq!(reported.run_id.as_ref(), Some(&short.run_id));
    assert_eq!(
        (reported.stage, reported.kind),
        (Stage::Load, FailureKind::SuspiciousRemoval)
    );
    assert_eq!(reported.inputs, short.inputs);
    h.settled().await;
    let dead = stored_count(&h.stores.js, DEAD_STREAM, &format!("etl.{}.dead.>", h.env)).await;
    assert_eq!(dead, 0, "bad upstream data is an answer, not a dead letter");

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
                short.run_id.to_string(),
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

#[tokio::test]
async fn a_run_arriving_after_a_later_one_succeeded_is_recorded_as_superseded_not_announced() {
    let mut h = Harness::start().await;
    // Made first, so its order comes first; published (delivered) last, as after retries.
    let earlier = h.store_run("earlier", &rows(1, &growing(5))).await;
    let later = h.publish_run("later", &rows(1, &growing(6))).await;
    assert!(earlier.order < later.order);
    assert_eq!(h.next_loaded().await.run_id, later.run_id);
    let client = connect().await;
    let before = snapshot(&client, &h.env).await;

    h.publish_transformed(&earlier, "late").await;
    let (kind, error) = h.run_row(&earlier.run_id, "superseded").await;
    assert_eq!(kind, None, "superseded is not a failure");
    assert!(error.unwrap().contains(later.run_id.as_str()));
    h.settled().await;
    assert_eq!(
        snapshot(&client, &h.env).await,
        before,
        "older data never overwrites newer"
    );
    assert_eq!(
        h.stored(&subjects::loaded(&h.env)).await,
        1,
        "nothing announced"
    );
    assert_eq!(h.stored(&subjects::failed(&h.env, Stage::Load)).await, 0);
    h.stop().await;
}

/// The loader with a pause between a curated object's metadata and its content.
async fn paused(read_deadline: Duration) -> (Harness, Arc<loader::curated::ReadPause>) {
    let pause = loader::curated::ReadPause::armed();
    let seam = pause.clone();
    let h = Harness::start_with(&[], move |config| {
        config.read_pause = Some(seam);
        config.read_deadline = read_deadline;
    })
    .await;
    (h, pause)
}

async fn reached(pause: &loader::curated::ReadPause) {
    tokio::time::timeout(WAIT, pause.reached())
        .await
        .expect("the loader reads the curated object");
}

/// After a run was given up on, the next run loads and is announced.
async fn next_run_loads(h: &mut Harness) {
    let next = h.publish_run("next", &rows(1, &growing(4))).await;
    assert_eq!(h.next_loaded().await.run_id, next.run_id);
}

#[tokio::test]
async fn a_curated_object_deleted_while_the_loader_reads_it_is_reported_and_dead_lettered() {
    let (mut h, pause) = paused(loader::curated::READ_DEADLINE).await;
    let run = h.publish_run("a", &rows(1, &growing(5))).await;
    let sequence = h.next_transformed_sequence().await;
    reached(&pause).await;
    h.stores.curated.delete(&run.object.name).await.unwrap();
    pause.disarm();
    let released = Instant::now();
    pause.release();

    let failed = h.next_failed_load().await;
    assert!(
        released.elapsed() < h.deadline,
        "reported within the message's deadline"
    );
    assert_eq!(failed.run_id.as_ref(), Some(&run.run_id));
    assert_eq!(failed.kind, FailureKind::MissingObject);
    assert_eq!(failed.cause, Some(format!("message:{sequence}")));
    assert!(
        failed.reason.contains(&run.object.name),
        "{}",
        failed.reason
    );
    let dead = h.next_dead_letter().await;
    assert_eq!(
        (dead.kind, dead.stream_sequence, dead.subject.as_str()),
        (
            FailureKind::MissingObject,
            sequence,
            subjects::transformed(&h.env).as_str()
        )
    );
    // The settle step's report comes back to the loader, which records it as the run's failure.
    let (kind, _) = h.run_row(&run.run_id, "failed").await;
    assert_eq!(kind.as_deref(), Some("missing_object"));

    next_run_loads(&mut h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_curated_object_replaced_while_the_loader_reads_it_is_read_again_then_reported_as_corrupt()
 {
    let (mut h, pause) = paused(loader::curated::READ_DEADLINE).await;
    let run = h.publish_run("a", &rows(1, &growing(5))).await;
    reached(&pause).await;
    // Another writer replaces it in place (the store's own put, which the pipeline never does).
    let other = dataset::to_parquet(&rows(1, &growing(9))).unwrap();
    h.stores
        .curated
        .put(run.object.name.as_str(), &mut other.as_slice())
        .await
        .unwrap();
    pause.disarm();
    let released = Instant::now();
    pause.release();

    // Not the announced bytes: read once more (a transfer may break), then given up on.
    let failed = h.next_failed_load().await;
    assert!(released.elapsed() < h.deadline * 2);
    assert_eq!(failed.run_id.as_ref(), Some(&run.run_id));
    assert_eq!(failed.kind, FailureKind::CorruptObject);
    let dead = h.next_dead_letter().await;
    assert_eq!((dead.kind, dead.delivered), (FailureKind::CorruptObject, 2));
    let client = connect().await;
    let tables = client
        .query_one(&format!("SELECT count(*) FROM \"{}\".us_daily", h.env), &[])
        .await
        .unwrap()
        .get::<_, i64>(0);
    assert_eq!(tables, 0, "nothing of the replaced object was loaded");
    h.run_row(&run.run_id, "failed").await;

    next_run_loads(&mut h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_read_whose_chunks_vanish_times_out_is_retried_and_then_reported() {
    const READ_DEADLINE: Duration = Duration::from_secs(2);
    let (mut h, pause) = paused(READ_DEADLINE).await;
    let run = h.publish_run("a", &rows(1, &growing(5))).await;
    reached(&pause).await;
    // The object's chunks go while its info stays: the store's reader would wait for them for
    // ever.
    let info = h.stores.curated.info(&run.object.name).await.unwrap();
    let chunks = format!("$O.{CURATED_BUCKET}.C.{}", info.nuid);
    h.stores
        .js
        .get_stream(format!("OBJ_{CURATED_BUCKET}"))
        .await
        .unwrap()
        .purge()
        .filter(chunks)
        .await
        .unwrap();
    let released = Instant::now();
    pause.release();

    // The read gives up at its deadline and the message comes again: the loader is back at the
    // pause, with nothing reported yet.
    reached(&pause).await;
    let waited = released.elapsed();
    assert!(
        waited >= READ_DEADLINE && waited < READ_DEADLINE + WAIT,
        "retried after {waited:?}"
    );
    assert_eq!(h.stored(&subjects::failed(&h.env, Stage::Load)).await, 0);

    // Meanwhile the object was cleaned up: given up on at once.
    h.stores.curated.delete(&run.object.name).await.unwrap();
    pause.disarm();
    pause.release();
    let failed = h.next_failed_load().await;
    assert_eq!(failed.kind, FailureKind::MissingObject);
    let dead = h.next_dead_letter().await;
    assert_eq!((dead.kind, dead.delivered), (FailureKind::MissingObject, 2));

    next_run_loads(&mut h).await;
    h.stop().await;
}

#[tokio::test]
async fn a_load_behind_a_held_table_lock_is_retried_and_announced_once_the_lock_is_gone() {
    let test_lock_timeout = "300ms";
    let mut h = Harness::start_with(&[("DB_LOCK_TIMEOUT", test_lock_timeout)], |_| {}).await;
    // The schema as the loader makes it, so the lock can be taken before the run arrives.
    let _ = test_support::migrate(&h.env).await;
    let mut holder = connect().await;
    let hold = holder.transaction().await.unwrap();
    hold.batch_execute(&format!(
        "LOCK TABLE \"{}\".us_daily IN ACCESS EXCLUSIVE MODE",
        h.env
    ))
    .await
    .unwrap();

    let run = h.publish_run("a", &rows(1, &growing(5))).await;
    // The load fails at the lock timeout, is retried, and fails again while the lock is held.
    let js = h.stores.js.clone();
    let durable = h.durable.clone();
    let stream = js.get_stream(ETL_STREAM).await.unwrap();
    eventually("the run to be delivered again", WAIT, || async {
        let info = stream.consumer_info(&durable).await.ok()?;
        (info.num_redelivered > 0).then_some(())
    })
    .await;
    let client = connect().await;
    let recorded: i64 = client
        .query_one(&format!("SELECT count(*) FROM \"{}\".etl_runs", h.env), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(recorded, 0, "nothing committed while the lock is held");
    assert_eq!(h.stored(&subjects::loaded(&h.env)).await, 0);

    hold.rollback().await.unwrap();
    let loaded = h.next_loaded().await;
    assert_eq!(
        (loaded.run_id.clone(), loaded.counts.inserted),
        (run.run_id.clone(), 5)
    );
    h.settled().await;
    assert_eq!(
        h.stored(&subjects::loaded(&h.env)).await,
        1,
        "exactly one announcement"
    );
    assert_eq!(
        h.stored(&subjects::failed(&h.env, Stage::Load)).await,
        0,
        "a retried lock wait is no failure"
    );
    h.run_row(&run.run_id, "succeeded").await;
    h.stop().await;
}
