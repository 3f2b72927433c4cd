//! The county map in the real headless Chromium, over a full-size `counties_daily` (every county
//! of the map's geometry, New York City, an `Unknown` per state and Puerto Rico's municipios,
//! ≈3,270 keys × 780 dates ≈ 2.5 M rows, in the loader's table): the latest date and a date
//! picked draw every county, and a county's colour and hover text are its row's. How long a draw
//! takes, from the request to the painted paths, is printed (run with `--nocapture`), not
//! asserted: speed is a benchmark's question.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::NaiveDate;
use dashboard::Config;
use fantoccini::{Client, Locator};
use serde::Deserialize;
use shared::Env;
use test_support::stack::{self, Identity};

use crate::browser::{in_browser, require_browser, set_date, text, thousands, wait_for};
use crate::map_probe::{assert_painted, hover};
use crate::support::{TestApp, TestDb, date};

const FIRST_DATE: &str = "2020-01-21";
const DATES: i64 = 780;
/// How long a draw may stay `loading` before the test fails: long, so a slow machine under the
/// whole suite still gets an answer; only a failing run waits this long.
const DRAW_WAIT: Duration = Duration::from_secs(60);
/// New York City's boroughs: the map shades them with the city's row.
const NYC_BOROUGHS: [&str; 5] = ["36005", "36047", "36061", "36081", "36085"];
/// The class boundaries of the page's log scale for new cases per county (map.js `SCALES`).
const BREAKS: [i64; 7] = [1, 10, 30, 100, 300, 1000, 3000];

/// The page's geometry asset: the counties' names by FIPS code.
#[derive(Deserialize)]
struct Shapes {
    names: BTreeMap<String, String>,
}

/// The dashboard as it runs in production: its own variables, reading as `covid_reader`.
fn reader_config(env: &Env) -> Config {
    let mut vars = stack::vars_for(Identity::Dashboard, env);
    vars.set("DASHBOARD_ADDR", "127.0.0.1:0");
    Config::from_vars(&vars).expect("the dashboard's test configuration is valid")
}

/// The keys: every mapped county (NYC's boroughs excepted: NYT reports the city as one), New
/// York City and an `Unknown` per state without a FIPS code, and Puerto Rico's 78 municipios
/// (FIPS codes the map has no shape for). States are named by their FIPS prefix.
fn keys() -> (Vec<String>, Vec<String>, Vec<Option<String>>) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/counties.json");
    let shapes: Shapes =
        serde_json::from_slice(&std::fs::read(&path).expect("the geometry asset is readable"))
            .expect("the geometry asset is JSON");
    let state_of = |prefix: &str| match prefix {
        "36" => "New York".to_owned(),
        "19" => "Iowa".to_owned(),
        other => format!("State {other}"),
    };
    let (mut states, mut counties, mut fips) = (Vec::new(), Vec::new(), Vec::new());
    let mut prefixes = Vec::new();
    let mut seen = std::collections::BTreeSet::new();
    for (code, name) in &shapes.names {
        if NYC_BOROUGHS.contains(&code.as_str()) {
            continue;
        }
        let state = state_of(&code[..2]);
        // A state may have a county and a city of one name (Virginia's Richmond): NYT calls the
        // city "Richmond city"; the map's names do not say.
        let county = if seen.insert((state.clone(), name.clone())) {
            name.clone()
        } else {
            format!("{name} city")
        };
        states.push(state);
        counties.push(county);
        fips.push(Some(code.clone()));
        if !prefixes.contains(&code[..2].to_owned()) {
            prefixes.push(code[..2].to_owned());
        }
    }
    for prefix in &prefixes {
        states.push(state_of(prefix));
        counties.push("Unknown".to_owned());
        fips.push(None);
    }
    states.push("New York".to_owned());
    counties.push("New York City".to_owned());
    fips.push(None);
    for n in (1..=155).step_by(2).take(78) {
        states.push("Puerto Rico".to_owned());
        counties.push(format!("Municipio {n}"));
        fips.push(Some(format!("72{n:03}")));
    }
    // In key order, as a full reconcile writes them.
    let mut keys: Vec<_> = states.into_iter().zip(counties).zip(fips).collect();
    keys.sort();
    let ((states, counties), fips) = keys.into_iter().unzip();
    (states, counties, fips)
}

