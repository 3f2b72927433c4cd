//! What the loader does with one delivered event: a transformed run is read, applied and
//! announced (a `us` run by `apply`, a keyed dataset's by `keyed_run`); a failure report of any
//! stage is recorded in `etl_runs`. The result is `Ok` once the work is durable, or a classified
//! [`Failure`] for the settle step, which retries, reports and dead-letters: the handler never
//! publishes a failure of the message it was given.

use std::collections::HashSet;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::Utc;
use deadpool_postgres::Pool;
use shared::consumer::Delivery;
use shared::events::{Failed, FailureKind, Transformed};
use shared::message::{Event, Publish};
use shared::metrics::Metrics;
use shared::nats::{self, Stores, backoff};
use shared::settle::Failure;
use shared::{Env, EnvScope};

use crate::apply::{Applied, RunToLoad, apply_run};
use crate::config::Config;
use crate::consumer::retry_delay;
use crate::error::LoadError;
use crate::keyed::KeyedError;
use crate::{curated, keyed_run, migrate, runs};

pub(crate) struct Handler {
    stores: Stores,
    pool: Pool,
    config: Config,
    /// Envs whose schema this process has migrated.
    migrated: Mutex<HashSet<Env>>,
    metrics: Metrics,
}

impl Handler {
    pub fn new(stores: Stores, pool: Pool, config: Config, metrics: Metrics) -> Self {
        Self {
            stores,
            pool,
            config,
            migrated: Mutex::new(HashSet::new()),
            metrics,
        }
    }

    pub async fn handle(&self, delivery: Delivery) -> Result<(), Failure> {
        let delivered = delivery.delivered;
        let result = match delivery.event {
            Event::Transformed(event) => self.on_transformed(*event, &delivery.subject).await,
            Event::Failed(event) => self.on_failed(*event).await,
            // The consumer's filters take only the two above.
            _ => {
                return Err(Failure::permanent(
                    FailureKind::Internal,
                    format!(
                        "the loader does not consume {}: it is outside its filters",
                        delivery.subject
                    ),
                ));
            }
        };
        result.map_err(|err| {
            let failure = err.failure(delivered);
            if matches!(
                err,
                LoadError::CountMismatch(_) | LoadError::Keyed(KeyedError::CountMismatch { .. })
            ) {
                tracing::error!(subject = %delivery.subject, reason = %failure.reason, "BUG: the load disagrees with the diff; rolled back");
            }
            if failure.transient {
                failure.retry_after(retry_delay(delivered))
            } else {
                failure
            }
        })
    }

