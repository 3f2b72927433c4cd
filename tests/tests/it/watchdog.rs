//! The watchdog: a stage never holds one message longer than its deadline without a result. A
//! handler that hangs is stopped at the deadline, its message retried a bounded number of times,
//! then reported and dead-lettered once, and the messages behind it go on; while the handler
//! works, progress acks keep the message from being delivered to anyone else, although the
//! server's ack wait is far shorter than the deadline.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use shared::consumer::{self, ConsumerSpec, Delivery, Stats};
use shared::events::{DeadLetter, Failed, FailureKind, SCHEMA_VERSION, Stage};
use shared::message::Event;
use shared::nats::{self, DEAD_STREAM, ETL_STREAM};
use shared::{Env, Shutdown, subjects};
use test_support::{EventLog, TestEnv, eventually, wait_consumed};

const DEADLINE: Duration = Duration::from_secs(2);
const ACK_WAIT: Duration = Duration::from_millis(600);
const MAX_DELIVER: i64 = 3;

/// A failure report of the extract stage: a message a notifier-like stage would consume.
fn report(env: &Env, cause: &str) -> Failed {
    Failed {
        dataset: shared::Dataset::US,
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        run_id: None,
        stage: Stage::Extract,
        kind: FailureKind::Unavailable,
        reason: cause.to_owned(),
        inputs: vec![],
        trigger: None,
        source: None,
        cause: Some(cause.to_owned()),
        failed_at: Utc::now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_handler_is_stopped_at_its_deadline_and_its_message_reported_without_blocking_the_next()
 {
    let test = TestEnv::new("watchdog").await;
    let env = test.env.clone();
    let spec = ConsumerSpec {
        ack_wait: ACK_WAIT,
        deadline: DEADLINE,
        max_deliver: MAX_DELIVER,
        ..ConsumerSpec::new(
            ETL_STREAM,
            format!("watchdog-{env}"),
            Stage::Notify,
            vec![subjects::failed(&env, Stage::Extract)],
        )
    };

    // Every time the handler is handed a message: which one, and when.
    let handled: Arc<Mutex<Vec<(String, Instant)>>> = Arc::default();
    let shutdown = Shutdown::new();
    let consumer = {
        let (js, spec, handled, shutdown) = (
            test.stores.js.clone(),
            spec.clone(),
            handled.clone(),
            shutdown.clone(),
        );
        tokio::spawn(async move {
            consumer::run(
                &js,
                &spec,
                Arc::new(Stats::default()),
                &shutdown,
                |delivery: Delivery| {
                    let handled = handled.clone();
                    async move {
                        let Event::Failed(failed) = delivery.event else {
                            panic!("only failure reports are consumed");
                        };
                        let cause = failed.cause.unwrap_or_default();
                        handled
                            .lock()
                            .unwrap()
                            .push((cause.clone(), Instant::now()));
                        if cause == "hangs" {
                            std::future::pending::<()>().await;
                        }
                        Ok(())
                    }
                },
            )
            .await
        })
    };

    let mut failures = EventLog::open(
        &test.stores.js,
        ETL_STREAM,
        subjects::failed(&env, Stage::Notify),
    )
    .await;
    let mut dead = EventLog::open(
        &test.stores.js,
        DEAD_STREAM,
        subjects::dead(Some(&env), Stage::Notify),
    )
    .await;
    let published = Instant::now();
    nats::publish(&test.stores.js, &report(&env, "hangs"))
        .await
        .expect("published");
    nats::publish(&test.stores.js, &report(&env, "behind"))
        .await
        .expect("published");

    // The hung message is given up on after its deliveries, each cut at the deadline, with the
    // retry delays between them: well within a minute.
    let bound = DEADLINE * MAX_DELIVER as u32 + Duration::from_secs(20);
    let given_up: Failed = failures
        .next_event(&subjects::failed(&env, Stage::Notify), bound)
        .await;
    assert_eq!(given_up.kind, FailureKind::Timeout, "{}", given_up.reason);
    assert!(
        given_up.reason.contains("deadline"),
        "the reason says why: {}",
        given_up.reason
    );
    let letter: DeadLetter = dead
        .next_event(&subjects::dead(Some(&env), Stage::Notify), bound)
        .await;
    assert_eq!(
        (letter.kind, letter.delivered),
        (FailureKind::Timeout, MAX_DELIVER as u64)
    );
    assert!(published.elapsed() < bound);

    // The message behind it was handled once the hung one was out of the way.
    eventually("the next message to be handled", bound, || {
        let handled = handled.clone();
        async move {
            let handled = handled.lock().unwrap();
            handled
                .iter()
                .any(|(cause, _)| cause == "behind")
                .then_some(())
        }
    })
    .await;
    wait_consumed(&test.stores.js, ETL_STREAM, &spec.durable, bound).await;

    // Each delivery of the hung message ran to its deadline, and there were exactly as many as
    // allowed: had the server taken the message back after its short ack wait, it would have
    // delivered it again while the handler was still at work, using up the deliveries sooner.
    let handled = handled.lock().unwrap().clone();
    let hung: Vec<Instant> = handled
        .iter()
        .filter(|(cause, _)| cause == "hangs")
        .map(|(_, at)| *at)
        .collect();
    assert_eq!(hung.len(), MAX_DELIVER as usize, "{handled:?}");
    for pair in hung.windows(2) {
        assert!(
            pair[1] - pair[0] >= DEADLINE,
            "a delivery began {:?} after the previous one, before its deadline",
            pair[1] - pair[0]
        );
    }
    assert_eq!(
        handled
            .iter()
            .filter(|(cause, _)| cause == "behind")
            .count(),
        1
    );
    // No second report of the same message.
    assert!(
        failures.next_within(Duration::from_secs(1)).await.is_none(),
        "reported once"
    );

    shutdown.trigger();
    consumer
        .await
        .expect("the consumer task ends")
        .expect("the consumer stops cleanly");
    test.clean_up().await;
}