/// Fills `counties_daily` in one statement, in the order a full reconcile writes it (by key,
/// then date), and lists its keys in `counties_keys`. Values depend on the key's ordinal `n` and the day `i`: new cases spread over
/// 0…9,999 (every class of the log scale), some NULL (not reported), some negative. As a bulk
/// load does, the table's indexes are dropped first and built again afterwards from their own
/// definitions (checked to be the same again), which is several times faster.
async fn load(db: &mut TestDb) -> i64 {
    let (states, counties, fips) = keys();
    let s = db.schema();
    let table = format!("{s}.counties_daily");
    let started = Instant::now();
    let tx = db.client.transaction().await.expect("a transaction");
    let before = index_definitions(&tx, &table).await;
    assert!(
        before.iter().any(|(_, d)| d.contains("PRIMARY KEY")),
        "the migration's primary key: {before:?}"
    );
    let mut drop_sql = String::from("SET LOCAL maintenance_work_mem = '256MB';");
    for (name, definition) in &before {
        if definition.starts_with("ALTER TABLE") {
            drop_sql.push_str(&format!("ALTER TABLE {table} DROP CONSTRAINT \"{name}\";"));
        } else {
            drop_sql.push_str(&format!("DROP INDEX {s}.\"{name}\";"));
        }
    }
    tx.batch_execute(&drop_sql)
        .await
        .expect("the indexes are dropped");
    let inserted = tx
        .execute(
            &format!(
                "INSERT INTO {table} (date, state, county, fips, cases, deaths, new_cases, new_deaths, run_id)
                 SELECT date '{FIRST_DATE}' + i, k.state, k.county, k.fips, v.cases, v.cases / 60, v.new_cases,
                        v.new_cases / 60, 'run-map'
                 FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(state, county, fips, n),
                      LATERAL generate_series(0, {last}) AS i,
                      LATERAL (
                          SELECT CASE WHEN (k.n + i) % 61 = 0 THEN NULL ELSE (k.n % 50 + 1) * i * 20 + 5 END AS cases,
                                 CASE WHEN (k.n + i) % 61 = 0 THEN NULL
                                      WHEN (k.n * 31 + i) % 97 = 0 THEN -(k.n % 5 + 1)
                                      ELSE floor(power(10.0::float8, ((k.n * 7 + i * 3) % 41) / 10.0::float8))::bigint - 1
                                 END AS new_cases
                      ) AS v",
                last = DATES - 1
            ),
            &[&states, &counties, &fips],
        )
        .await
        .expect("the county table loads");
    let inserted_in = started.elapsed();
    let rebuild: String = before.iter().map(|(_, d)| format!("{d};")).collect();
    tx.batch_execute(&rebuild)
        .await
        .expect("the indexes are built again");
    assert_eq!(
        index_definitions(&tx, &table).await,
        before,
        "the indexes are the migration's"
    );
    // Every key has every date: its key line says so, as the loader's would.
    tx.execute(
        &format!(
            "INSERT INTO {s}.counties_keys (state, county, fips, first_date, last_date)
             SELECT state, county, fips, date '{FIRST_DATE}', date '{FIRST_DATE}' + {last}
             FROM unnest($1::text[], $2::text[], $3::text[]) AS k(state, county, fips)",
            last = DATES - 1
        ),
        &[&states, &counties, &fips],
    )
    .await
    .expect("the keys are listed");
    tx.batch_execute(&format!(
        "INSERT INTO {s}.keyed_base (dataset, run_id, rows, applied_at)
         VALUES ('counties', 'run-map', {inserted}, now());"
    ))
    .await
    .expect("the run is recorded");
    tx.commit().await.expect("the load commits");
    let loaded = started.elapsed();
    db.client
        .batch_execute(&format!("ANALYZE {table}; ANALYZE {s}.counties_keys;"))
        .await
        .expect("the table is analysed");
    eprintln!(
        "counties_daily: {} keys × {DATES} dates = {inserted} rows loaded in {:.1} s ({:.1} s to \
         insert, the rest to build the indexes)",
        states.len(),
        loaded.as_secs_f64(),
        inserted_in.as_secs_f64()
    );
    i64::try_from(inserted).expect("a row count fits")
}

