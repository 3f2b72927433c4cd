//! Input events as the loader and the other stages publish them.

use chrono::{NaiveDate, TimeZone, Utc};
use shared::events::{
    Correction, Counts, Dropped, Failed, Field, InputRef, Loaded, ObjectRef, SCHEMA_VERSION, Stage,
    Trigger, TriggerKind, UpstreamRef,
};
use shared::nats::Stores;
use shared::{Env, Source};

fn day(d: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(2023, 3, d).unwrap()
}

pub fn input(env: &Env, source: Source, sha: &str) -> InputRef {
    let location = source.default_location();
    InputRef {
        source,
        upstream: UpstreamRef {
            repo: location.repo,
            path: location.path,
            commit_sha: sha.to_owned(),
            commit_time: Utc.with_ymd_and_hms(2023, 3, 23, 14, 5, 0).unwrap(),
            covered_commits: vec![],
        },
        object: ObjectRef {
            bucket: "etl-raw".into(),
            name: format!("{env}/{source}/{sha}"),
            sha256: sha.to_owned(),
            bytes: 100,
        },
    }
}

/// A run that added one day and revised three values.
pub fn loaded(env: &Env, run_id: &str) -> Loaded {
    let corrections = (0..3)
        .map(|i| Correction {
            date: day(20 + i),
            field: Field::Deaths,
            old: Some(1_000_000 + i64::from(i)),
            new: Some(1_000_100 + i64::from(i)),
        })
        .collect();
    Loaded {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        run_id: run_id.to_owned(),
        trigger: Trigger::new(TriggerKind::Commit),
        inputs: vec![
            input(env, Source::Nyt, "1a2b3c4d5e6f708192a3"),
            input(env, Source::Jhu, "9f8e7d6c5b4a39281706"),
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
        run_id: Some(run_id.to_owned()),
        stage: Stage::Transform,
        kind: "invalid_data".into(),
        reason: "nyt line 57: deaths is not a number (`12x`)".into(),
        inputs: vec![input(env, Source::Nyt, "1a2b3c4d5e6f708192a3")],
        trigger: Some(Trigger::new(TriggerKind::Commit)),
        source: None,
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
    let id = format!("failed:{}:{}", event.env, event.id());
    shared::nats::publish_event(
        &stores.js,
        &shared::subjects::failed(&event.env, event.stage),
        &id,
        event,
    )
    .await
    .unwrap();
}
