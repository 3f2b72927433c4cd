//! The keyed datasets' API (`/api/v1/{states,counties}/{daily,latest}`) against the real
//! PostgreSQL: a schema per test made by the loader's migrations (0004 creates the keyed
//! tables), read by the dashboard as the stack's SELECT-only role. [`plans`] checks that every
//! keyed statement is served by an index.

mod plans;

use dashboard::Config;
use serde_json::{Value, json};
use shared::Env;
use test_support::stack::{self, Identity};

use crate::support::{TestApp, TestDb};

/// The dashboard as it runs in production: its own variables, so it reads as `covid_reader`
/// where the stack provides it.
fn reader_config(env: &Env) -> Config {
    let mut vars = stack::vars_for(Identity::Dashboard, env);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0");
    Config::from_vars(&vars).expect("the dashboard's test configuration is valid")
}

/// The fixture's states: (k, state, fips). Each has 40 days from 2020-03-01 (a Sunday) with
/// cases `1000k + 10d`, deaths `10k + d` on day `d`; every day adds 10 cases and 1 death.
const STATES: [(i64, &str, &str); 3] = [
    (1, "New York", "36"),
    (2, "Texas", "48"),
    (3, "Washington", "53"),
];

/// The fixture's counties, with the same series per k. New York City and Unknown have no FIPS
/// code (as in NYT's data); Unknown reports no deaths; one name needs CSV quoting.
const COUNTIES: [(i64, &str, &str, Option<&str>); 6] = [
    (1, "New York", "New York City", None),
    (2, "Texas", "Dallas", Some("48113")),
    (3, "Texas", "Harris", Some("48201")),
    (4, "Texas", "Odd, \"Name\"", Some("48999")),
    (5, "Texas", "Unknown", None),
    (6, "Washington", "King", Some("53033")),
];

const DAYS: i64 = 40;

/// Loads the fixture as the loader leaves it: rows, their key lists, and `keyed_base` naming the
/// run. Texas did not
/// report cases on 2020-03-10 (day 9), so that day's and the next day's new cases are NULL.
async fn load_fixture(db: &TestDb) {
    let s = db.schema();
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.states_daily (date, state, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '2020-03-01' + d, st.name, st.fips, st.k * 1000 + 10 * d, 10 * st.k + d,
                    CASE WHEN d = 0 THEN st.k * 1000 ELSE 10 END, CASE WHEN d = 0 THEN 10 * st.k ELSE 1 END,
                    'run-1'
             FROM generate_series(0, {last}) AS d,
                  (VALUES (1, 'New York', '36'), (2, 'Texas', '48'), (3, 'Washington', '53')) AS st(k, name, fips);
             UPDATE {s}.states_daily SET cases = NULL, new_cases = NULL
              WHERE state = 'Texas' AND date = '2020-03-10';
             UPDATE {s}.states_daily SET new_cases = NULL WHERE state = 'Texas' AND date = '2020-03-11';
             INSERT INTO {s}.counties_daily (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '2020-03-01' + d, c.state, c.county, c.fips, c.k * 1000 + 10 * d,
                    CASE WHEN c.county = 'Unknown' THEN NULL ELSE 10 * c.k + d END,
                    CASE WHEN d = 0 THEN c.k * 1000 ELSE 10 END,
                    CASE WHEN c.county = 'Unknown' THEN NULL WHEN d = 0 THEN 10 * c.k ELSE 1 END,
                    'run-1'
             FROM generate_series(0, {last}) AS d,
                  (VALUES (1, 'New York', 'New York City', NULL), (2, 'Texas', 'Dallas', '48113'),
                          (3, 'Texas', 'Harris', '48201'), (4, 'Texas', 'Odd, \"Name\"', '48999'),
                          (5, 'Texas', 'Unknown', NULL), (6, 'Washington', 'King', '53033'))
                    AS c(k, state, county, fips);
             INSERT INTO {s}.keyed_base (dataset, run_id, rows, applied_at)
             VALUES ('states', 'run-1', {states}, now()), ('counties', 'run-1', {counties}, now());",
            last = DAYS - 1,
            states = STATES.len() as i64 * DAYS,
            counties = COUNTIES.len() as i64 * DAYS,
        ))
        .await
        .expect("the keyed fixture loads");
    db.refresh_keys().await;
}

