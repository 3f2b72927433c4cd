//! Input events as the loader and the other stages publish them.

use chrono::{NaiveDate, TimeZone, Utc};
use shared::events::{
    Correction, Counts, Dropped, Failed, FailureKind, Field, InputRef, Loaded, ObjectRef,
    SCHEMA_VERSION, Stage, Trigger, TriggerKind, UpstreamRef,
};
use shared::ids::{Digest, RunId};
use shared::nats::Stores;
use shared::source::UpstreamLocation;
use shared::{Dataset, Env, Source};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 3, d).unwrap()
}

pub fn run_id(id: &str) -> RunId {
    RunId::new(id).unwrap()
}

/// The payload of `source` (NYT's or JHU's) read at commit `sha`, stored where the extractor
/// stores it.
pub fn input(env: &Env, source: Source, sha: &str) -> InputRef {
    let location = source.default_location().expect("a us source");
    input_at(env, source, location, sha)
}

/// The payload of `source`, read from `location` at commit `sha`.
pub fn input_at(env: &Env, source: Source, location: UpstreamLocation, sha: &str) -> InputRef {
    let digest = Digest::of(sha.as_bytes());
    InputRef {
        upstream: UpstreamRef {
            repo: location.repo,
            path: location.path,
            commit_sha: sha.parse().unwrap(),
            commit_time: Utc.with_ymd_and_hms(2023, 3, 23, 14, 5, 0).unwrap(),
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: shared::nats::RAW_BUCKET.into(),
            name: shared::store::raw_object_name(env, &source, &digest),
            sha256: digest,
            bytes: 100,
        },
        source,
    }
}

/// A run that added one day and revised three values.
pub fn loaded(env: &Env, run_id: &str) -> Loaded {
    let corrections = (0..3)
        .map(|i| Correction {
            key: None,
            date: day(20 + i),
            field: Field::Deaths,
            old: Some(1_000_000 + i64::from(i)),
            new: Some(1_000_100 + i64::from(i)),
        })
        .collect();
    Loaded {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: Dataset::US,
        run_id: self::run_id(run_id),
        trigger: Trigger::new(TriggerKind::Commit),
        inputs: vec![
            input(env, Source::NYT, "1a2b3c4d5e6f708192a3"),
            input(env, Source::JHU, "9f8e7d6c5b4a39281706"),
        ],
        counts: Counts {
            inserted: 1,
            updated: 4,
            unchanged: 1150,
            removed: 0,
            revised: 3,
        },
        corrections,
        corrections_total: 3,
        rows: 1155,
        first_date: NaiveDate::from_ymd_opt(2020, 1, 22).unwrap(),
        last_date: day(23),
        dropped: Dropped {
            only_nyt: 2,
            only_jhu: 0,
            only_nyt_dates: vec![
                NaiveDate::from_ymd_opt(2020, 1, 21).unwrap(),
                NaiveDate::from_ymd_opt(2020, 1, 20).unwrap(),
            ],
            only_jhu_dates: vec![],
        },
        warnings: vec!["new_cases is negative on 2023-03-21 (-12): an upstream correction".into()],
        duration_ms: 2_400,
        timings: vec![],
    }
}

/// A `counties` run as the loader publishes it: NYT's county file as input, counts in rows, and
/// the revised values with their key, largest first, more of them than an email lists.
pub fn counties_loaded(env: &Env, run_id: &str) -> Loaded {
    let source = Source::new("us-counties").unwrap();
    let location = UpstreamLocation::new("nytimes/covid-19-data", "master", "us-counties.csv");
    let corrections: Vec<Correction> = (0..25)
        .map(|i| Correction {
            key: Some(if i == 0 {
                "Harris, Texas".to_owned()
            } else {
                format!("County {i}, Ohio")
            }),
            date: NaiveDate::from_ymd_opt(2020, 4, 28).unwrap(),
            field: Field::Cases,
            old: Some(10),
            new: Some(12 + 100 * (25 - i64::from(i))),
        })
        .collect();
    Loaded {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: Dataset::COUNTIES,
        run_id: self::run_id(run_id),
        trigger: Trigger::new(TriggerKind::Commit),
        inputs: vec![input_at(env, source, location, "5e6f708192a31a2b3c4d")],
        counts: Counts {
            inserted: 3_250,
            updated: 3_290,
            unchanged: 2_270_000,
            removed: 2,
            revised: 25,
        },
        corrections,
        corrections_total: 31,
        rows: 2_276_540,
        first_date: NaiveDate::from_ymd_opt(2020, 1, 21).unwrap(),
        last_date: day(23),
        dropped: Dropped::default(),
        warnings: vec![],
        duration_ms: 2_100,
        timings: vec![],
    }
}

/// A run that found nothing new.
pub fn unchanged(env: &Env, run_id: &str) -> Loaded {
    let mut event = loaded(env, run_id);
    event.counts = Counts {
        unchanged: 1155,
        ..Counts::default()
    };
    event.corrections = vec![];
    event.corrections_total = 0;
    event
}

pub fn failed(env: &Env, run_id: &str) -> Failed {
    Failed {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset: Dataset::US,
        run_id: Some(self::run_id(run_id)),
        stage: Stage::Transform,
        kind: FailureKind::InvalidData,
        reason: "nyt line 57: deaths is not a number (`12x`)".into(),
        inputs: vec![input(env, Source::NYT, "1a2b3c4d5e6f708192a3")],
        trigger: Some(Trigger::new(TriggerKind::Commit)),
        source: None,
        cause: None,
        failed_at: Utc::now(),
    }
}

/// Publishes an event as the loader would; `copy` makes the message id unique, so a second copy
/// gets past the stream's de-duplication like a late redelivery would.
pub async fn publish_loaded(stores: &Stores, event: &Loaded, copy: u32) {
    let id = format!("loaded:{}:{}:copy{copy}", event.env, event.run_id);
    shared::nats::publish_event(
        &stores.js,
        &shared::subjects::loaded(&event.env),
        &id,
        event,
    )
    .await
    .unwrap();
}

pub async fn publish_failed(stores: &Stores, event: &Failed) {
    shared::nats::publish(&stores.js, event).await.unwrap();
}
