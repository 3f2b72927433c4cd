//! What becomes of one message: a transformed run is read, applied and announced; a failure of
//! an earlier stage is recorded. Errors end as a retry (transient) or a reported failure.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use deadpool_postgres::Pool;
use shared::consumer::{Delivery, Outcome};
use shared::events::{Failed, Loaded, SCHEMA_VERSION, Stage, Transformed};
use shared::nats::{self, Stores, backoff};
use shared::store::{self, CURATED_STARTED_AT, CURATED_TRANSFORMED_AT};
use shared::{Env, subjects};

use crate::apply::{Applied, RunToLoad, apply_run};
use crate::config::Config;
use crate::error::LoadError;
use crate::{migrate, runs};

/// The largest curated dataset the loader reads: a real one is tens of kB.
pub const MAX_CURATED_BYTES: u64 = 64 * 1024 * 1024;

/// What a curated object's metadata says about its run's timing.
struct CuratedTimes {
    started_at: Option<DateTime<Utc>>,
    transformed_at: Option<DateTime<Utc>>,
}

pub(crate) struct Handler {
    stores: Stores,
    pool: Pool,
    config: Config,
    /// Envs whose schema this process has migrated.
    migrated: Mutex<HashSet<Env>>,
}

impl Handler {
    pub fn new(stores: Stores, pool: Pool, config: Config) -> Self {
        Self {
            stores,
            pool,
            config,
            migrated: Mutex::new(HashSet::new()),
        }
    }

    pub async fn handle(&self, delivery: Delivery) -> Outcome {
        let Some(env) = subjects::env_of(&delivery.subject) else {
            return Outcome::Reject {
                reason: format!("{} names no valid env", delivery.subject),
            };
        };
        if delivery.subject == subjects::transformed(&env) {
            match serde_json::from_slice::<Transformed>(&delivery.payload) {
                Ok(event) => self.on_transformed(&delivery, event).await,
                Err(err) => Outcome::Reject {
                    reason: format!(
                        "the message on {} is not a transformed event: {err}",
                        delivery.subject
                    ),
                },
            }
        } else {
            match serde_json::from_slice::<Failed>(&delivery.payload) {
                Ok(event) => self.on_failed(&delivery, event).await,
                Err(err) => Outcome::Reject {
                    reason: format!(
                        "the message on {} is not a failed event: {err}",
                        delivery.subject
                    ),
                },
            }
        }
    }

    /// Migrates the schema of every env this instance serves that exists or is listed (and
    /// `prod`, when serving all), waiting for PostgreSQL while it is unreachable.
    pub async fn migrate_at_start(&self, shutdown: &shared::Shutdown) -> Result<(), LoadError> {
        let mut attempt = 0;
        loop {
            match self.migrate_known_envs().await {
                Ok(()) => return Ok(()),
                Err(err) if err.permanent_kind().is_none() && !shutdown.is_triggered() => {
                    attempt += 1;
                    let delay =
                        backoff(attempt, Duration::from_millis(500), Duration::from_secs(10));
                    tracing::warn!(error = %err, attempt, ?delay, "PostgreSQL not ready for migrations, retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => {}
                        _ = shutdown.wait() => return Ok(()),
                    }
                }
                Err(err) => return Err(err),
            }
        }
    }

    async fn migrate_known_envs(&self) -> Result<(), LoadError> {
        let envs = match &self.config.scope {
            shared::EnvScope::Only(envs) => envs.clone(),
            shared::EnvScope::All => {
                let client = self.pool.get().await?;
                let mut envs = migrate::known_envs(&client)
                    .await
                    .map_err(LoadError::db("list env schemas"))?;
                if !envs.contains(&Env::prod()) {
                    envs.push(Env::prod());
                }
                envs
            }
        };
        for env in &envs {
            self.ensure_migrated(env).await?;
        }
        Ok(())
    }

    async fn ensure_migrated(&self, env: &Env) -> Result<(), LoadError> {
        if self.migrated.lock().expect("not poisoned").contains(env) {
            return Ok(());
        }
        let mut client = self.pool.get().await?;
        migrate::migrate(&mut client, env).await?;
        self.migrated
            .lock()
            .expect("not poisoned")
            .insert(env.clone());
        Ok(())
    }

