//! Keyed datasets (`states`, `counties`) through the real transformer: a first run curated
//! whole, the next one announced as a delta against it, and files that disagree refused.

use chrono::{NaiveDate, Utc};
use dataset::keyed::{self, Curated};
use shared::events::{
    Extracted, FailureKind, ObjectRef, SCHEMA_VERSION, Transformed, Trigger, TriggerKind,
    UpstreamRef,
};
use shared::ids::{CommitSha, Digest};
use shared::nats::{self, Stores};
use shared::{Dataset, Env, Source, run_id, store};
use test_support::eventually;

use crate::service::{Harness, WAIT};

/// Two days of three states.
const STATES_FIRST: &str = "date,state,fips,cases,deaths\n\
2020-03-01,Texas,48,1,0\n\
2020-03-01,Utah,49,2,0\n\
2020-03-02,Guam,66,1,0\n\
2020-03-02,Texas,48,3,0\n\
2020-03-02,Utah,49,4,1\n";

/// The next version: Texas's cases of 2020-03-02 revised (3 → 5), Guam gone, a new day.
const STATES_NEXT: &str = "date,state,fips,cases,deaths\n\
2020-03-01,Texas,48,1,0\n\
2020-03-01,Utah,49,2,0\n\
2020-03-02,Texas,48,5,0\n\
2020-03-02,Utah,49,4,1\n\
2020-03-03,Texas,48,6,0\n\
2020-03-03,Utah,49,4,2\n";

/// The county file of a year and the recent one overlap on 2020-12-31 and disagree on it.
const COUNTIES_2020: &str = "date,county,state,fips,cases,deaths\n\
2020-12-30,Harris,Texas,48201,100,1\n\
2020-12-31,Harris,Texas,48201,110,2\n";
const COUNTIES_RECENT: &str = "date,county,state,fips,cases,deaths\n\
2020-12-31,Harris,Texas,48201,112,2\n\
2021-01-01,Harris,Texas,48201,120,2\n";

/// The extracted event of a keyed dataset's upstream file `path` holding `payload`, committed
/// now: its source is named after the file, as the extractor names it.
fn keyed_extraction(
    env: &Env,
    dataset: &Dataset,
    sources: &[Source],
    path: &str,
    payload: &str,
) -> Extracted {
    let source = Source::of_path(path).unwrap();
    let sha256 = Digest::of(payload.as_bytes());
    Extracted {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: dataset.clone(),
        source: source.clone(),
        dataset_sources: sources.to_vec(),
        upstream: UpstreamRef {
            repo: "nytimes/covid-19-data".into(),
            path: path.into(),
            commit_sha: CommitSha::new(&sha256.as_str()[..8]).unwrap(),
            commit_time: Utc::now(),
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: nats::RAW_BUCKET.to_owned(),
            name: store::raw_object_name(env, &source, &sha256),
            sha256,
            bytes: payload.len() as u64,
        },
        trigger: Trigger::new(TriggerKind::Commit),
        fetched_at: Utc::now(),
    }
}

/// What the extractor does: stores the payload, records the event as its source's latest and
/// publishes it.
async fn extract(stores: &Stores, event: &Extracted, payload: &str) {
    store::put_object_once(
        &stores.raw,
        nats::RAW_BUCKET,
        &event.object.name,
        payload.as_bytes(),
        Default::default(),
        store::OBJECT_DEADLINE,
    )
    .await
    .unwrap();
    store::record_extracted(stores, event).await.unwrap();
}

