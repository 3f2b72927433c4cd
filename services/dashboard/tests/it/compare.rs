//! The "Compare states and counties" section in the real headless Chromium, over small
//! `states_daily` and `counties_daily` tables in PostgreSQL: a state and a county typed into the
//! picker are drawn as two series whose last values are the tables', the 7-day average is the
//! tables' mean (and "not reported" over a day not reported), a pick is removed, and a county run
//! that lands while the page is open is drawn without a reload.

use chrono::{Days, NaiveDate};
use dashboard::Config;
use fantoccini::key::Key;
use fantoccini::{Client, Locator};
use shared::Env;
use test_support::stack::{self, Identity};

use crate::browser::{in_browser, require_browser, text, wait_for, write_screenshot};
use crate::support::{self, TestApp, TestDb, date};

const FIRST_DATE: &str = "2020-03-01";
/// Days in the tables, from [`FIRST_DATE`]: enough for a 7-day average on the last ones.
const DAYS: u64 = 10;
/// The day (from [`FIRST_DATE`]) Harris County did not report its cases: that day's and the next
/// day's new cases are not reported either, as the transform leaves them.
const HARRIS_UNREPORTED_DAY: u64 = 7;

/// The dashboard as it runs in production: its own variables, reading as `covid_reader`.
fn reader_config(env: &Env) -> Config {
    let mut vars = stack::vars_for(Identity::Dashboard, env);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0");
    Config::from_vars(&vars).expect("the dashboard's test configuration is valid")
}

/// Three states and four counties (New York City without a FIPS code, as NYT reports it), each
/// `k` with cases `1000k + 10k·d + 3·d(d+1)/2` on day `d`, so new cases are `10k + 3d` after the
/// first day; and the `keyed_base` rows the loader leaves.
async fn load(db: &TestDb) {
    let s = db.schema();
    let new_cases = "CASE WHEN d = 0 THEN k * 1000 ELSE 10 * k + 3 * d END";
    let cases = "k * 1000 + 10 * k * d + 3 * d * (d + 1) / 2";
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.states_daily (date, state, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '{FIRST_DATE}' + d, name, fips, {cases}, 10 * k + d, {new_cases},
                    CASE WHEN d = 0 THEN 10 * k ELSE 1 END, 'run-1'
             FROM generate_series(0, {last}) AS d,
                  (VALUES (1, 'New York', '36'), (2, 'Texas', '48'), (3, 'Washington', '53')) AS st(k, name, fips);
             INSERT INTO {s}.counties_daily (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
             SELECT date '{FIRST_DATE}' + d, state, county, fips, {cases}, 10 * k + d, {new_cases},
                    CASE WHEN d = 0 THEN 10 * k ELSE 1 END, 'run-1'
             FROM generate_series(0, {last}) AS d,
                  (VALUES (1, 'New York', 'New York City', NULL), (5, 'Texas', 'Harris', '48201'),
                          (3, 'Texas', 'Dallas', '48113'), (4, 'Washington', 'King', '53033'))
                    AS c(k, state, county, fips);
             UPDATE {s}.counties_daily SET cases = NULL, new_cases = NULL
              WHERE county = 'Harris' AND date = date '{FIRST_DATE}' + {HARRIS_UNREPORTED_DAY};
             UPDATE {s}.counties_daily SET new_cases = NULL
              WHERE county = 'Harris' AND date = date '{FIRST_DATE}' + {HARRIS_UNREPORTED_DAY} + 1;
             INSERT INTO {s}.keyed_base (dataset, run_id, rows, applied_at)
             VALUES ('states', 'run-1', {states}, now()), ('counties', 'run-1', {counties}, now());",
            last = DAYS - 1,
            states = 3 * DAYS,
            counties = 4 * DAYS,
        ))
        .await
        .expect("the state and county tables load");
    db.refresh_keys().await;
}

/// One key's column in the table, oldest first: `table` is `states_daily` (`county` None) or
/// `counties_daily`.
async fn column(db: &TestDb, state: &str, county: Option<&str>, column: &str) -> Vec<Option<i64>> {
    let (table, county_filter) = match county {
        None => ("states_daily", "$2::text IS NULL"),
        Some(_) => ("counties_daily", "county = $2"),
    };
    db.client
        .query(
            &format!(
                "SELECT {column} FROM {}.{table} WHERE state = $1 AND {county_filter} ORDER BY date",
                db.schema()
            ),
            &[&state, &county],
        )
        .await
        .expect("the key's rows are read")
        .iter()
        .map(|r| r.get(0))
        .collect()
}