    async fn on_transformed(&self, delivery: &Delivery, event: Transformed) -> Outcome {
        let applied = match self.load(&event).await {
            Ok(applied) => applied,
            Err(err) => return self.fail(delivery, &event, err).await,
        };
        match applied {
            Applied::Loaded(loaded) => {
                tracing::info!(env = %loaded.env, run_id = %loaded.run_id, counts = ?loaded.counts, timings = ?loaded.timings, "loaded");
                self.publish_loaded(delivery, &loaded).await
            }
            Applied::AlreadyLoaded(loaded) => {
                tracing::info!(env = %loaded.env, run_id = %loaded.run_id, "run already loaded, publishing its event again");
                self.publish_loaded(delivery, &loaded).await
            }
            Applied::Suspicious(failed) => {
                tracing::warn!(env = %failed.env, run_id = ?failed.run_id, reason = %failed.reason, "run refused as suspicious");
                self.publish_failed(delivery, &failed).await
            }
            Applied::Superseded { by } => {
                tracing::warn!(env = %event.env, run_id = %event.run_id, newer = %by, "a newer run already loaded, skipping this one");
                Outcome::Ack
            }
        }
    }

    async fn load(&self, event: &Transformed) -> Result<Applied, LoadError> {
        self.ensure_migrated(&event.env).await?;
        let read_started = Instant::now();
        let (bytes, times) = self.read_curated(event).await?;
        // Decoding is CPU work, and polars' Parquet reader calls `block_in_place`, which panics
        // on a current-thread runtime: keep it on a blocking thread.
        let rows = tokio::task::spawn_blocking(move || dataset::from_parquet(&bytes))
            .await
            .map_err(|err| LoadError::Decode(err.to_string()))?
            .map_err(|error| LoadError::Parquet {
                name: event.object.name.clone(),
                error,
            })?;
        if rows.len() as u64 != event.rows {
            return Err(LoadError::RowCount {
                name: event.object.name.clone(),
                announced: event.rows,
                found: rows.len(),
            });
        }
        let read_ms = u64::try_from(read_started.elapsed().as_millis()).unwrap_or(u64::MAX);
        let run = RunToLoad {
            transformed: event.clone(),
            rows,
            // A dataset stored without these (not by the transformer) is timed from now.
            started_at: times.started_at.unwrap_or_else(Utc::now),
            transformed_at: times.transformed_at.unwrap_or_else(Utc::now),
            timings: vec![("read".to_owned(), read_ms)],
        };
        let mut client = self.pool.get().await?;
        apply_run(&mut client, &run, self.config.max_removed_share).await
    }

    /// The dataset's bytes, and when its run started and was transformed (object metadata).
    async fn read_curated(
        &self,
        event: &Transformed,
    ) -> Result<(Vec<u8>, CuratedTimes), LoadError> {
        let name = &event.object.name;
        let error = |error| LoadError::ReadCurated {
            name: name.clone(),
            error,
        };
        let bytes = store::get_object(&self.stores.curated, name, MAX_CURATED_BYTES)
            .await
            .map_err(error)?;
        let info = self.stores.curated.info(name).await.map_err(|source| {
            error(store::StoreError::Get {
                name: name.clone(),
                source: source.into(),
            })
        })?;
        let time = |key: &str| {
            info.metadata
                .get(key)
                .and_then(|value| DateTime::parse_from_rfc3339(value).ok())
                .map(|at| at.with_timezone(&Utc))
        };
        let times = CuratedTimes {
            started_at: time(CURATED_STARTED_AT),
            transformed_at: time(CURATED_TRANSFORMED_AT),
        };
        Ok((bytes, times))
    }

