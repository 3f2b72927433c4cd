//! The map's levels and measures in the real headless Chromium, over small `states_daily` and
//! `counties_daily` tables: the 7-day average of a county's new cases is drawn in the colour and
//! hover text of the mean of its table rows (and "not reported" over a week with a day not
//! reported), the states level shades each state by its own row, and runs that land while the
//! page is open redraw the level they belong to (a states run at once, a counties run when its
//! level is shown again). How long each draw takes is printed (run with `--nocapture`), not
//! asserted.

use chrono::{Days, NaiveDate};
use dashboard::Config;
use fantoccini::{Client, Locator};
use shared::Env;
use test_support::stack::{self, Identity};

use crate::browser::{in_browser, require_browser, text, thousands, wait_for, write_screenshot};
use crate::map_probe::{assert_painted, hover};
use crate::support::{self, TestApp, TestDb, date};

const FIRST_DATE: &str = "2021-01-01";
/// Days in the tables from [`FIRST_DATE`]: two weeks, so the last week's averages are full.
const DAYS: u64 = 14;
/// The map's class boundaries (map.js `SCALES`) for the measures checked here.
const COUNTY_CASES: [f64; 7] = [1.0, 10.0, 30.0, 100.0, 300.0, 1000.0, 3000.0];
const STATE_CASES: [f64; 7] = [10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0];
const STATE_DEATHS: [f64; 7] = [1.0, 3.0, 10.0, 30.0, 100.0, 300.0, 1000.0];

/// The dashboard as it runs in production: its own variables, reading as `covid_reader`.
fn reader_config(env: &Env) -> Config {
    let mut vars = stack::vars_for(Identity::Dashboard, env);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0");
    Config::from_vars(&vars).expect("the dashboard's test configuration is valid")
}

/// Four states (Puerto Rico has no shape on the map) and four counties (Iowa's `Unknown` has no
/// FIPS code), each `k` with new cases and deaths that vary from day to day so the weeks'
/// means have fractions. Harris County did not report its new cases on day 11, Texas its
/// new deaths on day 10: the last week has no average of either. Values for day `d` come from
/// [`state_values`] and [`county_values`], the SQL written once for the first load and the runs.
async fn load(db: &TestDb) {
    let s = db.schema();
    db.client
        .batch_execute(&format!(
            "{states}; {counties};
             UPDATE {s}.counties_daily SET new_cases = NULL WHERE county = 'Harris' AND date = date '{FIRST_DATE}' + 11;
             UPDATE {s}.states_daily SET new_deaths = NULL WHERE state = 'Texas' AND date = date '{FIRST_DATE}' + 10;
             INSERT INTO {s}.keyed_base (dataset, run_id, rows, applied_at)
             VALUES ('states', 'run-1', {state_rows}, now()), ('counties', 'run-1', {county_rows}, now());",
            states = state_values(db, 0, DAYS - 1, "run-1"),
            counties = county_values(db, 0, DAYS - 1, "run-1"),
            state_rows = 4 * DAYS,
            county_rows = 4 * DAYS,
        ))
        .await
        .expect("the state and county tables load");
    db.refresh_keys().await;
}

/// The `INSERT` of the states' days `first..=last`.
fn state_values(db: &TestDb, first: u64, last: u64, run: &str) -> String {
    format!(
        "INSERT INTO {s}.states_daily (date, state, fips, cases, deaths, new_cases, new_deaths, run_id)
         SELECT date '{FIRST_DATE}' + d, name, fips, 100000 * k + 1000 * d, 1000 * k + 10 * d,
                1000 * k + 37 * d + (d * d) % 11, 10 * k + d % 4, '{run}'
         FROM generate_series({first}, {last}) AS d,
              (VALUES (1, 'California', '06'), (2, 'Iowa', '19'), (3, 'Texas', '48'), (4, 'Puerto Rico', '72'))
                AS st(k, name, fips)",
        s = db.schema()
    )
}

