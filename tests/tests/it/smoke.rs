//! `etl smoke` against the real services, started here for env `test` the way `scripts/run.sh`
//! starts them for every env: for `us`, and for the keyed datasets `states` and `counties`.

use std::time::Duration;

use crate::support::processes::bin_dir;
use crate::support::stored_values;
use etl_cli::smoke::{self, Dataset, Dummy};
use shared::Env;
use shared::config::Vars;
use shared::nats::Stores;
use test_support::{Pipeline, Stages, stack};

/// Every smoke run clears env `test` before and after: two at once would clear each other's run.
static ONE_SMOKE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn smoke_env() -> Env {
    Env::new(smoke::SMOKE_ENV).unwrap()
}

/// What `etl` reads: the operator's NATS identity and the stack's database.
fn operator_vars() -> Vars {
    let mut vars = stack::nats_vars(stack::Identity::Operator);
    vars.set("DATABASE_URL", stack::database_url());
    vars
}

fn connections() -> etl_cli::Connections {
    etl_cli::Connections::from_vars(&operator_vars()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke_test_passes_against_the_running_pipeline_and_cleans_up() {
    let _alone = ONE_SMOKE_AT_A_TIME.lock().await;
    let env = smoke_env();
    let pipeline =
        Pipeline::start(&stack::vars(&env), Stages::AfterExtract).expect("the services start");
    let connections = connections();

    let report = smoke::run(&connections, Dataset::Us, Duration::from_secs(60)).await;
    assert!(
        report.passed(),
        "smoke failed: {:?}\nsteps: {:#?}",
        report.failure,
        report.steps
    );
    let notification = report
        .notification
        .expect("the smoke test saw the notification");
    assert_eq!(notification.counts.inserted, smoke::EXPECTED_DAYS);

    // Its own data is gone: a second run starts from nothing and passes again.
    assert!(stored_values(&env).await.is_empty());
    let again = smoke::run(&connections, Dataset::Us, Duration::from_secs(60)).await;
    assert!(
        again.passed(),
        "second smoke run failed: {:?}",
        again.failure
    );

    pipeline.stop().await;
}

/// `states` through the library, `counties` through the `etl` binary as an operator runs it.
/// The services keep the test stack's `DATASETS=us`: it only says what an extractor polls, and
/// the smoke publishes what an extractor would, so a stack polling `us` alone passes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn smoke_test_of_each_keyed_dataset_passes_and_leaves_nothing_behind() {
    let _alone = ONE_SMOKE_AT_A_TIME.lock().await;
    let env = smoke_env();
    let vars = stack::vars(&env);
    assert_eq!(vars.get("DATASETS"), Some("us"));
    let pipeline = Pipeline::start(&vars, Stages::AfterExtract).expect("the services start");
    let stores = test_support::stores().await;

    let report = smoke::run(&connections(), Dataset::States, Duration::from_secs(60)).await;
    assert!(
        report.passed(),
        "states smoke failed: {:?}\nsteps: {:#?}",
        report.failure,
        report.steps
    );
    assert_eq!(report.dataset, shared::Dataset::STATES);
    let notification = report
        .notification
        .expect("the smoke test saw the notification");
    assert_eq!(notification.dataset, shared::Dataset::STATES);
    assert_eq!(notification.counts.inserted, smoke::STATES.rows);
    assert_nothing_left(&stores, &env, &smoke::STATES).await;

    let output = std::process::Command::new(bin_dir().join("etl"))
        .args([
            "smoke",
            "--dataset",
            "counties",
            "--json",
            "--timeout",
            "60",
        ])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("HOME", std::env::var("HOME").unwrap_or_default())
        .envs(operator_vars().iter())
        .output()
        .unwrap_or_else(|err| panic!("cannot run etl (ETL_BIN_DIR: {:?}): {err}", bin_dir()));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "etl smoke --dataset counties failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("one JSON document");
    assert_eq!(json["passed"], true, "{json:#}");
    assert_eq!(json["dataset"], "counties", "{json:#}");
    assert_eq!(json["notification"]["dataset"], "counties", "{json:#}");
    assert_eq!(json["notification"]["status"], "succeeded", "{json:#}");
    assert_eq!(
        json["notification"]["inserted"],
        smoke::COUNTIES.rows,
        "{json:#}"
    );
    assert_nothing_left(&stores, &env, &smoke::COUNTIES).await;

    pipeline.stop().await;
}

/// The smoke's rows, base, runs, KV keys and objects are gone from env `test`.
async fn assert_nothing_left(stores: &Stores, env: &Env, dummy: &Dummy) {
    let pg = test_support::connect().await;
    let key_list = format!("{}_keys", dummy.spec.name);
    for table in [
        dummy.spec.table,
        dummy.spec.changes_table,
        &key_list,
        "keyed_base",
        "etl_runs",
    ] {
        let rows: i64 = pg
            .query_one(&format!("SELECT count(*) FROM \"{env}\".{table}"), &[])
            .await
            .unwrap_or_else(|err| panic!("{env}.{table} is readable: {err}"))
            .get(0);
        assert_eq!(rows, 0, "{env}.{table} still holds rows");
    }
    let dataset = shared::Dataset::new(dummy.spec.name).unwrap();
    let mut keys = vec![shared::store::curated_key(env, &dataset)];
    keys.extend(
        dummy
            .sources()
            .iter()
            .map(|source| shared::store::latest_key(env, source)),
    );
    for key in keys {
        let value = stores.state.get(&key).await.expect("the KV bucket answers");
        assert_eq!(value, None, "{key} is still in KV");
    }
    for source in dummy.sources() {
        let prefix = format!("{env}/{source}/");
        let objects = raw_objects(stores).await;
        assert!(
            !objects.iter().any(|name| name.starts_with(&prefix)),
            "objects of {source} are still in etl-raw: {objects:?}"
        );
    }
}

async fn raw_objects(stores: &Stores) -> Vec<String> {
    use futures::TryStreamExt;
    stores
        .raw
        .list()
        .await
        .expect("etl-raw lists its objects")
        .map_ok(|object| object.name)
        .try_collect()
        .await
        .expect("etl-raw lists its objects")
}