/// The table's primary key (as the statement adding it) and other indexes (as their `CREATE
/// INDEX`), by name.
async fn index_definitions(
    tx: &tokio_postgres::Transaction<'_>,
    table: &str,
) -> Vec<(String, String)> {
    let sql = format!(
        "SELECT c.conname::text, format('ALTER TABLE {table} ADD CONSTRAINT %I %s', c.conname, pg_get_constraintdef(c.oid))
         FROM pg_constraint c WHERE c.conrelid = '{table}'::regclass AND c.contype = 'p'
         UNION ALL
         SELECT i.relname::text, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
         WHERE x.indrelid = '{table}'::regclass AND NOT x.indisprimary
         ORDER BY 1"
    );
    tx.query(&sql, &[])
        .await
        .expect("the table's indexes are listed")
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
}

#[tokio::test]
async fn the_county_map_of_a_full_table_draws_a_picked_date_with_each_countys_row() {
    require_browser();

    let mut db = TestDb::new().await;
    db.create_schema().await;
    let rows = load(&mut db).await;
    assert!(rows > 2_500_000, "{rows} rows is not the full size");
    let app = TestApp::start(reader_config(&db.env)).await;

    in_browser(app, "county-map", async |client, app| {
        exercise(client, app, &db).await
    })
    .await;
}

/// One county's row on a date, from the table.
struct Row {
    county: String,
    state: String,
    cases: Option<i64>,
    new_cases: Option<i64>,
    new_deaths: Option<i64>,
}

async fn row(db: &TestDb, state: &str, county: &str, day: NaiveDate) -> Row {
    let r = db
        .client
        .query_one(
            &format!(
                "SELECT county, state, cases, new_cases, new_deaths FROM {}.counties_daily
                 WHERE state = $1 AND county = $2 AND date = $3",
                db.schema()
            ),
            &[&state, &county, &day],
        )
        .await
        .expect("the row is there");
    Row {
        county: r.get(0),
        state: r.get(1),
        cases: r.get(2),
        new_cases: r.get(3),
        new_deaths: r.get(4),
    }
}

/// The class map.js gives a value.
fn class_of(value: Option<i64>) -> String {
    match value {
        None => "qn".to_owned(),
        Some(v) => format!("q{}", BREAKS.iter().filter(|b| v >= **b).count()),
    }
}

fn shown(value: Option<i64>) -> String {
    value.map_or_else(|| "not reported".to_owned(), thousands)
}

/// The page's status line and reported errors, for a failure's message.
async fn page_report(client: &Client) -> String {
    let report = client
        .execute(
            "const status = document.querySelector('#county-status');
             return [status && status.textContent, window.__dashboardErrors];",
            vec![],
        )
        .await;
    match report {
        Ok(report) => format!("status: {}; page errors: {}", report[0], report[1]),
        Err(err) => format!("the page could not be asked ({err})"),
    }
}

/// Waits (up to [`DRAW_WAIT`]) for the draw under way to end, checks it drew `day` without an
/// error (a failed draw fails here with its error text) and returns the render time the figure
/// reports.
async fn drawn_ms(client: &Client, day: &str) -> f64 {
    let figure = match client
        .wait()
        .at_most(DRAW_WAIT)
        .for_element(Locator::Css("#county-map:not([data-state='loading'])"))
        .await
    {
        Ok(figure) => figure,
        Err(err) => panic!(
            "the map of {day} was still loading after {DRAW_WAIT:?} ({err}); {}",
            page_report(client).await
        ),
    };
    let state = figure.attr("data-state").await.unwrap();
    assert_eq!(
        state.as_deref(),
        Some("drawn"),
        "the map of {day} did not draw; {}",
        page_report(client).await
    );
    let errors = client
        .execute("return window.__dashboardErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(
        errors,
        serde_json::json!([]),
        "the page reported errors drawing {day}"
    );
    assert_eq!(
        figure.attr("data-date").await.unwrap().as_deref(),
        Some(day),
        "the date drawn"
    );
    let ms = figure
        .attr("data-render-ms")
        .await
        .unwrap()
        .expect("the figure says how long it took");
    ms.parse().expect("a number of milliseconds")
}

