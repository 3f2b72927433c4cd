//! The real loader, driven through NATS, loading the keyed datasets: runs curated by the real
//! producer (`dataset::keyed`) from the NYT fixtures, their objects stored in `etl-curated` as
//! the transformer stores them.

use std::collections::HashMap;

use chrono::NaiveDate;
use dataset::keyed::{Curated, Spec};
use loader::keyed::Table;
use shared::events::{
    Correction, Counts, Delta, Dropped, FailureKind, Field, Loaded, ObjectRef, SCHEMA_VERSION,
    Stage, Transformed, Trigger, TriggerKind,
};
use shared::ids::RunId;
use shared::nats::CURATED_BUCKET;
use shared::{Dataset, Source, run_id, store, subjects};

use crate::keyed::stored_csv;
use crate::service::Harness;
use crate::support::*;

const STATES_V1: &[(&str, &str)] = &[(
    "us-states.csv",
    include_str!("../fixtures/keyed/us-states-v1.csv"),
)];
const STATES_V2: &[(&str, &str)] = &[(
    "us-states.csv",
    include_str!("../fixtures/keyed/us-states-v2.csv"),
)];
const COUNTIES_V1: &[(&str, &str)] = &[(
    "us-counties.csv",
    include_str!("../fixtures/keyed/us-counties-v1.csv"),
)];
const COUNTIES_V2: &[(&str, &str)] = &[
    (
        "us-counties-2021.csv",
        include_str!("../fixtures/keyed/us-counties-2021-v2.csv"),
    ),
    (
        "us-counties-recent.csv",
        include_str!("../fixtures/keyed/us-counties-recent-v2.csv"),
    ),
];

/// The fixtures remove one row of ten or so: far more than the default share of rule 7.
const SHARE: (&str, &str) = ("MAX_REMOVED_SHARE", "0.5");

/// What the transformer makes of one version of a dataset: the curated object, its rows as CSV
/// (what the table must hold once the run is loaded), and its delta against a base version.
struct Version {
    parquet: Vec<u8>,
    rows_csv: String,
    rows: u64,
    first_date: NaiveDate,
    last_date: NaiveDate,
    warnings: Vec<String>,
    /// The delta's `rows`, `removed` and `changes` CSV, and its counts.
    delta: Option<([Vec<u8>; 3], Counts)>,
}

/// Curates `files` with the real producer and, given `base` files, computes the delta against
/// that version. Polars blocks in place, which a current-thread runtime refuses.
async fn curate(
    dataset: &Dataset,
    files: &'static [(&'static str, &'static str)],
    base: Option<&'static [(&'static str, &'static str)]>,
) -> Version {
    let spec = Spec::by_name(dataset.as_str()).unwrap();
    tokio::task::spawn_blocking(move || {
        let read = |files: &[(&str, &str)]| -> Curated {
            let files: Vec<(&str, &[u8])> = files.iter().map(|(n, t)| (*n, t.as_bytes())).collect();
            dataset::keyed::read(spec, &files).unwrap()
        };
        let next = read(files);
        let delta = base.map(|base| {
            let delta = dataset::keyed::delta(Some(&read(base)), &next).unwrap();
            let parts = [
                delta.rows_csv().unwrap(),
                delta.removed_csv().unwrap(),
                delta.changes_csv().unwrap(),
            ];
            (parts, delta.counts)
        });
        Version {
            parquet: next.to_parquet().unwrap(),
            rows_csv: String::from_utf8(next.rows_csv().unwrap()).unwrap(),
            rows: next.rows() as u64,
            first_date: next.first_date().unwrap(),
            last_date: next.last_date().unwrap(),
            warnings: next.warnings().to_vec(),
            delta,
        }
    })
    .await
    .unwrap()
}

