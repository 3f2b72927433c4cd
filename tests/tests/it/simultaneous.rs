//! Both sources' events arriving at the same instant — the first extraction of an env is the
//! common case — each make a run of the same inputs: the run is transformed into one curated
//! object, written once, loaded once and notified once, however the two deliveries interleave.

use std::collections::HashSet;

use futures::{FutureExt, StreamExt};
use shared::Source;
use shared::events::{RunStatus, Stage, Trigger, TriggerKind};
use shared::nats::{CURATED_BUCKET, ETL_STREAM};
use shared::{store, subjects};
use test_support::extraction::{extract_quietly, publish_again};
use test_support::{Pipeline, Stages, TestEnv, stored_count};

const ROUNDS: usize = 100;

/// The NYT file and the JHU file with the first `days` days of a made-up series.
fn versions(days: usize) -> (String, String) {
    let mut nyt = String::from("date,cases,deaths\n");
    let mut jhu =
        String::from("Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n");
    let start = chrono::NaiveDate::from_ymd_opt(2020, 3, 1).expect("a date");
    for day in 0..days {
        let date = start + chrono::Days::new(day as u64);
        let (cases, deaths) = (100 * (day + 1), day);
        nyt.push_str(&format!("{date},{cases},{deaths}\n"));
        jhu.push_str(&format!(
            "{date},US,,37.0902,-95.7129,{cases},{day},{deaths}\n"
        ));
    }
    (nyt, jhu)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn both_sources_at_the_same_instant_make_one_write_one_load_one_notification_every_time() {
    let test = TestEnv::new("instant").await;
    let env = &test.env;
    let mut vars = test.vars();
    // A hundred emails would prove nothing more than the notifications do.
    vars.set(format!("EMAIL_TO_{}", env.as_str().to_uppercase()), "");
    let mut notifications = test.notifications().await;
    // Every write of an object publishes its info on the bucket's meta subjects: a subscriber sees
    // each one, even those a later write would roll up.
    let client = test.stores.js.client();
    let mut writes = client
        .subscribe(format!("$O.{CURATED_BUCKET}.M.>"))
        .await
        .expect("a subscription to the curated bucket's writes");
    test_support::round_trip(&client).await;
    let pipeline = Pipeline::start(&vars, Stages::AfterExtract).expect("the services start");

    let mut written = Vec::new();
    let mut run_ids = HashSet::new();
    for round in 0..ROUNDS {
        // Both new payloads are stored and recorded as their source's latest, then both events
        // are published at once: whichever the transformer takes first finds the other's payload
        // and makes the run; the second makes the same run again.
        let (nyt, jhu) = versions(3 + round);
        let trigger = || Trigger::new(TriggerKind::Commit);
        let nyt = extract_quietly(&test.stores, env, Source::NYT, nyt.as_bytes(), trigger()).await;
        let jhu = extract_quietly(&test.stores, env, Source::JHU, jhu.as_bytes(), trigger()).await;
        let tag = format!("round-{round}");
        futures::join!(
            publish_again(&test.stores, &nyt, &tag),
            publish_again(&test.stores, &jhu, &tag)
        );

        let notification = notifications.next(&format!("round {round}'s run")).await;
        assert_eq!(
            notification.status,
            RunStatus::Succeeded,
            "round {round}: {}",
            notification.text
        );
        let new_days = if round == 0 { 3 } else { 1 };
        assert_eq!(notification.counts.inserted, new_days, "round {round}");
        assert!(
            run_ids.insert(notification.run_id.clone()),
            "round {round}: run {} notified twice",
            notification.run_id
        );
        let loaded = stored_count(&test.stores.js, ETL_STREAM, &subjects::loaded(env)).await;
        assert_eq!(loaded, round + 1, "round {round}: one load per run");

        // The curated object was written (and its write announced) before the run was loaded.
        while let Some(Some(message)) = writes.next().now_or_never() {
            let info: serde_json::Value =
                serde_json::from_slice(&message.payload).expect("object info");
            if let Some(name) = info["name"].as_str() {
                written.push(name.to_owned());
            }
        }
        let name = store::curated_object_name(env, &notification.run_id);
        let writes_of_run = written.iter().filter(|w| **w == name.as_str()).count();
        assert_eq!(writes_of_run, 1, "round {round}: {name} written once");
    }

    notifications
        .assert_quiet(std::time::Duration::from_secs(1))
        .await;
    let ours: Vec<&String> = written
        .iter()
        .filter(|name| name.starts_with(&format!("{env}/")))
        .collect();
    assert_eq!(ours.len(), ROUNDS, "one curated write per run");
    for (subject, expected) in [
        (subjects::transformed(env), ROUNDS),
        (subjects::failed(env, Stage::Transform), 0),
        (subjects::failed(env, Stage::Load), 0),
    ] {
        let stored = stored_count(&test.stores.js, ETL_STREAM, &subject).await;
        assert_eq!(stored, expected, "{subject}");
    }
    pipeline.stop().await;
    test.clean_up().await;
}
