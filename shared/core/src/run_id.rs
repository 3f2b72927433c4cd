//! The identity of a run, derived from its inputs so that the same inputs are the same run.

use crate::env::Env;
use crate::events::{Extracted, Trigger};
use crate::hash::sha256_hex;
use crate::ids::RunId;
use crate::source::Dataset;

/// The run of these two extracted payloads. Each input counts by its content and the commit it
/// was read at, so an upstream revert to an earlier file is a new run (and applied), while the
/// two events of one change (one per source) are one run.
pub fn of_inputs(env: &Env, nyt: &Extracted, jhu: &Extracted, trigger: &Trigger) -> RunId {
    let key = |input: &Extracted| format!("{}@{}", input.object.sha256, input.upstream.commit_sha);
    derive(env, &key(nyt), &key(jhu), trigger)
}

/// The run of a keyed dataset made of these payloads, one per source in the dataset's order. As
/// with `us`, each counts by its content and commit, and a forced trigger's id is mixed in.
pub fn of_dataset(env: &Env, dataset: &Dataset, inputs: &[&Extracted], trigger: &Trigger) -> RunId {
    let mut key = format!("{env}\n{dataset}");
    for input in inputs {
        key.push_str(&format!(
            "\n{}:{}@{}",
            input.source, input.object.sha256, input.upstream.commit_sha
        ));
    }
    if trigger.force
        && let Some(id) = &trigger.id
    {
        key.push('\n');
        key.push_str(id.as_str());
    }
    RunId::new(&sha256_hex(key.as_bytes())[..24]).expect("hex digits are a run id")
}

/// `env` plus a key for each source's input (NYT first). A forced trigger's id is mixed in, so
/// `etl trigger --force` and the daily run are new runs even when nothing changed.
pub fn derive(env: &Env, nyt_key: &str, jhu_key: &str, trigger: &Trigger) -> RunId {
    let mut key = format!("{env}\n{nyt_key}\n{jhu_key}");
    if trigger.force
        && let Some(id) = &trigger.id
    {
        key.push('\n');
        key.push_str(id.as_str());
    }
    RunId::new(&sha256_hex(key.as_bytes())[..24]).expect("hex digits are a run id")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TriggerKind;
    use crate::ids::TriggerId;

    #[test]
    fn same_inputs_are_the_same_run() {
        let env = Env::prod();
        let commit = Trigger::new(TriggerKind::Commit);
        let initial = Trigger::new(TriggerKind::Initial);
        assert_eq!(
            derive(&env, "a", "b", &commit),
            derive(&env, "a", "b", &initial)
        );
        assert_ne!(
            derive(&env, "a", "b", &commit),
            derive(&env, "b", "a", &commit)
        );
        assert_ne!(
            derive(&env, "a", "b", &commit),
            derive(&Env::new("test").unwrap(), "a", "b", &commit)
        );
    }

    #[test]
    fn a_forced_trigger_is_a_new_run() {
        let env = Env::prod();
        let plain = derive(&env, "a", "b", &Trigger::new(TriggerKind::Manual));
        let forced = derive(
            &env,
            "a",
            "b",
            &Trigger::forced(TriggerKind::Manual, TriggerId::new("t1").unwrap()),
        );
        let forced_again = derive(
            &env,
            "a",
            "b",
            &Trigger::forced(TriggerKind::Manual, TriggerId::new("t2").unwrap()),
        );
        assert_ne!(plain, forced);
        assert_ne!(forced, forced_again);
    }

    #[test]
    fn a_revert_to_an_earlier_file_is_a_new_run() {
        use crate::events::{ObjectRef, SCHEMA_VERSION, UpstreamRef};
        use crate::source::Source;
        let extracted = |source, sha256: &str, commit: &str| Extracted {
            dataset: crate::Dataset::US,
            dataset_sources: Vec::new(),
            schema_version: SCHEMA_VERSION,
            env: Env::prod(),
            source,
            upstream: UpstreamRef {
                repo: "o/r".into(),
                path: "f.csv".into(),
                commit_sha: commit.parse().unwrap(),
                commit_time: chrono::Utc::now(),
                covered_commits: vec![],
            },
            object: ObjectRef {
                bucket: "b".into(),
                name: "n".into(),
                sha256: crate::ids::Digest::of(sha256.as_bytes()),
                bytes: 1,
            },
            trigger: Trigger::new(TriggerKind::Commit),
            fetched_at: chrono::Utc::now(),
        };
        let trigger = Trigger::new(TriggerKind::Commit);
        let jhu = extracted(Source::JHU, "j", "c0c0c0c0");
        let first = of_inputs(
            &Env::prod(),
            &extracted(Source::NYT, "x", "c1c1c1c1"),
            &jhu,
            &trigger,
        );
        let reverted = of_inputs(
            &Env::prod(),
            &extracted(Source::NYT, "x", "c3c3c3c3"),
            &jhu,
            &trigger,
        );
        assert_ne!(first, reverted);
        assert_eq!(
            first,
            of_inputs(
                &Env::prod(),
                &extracted(Source::NYT, "x", "c1c1c1c1"),
                &jhu,
                &trigger
            )
        );
    }
}
