//! The page in a real headless Chromium (Debian's `chromium` + `chromium-driver`, installed by
//! `scripts/install-browser.sh`), driven over WebDriver: it charts the rows in PostgreSQL, its
//! toggles work, and a run that lands while it is open shows up without a reload.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::support::{self, Day, Run, TestApp, TestDb, date, days};
use chrono::{TimeDelta, Utc};
use fantoccini::{Client, ClientBuilder, Locator};
use futures::FutureExt;
use hyper_util::client::legacy::connect::HttpConnector;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub(crate) const CHROMIUM: &str = "/usr/bin/chromium";
pub(crate) const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
pub(crate) const WAIT: Duration = Duration::from_secs(15);

#[tokio::test]
async fn the_page_charts_the_database_its_toggles_work_and_a_new_run_appears_live() {
    require_browser();

    let db = TestDb::new().await;
    db.create_schema().await;
    // 60 days from 2020-03-01 (to 2020-04-29); recovered reported for 45 (to 2020-04-14).
    let rows = days("2020-03-01", 60, 45);
    db.insert_days(&rows, "run-1").await;
    db.insert_run(&Run::succeeded(
        "run-1",
        Utc::now() - TimeDelta::minutes(10),
        [60, 0, 0, 0, 0],
    ))
    .await;
    db.insert_change(
        "run-1",
        date("2020-03-20"),
        "cases",
        Some(rows[19].cases + 25),
        Some(rows[19].cases),
    )
    .await;
    let app = TestApp::start(db.config()).await;
    in_browser(app, "final", async |client, app| {
        exercise(client, app, &db, &rows).await
    })
    .await;
}

/// Stops the test at once, naming the fix, when the browser is not installed; and installs the
/// TLS crypto provider the app's clients need.
pub(crate) fn require_browser() {
    for tool in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: run scripts/install-browser.sh (it installs Debian's chromium and chromium-driver)"
        );
    }
    shared::install_crypto_provider();
}

/// Runs `checks` in a fresh headless Chromium session on `app`'s page. The checks run under
/// `catch_unwind`, so whatever they find the browser is closed, a screenshot named `name` kept and
/// the app stopped; then the test fails if a check did.
pub(crate) async fn in_browser(
    app: TestApp,
    name: &str,
    checks: impl AsyncFnOnce(&Client, &TestApp),
) {
    let driver = Chromedriver::start().await;
    let profile = tempfile::tempdir().expect("temporary browser profile");
    let client = driver.session(profile.path()).await;
    let outcome = AssertUnwindSafe(checks(&client, &app)).catch_unwind().await;
    finish(client, app, name, outcome).await;
}

