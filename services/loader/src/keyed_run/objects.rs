//! The objects a keyed run's event names, checked before any is read: the curated dataset and
//! the three parts of its delta are the run's own, in `etl-curated`, under the names the
//! transformer gives them. An event naming anything else (another env's object, another run's)
//! is malformed, and nothing is read.

use shared::events::{ObjectRef, Transformed};
use shared::nats::CURATED_BUCKET;
use shared::store;

use crate::error::LoadError;

/// The delta's parts: the part's name in its object name, and the event's fields for it.
const DELTA_PARTS: [(&str, &str, &str); 3] = [
    ("rows", "delta.rows.bucket", "delta.rows.name"),
    ("removed", "delta.removed.bucket", "delta.removed.name"),
    ("changes", "delta.changes.bucket", "delta.changes.name"),
];

/// Every object `event` names is its run's own (see the module's text).
pub(crate) fn check(event: &Transformed) -> Result<(), LoadError> {
    let curated = store::curated_object_name(&event.env, &event.run_id);
    expect("object.bucket", &event.object.bucket, CURATED_BUCKET)?;
    expect("object.name", &event.object.name, &curated)?;
    if let Some(delta) = &event.delta {
        let objects = [&delta.rows, &delta.removed, &delta.changes];
        for ((part, bucket_field, name_field), object) in DELTA_PARTS.into_iter().zip(objects) {
            check_part(event, part, object, bucket_field, name_field)?;
        }
    }
    Ok(())
}

fn check_part(
    event: &Transformed,
    part: &str,
    object: &ObjectRef,
    bucket_field: &'static str,
    name_field: &'static str,
) -> Result<(), LoadError> {
    expect(bucket_field, &object.bucket, CURATED_BUCKET)?;
    let name = store::delta_object_name(&event.env, &event.run_id, part);
    expect(name_field, &object.name, &name)
}

fn expect(field: &'static str, found: &str, expected: &str) -> Result<(), LoadError> {
    if found == expected {
        Ok(())
    } else {
        Err(LoadError::ObjectName {
            field,
            found: found.chars().take(200).collect(),
            expected: expected.to_owned(),
        })
    }
}

#[cfg(test)]
mod tests {
    use chrono::NaiveDate;
    use shared::events::{Counts, Delta, Dropped, RunOrder, SCHEMA_VERSION, Trigger, TriggerKind};
    use shared::ids::{Digest, RunId};
    use shared::{Dataset, Env};

    use super::*;

    fn object(name: String) -> ObjectRef {
        ObjectRef {
            bucket: CURATED_BUCKET.into(),
            name,
            sha256: Digest::of(b""),
            bytes: 0,
        }
    }

    fn event() -> Transformed {
        let env = Env::new("test").unwrap();
        let run_id = RunId::new("run2").unwrap();
        let part = |p| object(store::delta_object_name(&env, &run_id, p));
        Transformed {
            schema_version: SCHEMA_VERSION,
            env: env.clone(),
            dataset: Dataset::STATES,
            run_id: run_id.clone(),
            order: RunOrder::of(&[], 1),
            trigger: Trigger::new(TriggerKind::Commit),
            inputs: vec![],
            object: object(store::curated_object_name(&env, &run_id)),
            rows: 1,
            first_date: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
            last_date: NaiveDate::from_ymd_opt(2021, 1, 1).unwrap(),
            dropped: Dropped::default(),
            warnings: vec![],
            timings: vec![],
            delta: Some(Delta {
                base_run_id: RunId::new("run1").unwrap(),
                rows: part("rows"),
                removed: part("removed"),
                changes: part("changes"),
                counts: Counts::default(),
            }),
        }
    }

    #[test]
    fn the_runs_own_objects_pass() {
        assert!(check(&event()).is_ok());
        let without_delta = Transformed {
            delta: None,
            ..event()
        };
        assert!(check(&without_delta).is_ok());
    }

    #[test]
    fn a_delta_part_of_another_run_is_named_and_refused() {
        let mut e = event();
        let delta = e.delta.as_mut().unwrap();
        delta.changes.name =
            store::delta_object_name(&e.env, &RunId::new("run1").unwrap(), "changes");
        let err = check(&e).unwrap_err();
        assert_eq!(err.kind(), shared::events::FailureKind::Malformed);
        assert_eq!(
            err.to_string(),
            "the transformed event names delta.changes.name \"test/run1.changes.csv\", expected \"test/run2.changes.csv\""
        );
    }

    #[test]
    fn a_part_swapped_with_another_or_in_another_bucket_is_refused() {
        let mut e = event();
        let delta = e.delta.as_mut().unwrap();
        std::mem::swap(&mut delta.rows, &mut delta.removed);
        assert!(
            check(&e)
                .unwrap_err()
                .to_string()
                .contains("delta.rows.name")
        );
        let mut e = event();
        e.delta.as_mut().unwrap().removed.bucket = "etl-raw".into();
        assert!(
            check(&e)
                .unwrap_err()
                .to_string()
                .contains("delta.removed.bucket")
        );
    }
}
