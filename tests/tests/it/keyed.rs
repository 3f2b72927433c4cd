//! States and counties end to end: successive versions of NYT's state and county files travel
//! from a fake GitHub through the real extractor, transformer, loader and notifier. After each
//! version the table equals the rules applied to that version, key for key, and the run's
//! notification counts and `<table>_changes` lines are exactly those of the step — checked against
//! `oracle`, a plain second implementation of the rules.
//!
//! The fixture histories below hold what a real one does now and then: a revised value, a key that
//! disappears, a count not reported (NULL) and later reported, New York City and `Unknown` without
//! a FIPS code, and a county dataset split in two overlapping files. The same replay then runs over
//! real successive upstream versions when they are on this machine (`UPSTREAM_DIR`, by default
//! `../shared/upstream` beside the repository); they are not part of the repository.

mod oracle;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::Dataset;
use shared::events::RunStatus;
use test_support::{Pipeline, Stages, TestEnv};

use crate::support::pipeline_vars;
use oracle::{Change, Layout, Row, RowKey, Table};

const REPO: &str = "nytimes/covid-19-data";

/// A history to replay: each step is the files that changed, `(path, content)`.
struct History {
    dataset: Dataset,
    layout: Layout,
    paths: Vec<&'static str>,
    steps: Vec<Vec<(&'static str, String)>>,
    /// `MAX_REMOVED_SHARE` for the loader (DESIGN rule 7).
    max_removed_share: &'static str,
}

const STATES_V1: &str = "date,state,fips,cases,deaths
2020-03-01,Washington,53,10,1
2020-03-01,New York,36,5,0
2020-03-02,Washington,53,18,2
2020-03-02,New York,36,12,
2020-03-02,Guam,66,1,0
";

/// Washington's first day revised (10 → 11), New York's deaths reported (NULL → 1), Guam gone,
/// a new day.
const STATES_V2: &str = "date,state,fips,cases,deaths
2020-03-01,Washington,53,11,1
2020-03-01,New York,36,5,0
2020-03-02,Washington,53,18,2
2020-03-02,New York,36,12,1
2020-03-03,Washington,53,25,2
2020-03-03,New York,36,20,
";

/// Only a new day.
const STATES_V3: &str = "date,state,fips,cases,deaths
2020-03-01,Washington,53,11,1
2020-03-01,New York,36,5,0
2020-03-02,Washington,53,18,2
2020-03-02,New York,36,12,1
2020-03-03,Washington,53,25,2
2020-03-03,New York,36,20,
2020-03-04,Washington,53,31,3
2020-03-04,New York,36,33,2
";

fn states_history() -> History {
    History {
        dataset: Dataset::STATES,
        layout: oracle::STATES,
        paths: vec!["us-states.csv"],
        steps: [STATES_V1, STATES_V2, STATES_V3]
            .into_iter()
            .map(|v| vec![("us-states.csv", v.to_owned())])
            .collect(),
        max_removed_share: "0.5",
    }
}

/// The county dataset as two files, as upstream split it: a year's file and `recent`, which
/// overlap on the last days (rows in both agree).
fn counties_history() -> History {
    let header = "date,county,state,fips,cases,deaths\n";
    let year_v1 = format!(
        "{header}2020-03-01,Snohomish,Washington,53061,4,1\n\
         2020-03-01,New York City,New York,,2,0\n\
         2020-03-01,Unknown,Rhode Island,,1,\n\
         2020-03-02,Snohomish,Washington,53061,6,1\n\
         2020-03-02,New York City,New York,,5,0\n"
    );
    let recent_v1 = format!(
        "{header}2020-03-02,Snohomish,Washington,53061,6,1\n\
         2020-03-02,New York City,New York,,5,0\n\
         2020-03-02,King,Washington,53033,9,\n"
    );
    // Snohomish's first day revised in the year's file; a new day in both; `Unknown` of Rhode
    // Island gone (assigned to a county upstream); King's deaths reported.
    let year_v2 = format!(
        "{header}2020-03-01,Snohomish,Washington,53061,5,1\n\
         2020-03-01,New York City,New York,,2,0\n\
         2020-03-02,Snohomish,Washington,53061,6,1\n\
         2020-03-02,New York City,New York,,5,0\n\
         2020-03-03,Snohomish,Washington,53061,8,2\n\
         2020-03-03,New York City,New York,,11,0\n"
    );
    let recent_v2 = format!(
        "{header}2020-03-02,Snohomish,Washington,53061,6,1\n\
         2020-03-02,New York City,New York,,5,0\n\
         2020-03-02,King,Washington,53033,9,0\n\
         2020-03-03,Snohomish,Washington,53061,8,2\n\
         2020-03-03,New York City,New York,,11,0\n\
         2020-03-03,King,Washington,53033,14,1\n"
    );
    // Only `recent` changes: a new day for King.
    let recent_v3 = format!("{recent_v2}2020-03-04,King,Washington,53033,20,1\n");
    History {
        dataset: Dataset::COUNTIES,
        layout: oracle::COUNTIES,
        paths: vec!["us-counties-2020.csv", "us-counties-recent.csv"],
        steps: vec![
            vec![
                ("us-counties-2020.csv", year_v1),
                ("us-counties-recent.csv", recent_v1),
            ],
            vec![
                ("us-counties-2020.csv", year_v2),
                ("us-counties-recent.csv", recent_v2),
            ],
            vec![("us-counties-recent.csv", recent_v3)],
        ],
        max_removed_share: "0.5",
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn successive_state_versions_load_exactly() {
    replay(states_history()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn successive_county_versions_in_two_files_load_exactly() {
    replay(counties_history()).await;
}

/// The same replay over real upstream versions: five successive `us-states.csv` and five
/// successive `us-counties.csv` (about 100,000 rows each, with real revisions, dropped keys and
/// counts not reported).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn real_successive_versions_load_exactly() {
    let Some(upstream) = upstream_dir() else {
        eprintln!(
            "no upstream history at UPSTREAM_DIR or ../shared/upstream: only the fixture replays ran"
        );
        return;
    };
    for (dataset, layout, folder, path) in [
        (
            Dataset::STATES,
            oracle::STATES,
            "nyt/states/history",
            "us-states.csv",
        ),
        (
            Dataset::COUNTIES,
            oracle::COUNTIES,
            "nyt/counties/history",
            "us-counties.csv",
        ),
    ] {
        let steps = versions(&upstream.join(folder), 5)
            .into_iter()
            .map(|content| vec![(path, content)])
            .collect();
        replay(History {
            dataset,
            layout,
            paths: vec![path],
            steps,
            max_removed_share: "0.05",
        })
        .await;
    }
}

/// Replays `history` through the four services in an env of its own, checking every step.
async fn replay(history: History) {
    let test = TestEnv::new(&format!("seq_{}", history.dataset)).await;
    let env = &test.env;
    let github = FakeGithub::start().await.expect("fake GitHub starts");
    let mut vars = pipeline_vars(env, &github);
    let prefix = history.dataset.as_str().to_uppercase();
    vars.set("DATASETS", history.dataset.as_str())
        .set(format!("{prefix}_PATHS"), history.paths.join(","))
        // Each later step is noticed through a trigger, after all its files are committed: a
        // poll between two files of one step would make a run of half a step.
        .set("POLL_INTERVAL", "1h")
        // A fixture's dropped key is a large share of its few rows; real history stays far
        // below the default 5 %.
        .set("MAX_REMOVED_SHARE", history.max_removed_share);
    let mut notifications = test.notifications().await;

    let mut files: BTreeMap<&str, String> = BTreeMap::new();
    let mut stored = Table::new();
    let mut pipeline = None;
    for (number, step) in history.steps.iter().enumerate() {
        let version = number + 1;
        github.add_many(
            step.iter()
                .map(|(path, content)| NewCommit::new(REPO, path, content.clone())),
        );
        files.extend(step.iter().map(|(path, content)| (*path, content.clone())));
        match &pipeline {
            // The first poll, at start, finds version 1.
            None => {
                pipeline = Some(Pipeline::start(&vars, Stages::All).expect("the services start"))
            }
            Some(_) => trigger(env).await,
        }

        let notification = notifications.next(&format!("version {version}")).await;
        assert_eq!(
            notification.status,
            RunStatus::Succeeded,
            "version {version}: {}",
            notification.text
        );
        assert_eq!(notification.dataset, history.dataset);
        let contents: Vec<&str> = files.values().map(String::as_str).collect();
        let expected = oracle::table(history.layout, &contents);
        let c = &notification.counts;
        assert_eq!(
            [c.inserted, c.updated, c.unchanged, c.removed, c.revised],
            oracle::counts(&stored, &expected),
            "version {version}: counts (inserted, updated, unchanged, removed, revised)"
        );
        let table = stored_table(env, &history).await;
        assert_eq!(table.len(), expected.len(), "version {version}: rows");
        if let Some((key, row)) = expected
            .iter()
            .find(|(key, row)| table.get(*key) != Some(row))
        {
            panic!(
                "version {version}: {key:?} should be {row:?}, the table holds {:?}",
                table.get(key)
            );
        }
        assert_eq!(
            changes_of_run(env, &history, notification.run_id.as_str()).await,
            oracle::changes(&stored, &expected),
            "version {version}: the run's change lines"
        );
        stored = expected;
    }
    notifications.assert_quiet(Duration::from_millis(500)).await;
    if let Some(pipeline) = pipeline {
        pipeline.stop().await;
    }
    test.clean_up().await;
}

/// Asks the env's extractor to check upstream now, as `etl trigger` does.
async fn trigger(env: &shared::Env) {
    let client = shared::nats::connect(
        &test_support::stack::nats_config(test_support::stack::Identity::Operator),
        "covid-etl-test",
        &shared::Shutdown::new(),
    )
    .await
    .expect("NATS runs on this machine");
    tokio::time::timeout(
        Duration::from_secs(30),
        client.request(shared::subjects::trigger(env), "{}".into()),
    )
    .await
    .expect("the trigger is answered in time")
    .expect("the trigger is answered");
}

fn table_name(history: &History) -> String {
    format!("{}_daily", history.dataset)
}

fn key_columns(history: &History) -> String {
    history.layout.keys.join(", ")
}

/// Every row of the dataset's table.
async fn stored_table(env: &shared::Env, history: &History) -> Table {
    let keys = history.layout.keys.len();
    let sql = format!(
        "SELECT date::text, {}, fips, cases, deaths, new_cases, new_deaths FROM \"{env}\".{}",
        key_columns(history),
        table_name(history)
    );
    let client = test_support::connect().await;
    let rows = client
        .query(&sql, &[])
        .await
        .expect("the table is readable");
    rows.iter()
        .map(|row| {
            let key: RowKey = (row.get(0), (1..=keys).map(|i| row.get(i)).collect());
            let fips: Option<String> = row.get(keys + 1);
            let values = [0, 1, 2, 3].map(|i| row.get::<_, Option<i64>>(keys + 2 + i));
            let fips = fips.map(|f| f.parse().expect("a stored FIPS code is a number"));
            (key, Row { fips, values })
        })
        .collect()
}

/// The lines a run wrote to `<table>_changes`, sorted as the oracle sorts them.
async fn changes_of_run(env: &shared::Env, history: &History, run_id: &str) -> Vec<Change> {
    let keys = history.layout.keys.len();
    let sql = format!(
        "SELECT date::text, {}, field, old_value, new_value FROM \"{env}\".{}_changes \
         WHERE run_id = $1",
        key_columns(history),
        table_name(history)
    );
    let client = test_support::connect().await;
    let mut changes: Vec<Change> = client
        .query(&sql, &[&run_id])
        .await
        .expect("the change lines are readable")
        .iter()
        .map(|row| {
            (
                row.get(0),
                (1..=keys).map(|i| row.get(i)).collect(),
                row.get(keys + 1),
                row.get(keys + 2),
                row.get(keys + 3),
            )
        })
        .collect();
    changes.sort();
    changes
}

/// The real upstream files, when this machine has them.
fn upstream_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("UPSTREAM_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| test_support::stack::root().join("../shared/upstream"));
    dir.join("nyt/states/history").is_dir().then_some(dir)
}

/// The first `count` distinct versions in `folder`, oldest first (the files are named by commit
/// time; a commit that left the file as it was makes no run, so it is no step).
fn versions(folder: &Path, count: usize) -> Vec<String> {
    let mut names: Vec<PathBuf> = std::fs::read_dir(folder)
        .unwrap_or_else(|err| panic!("{}: {err}", folder.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "csv"))
        .collect();
    names.sort();
    let mut contents: Vec<String> = names
        .into_iter()
        .map(|path| std::fs::read_to_string(&path).unwrap())
        .collect();
    contents.dedup();
    contents.truncate(count);
    contents
}