async fn exercise(client: &Client, app: &TestApp, db: &TestDb) {
    let last = date(FIRST_DATE) + chrono::Days::new(DATES as u64 - 1);
    client.goto(&app.url("/")).await.expect("page opens");

    // First the latest date, with the geometry loaded and the paths built.
    let first_ms = drawn_ms(client, &last.to_string()).await;
    let first_fetch_ms = wait_for(client, "#county-map")
        .await
        .attr("data-fetch-ms")
        .await
        .unwrap()
        .unwrap();
    let picker = wait_for(client, "#county-date").await;
    assert_eq!(
        picker.prop("value").await.unwrap().as_deref(),
        Some(last.to_string().as_str()),
        "the date picker starts on the latest date"
    );
    let paths = client
        .execute(
            "return document.querySelectorAll('#county-map .counties path').length;",
            vec![],
        )
        .await
        .unwrap();
    assert!(paths.as_u64().unwrap() > 3_100, "{paths} paths");

    // A date picked: the API has not served it yet, so this is the whole way, from the request
    // to the painted paths.
    let picked = date("2021-06-15");
    set_date(client, "#county-date", &picked.to_string()).await;
    let picked_ms = drawn_ms(client, &picked.to_string()).await;
    let figure = wait_for(client, "#county-map").await;
    let fetch_ms = figure.attr("data-fetch-ms").await.unwrap().unwrap();
    let shade_ms = figure.attr("data-shade-ms").await.unwrap().unwrap();
    let shapes_fetch_ms = figure.attr("data-shapes-fetch-ms").await.unwrap().unwrap();
    let shapes_build_ms = figure.attr("data-shapes-build-ms").await.unwrap().unwrap();
    let keys = figure.attr("data-rows").await.unwrap().unwrap();
    println!(
        "county map: first draw (geometry + latest date) {first_ms} ms ({first_fetch_ms} ms to the data \
         and geometry; geometry: {shapes_fetch_ms} ms \
         to fetch and parse, {shapes_build_ms} ms to build the paths); picked date {picked} \
         {picked_ms} ms ({fetch_ms} ms of it the request, {shade_ms} ms to set the colours, the rest \
         to paint), {keys} counties"
    );
    assert!(
        keys.parse::<u64>().expect("a number of counties") > 3_200,
        "{keys} counties drawn"
    );

    // A county's colour and hover text are its row's: Polk County, Iowa (a plain square).
    let polk = row(db, "Iowa", "Polk", picked).await;
    assert_hover(client, "19153", &polk, &picked.to_string()).await;

    // New York City is not a shape of its own: it shades its boroughs and is listed beside.
    let nyc = row(db, "New York", "New York City", picked).await;
    assert_hover(client, "36047", &nyc, &picked.to_string()).await;
    let unmapped = text(client, "#county-unmapped tbody").await;
    assert!(
        unmapped.contains("New York City, New York (shaded on its boroughs)")
            && unmapped.contains("Unknown, Iowa")
            && unmapped.contains("Municipio 1, Puerto Rico"),
        "{unmapped}"
    );

    // The table fallback lists every county on the date.
    client
        .execute(
            "document.querySelector('#county-table-details').open = true;",
            vec![],
        )
        .await
        .unwrap();
    wait_for(client, "#county-table tbody tr").await;
    let table_rows = client
        .execute(
            "return document.querySelectorAll('#county-table tbody tr').length;",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(table_rows.to_string(), keys);
    assert!(
        text(client, "#county-table-caption")
            .await
            .contains(&picked.to_string())
    );

    // Two dates picked at once: the first's draw is outdated (its fetch aborted, which is no
    // error) and only the second is drawn.
    let (skipped, second) = (date("2020-08-01"), date("2020-09-01"));
    client
        .execute(
            "const el = document.querySelector('#county-date');
             for (const value of arguments) {
               el.value = value;
               el.dispatchEvent(new Event('change', { bubbles: true }));
             }",
            vec![skipped.to_string().into(), second.to_string().into()],
        )
        .await
        .unwrap();
    drawn_ms(client, &second.to_string()).await;
    assert_eq!(
        text(client, "#county-map-date").await,
        second.to_string(),
        "the caption names the date picked last"
    );

    // The 7-day average over the full table: Polk's week mean, from the request to the painted
    // paths; and the plan of that list, read by key through the primary key.
    wait_for(client, "#map-measure")
        .await
        .select_by_value("new_cases_avg7")
        .await
        .expect("the measure is chosen");
    wait_for(client, "#county-map[data-measure='new_cases_avg7']").await;
    let avg_ms = drawn_ms(client, &second.to_string()).await;
    let figure = wait_for(client, "#county-map").await;
    let avg_fetch_ms = figure.attr("data-fetch-ms").await.unwrap().unwrap();
    let avg_shade_ms = figure.attr("data-shade-ms").await.unwrap().unwrap();
    let week: Option<i64> = db
        .client
        .query_one(
            &format!(
                "SELECT CASE WHEN count(*) = 7 AND count(new_cases) = 7 THEN sum(new_cases)::int8 END
                 FROM {}.counties_daily WHERE state = 'Iowa' AND county = 'Polk'
                 AND date BETWEEN $1::date - 6 AND $1::date",
                db.schema()
            ),
            &[&second],
        )
        .await
        .expect("Polk's week is read")
        .get(0);
    let mean = week.map(|sum| (sum as f64 / 7.0 * 100.0).round() / 100.0);
    let tip = hover(client, "19153").await;
    let expected = format!(
        "New cases, 7-day average: {}",
        crate::map_levels::shown(mean)
    );
    assert!(tip.contains(&expected), "`{expected}` not in {tip}");
    let class = match mean {
        None => "qn".to_owned(),
        Some(v) => format!("q{}", BREAKS.iter().filter(|b| v >= **b as f64).count()),
    };
    assert_painted(client, "19153", &class).await;
    let plan = explain_average(db, second).await;
    println!(
        "county map, 7-day average on {second}: {avg_ms} ms ({avg_fetch_ms} ms of it the \
         request, {avg_shade_ms} ms to set the colours and fill the open table); the list's \
         statement on the full table:\n{plan}"
    );
    assert!(
        !plan.contains("Seq Scan on counties_daily"),
        "the average reads the whole table:\n{plan}"
    );

    let errors = client
        .execute("return window.__dashboardErrors;", vec![])
        .await
        .unwrap();
    assert_eq!(errors, serde_json::json!([]), "the page reported errors");
}

/// `EXPLAIN ANALYZE` of the list with 7-day averages of every county on `day`, as the dashboard
/// runs it.
async fn explain_average(db: &TestDb, day: NaiveDate) -> String {
    let sql = dashboard::keyed::query::Statements::new(&db.schema()).counties_latest_avg;
    let limit: i64 = 10_001;
    db.client
        .query(
            &format!("EXPLAIN (ANALYZE, BUFFERS) {sql}"),
            &[&Some(day), &None::<String>, &limit, &7i32],
        )
        .await
        .expect("the plan is read")
        .iter()
        .map(|row| row.get::<_, String>(0))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Hovers over county `fips` ([`hover`]) and checks the path's colour class, its painted fill
/// (the legend's for that class) and the hover text against `row`.
async fn assert_hover(client: &Client, fips: &str, row: &Row, day: &str) {
    let tip = hover(client, fips).await;
    let expected_title = if row.county == "New York City" {
        "New York City (Kings), New York".to_owned()
    } else {
        format!("{}, {}", row.county, row.state)
    };
    for part in [
        expected_title,
        format!("New cases: {}", shown(row.new_cases)),
        format!("New deaths: {}", shown(row.new_deaths)),
        format!("Cases: {}", shown(row.cases)),
        day.to_owned(),
    ] {
        assert!(
            tip.contains(&part),
            "`{part}` not in the hover text of {fips}: {tip}"
        );
    }
    assert_painted(client, fips, &class_of(row.new_cases)).await;
}
