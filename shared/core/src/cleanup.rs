//! Removing what one env left in NATS: its events in every stream, its KV keys, its objects in both
//! buckets, and the consumers that serve it alone. `etl smoke` clears env `test` with it before and
//! after a run; the tests clear their own envs with it once they pass.
//!
//! Nothing of any other env is touched: every name involved carries the env (`etl.<env>.…`,
//! `notify.<env>`, `<env>.…` keys, `<env>/…` objects).

use async_nats::jetstream::{self, consumer};
use futures::TryStreamExt;

use crate::Env;
use crate::nats::{CURATED_BUCKET, DEAD_STREAM, ETL_STREAM, NOTIFY_STREAM, RAW_BUCKET, Stores};
use crate::subjects;

#[derive(Debug, thiserror::Error)]
pub enum CleanupError {
    #[error("could not open stream {stream}: {source}")]
    OpenStream {
        stream: &'static str,
        source: async_nats::Error,
    },
    #[error("could not purge {subject} from stream {stream}: {source}")]
    PurgeStream {
        stream: &'static str,
        subject: String,
        source: async_nats::Error,
    },
    #[error("could not list the keys of {bucket}: {source}")]
    ListKeys {
        bucket: &'static str,
        source: async_nats::Error,
    },
    #[error("could not purge key {key}: {source}")]
    PurgeKey {
        key: String,
        source: async_nats::Error,
    },
    #[error("could not list the objects of {bucket}: {source}")]
    ListObjects {
        bucket: &'static str,
        source: async_nats::Error,
    },
    #[error("could not delete {bucket}/{name}: {source}")]
    DeleteObject {
        bucket: &'static str,
        name: String,
        source: async_nats::Error,
    },
    #[error("could not list the consumers of stream {stream}: {source}")]
    ListConsumers {
        stream: &'static str,
        source: async_nats::Error,
    },
    #[error("could not delete consumer {name} of stream {stream}: {source}")]
    DeleteConsumer {
        stream: &'static str,
        name: String,
        source: async_nats::Error,
    },
}

/// How much [`purge_env`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub messages: u64,
    pub keys: usize,
    pub objects: usize,
}

/// Removes `env`'s events from the `ETL`, `DEAD` and `NOTIFY` streams (so that a consumer created
/// later for all envs does not replay them), its keys from `etl-state` and its objects from
/// `etl-raw` and `etl-curated`. Consumers are left alone: see [`delete_consumers`].
pub async fn purge_env(stores: &Stores, env: &Env) -> Result<Purged, CleanupError> {
    let mut purged = Purged::default();
    for (stream, subject) in [
        (ETL_STREAM, format!("etl.{env}.>")),
        (DEAD_STREAM, format!("etl.{env}.>")),
        (NOTIFY_STREAM, subjects::notify(env)),
    ] {
        purged.messages += purge_subject(&stores.js, stream, subject).await?;
    }
    purged.keys = purge_keys(stores, env).await?;
    for (bucket, store) in [(RAW_BUCKET, &stores.raw), (CURATED_BUCKET, &stores.curated)] {
        purged.objects += delete_objects(bucket, store, env).await?;
    }
    Ok(purged)
}

/// Deletes the consumers that serve `env` alone (every filter subject names `env`), in every
/// stream; returns how many. Only for an env whose services have stopped: a service serving
/// just this env would lose its consumer. Consumers with no filter, or serving other envs too
/// (`loader-all`, `loader-prod-test`), stay.
pub async fn delete_consumers(js: &jetstream::Context, env: &Env) -> Result<usize, CleanupError> {
    let mut deleted = 0;
    for stream_name in [ETL_STREAM, DEAD_STREAM, NOTIFY_STREAM] {
        let stream = open_stream(js, stream_name).await?;
        let consumers: Vec<consumer::Info> =
            stream
                .consumers()
                .try_collect()
                .await
                .map_err(|err| CleanupError::ListConsumers {
                    stream: stream_name,
                    source: err.into(),
                })?;
        for info in consumers
            .iter()
            .filter(|info| serves_only(&info.config, env))
        {
            stream.delete_consumer(&info.name).await.map_err(|err| {
                CleanupError::DeleteConsumer {
                    stream: stream_name,
                    name: info.name.clone(),
                    source: err.into(),
                }
            })?;
            deleted += 1;
        }
    }
    Ok(deleted)
}

