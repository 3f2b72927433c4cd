//! The series API (`/api/v1/us/daily`): ranges, fields, averages, periods, CSV, bad parameters
//! and conditional requests, against a real PostgreSQL (a schema per test).

use crate::support::{self, TestApp, TestDb, date, days, seeded};
use serde_json::json;

#[tokio::test]
async fn daily_returns_every_row_with_numbers_as_numbers_and_not_reported_as_null() {
    let (db, app) = seeded().await;
    let expected = days("2020-03-01", 40, 30);

    let body = app.json("/api/v1/us/daily", 200).await;
    assert_eq!(body["env"], db.env.as_str());
    assert_eq!(body["count"], 40);
    assert_eq!(body["truncated"], false);
    assert_eq!(
        body["fields"],
        json!([
            "cases",
            "deaths",
            "recovered",
            "new_cases",
            "new_deaths",
            "new_recovered"
        ])
    );
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 40);
    let last = &expected[39];
    assert_eq!(
        rows[39],
        json!({
            "date": "2020-04-09", "cases": last.cases, "deaths": last.deaths, "recovered": null,
            "new_cases": last.new_cases, "new_deaths": last.new_deaths, "new_recovered": null,
        })
    );
    assert_eq!(
        rows[29]["recovered"],
        json!(expected[29].recovered.unwrap())
    );
    app.stop().await;
}

#[tokio::test]
async fn daily_selects_a_range_and_fields() {
    let (_db, app) = seeded().await;
    let body = app
        .json(
            "/api/v1/us/daily?from=2020-03-10&to=2020-03-12&fields=deaths,new_recovered",
            200,
        )
        .await;
    let expected = days("2020-03-01", 40, 30);
    assert_eq!(body["from"], "2020-03-10");
    assert_eq!(body["to"], "2020-03-12");
    assert_eq!(
        body["rows"],
        json!([
            {"date": "2020-03-10", "deaths": expected[9].deaths, "new_recovered": expected[9].new_recovered},
            {"date": "2020-03-11", "deaths": expected[10].deaths, "new_recovered": expected[10].new_recovered},
            {"date": "2020-03-12", "deaths": expected[11].deaths, "new_recovered": expected[11].new_recovered},
        ])
    );

    // Open-ended ranges and a range with no data.
    assert_eq!(
        app.json("/api/v1/us/daily?from=2020-04-08", 200).await["count"],
        2
    );
    assert_eq!(
        app.json("/api/v1/us/daily?to=2020-03-02", 200).await["count"],
        2
    );
    assert_eq!(
        app.json("/api/v1/us/daily?from=2021-01-01", 200).await["rows"],
        json!([])
    );
    app.stop().await;
}

#[tokio::test]
async fn the_seven_day_average_reads_the_days_before_from() {
    let (_db, app) = seeded().await;
    let expected = days("2020-03-01", 40, 30);
    let body = app
        .json(
            "/api/v1/us/daily?from=2020-03-10&to=2020-03-10&fields=new_cases&avg=7",
            200,
        )
        .await;
    let mean = expected[3..=9]
        .iter()
        .map(|d| d.new_cases.unwrap())
        .sum::<i64>() as f64
        / 7.0;
    assert_eq!(body["averages"], json!(["new_cases_avg7"]));
    let got = body["rows"][0]["new_cases_avg7"].as_f64().unwrap();
    assert!((got - mean).abs() < 0.006, "{got} vs {mean}");

    // The first six days have no full window; recovered's average stops with recovered.
    let body = app
        .json("/api/v1/us/daily?avg=7&fields=new_cases,new_recovered", 200)
        .await;
    let rows = body["rows"].as_array().unwrap();
    assert!(rows[5]["new_cases_avg7"].is_null());
    assert!(rows[6]["new_cases_avg7"].is_number());
    assert!(rows[29]["new_recovered_avg7"].is_number());
    assert!(rows[30]["new_recovered_avg7"].is_null());
    app.stop().await;
}