/// Ends a browser test whose checks ran under `catch_unwind`: keeps a screenshot named `name`,
/// closes the browser and the app, then fails the test if a check did.
async fn finish(client: Client, app: TestApp, name: &str, outcome: std::thread::Result<()>) {
    let screenshot = client.screenshot().await;
    let _ = client.close().await;
    app.stop().await;
    if let Ok(png) = screenshot {
        write_screenshot(name, &png);
    }
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

async fn exercise(client: &Client, app: &TestApp, db: &TestDb, rows: &[Day]) {
    client.goto(&app.url("/")).await.expect("page opens");

    // The chart renders the rows from the database.
    assert!(
        is_displayed(
            client,
            "figure#chart-cases[data-last-date='2020-04-29'][data-points='60'] canvas",
        )
        .await
    );
    assert!(
        text(client, "#chart-cases figcaption")
            .await
            .contains("60 days, 2020-03-01 to 2020-04-29")
    );
    assert_eq!(text(client, "#kpi-cases").await, thousands(rows[59].cases));
    assert_eq!(
        text(client, "#kpi-deaths").await,
        thousands(rows[59].deaths)
    );
    // Recovered after JHU stopped is "not reported", never zero.
    assert_eq!(text(client, "#kpi-recovered").await, "Not reported");
    assert_eq!(
        text(client, "#kpi-new_recovered").await,
        "last reported on 2020-04-14"
    );
    assert!(
        text(client, "#chart-recovered figcaption")
            .await
            .contains("not reported after 2020-04-14")
    );
    let badge = client.find(Locator::Css("#freshness")).await.unwrap();
    assert_eq!(
        badge.attr("data-state").await.unwrap().as_deref(),
        Some("fresh")
    );
    assert!(
        badge
            .text()
            .await
            .unwrap()
            .contains("data through 2020-04-29")
    );
    wait_for(client, "#corrections tbody tr").await;
    let corrections = text(client, "#corrections tbody").await;
    assert!(
        corrections.contains("2020-03-20") && corrections.contains("−25"),
        "{corrections}"
    );
    assert!(text(client, "#runs tbody").await.contains("succeeded"));
    save_screenshot(client, "cumulative").await;

    // Metric toggles show and hide charts, and the CSV link follows.
    click(client, "input[name='metric'][value='deaths']").await;
    assert!(!is_displayed(client, "#chart-deaths").await);
    let csv = client
        .find(Locator::Css("#csv"))
        .await
        .unwrap()
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert!(
        csv.contains("fields=cases%2Crecovered") && csv.contains("format=csv"),
        "{csv}"
    );
    click(client, "input[name='metric'][value='deaths']").await;
    wait_for(client, "figure#chart-deaths[data-points='60'] canvas").await;

    // Daily new values with and without the 7-day average.
    click(client, "input[name='view'][value='daily']").await;
    wait_for(
        client,
        "figure#chart-cases[data-view='daily'][data-series='New cases|7-day average']",
    )
    .await;
    click(client, "#avg").await;
    wait_for(
        client,
        "figure#chart-cases[data-view='daily'][data-series='New cases']",
    )
    .await;
    click(client, "#avg").await;
    wait_for(
        client,
        "figure#chart-cases[data-series='New cases|7-day average']",
    )
    .await;

    // Logarithmic and back.
    click(client, "input[name='scale'][value='log']").await;
    wait_for(client, "figure#chart-cases[data-scale='log'] canvas").await;
    assert!(
        text(client, "#chart-cases figcaption")
            .await
            .contains("log scale")
    );
    click(client, "input[name='scale'][value='linear']").await;
    wait_for(client, "figure#chart-cases[data-scale='linear']").await;

    // A date range narrows every chart; "All dates" restores it.
    set_date(client, "#from", "2020-04-01").await;
    wait_for(client, "figure#chart-cases[data-points='29']").await;
    wait_for(client, "figure#chart-deaths[data-points='29']").await;
    click(client, "#range-all").await;
    wait_for(client, "figure#chart-cases[data-points='60']").await;

    // A run lands while the page is open: it shows the new day without a reload.
    wait_for(client, "#live[data-state='connected']").await;
    client
        .execute("window.__notReloaded = true;", vec![])
        .await
        .unwrap();
    let last = &rows[59];
    let new_day = Day {
        date: date("2020-04-30"),
        cases: last.cases + 9_000,
        deaths: last.deaths + 230,
        recovered: None,
        new_cases: Some(9_000),
        new_deaths: Some(230),
        new_recovered: None,
    };
    db.insert_days(std::slice::from_ref(&new_day), "run-2")
        .await;
    db.insert_run(&Run::succeeded("run-2", Utc::now(), [1, 0, 60, 0, 0]))
        .await;
    let js = test_support::stores().await.js;
    let loaded = support::loaded_event(&db.env, "run-2", date("2020-03-01"), date("2020-04-30"), 1);
    shared::nats::publish_event(
        &js,
        &shared::subjects::loaded(&db.env),
        "run-2-loaded",
        &loaded,
    )
    .await
    .expect("loaded event is published");
    wait_for(
        client,
        "figure#chart-cases[data-last-date='2020-04-30'][data-points='61']",
    )
    .await;
    assert_eq!(text(client, "#kpi-cases").await, thousands(new_day.cases));
    assert!(
        text(client, "#toast")
            .await
            .contains("data through 2020-04-30")
    );
    assert!(
        text(client, "#runs tbody tr:first-child")
            .await
            .contains("succeeded")
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

pub(crate) async fn wait_for(client: &Client, css: &str) -> fantoccini::elements::Element {
    match client
        .wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
    {
        Ok(element) => element,
        Err(err) => {
            let errors = client
                .execute("return window.__dashboardErrors;", vec![])
                .await
                .ok();
            panic!("`{css}` did not appear within {WAIT:?} ({err}); page errors: {errors:?}")
        }
    }
}

/// Whether the element `css` finds is shown. The page may draw it anew between the lookup and the
/// question (a chart redrawn when data or the live stream arrives): a stale element is looked up
/// again.
async fn is_displayed(client: &Client, css: &str) -> bool {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        match wait_for(client, css).await.is_displayed().await {
            Ok(shown) => return shown,
            Err(err)
                if err.is_stale_element_reference() && tokio::time::Instant::now() < deadline => {}
            Err(err) => panic!("{css}: {err}"),
        }
    }
}

/// The text of the element `css` finds, looked up again if the page drew it anew meanwhile.
pub(crate) async fn text(client: &Client, css: &str) -> String {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let element = client
            .find(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("{css}: {e}"));
        match element.text().await {
            Ok(text) => return text,
            Err(err)
                if err.is_stale_element_reference() && tokio::time::Instant::now() < deadline => {}
            Err(err) => panic!("{css}: {err}"),
        }
    }
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("{css}: {e}"))
        .click()
        .await
        .unwrap();
}

/// Typing into a date input depends on the browser's locale, so set it as a script would and
/// fire the `change` event a person's edit fires.
pub(crate) async fn set_date(client: &Client, css: &str, value: &str) {
    client
        .execute(
            "const el = document.querySelector(arguments[0]); el.value = arguments[1];
             el.dispatchEvent(new Event('change', { bubbles: true }));",
            vec![css.into(), value.into()],
        )
        .await
        .unwrap();
}

pub(crate) fn thousands(n: i64) -> String {
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

async fn save_screenshot(client: &Client, name: &str) {
    write_screenshot(name, &client.screenshot().await.expect("screenshot"));
}

/// Screenshots go to the target dir (`$CARGO_TARGET_DIR`, else `target/`) for a person to look at.
pub(crate) fn write_screenshot(name: &str, png: &[u8]) {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    std::fs::create_dir_all(&target).expect("target dir exists");
    let path = target.join(format!("dashboard-browser-test-{name}.png"));
    std::fs::write(&path, png).expect("screenshot is written");
    eprintln!("screenshot of the page: {}", path.display());
}

/// `chromedriver` on a free port, killed when dropped.
pub(crate) struct Chromedriver {
    port: u16,
    _child: Child,
}

impl Chromedriver {
    pub(crate) async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        // chromedriver says when it listens; wait for that line rather than for a fixed time.
        tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if line.contains("started successfully") {
                    return;
                }
            }
            panic!("chromedriver exited before it was ready");
        })
        .await
        .expect("chromedriver is ready within 15 s");
        // Keep draining its output so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Self {
            port,
            _child: child,
        }
    }

    pub(crate) async fn session(&self, profile: &Path) -> Client {
        let args = [
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1280,2200",
            "--lang=en-US",
        ]
        .iter()
        .map(|a| a.to_string())
        .chain([format!("--user-data-dir={}", profile.display())])
        .collect::<Vec<_>>();
        let capabilities = serde_json::json!({
            "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
        });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("a Chromium session starts")
    }
}