/// Stores `version` as run `tag` of `dataset` (its delta computed against the run `base`), the
/// way the transformer does; returns the run's transformed event. Its order comes after every
/// fixture run made before it.
async fn store_keyed(
    h: &Harness,
    dataset: &Dataset,
    tag: &str,
    version: &Version,
    base: Option<&RunId>,
) -> Transformed {
    let trigger = Trigger::new(TriggerKind::Commit);
    let source = Source::new(format!("us-{dataset}")).unwrap();
    let inputs = vec![input(&h.env, source, &format!("{dataset}-{tag}"))];
    let run_id = run_id::derive(&h.env, dataset.as_str(), tag, &trigger);
    let now = chrono::Utc::now().to_rfc3339();
    let metadata = HashMap::from([
        (store::CURATED_STARTED_AT.to_owned(), now.clone()),
        (store::CURATED_TRANSFORMED_AT.to_owned(), now),
    ]);
    let name = store::curated_object_name(&h.env, &run_id);
    let object = put(h, &name, &version.parquet, metadata).await;
    let delta = match (&version.delta, base) {
        (Some(([rows, removed, changes], counts)), Some(base)) => {
            let part = |part| store::delta_object_name(&h.env, &run_id, part);
            Some(Delta {
                base_run_id: base.clone(),
                rows: put(h, &part("rows"), rows, HashMap::new()).await,
                removed: put(h, &part("removed"), removed, HashMap::new()).await,
                changes: put(h, &part("changes"), changes, HashMap::new()).await,
                counts: *counts,
            })
        }
        (None, None) => None,
        _ => panic!("a delta needs its base run, and a base run its delta"),
    };
    Transformed {
        schema_version: SCHEMA_VERSION,
        env: h.env.clone(),
        dataset: dataset.clone(),
        run_id,
        order: next_order(&inputs),
        trigger,
        inputs,
        object,
        rows: version.rows,
        first_date: version.first_date,
        last_date: version.last_date,
        dropped: Dropped::default(),
        warnings: version.warnings.clone(),
        timings: vec![("read".into(), 1), ("transform".into(), 2)],
        delta,
    }
}

async fn put(
    h: &Harness,
    name: &str,
    bytes: &[u8],
    metadata: HashMap<String, String>,
) -> ObjectRef {
    store::put_object(&h.stores.curated, CURATED_BUCKET, name, bytes, metadata)
        .await
        .unwrap()
}

/// Publishes `event` and waits for its `Loaded` event.
async fn load(h: &mut Harness, event: &Transformed) -> Loaded {
    h.publish_transformed(event, "first").await;
    let loaded = h.next_loaded().await;
    assert_eq!(
        (&loaded.run_id, &loaded.dataset),
        (&event.run_id, &event.dataset)
    );
    loaded
}

fn date(day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2021, 1, day).unwrap()
}

fn correction(key: &str, day: u32, field: Field, old: Option<i64>, new: Option<i64>) -> Correction {
    Correction {
        key: Some(key.to_owned()),
        date: date(day),
        field,
        old,
        new,
    }
}

/// Load steps of `loaded` that start with `prefix`.
fn steps<'a>(loaded: &'a Loaded, prefix: &str) -> Vec<&'a str> {
    loaded
        .timings
        .iter()
        .map(|(step, _)| step.as_str())
        .filter(|step| step.starts_with(prefix))
        .collect()
}

/// `run_id`'s `etl_runs` row: status, dataset, inserted, updated, removed, revised, rows.
async fn run_record(h: &Harness, run_id: &RunId) -> (String, String, [i64; 5]) {
    let row = connect()
        .await
        .query_one(
            &format!(
                "SELECT status, dataset, inserted, updated, removed, revised, rows
                 FROM \"{}\".etl_runs WHERE run_id = $1",
                h.env
            ),
            &[&run_id.as_str()],
        )
        .await
        .unwrap();
    let n = |i| row.get::<_, Option<i64>>(i).unwrap_or(-1);
    (row.get(0), row.get(1), [n(2), n(3), n(4), n(5), n(6)])
}

