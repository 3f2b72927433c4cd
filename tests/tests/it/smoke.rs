//! `etl smoke` against the real services, started here for env `test` the way `scripts/run.sh`
//! starts them for every env.

use std::time::Duration;

use crate::support::stored_values;
use shared::Env;
use test_support::{Pipeline, Stages, stack};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke_test_passes_against_the_running_pipeline_and_cleans_up() {
    let env = Env::new(etl_cli::smoke::SMOKE_ENV).unwrap();
    let pipeline =
        Pipeline::start(&stack::vars(&env), Stages::AfterExtract).expect("the services start");
    let mut vars = stack::nats_vars(stack::Identity::Operator);
    vars.set("DATABASE_URL", stack::database_url());
    let connections = etl_cli::Connections::from_vars(&vars).unwrap();

    let report = etl_cli::smoke::run(&connections, Duration::from_secs(60)).await;
    assert!(
        report.passed(),
        "smoke failed: {:?}\nsteps: {:#?}",
        report.failure,
        report.steps
    );
    let notification = report
        .notification
        .expect("the smoke test saw the notification");
    assert_eq!(notification.counts.inserted, etl_cli::smoke::EXPECTED_DAYS);

    // Its own data is gone: a second run starts from nothing and passes again.
    assert!(stored_values(&env).await.is_empty());
    let again = etl_cli::smoke::run(&connections, Duration::from_secs(60)).await;
    assert!(
        again.passed(),
        "second smoke run failed: {:?}",
        again.failure
    );

    pipeline.stop().await;
}