/// The last value of a column, as the chart's data attributes hold it.
fn last(values: &[Option<i64>]) -> Option<f64> {
    values.last().copied().flatten().map(|v| v as f64)
}

/// The mean of the last 7 values; not reported when any of them is not.
fn last_week_mean(values: &[Option<i64>]) -> Option<f64> {
    let week = &values[values.len() - 7..];
    let sum: Option<i64> = week.iter().copied().sum();
    sum.map(|s| s as f64 / 7.0)
}

#[tokio::test]
async fn a_state_and_a_county_picked_are_compared_with_the_tables_values() {
    require_browser();

    let db = TestDb::new().await;
    db.create_schema().await;
    load(&db).await;
    let app = TestApp::start(reader_config(&db.env)).await;

    in_browser(app, "compare", async |client, app| {
        exercise(client, app, &db).await
    })
    .await;
}

/// Types `typed` into the picker and presses Enter, as a keyboard user does.
async fn pick(client: &Client, typed: &str) {
    let search = wait_for(client, "#compare-search").await;
    search.clear().await.expect("the search box clears");
    search
        .send_keys(&format!("{typed}{}", char::from(Key::Enter)))
        .await
        .expect("the search box takes keys");
}

/// Waits for the chart to show `series` for `measure`, and returns its last values.
async fn drawn(client: &Client, measure: &str, series: &str) -> Vec<Option<f64>> {
    let figure = wait_for(
        client,
        &format!(
            "#compare-chart[data-state='drawn'][data-measure='{measure}'][data-series='{series}']"
        ),
    )
    .await;
    let values = figure
        .attr("data-last-values")
        .await
        .unwrap()
        .expect("the chart says its last values");
    serde_json::from_str(&values).unwrap_or_else(|e| panic!("{values}: {e}"))
}