#[tokio::test]
async fn a_states_run_is_reconciled_then_applied_as_a_delta_then_reconciled_off_its_base() {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    let client = connect().await;
    let states = Dataset::STATES;
    let table = &Table::STATES;

    // The first run has no base: the table is reconciled from the whole dataset.
    let v1 = curate(&states, STATES_V1, None).await;
    let first = store_keyed(&h, &states, "1", &v1, None).await;
    let loaded = load(&mut h, &first).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 9,
            ..Counts::default()
        }
    );
    assert_eq!((loaded.rows, loaded.corrections_total), (9, 0));
    assert_eq!(loaded.corrections, []);
    assert_eq!((loaded.first_date, loaded.last_date), (date(1), date(3)));
    assert!(
        !steps(&loaded, "load.reconcile.").is_empty(),
        "{:?}",
        loaded.timings
    );
    assert_eq!(stored_csv(&client, &h.env, table, None).await, v1.rows_csv);

    // The next run's delta, on the base the table holds, is applied as it is.
    let v2 = curate(&states, STATES_V2, Some(STATES_V1)).await;
    let second = store_keyed(&h, &states, "2", &v2, Some(&first.run_id)).await;
    let loaded = load(&mut h, &second).await;
    // Day 4 (and Puerto Rico) new; Washington's day 2 and New York's day 1 revised, each with
    // the next day's delta; Guam's day 1 gone, so its day 2 is its first.
    let counts = Counts {
        inserted: 4,
        updated: 5,
        unchanged: 3,
        removed: 1,
        revised: 2,
    };
    assert_eq!(loaded.counts, counts);
    assert_eq!((loaded.rows, loaded.corrections_total), (12, 2));
    // The largest revision first; a value that appears counts from 0.
    assert_eq!(
        loaded.corrections,
        [
            correction("Washington", 2, Field::Cases, Some(110), Some(112)),
            correction("New York", 1, Field::Deaths, None, Some(1)),
        ]
    );
    assert!(
        !steps(&loaded, "load.delta.").is_empty(),
        "{:?}",
        loaded.timings
    );
    assert_eq!(
        steps(&loaded, "load.read_dataset"),
        Vec::<&str>::new(),
        "a delta on its base never reads the whole dataset"
    );
    assert_eq!(stored_csv(&client, &h.env, table, None).await, v2.rows_csv);
    // A run loaded again is announced again from its record: the same event.
    assert_eq!(
        loader::runs::find_succeeded(&client, &h.env, &second.run_id)
            .await
            .unwrap()
            .as_ref(),
        Some(&loaded)
    );

    // A run whose delta was computed against a base the table no longer holds (the first
    // version again, against the first run): reconciled from its whole dataset.
    let v3 = curate(&states, STATES_V1, Some(STATES_V1)).await;
    let third = store_keyed(&h, &states, "3", &v3, Some(&first.run_id)).await;
    let loaded = load(&mut h, &third).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 1,
            updated: 5,
            unchanged: 3,
            removed: 4,
            revised: 2,
        }
    );
    assert_eq!(
        loaded.corrections,
        [
            correction("Washington", 2, Field::Cases, Some(112), Some(110)),
            correction("New York", 1, Field::Deaths, Some(1), None),
        ]
    );
    assert!(
        !steps(&loaded, "load.read_dataset").is_empty(),
        "{:?}",
        loaded.timings
    );
    assert!(
        !steps(&loaded, "load.reconcile.").is_empty(),
        "{:?}",
        loaded.timings
    );
    assert_eq!(stored_csv(&client, &h.env, table, None).await, v1.rows_csv);
    assert_eq!(
        stored_csv(&client, &h.env, table, Some(third.run_id.as_str())).await,
        "date,state,field,old_value,new_value\n\
         2021-01-01,New York,deaths,1,\n\
         2021-01-02,Washington,cases,112,110\n"
    );

    for (run, counts) in [
        (&first.run_id, [9, 0, 0, 0, 9]),
        (&second.run_id, [4, 5, 1, 2, 12]),
        (&third.run_id, [1, 5, 4, 2, 9]),
    ] {
        assert_eq!(
            run_record(&h, run).await,
            ("succeeded".into(), "states".into(), counts)
        );
    }
    assert_eq!(h.stored(&subjects::failed(&h.env, Stage::Load)).await, 0);
    h.stop().await;
}

