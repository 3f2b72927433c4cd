//! The keyed datasets applied to a real PostgreSQL through `loader::keyed` (a delta on its base,
//! a full reconcile), as the loader's role; each test works in a schema of its own.

use std::collections::BTreeMap;

use dataset::keyed::Curated;
use futures::TryStreamExt;

use chrono::NaiveDate;
use loader::keyed::{self, Applied, Counts, Delta, DeltaOutcome, KeyedError, Table};
use shared::Env;
use shared::ids::RunId;
use test_support::stack::{self, Identity};
use test_support::{drop_schema, migrate, unique_env};
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

const SHARE: f64 = 0.05;
const T: &Table = &Table::COUNTIES;

/// One county's day, deltas included.
#[derive(Debug, Clone, PartialEq)]
struct Row {
    date: NaiveDate,
    state: String,
    county: String,
    fips: Option<String>,
    cases: Option<i64>,
    deaths: Option<i64>,
    new_cases: Option<i64>,
    new_deaths: Option<i64>,
}

type Key = (String, String, NaiveDate);

impl Row {
    fn key(&self) -> Key {
        (self.state.clone(), self.county.clone(), self.date)
    }

    fn values(&self) -> (Option<&str>, [Option<i64>; 4]) {
        (
            self.fips.as_deref(),
            [self.cases, self.deaths, self.new_cases, self.new_deaths],
        )
    }
}

fn day(n: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 1, 1).unwrap() + chrono::Days::new(u64::from(n))
}

/// (day, state, county, fips, cases, deaths) → rows with the contract's deltas per key.
type Values<'a> = (
    u32,
    &'a str,
    &'a str,
    Option<&'a str>,
    Option<i64>,
    Option<i64>,
);

fn dataset(values: &[Values]) -> Vec<Row> {
    let mut rows: Vec<Row> = values
        .iter()
        .map(|&(d, state, county, fips, cases, deaths)| Row {
            date: day(d),
            state: state.into(),
            county: county.into(),
            fips: fips.map(Into::into),
            cases,
            deaths,
            new_cases: None,
            new_deaths: None,
        })
        .collect();
    rows.sort_by_key(Row::key);
    let delta = |now: Option<i64>, before: Option<Option<i64>>| match before {
        None => now,
        Some(before) => now.zip(before).map(|(a, b)| a - b),
    };
    let mut previous: Option<Row> = None;
    for row in &mut rows {
        let before = previous
            .as_ref()
            .filter(|p| p.state == row.state && p.county == row.county);
        row.new_cases = delta(row.cases, before.map(|p| p.cases));
        row.new_deaths = delta(row.deaths, before.map(|p| p.deaths));
        previous = Some(row.clone());
    }
    rows
}

/// Three counties over days 1 to 3: one without FIPS, one with a name to quote, one with a
/// deaths value missing.
fn base_values() -> Vec<Values<'static>> {
    vec![
        (1, "New York", "New York City", None, Some(100), Some(5)),
        (2, "New York", "New York City", None, Some(150), Some(7)),
        (3, "New York", "New York City", None, Some(180), Some(9)),
        (1, "Washington", "King", Some("53033"), Some(10), Some(0)),
        (2, "Washington", "King", Some("53033"), Some(12), Some(1)),
        (3, "Washington", "King", Some("53033"), Some(20), Some(1)),
        (
            1,
            "New Mexico",
            "Doña Ana, \"DA\"",
            Some("35013"),
            Some(3),
            None,
        ),
        (
            2,
            "New Mexico",
            "Doña Ana, \"DA\"",
            Some("35013"),
            Some(4),
            Some(0),
        ),
        (
            3,
            "New Mexico",
            "Doña Ana, \"DA\"",
            Some("35013"),
            None,
            Some(0),
        ),
    ]
}

fn field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) || text.is_empty() {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

fn num(n: Option<i64>) -> String {
    n.map_or_else(String::new, |n| n.to_string())
}

fn rows_csv(rows: &[Row]) -> Vec<u8> {
    let mut out = String::from("date,state,county,fips,cases,deaths,new_cases,new_deaths\n");
    for r in rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            r.date,
            field(&r.state),
            field(&r.county),
            r.fips.as_deref().map(field).unwrap_or_default(),
            num(r.cases),
            num(r.deaths),
            num(r.new_cases),
            num(r.new_deaths)
        ));
    }
    out.into_bytes()
}

/// The contract's delta from `old` to `new`: rows new or changed, keys removed, revised values.
fn delta_csv(old: &[Row], new: &[Row]) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let before: BTreeMap<Key, &Row> = old.iter().map(|r| (r.key(), r)).collect();
    let after: BTreeMap<Key, &Row> = new.iter().map(|r| (r.key(), r)).collect();
    let changed: Vec<Row> = new
        .iter()
        .filter(|r| {
            before
                .get(&r.key())
                .is_none_or(|b| b.values() != r.values())
        })
        .cloned()
        .collect();
    let mut removed = String::from("date,state,county\n");
    for r in old.iter().filter(|r| !after.contains_key(&r.key())) {
        removed.push_str(&format!(
            "{},{},{}\n",
            r.date,
            field(&r.state),
            field(&r.county)
        ));
    }
    let mut changes = String::from("date,state,county,field,old_value,new_value\n");
    for r in new {
        let Some(b) = before.get(&r.key()) else {
            continue;
        };
        for (name, was, now) in [("cases", b.cases, r.cases), ("deaths", b.deaths, r.deaths)] {
            if was != now {
                changes.push_str(&format!(
                    "{},{},{},{name},{},{}\n",
                    r.date,
                    field(&r.state),
                    field(&r.county),
                    num(was),
                    num(now)
                ));
            }
        }
    }
    (
        rows_csv(&changed),
        removed.into_bytes(),
        changes.into_bytes(),
    )
}