    /// Migrates the schema of every env this instance serves that exists or is listed (and
    /// `prod`, when serving all), waiting for PostgreSQL while it is unreachable.
    pub async fn migrate_at_start(&self, shutdown: &shared::Shutdown) -> Result<(), LoadError> {
        let mut attempt = 0;
        loop {
            match self.migrate_known_envs().await {
                Ok(()) => return Ok(()),
                Err(err) if err.is_transient(1) && !shutdown.is_triggered() => {
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
            EnvScope::Only(envs) => envs.clone(),
            EnvScope::All => {
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
        // The env's freshness survives a restart: its last success is read back once.
        match runs::last_succeeded(&**client, env).await {
            Ok(last) => {
                for (dataset, at) in last {
                    self.metrics
                        .record()
                        .succeeded_at(env.as_str(), &dataset, at.into());
                }
            }
            Err(err) => {
                tracing::debug!(%env, error = %err, "could not read the last successful run")
            }
        }
        self.migrated
            .lock()
            .expect("not poisoned")
            .insert(env.clone());
        Ok(())
    }

    async fn on_transformed(&self, event: Transformed, subject: &str) -> Result<(), LoadError> {
        match self.load(&event).await? {
            Applied::Loaded(loaded) => {
                tracing::info!(env = %loaded.env, dataset = %loaded.dataset, run_id = %loaded.run_id, counts = ?loaded.counts, timings = ?loaded.timings, "loaded");
                // Counted once, at the commit: a redelivery finds the run already loaded.
                self.metrics.record().run_loaded(
                    loaded.env.as_str(),
                    loaded.dataset.as_str(),
                    loaded.counts.inserted,
                    loaded.counts.updated,
                    loaded.counts.removed,
                    Duration::from_millis(loaded.duration_ms),
                );
                // Committed but not announced, the redelivery finds the run succeeded and
                // publishes the same event (same message id) again.
                self.announce(&*loaded, "the loaded event").await
            }
            Applied::AlreadyLoaded(loaded) => {
                tracing::info!(env = %loaded.env, dataset = %loaded.dataset, run_id = %loaded.run_id, "run already loaded, publishing its event again");
                self.announce(&*loaded, "the loaded event").await
            }
            // DESIGN rule 7 is the run's answer, recorded as failed with it: announced here like
            // a loaded run, while the message itself was handled.
            Applied::Suspicious { failed, first } => {
                // Counted once, at the commit that recorded it (its failed event, back in
                // `on_failed`, finds it recorded).
                if first {
                    self.metrics.record().run_finished(
                        failed.env.as_str(),
                        failed.dataset.as_str(),
                        "failed",
                    );
                }
                tracing::warn!(env = %failed.env, dataset = %failed.dataset, run_id = ?failed.run_id, reason = %failed.reason, "run refused as suspicious");
                self.announce(&*failed, "the failed event").await
            }
            Applied::Superseded { by } => {
                tracing::warn!(%subject, env = %event.env, dataset = %event.dataset, run_id = %event.run_id, newer = %by, "a run after this one is already loaded; recorded this one as superseded");
                self.metrics.record().run_finished(
                    event.env.as_str(),
                    event.dataset.as_str(),
                    "superseded",
                );
                Ok(())
            }
        }
    }

    async fn load(&self, event: &Transformed) -> Result<Applied, LoadError> {
        self.ensure_migrated(&event.env).await?;
        if !event.dataset.is_us() {
            let mut client = self.pool.get().await?;
            return keyed_run::load(&self.stores.curated, &mut client, &self.config, event).await;
        }
        let read_started = Instant::now();
        let dataset = curated::read(
            &self.stores.curated,
            &event.object,
            self.config.read_deadline,
            self.config.read_pause.as_deref(),
        )
        .await?;
        let bytes = dataset.bytes;
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
            started_at: dataset.started_at.unwrap_or_else(Utc::now),
            transformed_at: dataset.transformed_at.unwrap_or_else(Utc::now),
            timings: vec![("read".to_owned(), read_ms)],
        };
        let mut client = self.pool.get().await?;
        apply_run(&mut client, &run, self.config.max_removed_share).await
    }

    /// Records a failure report of any stage, this one's included (the settle step's report of a
    /// message the loader gave up on comes back here).
    async fn on_failed(&self, event: Failed) -> Result<(), LoadError> {
        self.ensure_migrated(&event.env).await?;
        let client = self.pool.get().await?;
        let new = runs::record_failed(&**client, &event, event.failed_at)
            .await
            .map_err(LoadError::db("record a failed run"))?;
        tracing::info!(env = %event.env, id = %event.id(), stage = event.stage.as_str(), kind = %event.kind, new, "recorded a failed run");
        // Counted once: a redelivered report, or one about a run that had succeeded, is not.
        if new {
            self.metrics.record().run_finished(
                event.env.as_str(),
                event.dataset.as_str(),
                "failed",
            );
        }
        Ok(())
    }

    async fn announce<E: Publish>(&self, event: &E, what: &'static str) -> Result<(), LoadError> {
        let duplicate = nats::publish(&self.stores.js, event)
            .await
            .map_err(|error| LoadError::Publish { what, error })?;
        tracing::debug!(subject = %event.subject(), duplicate, "published {what}");
        Ok(())
    }
}