#[tokio::test]
async fn a_counties_delta_names_each_revision_by_county_then_state() {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    let client = connect().await;
    let counties = Dataset::COUNTIES;
    let v1 = curate(&counties, COUNTIES_V1, None).await;
    let first = store_keyed(&h, &counties, "1", &v1, None).await;
    assert_eq!(load(&mut h, &first).await.counts.inserted, 8);

    let v2 = curate(&counties, COUNTIES_V2, Some(COUNTIES_V1)).await;
    let second = store_keyed(&h, &counties, "2", &v2, Some(&first.run_id)).await;
    let loaded = load(&mut h, &second).await;
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 5,
            updated: 4,
            unchanged: 3,
            removed: 1,
            revised: 2,
        }
    );
    assert_eq!(
        loaded.corrections,
        [
            correction("New York City, New York", 2, Field::Deaths, Some(22), None),
            correction(
                "Doña Ana, \"DA\", New Mexico",
                1,
                Field::Cases,
                Some(3),
                Some(2)
            ),
        ]
    );
    assert_eq!(
        stored_csv(&client, &h.env, &Table::COUNTIES, None).await,
        v2.rows_csv
    );
    assert_eq!(
        run_record(&h, &second.run_id).await,
        ("succeeded".into(), "counties".into(), [5, 4, 1, 2, 12])
    );
    h.stop().await;
}

#[tokio::test]
async fn runs_of_one_dataset_never_supersede_runs_of_another() {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    let states = Dataset::STATES;
    let v1 = curate(&states, STATES_V1, None).await;
    let v2 = curate(&states, STATES_V2, None).await;
    // In order of their runs: us, states, states, us, states.
    let us_early = h.store_run("us-early", &rows(1, &growing(5))).await;
    let states_early = store_keyed(&h, &states, "early", &v1, None).await;
    let states_stale = store_keyed(&h, &states, "stale", &v1, None).await;
    let us_late = h.store_run("us-late", &rows(1, &growing(6))).await;
    let states_late = store_keyed(&h, &states, "late", &v2, None).await;

    // A later us run does not supersede an earlier states run, nor the reverse.
    load(&mut h, &us_late).await;
    load(&mut h, &states_early).await;
    load(&mut h, &states_late).await;
    h.publish_transformed(&us_early, "late").await;
    let (_, error) = h.run_row(&us_early.run_id, "superseded").await;
    assert!(
        error.as_ref().unwrap().contains(us_late.run_id.as_str()),
        "superseded by the later us run, not the later states one: {error:?}"
    );
    h.publish_transformed(&states_stale, "late").await;
    let (_, error) = h.run_row(&states_stale.run_id, "superseded").await;
    assert!(
        error
            .as_ref()
            .unwrap()
            .contains(states_late.run_id.as_str()),
        "{error:?}"
    );
    h.settled().await;
    assert_eq!(
        stored_csv(&connect().await, &h.env, &Table::STATES, None).await,
        v2.rows_csv
    );
    assert_eq!(
        snapshot(&connect().await, &h.env).await.len(),
        6,
        "us_daily holds the later us run"
    );
    assert_eq!(run_record(&h, &states_stale.run_id).await.1, "states");
    assert_eq!(run_record(&h, &us_early.run_id).await.1, "us");
    assert_eq!(h.stored(&subjects::loaded(&h.env)).await, 3);
    h.stop().await;
}

#[tokio::test]
async fn a_keyed_run_removing_too_much_is_refused_and_the_table_left_as_it_was() {
    // The default share: the second version removes one row of nine.
    let mut h = Harness::start().await;
    let client = connect().await;
    let states = Dataset::STATES;
    let v1 = curate(&states, STATES_V1, None).await;
    let first = store_keyed(&h, &states, "1", &v1, None).await;
    load(&mut h, &first).await;
    let v2 = curate(&states, STATES_V2, Some(STATES_V1)).await;
    let second = store_keyed(&h, &states, "2", &v2, Some(&first.run_id)).await;
    h.publish_transformed(&second, "first").await;

    let failed = h.next_failed_load().await;
    assert_eq!(
        (&failed.run_id, &failed.dataset, failed.kind),
        (
            &Some(second.run_id.clone()),
            &states,
            FailureKind::SuspiciousRemoval
        )
    );
    assert!(
        failed
            .reason
            .contains("remove 1 of 9 stored rows of states_daily"),
        "{}",
        failed.reason
    );
    let (kind, _) = h.run_row(&second.run_id, "failed").await;
    assert_eq!(kind.as_deref(), Some("suspicious_removal"));
    assert_eq!(run_record(&h, &second.run_id).await.1, "states");
    h.settled().await;
    assert_eq!(
        stored_csv(&client, &h.env, &Table::STATES, None).await,
        v1.rows_csv
    );
    h.stop().await;
}

