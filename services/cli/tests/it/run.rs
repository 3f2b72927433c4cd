//! A real run through the real services (`test_support::Pipeline`), then `etl` reading it back:
//! `runs`, `runs show` and `status` as JSON (status held to the schema in the repo), and
//! `export` giving back exactly the curated dataset.

use std::time::Duration;

use shared::events::{Trigger, TriggerKind};
use shared::nats::CURATED_BUCKET;
use shared::{Source, run_id, store};
use test_support::{Pipeline, Stages, TestEnv, eventually, extraction};

use crate::schema::{status_schema, violations};
use crate::support::{code, etl, json, stderr, stdout};

const NYT: &str = etl_cli::smoke::DUMMY_NYT;
const JHU: &str = etl_cli::smoke::DUMMY_JHU;
/// NYT revises the 24th: 2 cases become 3.
const NYT_REVISED: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,1,0\n2020-01-24,3,0\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_run_reads_back_as_json_and_exports_as_it_was_curated() {
    let t = TestEnv::new("cli").await;
    let env = t.env.as_str().to_owned();
    let pipeline = Pipeline::start(&t.vars(), Stages::AfterExtract).expect("the services start");
    let mut notifications = t.notifications().await;

    // Run 1 inserts three days; run 2 revises one of them.
    let trigger = Trigger::new(TriggerKind::Commit);
    let nyt = extraction::extract(
        &t.stores,
        &t.env,
        Source::NYT,
        NYT.as_bytes(),
        trigger.clone(),
    )
    .await;
    let jhu = extraction::extract(
        &t.stores,
        &t.env,
        Source::JHU,
        JHU.as_bytes(),
        trigger.clone(),
    )
    .await;
    let first = run_id::of_inputs(&t.env, &nyt, &jhu, &trigger).to_string();
    let notification = notifications.next("run 1").await;
    assert_eq!(notification.run_id.as_str(), first);
    let revised = extraction::extract(
        &t.stores,
        &t.env,
        Source::NYT,
        NYT_REVISED.as_bytes(),
        trigger.clone(),
    )
    .await;
    let second = run_id::of_inputs(&t.env, &revised, &jhu, &trigger).to_string();
    let notification = notifications.next("run 2").await;
    assert_eq!(notification.run_id.as_str(), second);

    // etl runs --json: both, newest first, with their counts.
    let output = etl(&["runs", "--env", &env, "--json"]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let runs = json(&output);
    assert_eq!(runs["env"], env.as_str());
    let listed = runs["runs"].as_array().unwrap();
    assert_eq!(listed.len(), 2, "{runs:#}");
    assert_eq!(listed[0]["run_id"], second.as_str());
    assert_eq!(listed[1]["run_id"], first.as_str());
    assert_eq!(listed[1]["status"], "succeeded");
    assert_eq!(listed[1]["inserted"], 3);
    assert_eq!(listed[0]["updated"], 1);
    assert_eq!(listed[0]["trigger"], "commit");
    assert!(listed[0]["finished_at"].as_str().unwrap().ends_with('Z'));
    for field in ["unchanged", "removed", "revised", "kind", "error"] {
        assert!(listed[0].get(field).is_some(), "{field}: {runs:#}");
    }

    // etl runs show --json: the row, the events in order, the change, the notification and,
    // once the notifier reports it, the email.
    let show = eventually(
        "the run's email report",
        Duration::from_secs(30),
        || async {
            let output = etl(&["runs", "show", &second, "--env", &env, "--json"]).await;
            assert_eq!(code(&output), Some(0), "{}", stderr(&output));
            let show = json(&output);
            (!show["email"].is_null()).then_some(show)
        },
    )
    .await;
    assert_eq!(show["run_id"], second.as_str());
    assert_eq!(show["run"]["status"], "succeeded");
    assert_eq!(show["run"]["updated"], 1);
    assert_eq!(show["run"]["unchanged"], 2);
    assert!(show["run"]["warnings"].is_array(), "{show:#}");
    let kinds: Vec<&str> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["kind"].as_str().unwrap())
        .collect();
    // The extractions it was made of: JHU's of run 1 (unchanged since), then NYT's revision.
    assert_eq!(
        kinds,
        [
            "extracted",
            "extracted",
            "transformed",
            "loaded",
            "notification",
            "email_report"
        ],
        "{show:#}"
    );
    let times: Vec<&str> = show["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| event["at"].as_str().unwrap())
        .collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "in order");
    assert_eq!(show["events"][0]["event"]["source"], "jhu");
    assert_eq!(show["events"][1]["event"]["source"], "nyt");
    assert_eq!(
        show["events"][1]["event"]["object"]["sha256"],
        revised.object.sha256.as_str()
    );
    assert_eq!(show["changes_total"], 1);
    assert_eq!(
        show["changes"],
        serde_json::json!([{"date": "2020-01-24", "field": "cases", "old": 2, "new": 3}])
    );
    assert_eq!(show["notification"]["status"], "succeeded");
    assert_eq!(show["email"]["email"], "sent", "{show:#}");

    let output = etl(&["runs", "show", &first, "--env", &env, "--json"]).await;
    let shown = json(&output);
    let extracted = shown["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|event| event["kind"] == "extracted")
        .count();
    assert_eq!(extracted, 2, "run 1 was made of both: {shown:#}");

    let output = etl(&["runs", "show", &second, "--env", &env]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let text = stdout(&output);
    assert!(
        text.starts_with(&format!("run {second} in env {env}: succeeded")),
        "{text}"
    );
    assert!(
        text.contains("changes (1):\n  2020-01-24 cases: 2 -> 3"),
        "{text}"
    );
    assert!(text.contains(" loaded "), "{text}");

    let output = etl(&["runs", "show", "no_such_run", "--env", &env]).await;
    assert_eq!(code(&output), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has no run no_such_run"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());

    // etl status --json while the stages run: healthy, and as the schema says.
    let schema = status_schema();
    let output = etl(&[
        "status",
        "--json",
        "--expect",
        "transformer,loader,notifier",
    ])
    .await;
    let status = json(&output);
    assert_eq!(
        violations(&schema, &status),
        Vec::<String>::new(),
        "{status:#}"
    );
    assert_eq!(code(&output), Some(0), "{status:#}");
    assert_eq!(status["healthy"], true);
    let ours = status["envs"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["env"] == env.as_str())
        .expect("our env is listed");
    assert_eq!(ours["latest_run"]["run_id"], second.as_str());
    let names: Vec<&str> = status["services"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"loader"), "{names:?}");

    let output = etl(&["status", "--json", "--expect", "loader,no-such-service"]).await;
    let status = json(&output);
    assert_eq!(violations(&schema, &status), Vec::<String>::new());
    assert_eq!(code(&output), Some(1), "a missing service is unhealthy");
    assert_eq!(
        status["missing_services"],
        serde_json::json!(["no-such-service"])
    );
    let output = etl(&["status", "--expect", "no-such-service"]).await;
    assert_eq!(code(&output), Some(1));
    assert!(
        stdout(&output).starts_with("status: UNHEALTHY: service no-such-service does not answer"),
        "{}",
        stdout(&output)
    );

    // etl export: the latest loaded run's curated object, byte for byte as Parquet, and as CSV
    // its rows, which are the stored table's.
    let dir = tempfile::tempdir().unwrap();
    let parquet_path = dir.path().join("us.parquet");
    let csv_path = dir.path().join("us.csv");
    let output = etl(&[
        "export",
        "--env",
        &env,
        "--dataset",
        "us",
        "--format",
        "parquet",
        "--output",
        parquet_path.to_str().unwrap(),
        "--json",
    ])
    .await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    let exported = json(&output);
    assert_eq!(exported["run_id"], second.as_str());
    assert_eq!(exported["rows"], 3);
    let name = store::curated_object_name(&t.env, &shared::ids::RunId::new(&second).unwrap());
    let object = store::object_info(
        &t.stores.curated,
        CURATED_BUCKET,
        &name,
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap()
    .expect("the curated object");
    let curated = store::get_object(&t.stores.curated, &object, 1 << 20, store::OBJECT_DEADLINE)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&parquet_path).unwrap(), curated);

    let output = etl(&[
        "export",
        "--env",
        &env,
        "--output",
        csv_path.to_str().unwrap(),
    ])
    .await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert!(stdout(&output).is_empty());
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let rows = dataset::from_parquet(&curated).unwrap();
    assert_eq!(csv, etl_cli::export::to_csv(&rows));
    let stored = shared::daily::stored_rows(&test_support::connect().await, &t.env)
        .await
        .unwrap();
    assert_eq!(rows, stored);
    assert_eq!(
        csv.lines().collect::<Vec<_>>(),
        [
            etl_cli::export::CSV_HEADER,
            "2020-01-22,1,0,0,1,0,0",
            "2020-01-23,1,0,0,0,0,0",
            "2020-01-24,3,0,0,2,0,0"
        ],
        "{csv}"
    );
    // To stdout, and an earlier run's by --run.
    let output = etl(&["export", "--env", &env]).await;
    assert_eq!(stdout(&output), csv);
    let output = etl(&["export", "--env", &env, "--run", &first]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert!(
        stdout(&output).ends_with("2020-01-24,2,0,0,1,0,0\n"),
        "{}",
        stdout(&output)
    );
    // --json needs a file for the data.
    let output = etl(&["export", "--env", &env, "--json"]).await;
    assert_eq!(code(&output), Some(2), "{}", stderr(&output));

    pipeline.stop().await;
    t.clean_up().await;
}

#[tokio::test]
async fn an_env_without_runs_exports_nothing_and_lists_none() {
    let t = TestEnv::new("cli").await;
    let env = t.env.as_str();
    let output = etl(&["runs", "--env", env, "--json"]).await;
    assert_eq!(code(&output), Some(0), "{}", stderr(&output));
    assert_eq!(json(&output), serde_json::json!({"env": env, "runs": []}));
    let output = etl(&["export", "--env", env]).await;
    assert_eq!(code(&output), Some(1), "{}", stderr(&output));
    assert!(
        stderr(&output).contains("has no loaded run"),
        "{}",
        stderr(&output)
    );
    assert!(stdout(&output).is_empty());
    // ETL_ENV is --env's default.
    let output = crate::support::etl_with(&["runs", "--json"], &[("ETL_ENV", env)]).await;
    assert_eq!(json(&output)["env"], env);
}