#[tokio::test]
async fn daily_sums_per_week_and_month() {
    let (_db, app) = seeded().await;
    let expected = days("2020-03-01", 40, 30);
    let body = app
        .json("/api/v1/us/daily?per=week&fields=cases,new_cases", 200)
        .await;
    let rows = body["rows"].as_array().unwrap();
    // 2020-03-01 is a Sunday: the first week holds one day and starts on Monday 2020-02-24.
    assert_eq!(
        rows[0],
        json!({"date": "2020-02-24", "days": 1, "cases": expected[0].cases, "new_cases": expected[0].new_cases})
    );
    let week: i64 = expected[1..8].iter().map(|d| d.new_cases.unwrap()).sum();
    assert_eq!(
        rows[1],
        json!({"date": "2020-03-02", "days": 7, "cases": expected[7].cases, "new_cases": week})
    );

    let body = app
        .json(
            "/api/v1/us/daily?per=month&fields=recovered,new_deaths",
            200,
        )
        .await;
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(
        (rows[0]["date"].as_str(), rows[0]["days"].as_u64()),
        (Some("2020-03-01"), Some(31))
    );
    let march: i64 = expected[..31].iter().map(|d| d.new_deaths.unwrap()).sum();
    assert_eq!(rows[0]["new_deaths"], march);
    // Recovered was last reported on 30 March: the month's value (its last day) is not reported.
    assert!(rows[0]["recovered"].is_null(), "{}", rows[0]);
    assert_eq!(
        (rows[1]["date"].as_str(), rows[1]["days"].as_u64()),
        (Some("2020-04-01"), Some(9))
    );
    app.stop().await;
}

#[tokio::test]
async fn csv_downloads_with_a_file_name_and_empty_cells_for_not_reported() {
    let (_db, app) = seeded().await;
    let response = app
        .get("/api/v1/us/daily?from=2020-03-30&to=2020-04-01&fields=cases,recovered&format=csv")
        .await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8"
    );
    assert_eq!(
        response.headers()["content-disposition"],
        "attachment; filename=\"covid-us-day-2020-03-30-to-2020-04-01.csv\""
    );
    let expected = days("2020-03-01", 40, 30);
    let text = response.text().await.unwrap();
    assert_eq!(
        text,
        format!(
            "date,cases,recovered\n2020-03-30,{},{}\n2020-03-31,{},\n2020-04-01,{},\n",
            expected[29].cases,
            expected[29].recovered.unwrap(),
            expected[30].cases,
            expected[31].cases
        )
    );
    app.stop().await;
}

#[tokio::test]
async fn bad_parameters_get_a_400_that_names_them() {
    let (_db, app) = seeded().await;
    let cases = [
        ("/api/v1/us/daily?from=2020-13-01", "from"),
        ("/api/v1/us/daily?to=tomorrow", "to"),
        ("/api/v1/us/daily?from=2020-04-01&to=2020-03-01", "from"),
        ("/api/v1/us/daily?from=1850-01-01", "from"),
        ("/api/v1/us/daily?fields=cases,icu", "fields"),
        ("/api/v1/us/daily?per=quarter", "per"),
        ("/api/v1/us/daily?avg=0", "avg"),
        ("/api/v1/us/daily?avg=7&per=month", "avg"),
        ("/api/v1/us/daily?avg=7&fields=cases", "avg"),
        ("/api/v1/us/daily?format=xlsx", "format"),
        ("/api/v1/us/daily?form=2020-01-01", "form"),
        ("/api/v1/us/daily?per=day&per=week", "per"),
        ("/api/v1/runs?limit=0", "limit"),
        ("/api/v1/runs?limit=100000", "limit"),
        ("/api/v1/runs?status=failed", "status"),
        ("/api/v1/us/changes?limit=-1", "limit"),
        ("/api/v1/meta?verbose=1", "verbose"),
    ];
    for (path, parameter) in cases {
        let body = app.json(path, 400).await;
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(
            message.contains(parameter),
            "{path}: the message names the parameter: {message}"
        );
    }
    let body = app.json("/api/v1/nothing-here", 404).await;
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("/api/v1/nothing-here")
    );
    app.stop().await;
}