/// The `INSERT` of the counties' days `first..=last`.
fn county_values(db: &TestDb, first: u64, last: u64, run: &str) -> String {
    format!(
        "INSERT INTO {s}.counties_daily (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
         SELECT date '{FIRST_DATE}' + d, state, county, fips, 1000 * k + 100 * d, 10 * k + d,
                50 * k + 3 * d + (d * d) % 5, k + d % 3, '{run}'
         FROM generate_series({first}, {last}) AS d,
              (VALUES (1, 'Iowa', 'Polk', '19153'), (2, 'Texas', 'Harris', '48201'),
                      (3, 'California', 'Los Angeles', '06037'), (4, 'Iowa', 'Unknown', NULL))
                AS c(k, state, county, fips)",
        s = db.schema()
    )
}

#[tokio::test]
async fn the_map_draws_averages_and_states_and_redraws_the_level_a_run_lands_for() {
    require_browser();

    let db = TestDb::new().await;
    db.create_schema().await;
    load(&db).await;
    let app = TestApp::start(reader_config(&db.env)).await;

    in_browser(app, "map-levels", async |client, app| {
        exercise(client, app, &db).await
    })
    .await;
}

/// One key's figures on a date, from the table: the day's values and the mean of the 7 days
/// ending on it (`None` when a day is missing or not reported), rounded to hundredths.
struct Figures {
    new_cases: Option<i64>,
    new_deaths: Option<i64>,
    new_cases_avg: Option<f64>,
    new_deaths_avg: Option<f64>,
}

/// `county` None: the state's row in `states_daily`.
async fn figures(db: &TestDb, state: &str, county: Option<&str>, day: NaiveDate) -> Figures {
    let (table, county_filter) = match county {
        None => ("states_daily", "$2::text IS NULL"),
        Some(_) => ("counties_daily", "county = $2"),
    };
    let week_start = day - Days::new(6);
    let rows = db
        .client
        .query(
            &format!(
                "SELECT date, new_cases, new_deaths FROM {}.{table}
                 WHERE state = $1 AND {county_filter} AND date BETWEEN $3 AND $4 ORDER BY date",
                db.schema()
            ),
            &[&state, &county, &week_start, &day],
        )
        .await
        .expect("the key's week is read");
    let column = |i: usize| -> Vec<Option<i64>> { rows.iter().map(|r| r.get(i)).collect() };
    let mean = |values: Vec<Option<i64>>| {
        let sum: Option<i64> = values.iter().copied().sum();
        sum.filter(|_| values.len() == 7)
            .map(|s| (s as f64 / 7.0 * 100.0).round() / 100.0)
    };
    let last = rows.last().expect("the key has a row on the day");
    assert_eq!(last.get::<_, NaiveDate>(0), day);
    Figures {
        new_cases: last.get(1),
        new_deaths: last.get(2),
        new_cases_avg: mean(column(1)),
        new_deaths_avg: mean(column(2)),
    }
}

/// A number as the page writes it (en-US, at most two decimals), or "not reported".
pub(crate) fn shown(value: Option<f64>) -> String {
    let Some(v) = value else {
        return "not reported".to_owned();
    };
    let fixed = format!("{:.2}", v.abs());
    let (whole, fraction) = fixed.split_once('.').expect("two decimals");
    let whole = thousands(whole.parse().expect("digits"));
    let fraction = fraction.trim_end_matches('0');
    let sign = if v < 0.0 { "-" } else { "" };
    if fraction.is_empty() {
        format!("{sign}{whole}")
    } else {
        format!("{sign}{whole}.{fraction}")
    }
}

/// The class map.js gives a value on a scale with `breaks`.
fn class_of(value: Option<f64>, breaks: &[f64; 7]) -> String {
    match value {
        None => "qn".to_owned(),
        Some(v) => format!("q{}", breaks.iter().filter(|b| v >= **b).count()),
    }
}