#[tokio::test]
async fn an_unknown_dataset_or_another_runs_delta_is_refused_as_malformed() {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    let states = Dataset::STATES;
    let v1 = curate(&states, STATES_V1, None).await;
    let first = store_keyed(&h, &states, "1", &v1, None).await;
    load(&mut h, &first).await;

    let mut unknown = store_keyed(&h, &states, "cities", &v1, None).await;
    unknown.dataset = Dataset::new("cities").unwrap();
    h.publish_transformed(&unknown, "first").await;
    let failed = h.next_failed_load().await;
    assert_eq!(failed.kind, FailureKind::Malformed);
    assert!(failed.reason.contains("\"cities\""), "{}", failed.reason);

    // A delta naming the first run's object as its rows.
    let v2 = curate(&states, STATES_V2, Some(STATES_V1)).await;
    let mut foreign = store_keyed(&h, &states, "2", &v2, Some(&first.run_id)).await;
    foreign.delta.as_mut().unwrap().rows = first.object.clone();
    h.publish_transformed(&foreign, "first").await;
    let failed = h.next_failed_load().await;
    assert_eq!(failed.kind, FailureKind::Malformed);
    assert!(
        failed.reason.contains("delta.rows.name"),
        "{}",
        failed.reason
    );
    h.settled().await;
    assert_eq!(
        stored_csv(&connect().await, &h.env, &Table::STATES, None).await,
        v1.rows_csv
    );
    h.stop().await;
}

/// Loads the states' version 1, changes the table by hand with `edit` (SQL, `{env}` for the
/// schema) while `keyed_base` still names version 1, then loads version 2 as a delta on it, and
/// checks that the delta was given up for a reconcile that left exactly version 2. Returns the
/// second run's event.
async fn delta_after_a_hand_edit(h: &mut Harness, edit: &str) -> Loaded {
    let client = connect().await;
    let states = Dataset::STATES;
    let v1 = curate(&states, STATES_V1, None).await;
    let first = store_keyed(h, &states, "1", &v1, None).await;
    load(h, &first).await;
    client
        .execute(&edit.replace("{env}", h.env.as_str()), &[])
        .await
        .unwrap();

    let v2 = curate(&states, STATES_V2, Some(STATES_V1)).await;
    let second = store_keyed(h, &states, "2", &v2, Some(&first.run_id)).await;
    let loaded = load(h, &second).await;
    assert!(
        !steps(&loaded, "load.read_dataset").is_empty(),
        "reconciled: {:?}",
        loaded.timings
    );
    assert_eq!(
        stored_csv(&client, &h.env, &Table::STATES, None).await,
        v2.rows_csv
    );
    loaded
}

#[tokio::test]
async fn a_delta_that_does_not_fit_a_table_changed_by_hand_is_reconciled_instead() {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    let loaded = delta_after_a_hand_edit(
        &mut h,
        "UPDATE \"{env}\".states_daily SET cases = 111
         WHERE state = 'Washington' AND date = '2021-01-02'",
    )
    .await;
    // The revision is recorded from the value the table held.
    assert_eq!(
        loaded.corrections,
        [
            correction("New York", 1, Field::Deaths, None, Some(1)),
            correction("Washington", 2, Field::Cases, Some(111), Some(112)),
        ]
    );
    assert_eq!(
        loaded.counts,
        Counts {
            inserted: 4,
            updated: 5,
            unchanged: 3,
            removed: 1,
            revised: 2,
        }
    );
    h.stop().await;
}

#[tokio::test]
async fn a_delta_that_does_other_than_announced_on_a_table_changed_by_hand_is_undone_and_reconciled()
 {
    let mut h = Harness::start_with(&[SHARE], |_| {}).await;
    // A row the delta only updates (its new cases follow the revised day before) is deleted by
    // hand: the delta fits, but its upsert inserts the row instead of updating it.
    let loaded = delta_after_a_hand_edit(
        &mut h,
        "DELETE FROM \"{env}\".states_daily WHERE state = 'Washington' AND date = '2021-01-03'",
    )
    .await;
    // Counted against what the table held: the deleted row is new again.
    assert_eq!(loaded.counts.inserted, 5);
    assert_eq!(loaded.counts.removed, 1);
    h.stop().await;
}