/// A schema with the fixture, and a dashboard reading it.
async fn seeded() -> (TestDb, TestApp) {
    let db = TestDb::new().await;
    db.create_schema().await;
    load_fixture(&db).await;
    let app = TestApp::start(reader_config(&db.env)).await;
    (db, app)
}

/// Day `d` of the fixture's series for `k`, as the API shows it (every field).
fn day(k: i64, d: i64) -> Value {
    json!({
        "date": (chrono::NaiveDate::from_ymd_opt(2020, 3, 1).unwrap() + chrono::Days::new(d as u64)).to_string(),
        "cases": k * 1000 + 10 * d,
        "deaths": 10 * k + d,
        "new_cases": if d == 0 { k * 1000 } else { 10 },
        "new_deaths": if d == 0 { 10 * k } else { 1 },
    })
}

async fn csv(app: &TestApp, path: &str) -> (String, String) {
    let response = app.get(path).await;
    assert_eq!(response.status(), 200, "GET {path}");
    assert_eq!(
        response.headers()["content-type"],
        "text/csv; charset=utf-8",
        "GET {path}"
    );
    let disposition = response.headers()["content-disposition"]
        .to_str()
        .unwrap()
        .to_owned();
    (disposition, response.text().await.unwrap())
}

#[tokio::test]
async fn a_state_series_is_served_like_the_us_one_with_nulls_as_json_and_csv() {
    let (db, app) = seeded().await;
    let body = app.json("/api/v1/states/daily?state=Texas", 200).await;
    assert_eq!(body["env"], db.env.as_str());
    assert_eq!(
        (&body["dataset"], &body["state"], &body["fips"]),
        (&json!("states"), &json!("Texas"), &json!("48"))
    );
    assert!(body.get("county").is_none(), "a state has no county");
    assert_eq!(
        body["fields"],
        json!(["cases", "deaths", "new_cases", "new_deaths"])
    );
    assert_eq!(
        (&body["count"], &body["truncated"]),
        (&json!(40), &json!(false))
    );
    let rows = body["rows"].as_array().unwrap();
    assert_eq!(rows[0], day(2, 0));
    assert_eq!(
        rows[9],
        json!({"date": "2020-03-10", "cases": null, "deaths": 29, "new_cases": null, "new_deaths": 1})
    );
    assert_eq!(
        (&rows[10]["cases"], &rows[10]["new_cases"]),
        (&json!(2100), &Value::Null)
    );
    assert_eq!(rows[39], day(2, 39));

    // Names with spaces, encoded either way.
    for path in [
        "/api/v1/states/daily?state=New%20York",
        "/api/v1/states/daily?state=New+York",
    ] {
        let body = app.json(path, 200).await;
        assert_eq!((&body["count"], &body["rows"][5]), (&json!(40), &day(1, 5)));
    }

    let (disposition, text) = csv(
        &app,
        "/api/v1/states/daily?state=Texas&from=2020-03-09&to=2020-03-11&format=csv",
    )
    .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"covid-states-texas-day-2020-03-09-to-2020-03-11.csv\""
    );
    assert_eq!(
        text,
        "date,cases,deaths,new_cases,new_deaths\n\
         2020-03-09,2080,28,10,1\n\
         2020-03-10,,29,,1\n\
         2020-03-11,2100,30,,1\n"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_state_series_takes_ranges_fields_periods_and_averages() {
    let (_db, app) = seeded().await;
    let body = app
        .json(
            "/api/v1/states/daily?state=New+York&from=2020-03-10&to=2020-03-12&fields=deaths,new_cases",
            200,
        )
        .await;
    assert_eq!(
        (&body["from"], &body["to"]),
        (&json!("2020-03-10"), &json!("2020-03-12"))
    );
    assert_eq!(
        body["rows"],
        json!([
            {"date": "2020-03-10", "deaths": 19, "new_cases": 10},
            {"date": "2020-03-11", "deaths": 20, "new_cases": 10},
            {"date": "2020-03-12", "deaths": 21, "new_cases": 10},
        ])
    );
    assert_eq!(
        app.json("/api/v1/states/daily?state=Texas&from=2020-04-08", 200)
            .await["count"],
        2
    );
    assert_eq!(
        app.json("/api/v1/states/daily?state=Texas&from=2021-01-01", 200)
            .await["rows"],
        json!([])
    );

    // Weeks start on Monday: 2020-03-01 is a Sunday, a week of its own.
    let body = app
        .json(
            "/api/v1/states/daily?state=New+York&per=week&fields=cases,new_cases",
            200,
        )
        .await;
    assert_eq!(
        body["rows"][0],
        json!({"date": "2020-02-24", "days": 1, "cases": 1000, "new_cases": 1000})
    );
    assert_eq!(
        body["rows"][1],
        json!({"date": "2020-03-02", "days": 7, "cases": 1070, "new_cases": 70})
    );
    // A month with a day not reported has no sum; the next one has.
    let body = app
        .json(
            "/api/v1/states/daily?state=Texas&per=month&fields=new_cases",
            200,
        )
        .await;
    assert_eq!(
        body["rows"],
        json!([
            {"date": "2020-03-01", "days": 31, "new_cases": null},
            {"date": "2020-04-01", "days": 9, "new_cases": 90},
        ])
    );

    // The average reads the days before `from`, and is not reported over a day not reported.
    let body = app
        .json(
            "/api/v1/states/daily?state=New+York&from=2020-03-10&to=2020-03-10&fields=new_cases&avg=7",
            200,
        )
        .await;
    assert_eq!(body["averages"], json!(["new_cases_avg7"]));
    assert_eq!(body["rows"][0]["new_cases_avg7"], json!(10.0));
    let body = app
        .json(
            "/api/v1/states/daily?state=Texas&from=2020-03-10&to=2020-03-13&fields=new_cases&avg=2",
            200,
        )
        .await;
    let averages: Vec<&Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| &r["new_cases_avg2"])
        .collect();
    assert_eq!(
        averages,
        [&Value::Null, &Value::Null, &Value::Null, &json!(10.0)]
    );
    app.stop().await;
}