/// Waits for the map to have drawn `level` in `measure` on `day`, without a page error; returns
/// how long the draw took (the figure's render time) and whether it fetched a list.
async fn drawn(client: &Client, level: &str, measure: &str, day: NaiveDate) -> (String, bool) {
    let figure = wait_for(
        client,
        &format!(
            "#county-map[data-state='drawn'][data-level='{level}'][data-measure='{measure}'][data-date='{day}']"
        ),
    )
    .await;
    let errors = client
        .execute("return window.__dashboardErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, serde_json::json!([]), "the page reported errors");
    let ms = figure.attr("data-render-ms").await.unwrap().unwrap();
    let fetched = figure.attr("data-fetched").await.unwrap();
    (ms, fetched.as_deref() == Some("true"))
}

async fn choose(client: &Client, css: &str, value: &str) {
    wait_for(client, css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("{css} = {value}: {e}"));
}

/// Checks the hover text of the shape coded `fips` holds every part.
async fn assert_tip(client: &Client, fips: &str, parts: &[String]) {
    let tip = hover(client, fips).await;
    for part in parts {
        assert!(
            tip.contains(part.as_str()),
            "`{part}` not in the hover text of {fips}: {tip}"
        );
    }
}

async fn exercise(client: &Client, app: &TestApp, db: &TestDb) {
    let last = date(FIRST_DATE) + Days::new(DAYS - 1);
    client.goto(&app.url("/")).await.expect("page opens");
    let (first_ms, _) = drawn(client, "counties", "new_cases", last).await;

    // Counties, 7-day average of new cases: Polk's colour and hover text are its week's mean.
    choose(client, "#map-measure", "new_cases_avg7").await;
    let (avg_ms, fetched) = drawn(client, "counties", "new_cases_avg7", last).await;
    assert!(fetched, "the averages are asked for");
    assert!(
        text(client, "#county-map-caption")
            .await
            .starts_with(&format!("New cases, 7-day average per county on {last}")),
    );
    let polk = figures(db, "Iowa", Some("Polk"), last).await;
    assert!(polk.new_cases_avg.is_some_and(|v| v.fract() != 0.0));
    assert_tip(
        client,
        "19153",
        &[
            "Polk, Iowa".to_owned(),
            format!("New cases, 7-day average: {}", shown(polk.new_cases_avg)),
            format!("New deaths, 7-day average: {}", shown(polk.new_deaths_avg)),
            format!("New cases: {}", shown(polk.new_cases.map(|v| v as f64))),
            last.to_string(),
        ],
    )
    .await;
    assert_painted(
        client,
        "19153",
        &class_of(polk.new_cases_avg, &COUNTY_CASES),
    )
    .await;
    // Harris did not report a day of the week: no average, never a partial one.
    let harris = figures(db, "Texas", Some("Harris"), last).await;
    assert_eq!(harris.new_cases_avg, None);
    assert_tip(
        client,
        "48201",
        &["New cases, 7-day average: not reported".to_owned()],
    )
    .await;
    assert_painted(client, "48201", "qn").await;
    assert!(
        text(client, "#county-legend")
            .await
            .contains("1 to under 10"),
        "the legend of an average speaks of ranges"
    );
    write_screenshot("map-counties-avg7", &client.screenshot().await.unwrap());

    // States: each state is shaded by its own row on the states' scale.
    choose(client, "#map-level", "states").await;
    let (states_ms, _) = drawn(client, "states", "new_cases_avg7", last).await;
    assert!(
        text(client, "#county-map-caption")
            .await
            .starts_with(&format!("New cases, 7-day average per state on {last}")),
    );
    let paths = client
        .execute(
            "return [...document.querySelectorAll('#county-map .state-areas path')]
               .filter((p) => p.getBoundingClientRect().width > 0).length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        paths,
        serde_json::json!(51),
        "the 50 states and DC are shown"
    );
    let iowa = figures(db, "Iowa", None, last).await;
    assert_tip(
        client,
        "19",
        &[
            "Iowa\n".to_owned(),
            format!("New cases, 7-day average: {}", shown(iowa.new_cases_avg)),
            format!("New deaths, 7-day average: {}", shown(iowa.new_deaths_avg)),
            last.to_string(),
        ],
    )
    .await;
    assert_painted(client, "19", &class_of(iowa.new_cases_avg, &STATE_CASES)).await;
    // A state without a row is "no row"; one without a shape is listed beside the map.
    assert_painted(client, "36", "qx").await;
    let unmapped = text(client, "#county-unmapped tbody").await;
    assert!(unmapped.contains("Puerto Rico"), "{unmapped}");
    write_screenshot("map-states-avg7", &client.screenshot().await.unwrap());

    // New deaths that day: the list already has them, so no request.
    choose(client, "#map-measure", "new_deaths").await;
    let (_, fetched) = drawn(client, "states", "new_deaths", last).await;
    assert!(!fetched, "the list drawn holds the day's deaths");
    let texas = figures(db, "Texas", None, last).await;
    assert_painted(
        client,
        "48",
        &class_of(texas.new_deaths.map(|v| v as f64), &STATE_DEATHS),
    )
    .await;
    choose(client, "#map-measure", "new_deaths_avg7").await;
    drawn(client, "states", "new_deaths_avg7", last).await;
    assert_painted(client, "48", "qn").await;

    // A states run lands: the map, following the latest date, draws the new day.
    choose(client, "#map-measure", "new_cases_avg7").await;
    drawn(client, "states", "new_cases_avg7", last).await;
    wait_for(client, "#live[data-state='connected']").await;
    let next = last + Days::new(1);
    land(db, "states", next).await;
    let (live_ms, fetched) = drawn(client, "states", "new_cases_avg7", next).await;
    assert!(fetched);
    let iowa = figures(db, "Iowa", None, next).await;
    assert_tip(
        client,
        "19",
        &[
            format!("New cases, 7-day average: {}", shown(iowa.new_cases_avg)),
            next.to_string(),
        ],
    )
    .await;
    assert_painted(client, "19", &class_of(iowa.new_cases_avg, &STATE_CASES)).await;

    // A counties run lands while the states are shown: the counties level is drawn anew (the
    // new day) when it is shown again, not from the list it had.
    land(db, "counties", next).await;
    client
        .wait()
        .for_element(Locator::XPath(
            "//div[@id='toast' and contains(., 'Run landed (counties)')]",
        ))
        .await
        .expect("the page hears of the counties run");
    assert_eq!(
        wait_for(client, "#county-map")
            .await
            .attr("data-level")
            .await
            .unwrap()
            .as_deref(),
        Some("states"),
        "the states stay shown"
    );
    choose(client, "#map-level", "counties").await;
    let (_, fetched) = drawn(client, "counties", "new_cases_avg7", next).await;
    assert!(fetched);
    let polk = figures(db, "Iowa", Some("Polk"), next).await;
    assert_tip(
        client,
        "19153",
        &[format!(
            "New cases, 7-day average: {}",
            shown(polk.new_cases_avg)
        )],
    )
    .await;
    println!(
        "map draws (request to painted paths, small tables): first {first_ms} ms, counties 7-day \
         average {avg_ms} ms, states {states_ms} ms, states after a run landed {live_ms} ms"
    );
}

/// A run of `dataset` (`states` or `counties`) as the loader leaves it: one more day for every
/// key, the table's new base, and the `loaded` event naming the dataset.
async fn land(db: &TestDb, dataset: &str, day: NaiveDate) {
    let d = (day - date(FIRST_DATE)).num_days() as u64;
    let (insert, name) = match dataset {
        "states" => (state_values(db, d, d, "run-2"), shared::Dataset::STATES),
        _ => (county_values(db, d, d, "run-2"), shared::Dataset::COUNTIES),
    };
    db.client
        .batch_execute(&format!(
            "{insert};
             UPDATE {s}.keyed_base SET run_id = 'run-2', rows = rows + 4, applied_at = now()
              WHERE dataset = '{dataset}';",
            s = db.schema()
        ))
        .await
        .expect("the run is applied");
    db.refresh_keys().await;
    let mut loaded = support::loaded_event(&db.env, "run-2", date(FIRST_DATE), day, 4);
    loaded.dataset = name;
    let js = test_support::stores().await.js;
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        &format!("run-2-{dataset}-loaded"),
        &loaded,
    )
    .await
    .expect("the loaded event is published");
}
