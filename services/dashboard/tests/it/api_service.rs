//! Runs, metadata, corrections, health, live events, the read-only role and the static page,
//! against a real PostgreSQL (a schema per test) and a real NATS.

use std::time::Duration;

use crate::support::{self, Run, SseReader, TestApp, date, seeded};
use chrono::{TimeDelta, Utc};
use serde_json::json;

#[tokio::test]
async fn runs_are_listed_newest_first_with_counts_and_status() {
    let (db, app) = seeded().await;
    let now = Utc::now();
    db.insert_run(&Run::succeeded(
        "run-old",
        now - TimeDelta::hours(30),
        [40, 0, 0, 0, 0],
    ))
    .await;
    db.insert_run(&Run::failed(
        "run-bad",
        now - TimeDelta::hours(2),
        "nyt line 7: `cases` is not a number",
    ))
    .await;
    db.insert_run(&Run::succeeded(
        "run-new",
        now - TimeDelta::hours(1),
        [1, 2, 37, 0, 1],
    ))
    .await;

    let body = app.json("/api/v1/runs", 200).await;
    let runs = body["runs"].as_array().unwrap();
    let ids: Vec<&str> = runs.iter().map(|r| r["run_id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["run-new", "run-bad", "run-old"]);
    let newest = &runs[0];
    assert_eq!(newest["status"], "succeeded");
    assert_eq!(newest["trigger"], "commit");
    assert_eq!(
        [
            &newest["inserted"],
            &newest["updated"],
            &newest["unchanged"],
            &newest["removed"],
            &newest["revised"]
        ],
        [&json!(1), &json!(2), &json!(37), &json!(0), &json!(1)]
    );
    assert_eq!(newest["duration_ms"], 3000);
    assert_eq!(newest["sources"][0]["source"], "nyt");
    assert_eq!(newest["sources"][1]["commit_time"], "2023-03-23T08:30:00Z");
    let failed = &runs[1];
    assert_eq!(
        (
            failed["status"].as_str(),
            failed["stage"].as_str(),
            failed["kind"].as_str()
        ),
        (Some("failed"), Some("transform"), Some("invalid_data"))
    );
    assert_eq!(failed["error"], "nyt line 7: `cases` is not a number");
    assert!(failed["inserted"].is_null());

    assert_eq!(app.json("/api/v1/runs?limit=1", 200).await["count"], 1);
    app.stop().await;
}

#[tokio::test]
async fn meta_reports_the_last_success_its_sources_and_staleness() {
    let (db, app) = seeded().await;
    let meta = app.json("/api/v1/meta", 200).await;
    assert_eq!(
        (
            meta["rows"].clone(),
            meta["first_date"].clone(),
            meta["last_date"].clone()
        ),
        (json!(40), json!("2020-03-01"), json!("2020-04-09"))
    );
    assert_eq!(meta["recovered_last_reported"], "2020-03-30");
    assert_eq!(meta["stale"], true, "no successful run recorded yet");

    db.insert_run(&Run::succeeded(
        "run-a",
        Utc::now() - TimeDelta::hours(40),
        [40, 0, 0, 0, 0],
    ))
    .await;
    let meta = app.json("/api/v1/meta", 200).await;
    assert_eq!(meta["last_success"]["run_id"], "run-a");
    assert_eq!(
        meta["stale"], true,
        "the last success is older than {} h",
        meta["stale_after_hours"]
    );

    db.insert_run(&Run::succeeded(
        "run-b",
        Utc::now() - TimeDelta::minutes(5),
        [0, 0, 40, 0, 0],
    ))
    .await;
    db.insert_run(&Run::failed("run-c", Utc::now(), "jhu: no US rows"))
        .await;
    let meta = app.json("/api/v1/meta", 200).await;
    assert_eq!(meta["stale"], false);
    assert_eq!(meta["last_success"]["run_id"], "run-b");
    assert_eq!(meta["last_run"]["run_id"], "run-c");
    assert_eq!(meta["last_run"]["status"], "failed");
    let sources: Vec<(&str, &str)> = meta["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["source"].as_str().unwrap(),
                s["commit_time"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        sources,
        [
            ("nyt", "2023-03-24T12:00:00Z"),
            ("jhu", "2023-03-23T08:30:00Z")
        ]
    );
    app.stop().await;
}

#[tokio::test]
async fn changes_list_the_latest_corrections_first() {
    let (db, app) = seeded().await;
    let now = Utc::now();
    db.insert_run(&Run::succeeded(
        "run-1",
        now - TimeDelta::hours(5),
        [40, 0, 0, 0, 0],
    ))
    .await;
    db.insert_run(&Run::succeeded(
        "run-2",
        now - TimeDelta::hours(1),
        [0, 2, 38, 0, 1],
    ))
    .await;
    db.insert_change("run-1", date("2020-03-05"), "deaths", Some(3), Some(4))
        .await;
    db.insert_change("run-2", date("2020-03-20"), "cases", Some(1000), Some(990))
        .await;
    db.insert_change("run-2", date("2020-03-31"), "recovered", Some(120), None)
        .await;

    let body = app.json("/api/v1/us/changes", 200).await;
    let changes = body["changes"].as_array().unwrap();
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0]["date"], "2020-03-31");
    assert_eq!(changes[0]["field"], "recovered");
    assert!(changes[0]["new_value"].is_null());
    assert_eq!(
        (
            changes[1]["run_id"].as_str(),
            changes[1]["old_value"].as_i64(),
            changes[1]["new_value"].as_i64()
        ),
        (Some("run-2"), Some(1000), Some(990))
    );
    assert_eq!(changes[2]["run_id"], "run-1");
    assert!(
        changes[0]["changed_at"]
            .as_str()
            .unwrap()
            .starts_with(&(now - TimeDelta::hours(1)).format("%Y-%m-%d").to_string())
    );
    assert_eq!(
        app.json("/api/v1/us/changes?limit=1", 200).await["count"],
        1
    );
    app.stop().await;
}

#[tokio::test]
async fn health_and_readiness_report_their_dependencies() {
    let (db, app) = seeded().await;
    assert_eq!(app.json("/healthz", 200).await, json!({"status": "ok"}));
    assert_eq!(
        app.json("/readyz", 200).await,
        json!({"status": "ready", "postgres": "ok", "nats": "ok"})
    );
    app.stop().await;

    // PostgreSQL unreachable: alive, not ready, and the API says the database is down.
    let config = support::config_for(
        &db.env,
        "postgres://postgres@127.0.0.1:1/covid?connect_timeout=1",
    );
    let app = TestApp::start_unchecked(config).await;
    assert_eq!(app.json("/healthz", 200).await["status"], "ok");
    let ready = app.json("/readyz", 503).await;
    assert_eq!(ready["status"], "not_ready");
    assert_ne!(ready["postgres"], "ok");
    let body = app.json("/api/v1/us/daily", 503).await;
    assert!(body["error"].as_str().unwrap().contains("database"));
    app.stop().await;
}

#[tokio::test]
async fn the_event_stream_pushes_runs_as_they_land_or_fail() {
    let (db, app) = seeded().await;
    let response = app.get("/api/v1/events").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let mut events = SseReader::new(response);
    let hello = events.next(Duration::from_secs(5)).await;
    assert_eq!(hello.event, "hello");
    let hello: serde_json::Value = serde_json::from_str(&hello.data).unwrap();
    assert_eq!(hello["env"], db.env.as_str());

    let js = test_support::stores().await.js;
    let loaded = support::loaded_event(
        &db.env,
        "run-live",
        date("2020-03-01"),
        date("2020-04-10"),
        1,
    );
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-live-loaded",
        &loaded,
    )
    .await
    .unwrap();
    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(event.event, "loaded");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (
            data["run_id"].as_str(),
            data["inserted"].as_u64(),
            data["last_date"].as_str()
        ),
        (Some("run-live"), Some(1), Some("2020-04-10"))
    );

    let failed = shared::events::Failed {
        dataset: shared::Dataset::US,
        schema_version: shared::events::SCHEMA_VERSION,
        env: db.env.clone(),
        run_id: Some(shared::ids::RunId::new("run-broken").unwrap()),
        stage: shared::events::Stage::Transform,
        kind: shared::events::FailureKind::InvalidData,
        reason: "nyt line 4: `cases` is negative".into(),
        inputs: vec![],
        trigger: None,
        source: None,
        cause: None,
        failed_at: Utc::now(),
    };
    let subject = shared::subjects::failed(&db.env, shared::events::Stage::Transform);
    shared::nats::publish_event(&js, &subject, "run-broken-failed", &failed)
        .await
        .unwrap();
    let event = events.next(Duration::from_secs(10)).await;
    assert_eq!(event.event, "failed");
    let data: serde_json::Value = serde_json::from_str(&event.data).unwrap();
    assert_eq!(
        (data["stage"].as_str(), data["reason"].as_str()),
        (Some("transform"), Some("nyt line 4: `cases` is negative"))
    );

    // Another env's runs are not this page's business.
    let other = test_support::unique_env("dash");
    let foreign = support::loaded_event(
        &other,
        "run-elsewhere",
        date("2020-03-01"),
        date("2020-04-10"),
        1,
    );
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&other),
        "run-elsewhere",
        &foreign,
    )
    .await
    .unwrap();
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-live-2",
        &support::loaded_event(
            &db.env,
            "run-live-2",
            date("2020-03-01"),
            date("2020-04-10"),
            0,
        ),
    )
    .await
    .unwrap();
    let event = events.next(Duration::from_secs(10)).await;
    assert!(
        event.data.contains("run-live-2"),
        "the other env's event was skipped: {event:?}"
    );

    // Shutdown ends open streams instead of waiting for them.
    app.stop().await;
}