#[tokio::test]
async fn a_county_series_is_found_by_name_or_by_fips_code() {
    let (_db, app) = seeded().await;
    let by_name = app
        .json("/api/v1/counties/daily?state=Texas&county=Harris", 200)
        .await;
    assert_eq!(
        (
            &by_name["dataset"],
            &by_name["state"],
            &by_name["county"],
            &by_name["fips"]
        ),
        (
            &json!("counties"),
            &json!("Texas"),
            &json!("Harris"),
            &json!("48201")
        )
    );
    assert_eq!(by_name["count"], 40);
    assert_eq!(by_name["rows"][3], day(3, 3));
    let by_fips = app.json("/api/v1/counties/daily?fips=48201", 200).await;
    assert_eq!(by_fips, by_name);

    // New York City has no FIPS code: null in JSON.
    let body = app
        .json(
            "/api/v1/counties/daily?state=New+York&county=New+York+City&per=week&fields=new_deaths",
            200,
        )
        .await;
    assert_eq!(body["fips"], Value::Null);
    assert_eq!(
        body["rows"][1],
        json!({"date": "2020-03-02", "days": 7, "new_deaths": 7})
    );

    // Unknown reports no deaths: empty cells.
    let (disposition, text) = csv(
        &app,
        "/api/v1/counties/daily?state=Texas&county=Unknown&to=2020-03-02&format=csv",
    )
    .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"covid-counties-texas-unknown-day-2020-03-01-to-2020-03-02.csv\""
    );
    assert_eq!(
        text,
        "date,cases,deaths,new_cases,new_deaths\n2020-03-01,5000,,5000,\n2020-03-02,5010,,10,\n"
    );
    let body = app
        .json(
            "/api/v1/counties/daily?state=Texas&county=Unknown&to=2020-03-01",
            200,
        )
        .await;
    assert_eq!(
        body["rows"],
        json!([{"date": "2020-03-01", "cases": 5000, "deaths": null, "new_cases": 5000, "new_deaths": null}])
    );
    app.stop().await;
}

