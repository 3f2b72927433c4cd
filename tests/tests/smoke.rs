//! `etl smoke` against the real services, started here for env `test` the way `scripts/run.sh`
//! starts them for every env.

mod support;

use std::time::Duration;

use shared::Env;
use shared::config::Vars;
use support::{Services, base_vars};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke_test_passes_against_the_running_pipeline_and_cleans_up() {
    let env = Env::new(etl_cli::smoke::SMOKE_ENV).unwrap();
    let services = Services::start(&base_vars(&env), false);
    let connections = etl_cli::Connections::from_vars(&Vars::from_pairs([
        ("NATS_URL", support::nats_url()),
        ("DATABASE_URL", support::database_url()),
    ]))
    .unwrap();

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
    assert!(support::stored_values(&env).await.is_empty());
    let again = etl_cli::smoke::run(&connections, Duration::from_secs(60)).await;
    assert!(
        again.passed(),
        "second smoke run failed: {:?}",
        again.failure
    );

    services.stop().await;
}
