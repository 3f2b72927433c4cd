//! Runs are ordered by what they contain (the upstream commit time, then the extraction's place
//! in the stream), never by a host's clock: two transformers whose clocks disagree still load the
//! newer upstream data.

use std::time::Duration;

use chrono::Utc;
use etl_tests::fake_github::FakeGithub;
use shared::config::Vars;
use shared::events::RunStatus;
use test_support::{Running, TestEnv};
use transformer::Clock;

use crate::support::{pipeline_vars, stored_values, upstream_commits};

const NYT_V1: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,150,3\n";
const JHU_V1: &str = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,37.0902,-95.7129,100,5,2\n\
2020-03-02,US,,37.0902,-95.7129,150,7,3\n";
/// Version 2: NYT revises 2020-03-02 and both add 2020-03-03.
const NYT_V2: &str = "date,cases,deaths\n2020-03-01,100,2\n2020-03-02,155,3\n2020-03-03,210,5\n";
const JHU_V2: &str = "Date,Country/Region,Province/State,Lat,Long,Confirmed,Recovered,Deaths\n\
2020-03-01,US,,37.0902,-95.7129,100,5,2\n\
2020-03-02,US,,37.0902,-95.7129,150,7,3\n\
2020-03-03,US,,37.0902,-95.7129,210,8,5\n";

/// A transformer whose clock is `skew` away from the true time.
fn transformer_off_by(vars: &Vars, skew: chrono::Duration) -> Running {
    let config = transformer::Config {
        clock: Clock::new(move || Utc::now() + skew),
        ..transformer::Config::from_vars(vars).expect("the transformer's settings")
    };
    Running::spawn("transformer", |shutdown| transformer::run(config, shutdown))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn newer_upstream_data_wins_whatever_the_transformers_clocks_say() {
    let test = TestEnv::new("clocks").await;
    let env = &test.env;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    github.add_many(upstream_commits(NYT_V1, JHU_V1));
    let vars = pipeline_vars(env, &github);
    let mut notifications = test.notifications().await;
    let extractor = extractor::Config::from_vars(&vars).expect("the extractor's settings");
    let loader = loader::Config::from_vars(&vars).expect("the loader's settings");
    let notifier = notifier::Config::from_vars(&vars).expect("the notifier's settings");
    let others = [
        Running::spawn("extractor", |shutdown| extractor::run(extractor, shutdown)),
        Running::spawn("loader", |shutdown| loader::run(loader, shutdown)),
        Running::spawn("notifier", |shutdown| notifier::run(notifier, shutdown)),
    ];

    // The first version is transformed on a host whose clock runs a day fast...
    let fast = transformer_off_by(&vars, chrono::Duration::days(1));
    let first = notifications.next("the first version's run").await;
    assert_eq!(first.status, RunStatus::Succeeded, "{}", first.text);
    fast.stop().await;

    // ...the second on one whose clock runs a day slow: by the clocks, the newer run is two days
    // older than the one it follows.
    let slow = transformer_off_by(&vars, -chrono::Duration::days(1));
    github.add_many(upstream_commits(NYT_V2, JHU_V2));
    let second = notifications.next("the second version's run").await;
    assert_eq!(second.status, RunStatus::Succeeded, "{}", second.text);
    assert_eq!(
        (second.counts.inserted, second.counts.updated),
        (1, 1),
        "{}",
        second.text
    );
    assert_eq!(
        stored_values(env).await,
        vec![
            ("2020-03-01".to_owned(), 100, 2, Some(5)),
            ("2020-03-02".to_owned(), 155, 3, Some(7)),
            ("2020-03-03".to_owned(), 210, 5, Some(8)),
        ],
        "the newer upstream data is what is stored"
    );
    let statuses: Vec<String> = test_support::connect()
        .await
        .query(
            &format!("SELECT status FROM \"{env}\".etl_runs ORDER BY finished_at"),
            &[],
        )
        .await
        .expect("etl_runs is readable")
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(
        statuses,
        ["succeeded", "succeeded"],
        "no run was superseded"
    );
    notifications.assert_quiet(Duration::from_secs(1)).await;

    slow.stop().await;
    futures::future::join_all(others.into_iter().map(Running::stop)).await;
    test.clean_up().await;
}