    async fn on_failed(&self, delivery: &Delivery, event: Failed) -> Outcome {
        let recorded = async {
            self.ensure_migrated(&event.env).await?;
            let client = self.pool.get().await?;
            runs::record_failed(&**client, &event, event.failed_at)
                .await
                .map_err(LoadError::db("record a failed run"))
        }
        .await;
        match recorded {
            Ok(_) => {
                tracing::info!(env = %event.env, id = %event.id(), stage = event.stage.as_str(), kind = %event.kind, "recorded a failed run");
                Outcome::Ack
            }
            Err(err) if err.permanent_kind().is_none() && !delivery.last_attempt => {
                Outcome::Retry {
                    delay: retry_delay(delivery),
                    reason: err.to_string(),
                }
            }
            Err(err) => {
                tracing::error!(env = %event.env, id = %event.id(), error = %err, "could not record a failed run");
                Outcome::Reject {
                    reason: err.to_string(),
                }
            }
        }
    }

    /// Retries a transient error; otherwise (or on the last attempt) records the load as failed,
    /// reports it on `etl.<env>.failed.load` and rejects the event.
    async fn fail(&self, delivery: &Delivery, event: &Transformed, err: LoadError) -> Outcome {
        let (kind, reason) = match err.permanent_kind() {
            Some(kind) => (kind, err.to_string()),
            None if delivery.last_attempt => (
                "unavailable",
                format!(
                    "the load gave up after {} attempts: {err}",
                    delivery.delivered
                ),
            ),
            None => {
                return Outcome::Retry {
                    delay: retry_delay(delivery),
                    reason: err.to_string(),
                };
            }
        };
        if matches!(err, LoadError::CountMismatch(_)) {
            tracing::error!(env = %event.env, run_id = %event.run_id, %reason, "BUG: the load disagrees with the diff; rolled back");
        }
        let failed = Failed {
            schema_version: SCHEMA_VERSION,
            env: event.env.clone(),
            run_id: Some(event.run_id.clone()),
            stage: Stage::Load,
            kind: kind.to_owned(),
            reason,
            inputs: event.inputs.clone(),
            trigger: Some(event.trigger.clone()),
            source: None,
            failed_at: Utc::now(),
        };
        // Best effort: when PostgreSQL is what failed, the event still tells people.
        let recorded = async {
            let client = self.pool.get().await?;
            runs::record_failed(&**client, &failed, failed.failed_at)
                .await
                .map_err(LoadError::db("record a failed run"))
        }
        .await;
        if let Err(record) = recorded {
            tracing::warn!(env = %failed.env, run_id = %event.run_id, error = %record, "could not record the failed load");
        }
        self.publish_failed(delivery, &failed).await
    }

    async fn publish_loaded(&self, delivery: &Delivery, loaded: &Loaded) -> Outcome {
        let msg_id = format!("loaded:{}", loaded.run_id);
        match nats::publish_event(
            &self.stores.js,
            &subjects::loaded(&loaded.env),
            &msg_id,
            loaded,
        )
        .await
        {
            Ok(duplicate) => {
                tracing::debug!(run_id = %loaded.run_id, duplicate, "published the loaded event");
                Outcome::Ack
            }
            // Committed but not announced: the redelivery finds the run succeeded and publishes
            // its event (same message id) again.
            Err(error) => Outcome::Retry {
                delay: retry_delay(delivery),
                reason: LoadError::Publish {
                    what: "the loaded event",
                    error,
                }
                .to_string(),
            },
        }
    }

    async fn publish_failed(&self, delivery: &Delivery, failed: &Failed) -> Outcome {
        let msg_id = format!("failed:load:{}", failed.id());
        match nats::publish_event(
            &self.stores.js,
            &subjects::failed(&failed.env, Stage::Load),
            &msg_id,
            failed,
        )
        .await
        {
            Ok(_) => Outcome::Reject {
                reason: failed.reason.clone(),
            },
            Err(error) if !delivery.last_attempt => Outcome::Retry {
                delay: retry_delay(delivery),
                reason: LoadError::Publish {
                    what: "the failed event",
                    error,
                }
                .to_string(),
            },
            Err(error) => {
                tracing::error!(env = %failed.env, error = %error, reason = %failed.reason, "could not report a failed load");
                Outcome::Reject {
                    reason: failed.reason.clone(),
                }
            }
        }
    }
}

fn retry_delay(delivery: &Delivery) -> Duration {
    let attempt = u32::try_from(delivery.delivered).unwrap_or(u32::MAX);
    backoff(attempt, Duration::from_secs(1), Duration::from_secs(60))
}