#[tokio::test]
async fn the_lists_show_every_key_on_the_latest_or_a_given_date() {
    let (db, app) = seeded().await;
    let body = app.json("/api/v1/states/latest", 200).await;
    assert_eq!(body["env"], db.env.as_str());
    assert_eq!(
        (&body["dataset"], &body["date"], &body["count"]),
        (&json!("states"), &json!("2020-04-09"), &json!(3))
    );
    assert_eq!(
        body["fields"],
        json!(["cases", "deaths", "new_cases", "new_deaths"])
    );
    assert_eq!(
        body["rows"][0],
        json!({"state": "New York", "fips": "36", "cases": 1390, "deaths": 49, "new_cases": 10, "new_deaths": 1})
    );
    let keys: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["state"], r["fips"], r["cases"]]))
        .collect();
    let expected: Vec<Value> = STATES
        .iter()
        .map(|(k, state, fips)| json!([state, fips, k * 1000 + 10 * (DAYS - 1)]))
        .collect();
    assert_eq!(keys, expected);

    let body = app.json("/api/v1/states/latest?date=2020-03-10", 200).await;
    assert_eq!(body["date"], "2020-03-10");
    assert_eq!(
        body["rows"][1],
        json!({"state": "Texas", "fips": "48", "cases": null, "deaths": 29, "new_cases": null, "new_deaths": 1})
    );
    let body = app.json("/api/v1/states/latest?date=2021-01-01", 200).await;
    assert_eq!(
        (&body["date"], &body["count"], &body["rows"]),
        (&json!("2021-01-01"), &json!(0), &json!([]))
    );
    let (disposition, text) = csv(&app, "/api/v1/states/latest?date=2020-03-10&format=csv").await;
    assert_eq!(
        disposition,
        "attachment; filename=\"covid-states-2020-03-10.csv\""
    );
    assert_eq!(
        text,
        "date,state,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-10,New York,36,1090,19,10,1\n\
         2020-03-10,Texas,48,,29,,1\n\
         2020-03-10,Washington,53,3090,39,10,1\n"
    );

    // Every county, or one state's.
    let body = app.json("/api/v1/counties/latest", 200).await;
    assert_eq!(
        (&body["date"], &body["count"]),
        (&json!("2020-04-09"), &json!(6))
    );
    assert!(body.get("state").is_none());
    let keys: Vec<Value> = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| json!([r["state"], r["county"], r["fips"]]))
        .collect();
    let expected: Vec<Value> = COUNTIES
        .iter()
        .map(|(_, state, county, fips)| json!([state, county, fips]))
        .collect();
    assert_eq!(keys, expected);
    assert_eq!(
        body["rows"][4],
        json!({"state": "Texas", "county": "Unknown", "fips": null, "cases": 5390, "deaths": null,
               "new_cases": 10, "new_deaths": null})
    );

    let body = app.json("/api/v1/counties/latest?state=Texas", 200).await;
    assert_eq!(
        (&body["state"], &body["count"]),
        (&json!("Texas"), &json!(4))
    );
    let (disposition, text) = csv(
        &app,
        "/api/v1/counties/latest?state=Texas&date=2020-03-02&format=csv",
    )
    .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"covid-counties-texas-2020-03-02.csv\""
    );
    assert_eq!(
        text,
        "date,state,county,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-02,Texas,Dallas,48113,2010,21,10,1\n\
         2020-03-02,Texas,Harris,48201,3010,31,10,1\n\
         2020-03-02,Texas,\"Odd, \"\"Name\"\"\",48999,4010,41,10,1\n\
         2020-03-02,Texas,Unknown,,5010,,10,\n"
    );
    // A known state on a date without data is an empty list, not an unknown state.
    assert_eq!(
        app.json("/api/v1/counties/latest?state=Texas&date=2021-01-01", 200)
            .await["count"],
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn the_lists_take_a_trailing_average_ending_on_the_date() {
    let (_db, app) = seeded().await;
    // Without `avg` the list has no averages (and a cached plain list is not served for one
    // with them).
    let plain = app.json("/api/v1/states/latest", 200).await;
    assert_eq!(
        (&plain["avg"], &plain["averages"]),
        (&Value::Null, &json!([]))
    );
    assert!(plain["rows"][0].get("new_cases_avg7").is_none());

    // The latest date: every day of the week adds 10 cases and 1 death.
    let body = app.json("/api/v1/states/latest?avg=7", 200).await;
    assert_eq!(
        (&body["date"], &body["avg"], &body["averages"]),
        (
            &json!("2020-04-09"),
            &json!(7),
            &json!(["new_cases_avg7", "new_deaths_avg7"])
        )
    );
    assert_eq!(
        body["rows"][0],
        json!({"state": "New York", "fips": "36", "cases": 1390, "deaths": 49, "new_cases": 10,
               "new_deaths": 1, "new_cases_avg7": 10.0, "new_deaths_avg7": 1.0})
    );

    // The first week holds each key's first day (new cases 1000k, deaths 10k): (1000k + 60) / 7
    // and (10k + 6) / 7, rounded to hundredths as a series' averages are.
    let averages = |body: &Value| -> Vec<Value> {
        body["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| json!([r["state"], r["new_cases_avg7"], r["new_deaths_avg7"]]))
            .collect()
    };
    let body = app
        .json("/api/v1/states/latest?date=2020-03-07&avg=7", 200)
        .await;
    assert_eq!(
        averages(&body),
        vec![
            json!(["New York", 151.43, 2.29]),
            json!(["Texas", 294.29, 3.71]),
            json!(["Washington", 437.14, 5.14]),
        ]
    );
    // A week reaching before the first date is not full: no average, never a partial one.
    let body = app
        .json("/api/v1/states/latest?date=2020-03-06&avg=7", 200)
        .await;
    assert_eq!(body["count"], 3);
    assert!(
        averages(&body)
            .iter()
            .all(|r| r[1].is_null() && r[2].is_null()),
        "{body}"
    );
    // Texas did not report new cases on 2020-03-10 and 03-11: every week holding either has no
    // case average, while its deaths still have one.
    for (day, texas) in [
        ("2020-03-12", json!(["Texas", null, 1.0])),
        ("2020-03-17", json!(["Texas", null, 1.0])),
        ("2020-03-18", json!(["Texas", 10.0, 1.0])),
    ] {
        let body = app
            .json(&format!("/api/v1/states/latest?date={day}&avg=7"), 200)
            .await;
        assert_eq!(averages(&body)[1], texas, "{day}");
    }
    // Any window from 2 to 60 days, as for a series.
    let body = app
        .json("/api/v1/states/latest?date=2020-03-02&avg=2", 200)
        .await;
    assert_eq!(
        body["averages"],
        json!(["new_cases_avg2", "new_deaths_avg2"])
    );
    assert_eq!(body["rows"][0]["new_cases_avg2"], 505.0);

    // Counties, one state's, as CSV: Unknown reports no deaths.
    let (disposition, text) = csv(
        &app,
        "/api/v1/counties/latest?state=Texas&date=2020-03-07&avg=7&format=csv",
    )
    .await;
    assert_eq!(
        disposition,
        "attachment; filename=\"covid-counties-texas-2020-03-07-avg7.csv\""
    );
    assert_eq!(
        text,
        "date,state,county,fips,cases,deaths,new_cases,new_deaths,new_cases_avg7,new_deaths_avg7\n\
         2020-03-07,Texas,Dallas,48113,2060,26,10,1,294.29,3.71\n\
         2020-03-07,Texas,Harris,48201,3060,36,10,1,437.14,5.14\n\
         2020-03-07,Texas,\"Odd, \"\"Name\"\"\",48999,4060,46,10,1,580,6.57\n\
         2020-03-07,Texas,Unknown,,5060,,10,,722.86,\n"
    );
    let body = app.json("/api/v1/counties/latest?avg=7", 200).await;
    assert_eq!(body["count"], 6);
    assert_eq!(body["rows"][5]["county"], "King");
    assert_eq!(body["rows"][5]["new_cases_avg7"], 10.0);

    for bad in ["avg=1", "avg=61", "avg=week", "avg=7&avg=7"] {
        let body = app
            .json(&format!("/api/v1/counties/latest?{bad}"), 400)
            .await;
        assert_eq!(body["parameter"], "avg", "{bad}: {body}");
    }
    app.stop().await;
}

#[tokio::test]
async fn missing_or_bad_parameters_are_a_400_and_unknown_keys_a_404_naming_them() {
    let (_db, app) = seeded().await;
    let bad = [
        ("/api/v1/states/daily", "state"),
        ("/api/v1/states/daily?state=", "state"),
        ("/api/v1/states/daily?state=Texas&county=Harris", "county"),
        (
            "/api/v1/states/daily?state=Texas&fields=recovered",
            "fields",
        ),
        (
            "/api/v1/states/daily?state=Texas&from=2020-04-01&to=2020-03-01",
            "from",
        ),
        ("/api/v1/states/daily?state=Texas&avg=7&per=week", "avg"),
        ("/api/v1/states/daily?state=Texas&format=xml", "format"),
        ("/api/v1/counties/daily?county=Harris", "state"),
        ("/api/v1/counties/daily?state=Texas", "county"),
        ("/api/v1/counties/daily?fips=482", "fips"),
        ("/api/v1/counties/daily?fips=48201&county=Harris", "fips"),
        ("/api/v1/states/latest?date=2020-02-30", "date"),
        ("/api/v1/states/latest?state=Texas", "state"),
        ("/api/v1/counties/latest?format=xlsx", "format"),
        ("/api/v1/counties/latest?county=Harris", "county"),
    ];
    for (path, parameter) in bad {
        let body = app.json(path, 400).await;
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(parameter), "{path}: {message}");
    }
    let unknown = [
        ("/api/v1/states/daily?state=Narnia", "state", "Narnia"),
        // Names are matched as the dataset spells them.
        ("/api/v1/states/daily?state=texas", "state", "texas"),
        (
            "/api/v1/counties/daily?state=Texas&county=Travis",
            "county",
            "Travis",
        ),
        ("/api/v1/counties/daily?fips=99999", "fips", "99999"),
        ("/api/v1/counties/latest?state=Narnia", "state", "Narnia"),
    ];
    for (path, parameter, value) in unknown {
        let body = app.json(path, 404).await;
        assert_eq!(body["parameter"], parameter, "{path}: {body}");
        let message = body["error"].as_str().unwrap();
        assert!(message.contains(value), "{path}: {message}");
    }
    app.stop().await;
}

#[tokio::test]
async fn conditional_requests_get_304_until_the_loader_records_a_new_run() {
    let (db, app) = seeded().await;
    let s = db.schema();
    let etag =
        |response: &reqwest::Response| response.headers()["etag"].to_str().unwrap().to_owned();
    let get_if = |path: &'static str, tag: String| {
        let request = app.http.get(app.url(path)).header("if-none-match", tag);
        async move { request.send().await.unwrap() }
    };
    let series = "/api/v1/states/daily?state=Texas&fields=cases";
    let states = "/api/v1/states/latest";
    let counties = "/api/v1/counties/latest?format=csv";
    let series_tag = etag(&app.get(series).await);
    let states_tag = etag(&app.get(states).await);
    let counties_tag = etag(&app.get(counties).await);
    assert_eq!(get_if(series, series_tag.clone()).await.status(), 304);
    assert_eq!(get_if(states, states_tag.clone()).await.status(), 304);
    assert_eq!(get_if(counties, counties_tag.clone()).await.status(), 304);
    assert_ne!(
        etag(
            &app.get("/api/v1/states/daily?state=New+York&fields=cases")
                .await
        ),
        series_tag,
        "another key is another question"
    );

    // The loader revises Texas and records its run: the states' answers change, the counties'
    // do not.
    db.client
        .batch_execute(&format!(
            "UPDATE {s}.states_daily SET cases = 1 WHERE state = 'Texas' AND date = '2020-03-01';
             UPDATE {s}.keyed_base SET run_id = 'run-2', applied_at = now() WHERE dataset = 'states';"
        ))
        .await
        .unwrap();
    let changed = get_if(series, series_tag).await;
    assert_eq!(changed.status(), 200);
    let body: Value = changed.json().await.unwrap();
    assert_eq!(body["rows"][0]["cases"], 1);
    assert_eq!(get_if(states, states_tag).await.status(), 200);
    assert_eq!(get_if(counties, counties_tag).await.status(), 304);

    // A table no run is recorded for has no version: never a 304.
    db.client
        .batch_execute(&format!(
            "DELETE FROM {s}.keyed_base WHERE dataset = 'counties'"
        ))
        .await
        .unwrap();
    let tag = etag(&app.get(counties).await);
    assert_eq!(get_if(counties, tag).await.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_schema_without_the_keyed_tables_reads_as_empty() {
    let db = TestDb::new().await; // the loader has not run its migrations
    let app = TestApp::start(reader_config(&db.env)).await;
    let body = app.json("/api/v1/counties/latest", 200).await;
    assert_eq!((&body["date"], &body["count"]), (&Value::Null, &json!(0)));
    let body = app.json("/api/v1/states/latest?avg=7", 200).await;
    assert_eq!((&body["date"], &body["count"]), (&Value::Null, &json!(0)));
    let body = app.json("/api/v1/states/daily?state=Texas", 404).await;
    assert_eq!(body["parameter"], "state");
    app.stop().await;
}