async fn read_text(stores: &Stores, object: &ObjectRef) -> String {
    let bytes = store::get_object(&stores.curated, object, object.bytes, WAIT)
        .await
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

/// Waits until KV holds `run` as the dataset's last curated run.
async fn wait_curated(h: &Harness, dataset: &Dataset, run: &Transformed) {
    let key = store::curated_key(&h.env, dataset);
    let state = &h.stores.state;
    let (key, what) = (
        key.as_str(),
        format!("{} to be the curated run", run.run_id),
    );
    eventually(&what, WAIT, || async move {
        let stored: Option<Transformed> = store::kv_get(state, key).await.ok()?;
        stored.filter(|stored| stored == run)
    })
    .await;
}

fn date(text: &str) -> NaiveDate {
    text.parse().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_states_run_is_curated_whole_then_the_next_one_is_a_delta_against_it() {
    let mut h = Harness::start(&[]).await;
    let dataset = Dataset::STATES;
    let sources = [Source::new("us-states").unwrap()];

    let first_event = keyed_extraction(&h.env, &dataset, &sources, "us-states.csv", STATES_FIRST);
    extract(&h.stores, &first_event, STATES_FIRST).await;
    let first = h.next_transformed().await;
    assert_eq!(first.dataset, dataset);
    assert_eq!(
        first.run_id,
        run_id::of_dataset(&h.env, &dataset, &[&first_event], &first_event.trigger)
    );
    assert_eq!(first.delta, None, "the first run has no base");
    assert_eq!(first.inputs, vec![first_event.input()]);
    assert_eq!(first.rows, 5);
    assert_eq!(
        (first.first_date, first.last_date),
        (date("2020-03-01"), date("2020-03-02"))
    );
    assert_eq!(
        first.object.name,
        store::curated_object_name(&h.env, &first.run_id)
    );
    wait_curated(&h, &dataset, &first).await;

    let next_event = keyed_extraction(&h.env, &dataset, &sources, "us-states.csv", STATES_NEXT);
    extract(&h.stores, &next_event, STATES_NEXT).await;
    let next = h.next_transformed().await;
    assert_eq!(
        next.run_id,
        run_id::of_dataset(&h.env, &dataset, &[&next_event], &next_event.trigger)
    );
    assert_eq!(next.rows, 6);
    assert_eq!(next.last_date, date("2020-03-03"));
    let delta = next.delta.clone().expect("the second run has a delta");
    assert_eq!(delta.base_run_id, first.run_id);
    assert_eq!(
        delta.counts,
        shared::events::Counts {
            inserted: 2,
            updated: 1,
            unchanged: 3,
            removed: 1,
            revised: 1,
        }
    );
    for (object, part) in [
        (&delta.rows, "rows"),
        (&delta.removed, "removed"),
        (&delta.changes, "changes"),
    ] {
        assert_eq!(
            object.name,
            store::delta_object_name(&h.env, &next.run_id, part)
        );
    }
    assert_eq!(
        read_text(&h.stores, &delta.rows).await,
        "date,state,fips,cases,deaths,new_cases,new_deaths\n\
         2020-03-02,Texas,48,5,0,4,0\n\
         2020-03-03,Texas,48,6,0,1,0\n\
         2020-03-03,Utah,49,4,2,0,1\n"
    );
    assert_eq!(
        read_text(&h.stores, &delta.removed).await,
        "date,state\n2020-03-02,Guam\n"
    );
    assert_eq!(
        read_text(&h.stores, &delta.changes).await,
        "date,state,field,old_value,new_value\n2020-03-02,Texas,cases,3,5\n"
    );

    // The full dataset is stored too, for a loader whose table is not at the base.
    let parquet = store::get_object(&h.stores.curated, &next.object, next.object.bytes, WAIT)
        .await
        .unwrap();
    let stored = tokio::task::spawn_blocking(move || {
        let stored = Curated::from_parquet(&keyed::STATES, &parquet).unwrap();
        let expected =
            keyed::read(&keyed::STATES, &[("us-states.csv", STATES_NEXT.as_bytes())]).unwrap();
        (stored.rows_csv().unwrap(), expected.rows_csv().unwrap())
    })
    .await
    .unwrap();
    assert_eq!(stored.0, stored.1);
    wait_curated(&h, &dataset, &next).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn county_files_that_disagree_on_a_row_fail_the_run_naming_both() {
    let mut h = Harness::start(&[]).await;
    let dataset = Dataset::COUNTIES;
    let sources = [
        Source::new("us-counties-2020").unwrap(),
        Source::new("us-counties-recent").unwrap(),
    ];
    let year = keyed_extraction(
        &h.env,
        &dataset,
        &sources,
        "us-counties-2020.csv",
        COUNTIES_2020,
    );
    extract(&h.stores, &year, COUNTIES_2020).await;
    // The year's event waits for the recent file: only the recent file's event runs (and fails).
    h.wait_handled_of(&sources).await;
    let recent = keyed_extraction(
        &h.env,
        &dataset,
        &sources,
        "us-counties-recent.csv",
        COUNTIES_RECENT,
    );
    extract(&h.stores, &recent, COUNTIES_RECENT).await;

    let failed = h.next_failed().await;
    assert_eq!(failed.kind, FailureKind::InvalidData);
    assert_eq!(failed.dataset, dataset);
    assert_eq!(
        failed.run_id,
        Some(run_id::of_dataset(
            &h.env,
            &dataset,
            &[&year, &recent],
            &recent.trigger
        ))
    );
    assert_eq!(failed.inputs, vec![year.input(), recent.input()]);
    for file in ["us-counties-2020.csv", "us-counties-recent.csv"] {
        assert!(failed.reason.contains(file), "{}", failed.reason);
    }
    let expected = tokio::task::spawn_blocking(|| {
        keyed::read(
            &keyed::COUNTIES,
            &[
                ("us-counties-2020.csv", COUNTIES_2020.as_bytes()),
                ("us-counties-recent.csv", COUNTIES_RECENT.as_bytes()),
            ],
        )
        .unwrap_err()
        .to_string()
    })
    .await
    .unwrap();
    assert_eq!(failed.reason, expected);

    h.wait_handled_of(&sources).await;
    let key = store::curated_key(&h.env, &dataset);
    let curated: Option<Transformed> = store::kv_get(&h.stores.state, &key).await.unwrap();
    assert_eq!(curated, None, "a failed run is no base");
    h.stop().await;
}