#[tokio::test]
async fn conditional_requests_get_304_until_the_data_changes() {
    let (db, app) = seeded().await;
    let path = "/api/v1/us/daily?fields=cases";
    let first = app.get(path).await;
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-cache");
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let modified = first.headers()["last-modified"]
        .to_str()
        .unwrap()
        .to_owned();

    let again = app
        .http
        .get(app.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 304);
    assert_eq!(again.headers()["etag"].to_str().unwrap(), etag);
    assert!(again.text().await.unwrap().is_empty());
    let since = app
        .http
        .get(app.url(path))
        .header("if-modified-since", &modified)
        .send()
        .await
        .unwrap();
    assert_eq!(since.status(), 304);

    // Another question about the same data has its own tag.
    let other = app.get("/api/v1/us/daily?fields=deaths").await;
    assert_ne!(other.headers()["etag"].to_str().unwrap(), etag);

    // A run lands: the same request now gets the new data.
    db.insert_days(
        &[support::Day {
            date: date("2020-04-10"),
            ..days("2020-04-09", 1, 0)[0].clone()
        }],
        "run-2",
    )
    .await;
    let changed = app
        .http
        .get(app.url(path))
        .header("if-none-match", &etag)
        .send()
        .await
        .unwrap();
    assert_eq!(changed.status(), 200);
    assert_ne!(changed.headers()["etag"].to_str().unwrap(), etag);
    let body: serde_json::Value = changed.json().await.unwrap();
    assert_eq!(body["count"], 41);

    for path in [
        "/api/v1/runs",
        "/api/v1/meta",
        "/api/v1/us/changes",
        "/assets/app.js",
        "/",
    ] {
        let first = app.get(path).await;
        let etag = first.headers()["etag"].to_str().unwrap().to_owned();
        let again = app
            .http
            .get(app.url(path))
            .header("if-none-match", etag)
            .send()
            .await
            .unwrap();
        assert_eq!(again.status(), 304, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn a_schema_that_does_not_exist_yet_reads_as_empty() {
    let db = TestDb::new().await; // no schema: the loader has not run its migrations
    let app = TestApp::start(db.config()).await;
    let body = app.json("/api/v1/us/daily?avg=7", 200).await;
    assert_eq!(
        (body["count"].clone(), body["rows"].clone()),
        (json!(0), json!([]))
    );
    assert_eq!(app.json("/api/v1/runs", 200).await["runs"], json!([]));
    assert_eq!(
        app.json("/api/v1/us/changes", 200).await["changes"],
        json!([])
    );
    let meta = app.json("/api/v1/meta", 200).await;
    assert_eq!(meta["rows"], 0);
    assert!(meta["last_date"].is_null() && meta["last_success"].is_null());
    assert_eq!(meta["stale"], true);

    // Once the loader creates it, the same dashboard shows the data.
    db.create_schema().await;
    db.insert_days(&days("2020-03-01", 3, 3), "run-1").await;
    assert_eq!(app.json("/api/v1/us/daily", 200).await["count"], 3);
    app.stop().await;
}

#[tokio::test]
async fn a_partly_migrated_schema_is_served_but_never_answered_with_304() {
    let db = TestDb::new().await;
    let s = db.schema();
    db.client
        .batch_execute(&format!(
            "CREATE SCHEMA {s};
             CREATE TABLE {s}.us_daily (
                 date date PRIMARY KEY, cases bigint NOT NULL, deaths bigint NOT NULL,
                 recovered bigint NULL, new_cases bigint, new_deaths bigint, new_recovered bigint,
                 updated_at timestamptz, run_id text);"
        ))
        .await
        .unwrap();
    db.insert_days(&days("2020-03-01", 3, 3), "run-1").await;
    let app = TestApp::start(db.config()).await;
    let first = app.get("/api/v1/us/daily").await;
    let etag = first.headers()["etag"].to_str().unwrap().to_owned();
    let body: serde_json::Value = first.json().await.unwrap();
    assert_eq!(body["count"], 3);
    // Without etl_runs the data's version is unknown, so a cached copy is never confirmed.
    let again = app
        .http
        .get(app.url("/api/v1/us/daily"))
        .header("if-none-match", etag)
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_range_over_the_bound_is_cut_and_flagged() {
    let db = TestDb::new().await;
    db.create_schema().await;
    // One row more than a response may cover.
    let n = dashboard::daily::MAX_DAYS as i64 + 1;
    db.client
        .execute(
            &format!(
                "INSERT INTO {}.us_daily (date, cases, deaths, run_id) \
                 SELECT date '2000-01-01' + i::int, i, 0, 'run-1' FROM generate_series(0, $1::bigint - 1) AS i",
                db.schema()
            ),
            &[&n],
        )
        .await
        .unwrap();
    let app = TestApp::start(db.config()).await;
    let body = app.json("/api/v1/us/daily?fields=cases", 200).await;
    assert_eq!(body["count"], dashboard::daily::MAX_DAYS);
    assert_eq!(body["truncated"], true);
    let body = app
        .json("/api/v1/us/daily?fields=cases&from=2000-01-02", 200)
        .await;
    assert_eq!(body["truncated"], false);
    app.stop().await;
}