/// The rows CSV of `rows` with the first row once more at the end: a (date, key) given twice.
fn with_first_row_again(rows: &[Row]) -> Vec<u8> {
    let mut csv = rows_csv(rows);
    csv.extend_from_slice(rows_csv(&rows[..1]).split(|&b| b == b'\n').nth(1).unwrap());
    csv.push(b'\n');
    csv
}

fn run(id: &str) -> RunId {
    RunId::new(id).unwrap()
}

async fn fresh() -> (Client, Env) {
    let env = unique_env("keyed");
    (migrate(&env).await, env)
}

/// Reconciles `rows` as `run_id` and commits. The fixtures are small: one row of ten is more than
/// [`SHARE`], so a reconcile allows half.
async fn load(client: &mut Client, env: &Env, run_id: &str, rows: &[Row]) -> Applied {
    let tx = client.transaction().await.unwrap();
    let applied = keyed::reconcile(&tx, env, T, &run(run_id), &rows_csv(rows), None, 0.5)
        .await
        .unwrap();
    tx.commit().await.unwrap();
    applied
}

/// Applies the delta from `old` to `new` as `run_id` on base `base` with `share`, and commits
/// unless it failed.
async fn apply(
    client: &mut Client,
    env: &Env,
    (base, run_id): (&str, &str),
    (old, new): (&[Row], &[Row]),
    share: f64,
) -> Result<DeltaOutcome, KeyedError> {
    let (rows, removed, changes) = delta_csv(old, new);
    let base = run(base);
    let tx = client.transaction().await.unwrap();
    let delta = Delta {
        base_run_id: &base,
        rows: &rows,
        removed: &removed,
        changes: &changes,
    };
    let outcome = keyed::apply_delta(&tx, env, T, &run(run_id), &delta, share).await;
    if outcome.is_err() {
        still_usable(&tx).await;
    }
    tx.commit().await.unwrap();
    outcome
}

/// After a failed call the caller's transaction still runs statements (and then commits).
async fn still_usable(tx: &tokio_postgres::Transaction<'_>) {
    let one: i32 = tx
        .query_one("SELECT 1", &[])
        .await
        .expect("the transaction is usable after the error")
        .get(0);
    assert_eq!(one, 1);
}

/// Applies hand-made CSV buffers for counties as `run-b` on base `run-a`; the transaction is
/// committed either way (after checking it is usable on an error).
async fn apply_csv(
    client: &mut Client,
    env: &Env,
    rows: &str,
    removed: &str,
    changes: &str,
) -> Result<DeltaOutcome, KeyedError> {
    let base = run("run-a");
    let tx = client.transaction().await.unwrap();
    let delta = Delta {
        base_run_id: &base,
        rows: rows.as_bytes(),
        removed: removed.as_bytes(),
        changes: changes.as_bytes(),
    };
    let outcome = keyed::apply_delta(&tx, env, T, &run("run-b"), &delta, SHARE).await;
    if outcome.is_err() {
        still_usable(&tx).await;
    }
    tx.commit().await.unwrap();
    outcome
}

/// What an apply did, without its timings.
#[derive(Debug, PartialEq)]
struct Summary {
    counts: Counts,
    rows: u64,
    changes: u64,
}

fn summary(applied: &Applied) -> Summary {
    Summary {
        counts: applied.counts,
        rows: applied.rows,
        changes: applied.changes,
    }
}

fn expect_applied(outcome: Result<DeltaOutcome, KeyedError>) -> Applied {
    match outcome {
        Ok(DeltaOutcome::Applied(applied)) => applied,
        other => panic!("expected the delta to apply, got {other:?}"),
    }
}

/// The stored rows, read back into the fixtures' shape.
async fn stored(client: &Client, env: &Env) -> Vec<Row> {
    client
        .query(
            &format!(
                "SELECT date, state, county, fips, cases, deaths, new_cases, new_deaths
                 FROM \"{env}\".counties_daily ORDER BY state, county, date"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| Row {
            date: r.get(0),
            state: r.get(1),
            county: r.get(2),
            fips: r.get(3),
            cases: r.get(4),
            deaths: r.get(5),
            new_cases: r.get(6),
            new_deaths: r.get(7),
        })
        .collect()
}

/// Every keyed table's every column, to prove them untouched.
async fn snapshot(client: &Client, env: &Env) -> Vec<String> {
    let mut all = Vec::new();
    for table in [
        "counties_daily",
        "counties_daily_changes",
        "counties_keys",
        "states_daily",
        "keyed_base",
    ] {
        let rows = client
            .query(
                &format!("SELECT t::text FROM \"{env}\".{table} t ORDER BY t::text"),
                &[],
            )
            .await
            .unwrap();
        all.extend(
            rows.iter()
                .map(|r| format!("{table}: {}", r.get::<_, String>(0))),
        );
    }
    all
}

async fn base_of(client: &Client, env: &Env) -> Option<(String, i64)> {
    client
        .query_opt(
            &format!("SELECT run_id, rows FROM \"{env}\".keyed_base WHERE dataset = 'counties'"),
            &[],
        )
        .await
        .unwrap()
        .map(|r| (r.get(0), r.get(1)))
}

/// (date, state, county, field, old, new) of `run_id`'s revisions.
type Change = (NaiveDate, String, String, String, Option<i64>, Option<i64>);

async fn changes_of(client: &Client, env: &Env, run_id: &str) -> Vec<Change> {
    client
        .query(
            &format!(
                "SELECT date, state, county, field, old_value, new_value
                 FROM \"{env}\".counties_daily_changes WHERE run_id = $1
                 ORDER BY state, county, date, field"
            ),
            &[&run_id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4), r.get(5)))
        .collect()
}