async fn exercise(client: &Client, app: &TestApp, db: &TestDb) {
    client.goto(&app.url("/")).await.expect("page opens");

    // Nothing picked: the chart says what to do.
    wait_for(client, "#compare-chart[data-state='empty']").await;
    assert!(
        text(client, "#compare-empty")
            .await
            .contains("pick a state or a county"),
    );
    // The list holds every state and every county, a county as "County, State".
    wait_for(client, "#compare-chart[data-lists='loaded']").await;
    let options = client
        .execute(
            "return Array.from(document.querySelectorAll('#compare-options option'), (o) => o.value);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        options,
        serde_json::json!([
            "New York",
            "Texas",
            "Washington",
            "New York City, New York",
            "Dallas, Texas",
            "Harris, Texas",
            "King, Washington"
        ])
    );

    // A state typed whole, a county by part of its name (the one key containing it).
    pick(client, "Texas").await;
    wait_for(client, "#compare-picks li[data-id='Texas']").await;
    pick(client, "harr").await;
    wait_for(client, "#compare-picks li[data-id='Harris, Texas']").await;
    let texas_new = column(db, "Texas", None, "new_cases").await;
    let harris_new = column(db, "Texas", Some("Harris"), "new_cases").await;
    assert_eq!(
        drawn(client, "new_cases", "Texas|Harris, Texas").await,
        [last(&texas_new), last(&harris_new)],
        "the last new cases drawn are the tables'"
    );
    let figure = wait_for(client, "#compare-chart").await;
    assert_eq!(
        figure.attr("data-points").await.unwrap().as_deref(),
        Some(DAYS.to_string().as_str())
    );
    let legend = text(client, "#compare-chart .u-legend").await;
    assert!(
        legend.contains("Texas") && legend.contains("Harris, Texas"),
        "the legend names each pick: {legend}"
    );

    // A name in any case is that key, even when longer names contain it; text naming several
    // keys adds nothing and says so; a key picked twice is kept once.
    pick(client, "new york").await;
    wait_for(client, "#compare-picks li[data-id='New York']").await;
    pick(client, "Te").await;
    wait_for(client, "#compare-status[data-kind='error']").await;
    let status = text(client, "#compare-status").await;
    assert!(
        status.contains("3 states and counties match “Te”"),
        "{status}"
    );
    pick(client, "Texas").await;
    wait_for(client, "#compare-status[data-kind='notice']").await;
    let status = text(client, "#compare-status").await;
    assert!(status.contains("Texas is compared already"), "{status}");
    // New York removed again, with the keyboard.
    wait_for(
        client,
        "#compare-picks li[data-id='New York'] button.remove",
    )
    .await
    .send_keys(&char::from(Key::Enter).to_string())
    .await
    .expect("the remove button takes Enter");
    drawn(client, "new_cases", "Texas|Harris, Texas").await;

    // The 7-day average: the mean of the table's last seven days, and not reported for Harris,
    // whose week holds the day it did not report.
    wait_for(client, "#compare-measure")
        .await
        .select_by_value("new_cases_avg7")
        .await
        .expect("the measure is chosen");
    let averages = drawn(client, "new_cases_avg7", "Texas|Harris, Texas").await;
    let expected_texas = last_week_mean(&texas_new).expect("Texas reported its last week");
    assert!(
        (averages[0].expect("Texas's average is drawn") - expected_texas).abs() < 1e-9,
        "{averages:?} against {expected_texas}"
    );
    assert_eq!(averages[1], None);
    assert_eq!(last_week_mean(&harris_new), None);
    assert!(
        text(client, "#compare-picks li[data-id='Harris, Texas']")
            .await
            .contains("not reported")
    );
    client
        .execute(
            "document.querySelector('#compare').scrollIntoView();",
            vec![],
        )
        .await
        .unwrap();
    write_screenshot(
        "compare-two",
        &client.screenshot().await.expect("screenshot"),
    );

    // A pick removed: the chart keeps the other.
    wait_for(client, "#compare-picks li[data-id='Texas'] button.remove")
        .await
        .click()
        .await
        .expect("the remove button is clicked");
    assert_eq!(
        drawn(client, "new_cases_avg7", "Harris, Texas").await,
        [None]
    );
    assert!(
        client
            .find(Locator::Css("#compare-picks li[data-id='Texas']"))
            .await
            .is_err(),
        "Texas's chip is gone"
    );

    // Cumulative cases, then a county run lands while the page is open: drawn without a reload.
    wait_for(client, "#compare-measure")
        .await
        .select_by_value("cases")
        .await
        .expect("the measure is chosen");
    let harris_cases = column(db, "Texas", Some("Harris"), "cases").await;
    assert_eq!(
        drawn(client, "cases", "Harris, Texas").await,
        [last(&harris_cases)]
    );
    wait_for(client, "#live[data-state='connected']").await;
    client
        .execute("window.__notReloaded = true;", vec![])
        .await
        .unwrap();
    let new_day = date(FIRST_DATE) + Days::new(DAYS);
    land_harris_day(
        db,
        new_day,
        harris_cases.last().copied().flatten().unwrap() + 50,
    )
    .await;
    wait_for(
        client,
        &format!("#compare-chart[data-state='drawn'][data-last-date='{new_day}']"),
    )
    .await;
    let harris_cases = column(db, "Texas", Some("Harris"), "cases").await;
    assert_eq!(
        drawn(client, "cases", "Harris, Texas").await,
        [last(&harris_cases)]
    );
    let marker = client
        .execute("return window.__notReloaded === true;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, serde_json::json!(true), "the page was reloaded");

    let errors = client
        .execute("return window.__dashboardErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, serde_json::json!([]), "the page reported errors");
}

/// A county run as the loader leaves it: one more Harris day, the table's new base, and the
/// `loaded` event naming the dataset.
async fn land_harris_day(db: &TestDb, day: NaiveDate, cases: i64) {
    db.client
        .batch_execute(&format!(
            "INSERT INTO {s}.counties_daily (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
             VALUES ('{day}', 'Texas', 'Harris', '48201', {cases}, 40, 50, 1, 'run-2');
             UPDATE {s}.keyed_base SET run_id = 'run-2', rows = rows + 1, applied_at = now()
              WHERE dataset = 'counties';",
            s = db.schema()
        ))
        .await
        .expect("the county run is applied");
    db.refresh_keys().await;
    let mut loaded = support::loaded_event(&db.env, "run-2", date(FIRST_DATE), day, 1);
    loaded.dataset = shared::Dataset::COUNTIES;
    let js = test_support::stores().await.js;
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-2-loaded",
        &loaded,
    )
    .await
    .expect("the loaded event is published");
}
