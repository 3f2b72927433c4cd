//! What has gone wrong with a source since it last worked, kept in KV beside its cursor: `etl
//! status` shows it (why, since when, until when polls leave the source alone), and the cause
//! already reported as a failed extract survives a restart, so a person hears of each cause once.

use async_nats::jetstream::kv;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::ids::CommitSha;
use shared::store::{StoreError, kv_get, kv_put, trouble_key};
use shared::{Env, Source};

use crate::error::FailureKind;

/// A source that does not work, from its first failure until a check succeeds again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Trouble {
    /// A machine word: the kind of a failed extract, or `rate_limited`.
    pub kind: String,
    /// One sentence: the latest failure.
    pub reason: String,
    /// The first failure since the source last worked.
    pub since: DateTime<Utc>,
    /// Failed checks in a row; rate limits do not count, they are not the source's fault.
    pub failures: u32,
    /// Polls leave the source alone until then; `None`: the next poll tries again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// The cause last reported as a failed extract: the same cause is not reported again until it
    /// changes or the source has worked in between.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported: Option<Reported>,
}

/// What a failed extract is about, for telling one report from a repeat of it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Cause {
    pub kind: FailureKind,
    /// The commit whose file failed, when the failure is about one version of the file (a new
    /// commit failing too is news); `None` when it is about the source as a whole: access, the
    /// repository, the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<CommitSha>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reported {
    #[serde(flatten)]
    pub cause: Cause,
    pub at: DateTime<Utc>,
}

/// The source's trouble as last saved. A record that cannot be read is no reason to stop the
/// extractor: it is logged and taken as none, at worst one cause is reported a second time.
pub async fn load(state: &kv::Store, env: &Env, source: &Source) -> Option<Trouble> {
    match kv_get(state, &trouble_key(env, source)).await {
        Ok(trouble) => trouble,
        Err(err) => {
            tracing::warn!(%source, error = %err, "could not read the source's last trouble; starting without it");
            None
        }
    }
}

pub async fn save(
    state: &kv::Store,
    env: &Env,
    source: &Source,
    trouble: &Trouble,
) -> Result<(), StoreError> {
    kv_put(state, &trouble_key(env, source), trouble).await
}

/// Forgets the trouble once the source works again.
pub async fn clear(state: &kv::Store, env: &Env, source: &Source) -> Result<(), StoreError> {
    let key = trouble_key(env, source);
    state.delete(&key).await.map_err(|err| StoreError::KvPut {
        key,
        source: Box::new(err),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_record_reads_back_with_its_reported_cause() {
        let trouble = Trouble {
            kind: "forbidden".into(),
            reason: "GitHub refused access".into(),
            since: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            failures: 2,
            until: Some(DateTime::from_timestamp(1_700_001_800, 0).unwrap()),
            reported: Some(Reported {
                cause: Cause {
                    kind: FailureKind::Forbidden,
                    commit: None,
                },
                at: DateTime::from_timestamp(1_700_000_000, 0).unwrap(),
            }),
        };
        let json = serde_json::to_value(&trouble).unwrap();
        assert_eq!(json["reported"]["kind"], "forbidden");
        assert_eq!(json["until"], "2023-11-14T22:43:20Z");
        let back: Trouble = serde_json::from_value(json).unwrap();
        assert_eq!(back, trouble);
    }
}