fn change(
    d: u32,
    state: &str,
    county: &str,
    f: &str,
    old: Option<i64>,
    new: Option<i64>,
) -> Change {
    (day(d), state.into(), county.into(), f.into(), old, new)
}

/// (state, county, fips, first date, last date) of each key in the key list.
type KeyLine = (String, String, Option<String>, NaiveDate, NaiveDate);

async fn keys_of(client: &Client, env: &Env) -> Vec<KeyLine> {
    client
        .query(
            &format!(
                "SELECT state, county, fips, first_date, last_date
                 FROM \"{env}\".counties_keys ORDER BY state, county"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
        .collect()
}

/// The key list `rows` make: each key's latest FIPS code, first and last dates.
fn keys_in(rows: &[Row]) -> Vec<KeyLine> {
    let mut keys: BTreeMap<(String, String), KeyLine> = BTreeMap::new();
    for row in sorted(rows.to_vec()) {
        keys.entry((row.state.clone(), row.county.clone()))
            .and_modify(|line| (line.2, line.4) = (row.fips.clone(), row.date))
            .or_insert((row.state, row.county, row.fips, row.date, row.date));
    }
    keys.into_values().collect()
}

fn sorted(mut rows: Vec<Row>) -> Vec<Row> {
    rows.sort_by(|a, b| (&a.state, &a.county, a.date).cmp(&(&b.state, &b.county, b.date)));
    rows
}

#[tokio::test]
async fn a_first_reconcile_inserts_every_row_and_records_its_base() {
    let (mut client, env) = fresh().await;
    let data = dataset(&base_values());
    let applied = load(&mut client, &env, "run-a", &data).await;

    assert_eq!(
        summary(&applied),
        Summary {
            counts: Counts {
                inserted: 9,
                updated: 0,
                unchanged: 0,
                removed: 0,
                revised: 0
            },
            rows: 9,
            changes: 0,
        }
    );
    // NULL stays NULL (never 0), a missing FIPS stays NULL, quoted names come back whole.
    assert_eq!(stored(&client, &env).await, sorted(data.clone()));
    assert_eq!(base_of(&client, &env).await, Some(("run-a".into(), 9)));
    let run_ids: Vec<String> = client
        .query(
            &format!("SELECT DISTINCT run_id FROM \"{env}\".counties_daily"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(run_ids, ["run-a"]);
    // The first load drops the primary key and builds it again: it is back, as the migration
    // made it, and the only index (readers go through the key list).
    let indexes: Vec<String> = client
        .query(
            "SELECT pg_get_indexdef(indexrelid) FROM pg_index
             WHERE indrelid = $1::text::regclass ORDER BY 1",
            &[&format!("\"{env}\".counties_daily")],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(
        indexes,
        [format!(
            "CREATE UNIQUE INDEX counties_daily_pkey ON {env}.counties_daily USING btree (state, county, date)"
        )]
    );
    assert_eq!(keys_of(&client, &env).await, keys_in(&data));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_delta_adds_a_day_and_a_revision_updates_two_rows() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;

    let mut values = base_values();
    // King's day 2 revised from 12 to 15 cases: its own row and day 3's delta change.
    values[4].4 = Some(15);
    values.extend([
        (4, "New York", "New York City", None, Some(200), Some(9)),
        (4, "Washington", "King", Some("53033"), Some(25), None),
        (
            4,
            "New Mexico",
            "Doña Ana, \"DA\"",
            Some("35013"),
            Some(6),
            Some(1),
        ),
    ]);
    let new = dataset(&values);
    let applied =
        expect_applied(apply(&mut client, &env, ("run-a", "run-b"), (&old, &new), SHARE).await);

    assert_eq!(
        summary(&applied),
        Summary {
            counts: Counts {
                inserted: 3,
                updated: 2,
                unchanged: 7,
                removed: 0,
                revised: 1
            },
            rows: 12,
            changes: 1,
        }
    );
    assert_eq!(stored(&client, &env).await, sorted(new.clone()));
    assert_eq!(
        changes_of(&client, &env, "run-b").await,
        [change(2, "Washington", "King", "cases", Some(12), Some(15))]
    );
    assert_eq!(base_of(&client, &env).await, Some(("run-b".into(), 12)));
    // Only the rows written carry the new run; the rest keep theirs.
    let by_run: Vec<(String, i64)> = client
        .query(
            &format!(
                "SELECT run_id, count(*) FROM \"{env}\".counties_daily GROUP BY run_id ORDER BY run_id"
            ),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    assert_eq!(by_run, [("run-a".into(), 7), ("run-b".into(), 5)]);
    // King's day 4 deaths are NULL, so is its delta; the day after a NULL has a NULL delta.
    let king4 = new
        .iter()
        .find(|r| r.county == "King" && r.date == day(4))
        .unwrap();
    assert_eq!((king4.deaths, king4.new_deaths), (None, None));

    // A revision to NULL and back is recorded NULL-aware, as two revised values of one pair.
    let mut values2 = values.clone();
    values2[0].4 = None;
    values2[0].5 = Some(6);
    let newer = dataset(&values2);
    let applied =
        expect_applied(apply(&mut client, &env, ("run-b", "run-c"), (&new, &newer), SHARE).await);
    assert_eq!(
        (
            applied.counts.revised,
            applied.changes,
            applied.counts.updated
        ),
        (1, 2, 2)
    );
    assert_eq!(
        changes_of(&client, &env, "run-c").await,
        [
            change(1, "New York", "New York City", "cases", Some(100), None),
            change(1, "New York", "New York City", "deaths", Some(5), Some(6)),
        ]
    );
    assert_eq!(stored(&client, &env).await, sorted(newer.clone()));
    assert_eq!(keys_of(&client, &env).await, keys_in(&newer));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_delta_removes_the_rows_of_a_key_that_left() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;
    let new: Vec<Row> = old.iter().filter(|r| r.county != "King").cloned().collect();

    let applied =
        expect_applied(apply(&mut client, &env, ("run-a", "run-b"), (&old, &new), 0.5).await);
    assert_eq!(
        applied.counts,
        Counts {
            inserted: 0,
            updated: 0,
            unchanged: 6,
            removed: 3,
            revised: 0
        }
    );
    assert_eq!(applied.rows, 6);
    assert_eq!(stored(&client, &env).await, sorted(new.clone()));
    assert_eq!(base_of(&client, &env).await, Some(("run-b".into(), 6)));
    // The key left the key list with its rows.
    assert_eq!(keys_of(&client, &env).await, keys_in(&new));
    assert!(keys_of(&client, &env).await.iter().all(|k| k.1 != "King"));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_delta_carries_the_key_list_along() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;

    let mut values: Vec<Values> = base_values()
        .into_iter()
        // King keeps only its middle day: its first and last dates move inwards.
        .filter(|v| v.2 != "King" || v.0 == 2)
        // Doña Ana's latest row gets another FIPS code.
        .map(|v| match v {
            (3, state, county @ "Doña Ana, \"DA\"", _, cases, deaths) => {
                (3, state, county, Some("35099"), cases, deaths)
            }
            other => other,
        })
        .collect();
    values.extend([
        // New York City reported a day earlier than before, and Harris is a new key.
        (0, "New York", "New York City", None, Some(50), Some(1)),
        (2, "Texas", "Harris", Some("48201"), Some(5), Some(0)),
    ]);
    let new = dataset(&values);
    let applied =
        expect_applied(apply(&mut client, &env, ("run-a", "run-b"), (&old, &new), 0.5).await);
    assert_eq!((applied.counts.inserted, applied.counts.removed), (2, 2));
    assert_eq!(stored(&client, &env).await, sorted(new.clone()));
    assert_eq!(keys_of(&client, &env).await, keys_in(&new));
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_delta_on_another_base_changes_nothing_and_asks_for_a_reconcile() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    let mut values = base_values();
    values.push((4, "Washington", "King", Some("53033"), Some(25), Some(2)));
    let new = dataset(&values);

    // No base at all yet.
    let outcome = apply(&mut client, &env, ("run-a", "run-b"), (&old, &new), SHARE)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::BaseMismatch {
            expected: run("run-a"),
            stored: None
        }
    );
    assert!(snapshot(&client, &env).await.is_empty());

    load(&mut client, &env, "run-a", &old).await;
    let before = snapshot(&client, &env).await;
    let outcome = apply(&mut client, &env, ("run-z", "run-b"), (&old, &new), SHARE)
        .await
        .unwrap();
    assert_eq!(
        outcome,
        DeltaOutcome::BaseMismatch {
            expected: run("run-z"),
            stored: Some("run-a".into())
        }
    );
    assert_eq!(snapshot(&client, &env).await, before);
    drop_schema(&env).await;
}

#[tokio::test]
async fn rule_7_refuses_a_large_removal_before_changing_anything() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;
    let before = snapshot(&client, &env).await;
    let mut new: Vec<Row> = old.iter().filter(|r| r.county != "King").cloned().collect();
    new.push(dataset(&[(4, "Ohio", "Adams", Some("39001"), Some(1), Some(0))])[0].clone());

    let err = apply(&mut client, &env, ("run-a", "run-b"), (&old, &new), SHARE)
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            KeyedError::SuspiciousRemoval {
                stored: 9,
                removed: 3,
                ..
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the run would remove 3 of 9 stored rows of counties_daily (33.3 %), more than the 5 % allowed"
    );
    assert_eq!(snapshot(&client, &env).await, before);

    // The same by a reconcile; its transaction stays usable (to record the failed run).
    let tx = client.transaction().await.unwrap();
    let err = keyed::reconcile(&tx, &env, T, &run("run-b"), &rows_csv(&new), None, SHARE)
        .await
        .unwrap_err();
    assert_eq!(err.kind(), shared::events::FailureKind::SuspiciousRemoval);
    still_usable(&tx).await;
    // The env's load lock is still held: another session cannot take it.
    assert!(!lock_free_elsewhere(&env).await);
    tx.commit().await.unwrap();
    assert!(lock_free_elsewhere(&env).await);
    assert_eq!(snapshot(&client, &env).await, before);
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_reconcile_repairs_a_table_that_drifted_and_records_the_revisions() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;
    // Drift: a value changed by hand, a row deleted, a row that is in no dataset.
    client
        .batch_execute(&format!(
            "UPDATE \"{env}\".counties_daily SET deaths = 99 WHERE county = 'King' AND date = '{d1}';
             DELETE FROM \"{env}\".counties_daily WHERE county = 'New York City' AND date = '{d3}';
             INSERT INTO \"{env}\".counties_daily (date, state, county, cases, run_id)
                 VALUES ('{d1}', 'Ohio', 'Adams', 1, 'by-hand');",
            d1 = day(1),
            d3 = day(3)
        ))
        .await
        .unwrap();
    let mut values = base_values();
    values[6].4 = Some(2); // Doña Ana day 1: 3 → 2 cases (its delta and day 2's change).
    values.push((4, "Washington", "King", Some("53033"), Some(25), Some(2)));
    let new = dataset(&values);

    let applied = load(&mut client, &env, "run-b", &new).await;
    // Rows: inserted = King day 4 + NYC day 3 again; updated = King day 1 (repaired), Doña Ana
    // days 1 and 2; removed = the row by hand.
    assert_eq!(
        summary(&applied),
        Summary {
            counts: Counts {
                inserted: 2,
                updated: 3,
                unchanged: 5,
                removed: 1,
                revised: 2
            },
            rows: 10,
            changes: 2,
        }
    );
    assert_eq!(stored(&client, &env).await, sorted(new.clone()));
    // The key made by hand is gone from the key list with its row.
    assert_eq!(keys_of(&client, &env).await, keys_in(&new));
    assert_eq!(
        changes_of(&client, &env, "run-b").await,
        [
            change(
                1,
                "New Mexico",
                "Doña Ana, \"DA\"",
                "cases",
                Some(3),
                Some(2)
            ),
            change(1, "Washington", "King", "deaths", Some(99), Some(0)),
        ]
    );
    assert_eq!(base_of(&client, &env).await, Some(("run-b".into(), 10)));

    // Reconciling the same rows again changes nothing.
    let again = load(&mut client, &env, "run-c", &dataset(&values)).await;
    assert_eq!(
        (
            again.counts.unchanged,
            again.counts.inserted + again.counts.updated + again.counts.removed,
            again.changes
        ),
        (10, 0, 0)
    );
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_first_load_with_a_repeated_row_fails_naming_it_and_leaves_the_table_as_it_was() {
    let (mut client, env) = fresh().await;
    let before = snapshot(&client, &env).await;
    let rows = dataset(&base_values());
    let twice = with_first_row_again(&rows);

    let tx = client.transaction().await.unwrap();
    let err = keyed::reconcile(&tx, &env, T, &run("run-a"), &twice, None, SHARE)
        .await
        .unwrap_err();
    still_usable(&tx).await;
    tx.commit().await.unwrap();
    let text = err.to_string();
    assert!(matches!(err, KeyedError::InvalidCsv { .. }), "{text}");
    assert!(text.contains("counties_daily"), "{text}");
    // PostgreSQL names the repeated key.
    assert!(text.contains(&rows[0].county), "{text}");
    assert_eq!(snapshot(&client, &env).await, before);
    // The primary key the load dropped is back.
    let keyed: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_index WHERE indrelid = $1::text::regclass AND indisprimary)",
            &[&format!("\"{env}\".counties_daily")],
        )
        .await
        .unwrap()
        .get(0);
    assert!(keyed);
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_csv_with_a_bad_value_fails_naming_the_table_and_changes_nothing() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    load(&mut client, &env, "run-a", &old).await;
    let before = snapshot(&client, &env).await;

    let mut csv = String::from_utf8(rows_csv(&old)).unwrap();
    csv = csv.replacen(",150,", ",15O,", 1);
    let tx = client.transaction().await.unwrap();
    let err = keyed::reconcile(&tx, &env, T, &run("run-b"), csv.as_bytes(), None, SHARE)
        .await
        .unwrap_err();
    still_usable(&tx).await;
    tx.commit().await.unwrap();
    let text = err.to_string();
    assert!(matches!(err, KeyedError::InvalidCsv { .. }), "{text}");
    assert!(
        text.starts_with("the rows CSV for counties_daily is invalid:"),
        "{text}"
    );
    assert!(text.contains("\"15O\""), "{text}");
    assert!(text.contains("column cases"), "{text}");
    assert_eq!(err.kind(), shared::events::FailureKind::CorruptObject);
    assert_eq!(snapshot(&client, &env).await, before);

    // A header that is not the contract's, and a (date, key) given twice.
    let (rows, removed, changes) = delta_csv(&old, &old);
    let swapped = String::from_utf8(rows.clone())
        .unwrap()
        .replace("fips,cases", "cases,fips");
    for (what, rows, expect) in [
        ("header", swapped.into_bytes(), "header"),
        ("repeated row", with_first_row_again(&old[..2]), "duplicate"),
    ] {
        let base = run("run-a");
        let tx = client.transaction().await.unwrap();
        let delta = Delta {
            base_run_id: &base,
            rows: &rows,
            removed: &removed,
            changes: &changes,
        };
        let err = keyed::apply_delta(&tx, &env, T, &run("run-b"), &delta, SHARE)
            .await
            .unwrap_err();
        still_usable(&tx).await;
        tx.commit().await.unwrap();
        let text = err.to_string();
        assert!(
            matches!(err, KeyedError::InvalidCsv { .. }),
            "{what}: {text}"
        );
        assert!(
            text.contains("counties_daily") && text.contains(expect),
            "{what}: {text}"
        );
    }
    assert_eq!(snapshot(&client, &env).await, before);
    drop_schema(&env).await;
}

/// The reader's URL: the dashboard's file, else `DASHBOARD_DATABASE_URL` of the process.
fn reader_url() -> String {
    let url = stack::identity_file(Identity::Dashboard)
        .and_then(|vars| vars.into_iter().find(|(name, _)| name == "DATABASE_URL"))
        .map(|(_, url)| url)
        .or_else(|| std::env::var("DASHBOARD_DATABASE_URL").ok())
        .unwrap_or_default();
    assert!(
        url.contains("covid_reader:"),
        "no covid_reader URL in $STACK_DIR/env.dashboard (run scripts/stack.sh up)"
    );
    url
}

#[tokio::test]
async fn the_reader_reads_the_keyed_tables_and_cannot_write_them() {
    let (mut client, env) = fresh().await;
    load(&mut client, &env, "run-a", &dataset(&base_values())).await;
    let reader = test_support::connect_to(&reader_url()).await;
    let s = format!("\"{env}\"");
    for table in [
        "states_daily",
        "counties_daily",
        "states_daily_changes",
        "counties_daily_changes",
        "keyed_base",
        "states_keys",
        "counties_keys",
    ] {
        reader
            .query_one(&format!("SELECT count(*) FROM {s}.{table}"), &[])
            .await
            .unwrap_or_else(|err| panic!("the reader reads {table}: {err}"));
    }
    let rows: i64 = reader
        .query_one(&format!("SELECT count(*) FROM {s}.counties_daily"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(rows, 9);
    for sql in [
        format!(
            "INSERT INTO {s}.states_daily (date, state, run_id) VALUES ('2021-01-01', 'X', 'r')"
        ),
        format!("UPDATE {s}.counties_daily SET cases = 0"),
        format!("DELETE FROM {s}.counties_daily_changes"),
        format!("UPDATE {s}.keyed_base SET run_id = 'forged'"),
        format!("DELETE FROM {s}.counties_keys"),
    ] {
        let err = reader.batch_execute(&sql).await.unwrap_err();
        assert_eq!(err.code(), Some(&SqlState::INSUFFICIENT_PRIVILEGE), "{sql}");
    }
    drop_schema(&env).await;
}

/// Whether another session could take the env's load lock (the `us` path's) right now.
async fn lock_free_elsewhere(env: &Env) -> bool {
    test_support::connect()
        .await
        .query_one(
            "SELECT pg_try_advisory_xact_lock($1)",
            &[&loader::db::lock_key("load", env)],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn a_load_holds_the_envs_load_lock_until_its_transaction_ends() {
    let (mut client, env) = fresh().await;
    let old = dataset(&base_values());
    assert!(lock_free_elsewhere(&env).await);

    let tx = client.transaction().await.unwrap();
    keyed::reconcile(&tx, &env, T, &run("run-a"), &rows_csv(&old), None, SHARE)
        .await
        .unwrap();
    assert!(!lock_free_elsewhere(&env).await);
    tx.commit().await.unwrap();
    assert!(lock_free_elsewhere(&env).await);

    // A delta on another base changes nothing, yet the lock is taken before the base is read.
    let (rows, removed, changes) = delta_csv(&old, &old);
    let base = run("run-z");
    let tx = client.transaction().await.unwrap();
    let delta = Delta {
        base_run_id: &base,
        rows: &rows,
        removed: &removed,
        changes: &changes,
    };
    let outcome = keyed::apply_delta(&tx, &env, T, &run("run-b"), &delta, SHARE)
        .await
        .unwrap();
    assert!(matches!(outcome, DeltaOutcome::BaseMismatch { .. }));
    assert!(!lock_free_elsewhere(&env).await);
    tx.rollback().await.unwrap();
    assert!(lock_free_elsewhere(&env).await);
    drop_schema(&env).await;
}

const ROWS_HEADER: &str = "date,state,county,fips,cases,deaths,new_cases,new_deaths\n";
const REMOVED_HEADER: &str = "date,state,county\n";
const CHANGES_HEADER: &str = "date,state,county,field,old_value,new_value\n";

/// A delta that does not fit the stored base fails with `problem`, changes nothing and leaves
/// the transaction usable.
async fn expect_misfit(rows: &str, removed: &str, changes: &str, problem: &str) {
    let (mut client, env) = fresh().await;
    load(&mut client, &env, "run-a", &dataset(&base_values())).await;
    let before = snapshot(&client, &env).await;
    let err = apply_csv(
        &mut client,
        &env,
        &format!("{ROWS_HEADER}{rows}"),
        &format!("{REMOVED_HEADER}{removed}"),
        &format!("{CHANGES_HEADER}{changes}"),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KeyedError::DeltaDisagrees { .. }), "{err}");
    assert_eq!(
        err.to_string(),
        format!("the delta for counties_daily does not fit its base run run-a: {problem}")
    );
    assert_eq!(err.kind(), shared::events::FailureKind::InconsistentEvent);
    assert_eq!(snapshot(&client, &env).await, before);
    drop_schema(&env).await;
}

#[tokio::test]
async fn a_delta_removing_a_row_that_is_not_stored_does_not_fit() {
    expect_misfit(
        "",
        &format!("{},Washington,King\n", day(9)),
        "",
        "1 removed rows are not stored",
    )
    .await;
}

#[tokio::test]
async fn a_revision_whose_old_value_is_not_the_stored_one_does_not_fit() {
    // King's day 2 is stored with 12 cases.
    expect_misfit(
        &format!("{},Washington,King,53033,15,1,5,1\n", day(2)),
        "",
        &format!("{},Washington,King,cases,99,15\n", day(2)),
        "1 revisions have an old value that is not the stored one",
    )
    .await;
}

#[tokio::test]
async fn a_row_changing_a_stored_value_without_its_revision_does_not_fit() {
    expect_misfit(
        &format!("{},Washington,King,53033,15,1,5,1\n", day(2)),
        "",
        "",
        "1 stored values the delta's rows change have no revision",
    )
    .await;
}

#[tokio::test]
async fn a_revision_to_the_same_value_does_not_fit_nulls_included() {
    // King's day 1 as stored (10 cases), Doña Ana's day 1 as stored (deaths NULL).
    let d1 = day(1);
    expect_misfit(
        &format!(
            "{d1},Washington,King,53033,10,0,10,0\n{d1},New Mexico,\"Doña Ana, \"\"DA\"\"\",35013,3,,3,\n"
        ),
        "",
        &format!(
            "{d1},Washington,King,cases,10,10\n{d1},New Mexico,\"Doña Ana, \"\"DA\"\"\",deaths,,\n"
        ),
        "2 revisions have the same old and new value",
    )
    .await;
}

/// A version of a keyed dataset read by the real producer from NYT files `(name, text)`.
fn curated(table: &Table, files: &[(&str, &str)]) -> Curated {
    let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
    dataset::keyed::read(table.spec(), &files).unwrap()
}

fn text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).unwrap()
}

/// `COPY (query) TO STDOUT` as CSV with a header, the way the producer writes its buffers.
async fn copy_out(client: &Client, query: &str) -> String {
    let chunks: Vec<_> = client
        .copy_out(&format!(
            "COPY ({query}) TO STDOUT (FORMAT csv, HEADER true)"
        ))
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    text(chunks.iter().flat_map(|c| c.iter().copied()).collect())
}

/// The table's rows, or `run_id`'s revisions, in the producer's columns and order (key, byte
/// order, then date).
pub(crate) async fn stored_csv(
    client: &Client,
    env: &Env,
    table: &Table,
    revisions_of: Option<&str>,
) -> String {
    let keys = table.key().join(", ");
    let order = byte_order(table);
    let query = match revisions_of {
        None => format!(
            "SELECT date, {keys}, fips, cases, deaths, new_cases, new_deaths
             FROM \"{env}\".{} ORDER BY {order}, date",
            table.table_name()
        ),
        Some(run_id) => format!(
            "SELECT date, {keys}, field, old_value, new_value
             FROM \"{env}\".{} WHERE run_id = '{run_id}' ORDER BY {order}, date, field",
            table.changes()
        ),
    };
    copy_out(client, &query).await
}

/// `table`'s key columns in byte order, the producer's (whatever the database's collation).
fn byte_order(table: &Table) -> String {
    table
        .key()
        .iter()
        .map(|k| format!("{k} COLLATE \"C\""))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The table's key list in the producer's columns and order (`Curated::keys_csv`).
async fn stored_keys(client: &Client, env: &Env, table: &Table) -> String {
    let keys = table.key().join(", ");
    let order = byte_order(table);
    copy_out(
        client,
        &format!(
            "SELECT {keys}, fips, first_date, last_date FROM \"{env}\".{}_keys ORDER BY {order}",
            table.dataset()
        ),
    )
    .await
}

/// What the producer made of two versions' files: each version's rows CSV and row count, the
/// first one's counts as a whole, the delta's buffers, counts and change lines.
struct Produced {
    first_rows: Vec<u8>,
    first_keys: Vec<u8>,
    first_len: u64,
    first_counts: Counts,
    next_rows: Vec<u8>,
    next_keys: Vec<u8>,
    next_len: u64,
    delta: [Vec<u8>; 3],
    counts: Counts,
    change_lines: u64,
}

/// Runs the producer (`dataset::keyed`: read, delta, the CSV buffers) on NYT files. Polars blocks
/// in place, which a current-thread runtime refuses: a caller runs it on a blocking thread.
fn produce(table: Table, first: &[(&str, &str)], next: &[(&str, &str)]) -> Produced {
    let first = curated(&table, first);
    let next = curated(&table, next);
    let delta = dataset::keyed::delta(Some(&first), &next).unwrap();
    Produced {
        first_rows: first.rows_csv().unwrap(),
        first_keys: first.keys_csv().unwrap(),
        first_len: first.rows() as u64,
        first_counts: dataset::keyed::delta(None, &first).unwrap().counts,
        next_rows: next.rows_csv().unwrap(),
        next_keys: next.keys_csv().unwrap(),
        next_len: next.rows() as u64,
        delta: [
            delta.rows_csv().unwrap(),
            delta.removed_csv().unwrap(),
            delta.changes_csv().unwrap(),
        ],
        counts: delta.counts,
        change_lines: delta.changes.height() as u64,
    }
}

/// The contract between the crates: the buffers `dataset::keyed` produces from NYT files load
/// as they are; a reconcile of the first version, then the delta of the next on it, leave the
/// table equal to the curated rows, with the delta's counts and revisions.
async fn the_producers_buffers_load(
    table: Table,
    first: &'static [(&'static str, &'static str)],
    next: &'static [(&'static str, &'static str)],
    expect: Counts,
) {
    let produced = tokio::task::spawn_blocking(move || produce(table, first, next))
        .await
        .unwrap();
    let table = &table;
    let (mut client, env) = fresh().await;
    let tx = client.transaction().await.unwrap();
    let applied = keyed::reconcile(
        &tx,
        &env,
        table,
        &run("run-1"),
        &produced.first_rows,
        None,
        SHARE,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(applied.counts, produced.first_counts);
    assert_eq!(applied.rows, produced.first_len);
    assert_eq!(
        stored_csv(&client, &env, table, None).await,
        text(produced.first_rows.clone())
    );
    // The key list the loader lists from the table is the dataset's own.
    assert_eq!(
        stored_keys(&client, &env, table).await,
        text(produced.first_keys.clone())
    );

    assert_eq!(produced.counts, expect, "the fixtures' delta");
    let [rows, removed, changes] = &produced.delta;
    let base = run("run-1");
    let tx = client.transaction().await.unwrap();
    let shipped = Delta {
        base_run_id: &base,
        rows,
        removed,
        changes,
    };
    // One row of the few removed is more than SHARE.
    let applied =
        expect_applied(keyed::apply_delta(&tx, &env, table, &run("run-2"), &shipped, 0.5).await);
    tx.commit().await.unwrap();
    assert_eq!(applied.counts, produced.counts);
    assert_eq!(applied.changes, produced.change_lines);
    assert_eq!(applied.rows, produced.next_len);
    assert_eq!(
        stored_csv(&client, &env, table, None).await,
        text(produced.next_rows.clone())
    );
    assert_eq!(
        stored_csv(&client, &env, table, Some("run-2")).await,
        text(changes.clone())
    );
    // Carried along the delta, it is the next dataset's.
    assert_eq!(
        stored_keys(&client, &env, table).await,
        text(produced.next_keys.clone())
    );
    let base: (String, i64) = client
        .query_one(
            &format!("SELECT run_id, rows FROM \"{env}\".keyed_base WHERE dataset = $1"),
            &[&table.dataset()],
        )
        .await
        .map(|r| (r.get(0), r.get(1)))
        .unwrap();
    assert_eq!(base, ("run-2".to_owned(), produced.next_len as i64));
    // A reconcile given the dataset's key list (as the loader's is) takes it as it is.
    let tx = client.transaction().await.unwrap();
    tx.batch_execute(&format!(
        "DELETE FROM {}",
        format_args!("\"{env}\".{}_keys", table.dataset())
    ))
    .await
    .unwrap();
    let keys = produced.next_keys.clone();
    keyed::reconcile(
        &tx,
        &env,
        table,
        &run("run-3"),
        &produced.next_rows,
        Some(&keys),
        0.5,
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert_eq!(stored_keys(&client, &env, table).await, text(keys));
    drop_schema(&env).await;
}

#[tokio::test]
async fn the_states_producers_buffers_load_into_states_daily() {
    the_producers_buffers_load(
        Table::STATES,
        &[(
            "us-states.csv",
            include_str!("../fixtures/keyed/us-states-v1.csv"),
        )],
        &[(
            "us-states.csv",
            include_str!("../fixtures/keyed/us-states-v2.csv"),
        )],
        // Day 4 (and Puerto Rico) new; Washington's day 2 and New York's day 1 revised, each
        // with the next day's delta; Guam's day 1 gone, so its day 2 is its first.
        Counts {
            inserted: 4,
            updated: 5,
            unchanged: 3,
            removed: 1,
            revised: 2,
        },
    )
    .await;
}

#[tokio::test]
async fn the_counties_producers_buffers_load_into_counties_daily() {
    the_producers_buffers_load(
        Table::COUNTIES,
        &[(
            "us-counties.csv",
            include_str!("../fixtures/keyed/us-counties-v1.csv"),
        )],
        // The yearly file and the recent one, overlapping on day 2.
        &[
            (
                "us-counties-2021.csv",
                include_str!("../fixtures/keyed/us-counties-2021-v2.csv"),
            ),
            (
                "us-counties-recent.csv",
                include_str!("../fixtures/keyed/us-counties-recent-v2.csv"),
            ),
        ],
        // Day 3 (and Snohomish) new; Doña Ana's day 1 cases and New York City's day 2 deaths
        // revised; Washington's Unknown day 1 gone.
        Counts {
            inserted: 5,
            updated: 4,
            unchanged: 3,
            removed: 1,
            revised: 2,
        },
    )
    .await;
}
