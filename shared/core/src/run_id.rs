//! The identity of a run, derived from its inputs so that the same inputs are the same run.

use crate::env::Env;
use crate::events::Trigger;
use crate::hash::sha256_hex;

/// `env` plus the raw payload hashes of both sources (NYT first). A forced trigger's id is mixed
/// in, so `etl trigger --force` and the daily run are new runs even when nothing changed.
pub fn derive(env: &Env, nyt_sha256: &str, jhu_sha256: &str, trigger: &Trigger) -> String {
    let mut key = format!("{env}\n{nyt_sha256}\n{jhu_sha256}");
    if trigger.force
        && let Some(id) = &trigger.id
    {
        key.push('\n');
        key.push_str(id);
    }
    sha256_hex(key.as_bytes())[..24].to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::TriggerKind;

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
        let forced = derive(&env, "a", "b", &Trigger::forced(TriggerKind::Manual, "t1"));
        let forced_again = derive(&env, "a", "b", &Trigger::forced(TriggerKind::Manual, "t2"));
        assert_ne!(plain, forced);
        assert_ne!(forced, forced_again);
    }
}