fn serves_only(config: &consumer::Config, env: &Env) -> bool {
    let filters: Vec<&String> = std::iter::once(&config.filter_subject)
        .filter(|subject| !subject.is_empty())
        .chain(&config.filter_subjects)
        .collect();
    !filters.is_empty()
        && filters
            .iter()
            .all(|subject| subjects::env_of(subject).as_ref() == Some(env))
}

async fn open_stream(
    js: &jetstream::Context,
    stream: &'static str,
) -> Result<jetstream::stream::Stream, CleanupError> {
    js.get_stream(stream)
        .await
        .map_err(|err| CleanupError::OpenStream {
            stream,
            source: err.into(),
        })
}

async fn purge_subject(
    js: &jetstream::Context,
    stream: &'static str,
    subject: String,
) -> Result<u64, CleanupError> {
    let response = open_stream(js, stream)
        .await?
        .purge()
        .filter(subject.clone())
        .await
        .map_err(|err| CleanupError::PurgeStream {
            stream,
            subject,
            source: err.into(),
        })?;
    Ok(response.purged)
}

async fn purge_keys(stores: &Stores, env: &Env) -> Result<usize, CleanupError> {
    let list_error = |err: async_nats::Error| CleanupError::ListKeys {
        bucket: crate::nats::STATE_BUCKET,
        source: err,
    };
    let keys: Vec<String> = stores
        .state
        .keys()
        .await
        .map_err(|err| list_error(err.into()))?
        .try_collect()
        .await
        .map_err(|err| list_error(err.into()))?;
    let prefix = format!("{env}.");
    let mine: Vec<&String> = keys.iter().filter(|key| key.starts_with(&prefix)).collect();
    for key in &mine {
        stores
            .state
            .purge(key)
            .await
            .map_err(|err| CleanupError::PurgeKey {
                key: (*key).clone(),
                source: err.into(),
            })?;
    }
    Ok(mine.len())
}

async fn delete_objects(
    bucket: &'static str,
    store: &jetstream::object_store::ObjectStore,
    env: &Env,
) -> Result<usize, CleanupError> {
    let list_error = |err: async_nats::Error| CleanupError::ListObjects {
        bucket,
        source: err,
    };
    let objects: Vec<jetstream::object_store::ObjectInfo> = store
        .list()
        .await
        .map_err(|err| list_error(err.into()))?
        .try_collect()
        .await
        .map_err(|err| list_error(err.into()))?;
    let prefix = format!("{env}/");
    let mine: Vec<&str> = objects
        .iter()
        .map(|object| object.name.as_str())
        .filter(|name| name.starts_with(&prefix))
        .collect();
    for name in &mine {
        store
            .delete(name)
            .await
            .map_err(|err| CleanupError::DeleteObject {
                bucket,
                name: (*name).to_owned(),
                source: err.into(),
            })?;
    }
    Ok(mine.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn consumer_filtering(subjects: &[&str]) -> consumer::Config {
        consumer::Config {
            filter_subjects: subjects.iter().map(|s| (*s).to_owned()).collect(),
            ..Default::default()
        }
    }

    #[test]
    fn a_consumer_of_the_env_alone_is_deleted() {
        let env = Env::new("t_one").unwrap();
        let config = consumer_filtering(&["etl.t_one.transformed", "etl.t_one.failed.*"]);
        assert!(serves_only(&config, &env));
    }

    #[test]
    fn a_consumer_of_all_envs_or_of_another_env_too_is_kept() {
        let env = Env::new("t_one").unwrap();
        assert!(!serves_only(&consumer_filtering(&["etl.*.loaded"]), &env));
        assert!(!serves_only(
            &consumer_filtering(&["etl.t_one.loaded", "etl.prod.loaded"]),
            &env
        ));
        assert!(!serves_only(&consumer::Config::default(), &env));
    }
}