#[tokio::test]
async fn a_select_only_role_is_all_the_dashboard_needs() {
    let (db, app) = seeded().await;
    app.stop().await;
    // The stack's SELECT-only role where it provides one (its roles cannot make roles), else one
    // made here.
    let stack_reader = std::env::var("DASHBOARD_DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty());
    let role = format!("{}_reader", db.env);
    let url = match &stack_reader {
        Some(url) => url.clone(),
        None => {
            db.client
                .batch_execute(&format!(
                    "CREATE ROLE {role} LOGIN;
                     GRANT USAGE ON SCHEMA {s} TO {role};
                     GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {role};",
                    s = db.schema()
                ))
                .await
                .unwrap();
            test_support::stack::database_url().replacen("postgres@", &format!("{role}@"), 1)
        }
    };
    let app = TestApp::start(support::config_for(&db.env, &url)).await;
    assert_eq!(app.json("/api/v1/us/daily", 200).await["count"], 40);
    assert_eq!(app.json("/api/v1/meta", 200).await["rows"], 40);
    assert_eq!(app.json("/api/v1/runs", 200).await["count"], 0);
    assert_eq!(app.json("/api/v1/us/changes", 200).await["count"], 0);
    app.stop().await;

    // The role itself cannot write.
    let reader = test_support::connect_to(&url).await;
    let err = reader
        .batch_execute(&format!("DELETE FROM {}.us_daily", db.schema()))
        .await
        .expect_err("the reader cannot delete");
    assert_eq!(
        err.code(),
        Some(&tokio_postgres::error::SqlState::INSUFFICIENT_PRIVILEGE)
    );
    drop(reader);
    if stack_reader.is_none() {
        db.client
            .batch_execute(&format!("DROP OWNED BY {role}; DROP ROLE {role};"))
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn the_page_and_its_assets_are_served_from_the_binary() {
    let (_db, app) = seeded().await;
    let page = app.get("/").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("script-src 'self'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/assets/uPlot.iife.min.js") && html.contains("/assets/app.js"));
    for (path, kind) in [
        ("/assets/uPlot.iife.min.js", "text/javascript"),
        ("/assets/uPlot.min.css", "text/css"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
        ("/assets/uPlot.LICENSE", "text/plain"),
    ] {
        let response = app.get(path).await;
        assert_eq!(response.status(), 200, "{path}");
        assert!(
            response.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with(kind),
            "{path}"
        );
        assert!(!response.bytes().await.unwrap().is_empty(), "{path}");
    }
    assert_eq!(app.get("/assets/secret.txt").await.status(), 404);
    app.stop().await;
}
