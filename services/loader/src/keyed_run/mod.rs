//! One run of a keyed dataset (`states`, `counties`) applied to its table, in one transaction.
//!
//! As the `us` path (`apply`) does: the event's objects are checked to be the run's own, then
//! under the env's load lock a run that already succeeded changes nothing (its `Loaded` event is
//! rebuilt from `etl_runs`), and a run that comes before a succeeded run of the same dataset is
//! recorded as superseded. Otherwise the run's delta is applied when the table holds its base
//! ([`keyed::apply_delta`]); when it does not, when the delta does not fit the table, or when the
//! run has no delta, the table is reconciled from the whole curated dataset
//! ([`keyed::reconcile`]). DESIGN rule 7 is the run's answer: recorded as failed and announced,
//! the table untouched. The run is recorded in `etl_runs` and committed with the table.
//!
//! - `objects`: the object names the event may use;
//! - `read`: the delta's parts, or the whole dataset decoded to CSV, from `etl-curated`.
//!
//! The delta's parts are read before the transaction; the whole dataset only once the
//! transaction knows it is needed (rarely: a first load, a table that drifted), so a delta run
//! never reads it. That read then holds the lock, bounded by the read deadline.

mod objects;
mod read;

use async_nats::jetstream::object_store::ObjectStore;
use chrono::{DateTime, Utc};
use shared::events::{Dropped, Loaded, MAX_CORRECTIONS_IN_EVENT, SCHEMA_VERSION, Transformed};
use tokio_postgres::{Client, Transaction};

use crate::apply::{
    Applied, Steps, begin_locked, refuse_suspicious, settled_before, stage_timings,
};
use crate::config::Config;
use crate::curated;
use crate::error::LoadError;
use crate::keyed::{self, Delta, DeltaOutcome, KeyedError, Table};
use crate::runs::{self, RunTimes};
use read::DeltaParts;

/// Loads the run of `event`, whose dataset must be a keyed one, into its env's schema (which
/// must be migrated), reading its objects from `store`.
pub(crate) async fn load(
    store: &ObjectStore,
    client: &mut Client,
    config: &Config,
    event: &Transformed,
) -> Result<Applied, LoadError> {
    let table = Table::of(event.dataset.as_str())
        .ok_or_else(|| LoadError::UnknownDataset(event.dataset.to_string()))?;
    objects::check(event)?;
    let mut steps = Steps::new(Vec::new());
    let (started_at, transformed_at) =
        curated::run_times(store, &event.object, config.read_deadline).await?;
    // A dataset stored without these (not by the transformer) is timed from now.
    let run = Run {
        event,
        table,
        started_at: started_at.unwrap_or_else(Utc::now),
        transformed_at: transformed_at.unwrap_or_else(Utc::now),
    };
    let parts = match &event.delta {
        Some(delta) => Some(read::delta_parts(store, delta, config.read_deadline).await?),
        None => None,
    };
    steps.lap("read");
    let tx = begin_locked(client, &event.env).await?;
    if let Some(settled) = settled_before(&tx, event, run.times(Utc::now())).await? {
        tx.commit().await.map_err(LoadError::db("commit"))?;
        return Ok(settled);
    }
    steps.lap("lock");

    let applied = match apply(&tx, store, config, &run, parts.as_ref(), &mut steps).await {
        Ok(applied) => applied,
        Err(LoadError::Keyed(err @ KeyedError::SuspiciousRemoval { .. })) => {
            // The keyed calls rolled back to their savepoint: the table is as it was.
            return refuse_suspicious(tx, run.event, err.to_string(), run.started_at).await;
        }
        Err(err) => return Err(err),
    };
    if applied.rows != event.rows {
        return Err(LoadError::RowCount {
            name: event.object.name.clone(),
            announced: event.rows,
            found: usize::try_from(applied.rows).unwrap_or(usize::MAX),
        });
    }
    let corrections = keyed::corrections(
        &tx,
        &event.env,
        &table,
        &event.run_id,
        MAX_CORRECTIONS_IN_EVENT,
    )
    .await
    .map_err(LoadError::db("read the run's revisions"))?;
    steps.lap("corrections");

    let finished_at = Utc::now();
    let loaded = Loaded {
        schema_version: SCHEMA_VERSION,
        env: event.env.clone(),
        dataset: event.dataset.clone(),
        run_id: event.run_id.clone(),
        trigger: event.trigger.clone(),
        inputs: event.inputs.clone(),
        counts: applied.counts,
        corrections,
        corrections_total: applied.changes,
        rows: applied.rows,
        first_date: event.first_date,
        last_date: event.last_date,
        // Only `us` joins two sources and drops dates.
        dropped: Dropped::default(),
        warnings: event.warnings.clone(),
        duration_ms: u64::try_from((finished_at - run.started_at).num_milliseconds()).unwrap_or(0),
        timings: stage_timings(&event.timings, steps.timings),
    };
    record(tx, &loaded, &run, finished_at).await?;
    Ok(Applied::Loaded(Box::new(loaded)))
}

/// Records the loaded run in `etl_runs` and commits it with its table.
async fn record(
    tx: Transaction<'_>,
    loaded: &Loaded,
    run: &Run<'_>,
    finished_at: DateTime<Utc>,
) -> Result<(), LoadError> {
    let recorded = runs::record_succeeded(&tx, loaded, run.event.order, run.times(finished_at))
        .await
        .map_err(LoadError::db("record the run"))?;
    if recorded != 1 {
        return Err(LoadError::CountMismatch(format!(
            "recording the run in etl_runs wrote {recorded} rows, not 1"
        )));
    }
    tx.commit().await.map_err(LoadError::db("commit"))
}

/// The run being loaded.
struct Run<'a> {
    event: &'a Transformed,
    table: Table,
    started_at: DateTime<Utc>,
    transformed_at: DateTime<Utc>,
}

impl Run<'_> {
    fn times(&self, finished_at: DateTime<Utc>) -> RunTimes {
        RunTimes {
            started_at: self.started_at,
            transformed_at: self.transformed_at,
            finished_at,
        }
    }
}

/// The savepoint a delta is applied under, so that one whose effect is not the announced one can
/// be undone before the reconcile.
const DELTA_SAVEPOINT: &str = "keyed_delta";

/// The run's delta when the table holds its base, a reconcile from the whole dataset otherwise.
async fn apply(
    tx: &Transaction<'_>,
    store: &ObjectStore,
    config: &Config,
    run: &Run<'_>,
    parts: Option<&DeltaParts>,
    steps: &mut Steps,
) -> Result<keyed::Applied, LoadError> {
    let event = run.event;
    if let (Some(delta), Some(parts)) = (&event.delta, parts) {
        let shipped = Delta {
            base_run_id: &delta.base_run_id,
            rows: &parts.rows,
            removed: &parts.removed,
            changes: &parts.changes,
        };
        // A delta that turns out not to do what the transformer counted is undone to here.
        tx.batch_execute(&format!("SAVEPOINT {DELTA_SAVEPOINT}"))
            .await
            .map_err(LoadError::db("set a savepoint before the delta"))?;
        let outcome = keyed::apply_delta(
            tx,
            &event.env,
            &run.table,
            &event.run_id,
            &shipped,
            config.max_removed_share,
        )
        .await;
        match outcome {
            Ok(DeltaOutcome::Applied(applied)) if applied.counts == delta.counts => {
                steps.record("delta", &applied.timings);
                return Ok(applied);
            }
            // Applied to its base, the delta did something else than the transformer counted:
            // the table was changed by hand in a way the fit checks cannot see (a row deleted
            // that the delta only updates). The whole dataset makes the table right.
            Ok(DeltaOutcome::Applied(applied)) => {
                tracing::warn!(env = %event.env, run_id = %event.run_id, did = ?applied.counts, announced = ?delta.counts, table = run.table.table_name(), "the delta did not do what its event announced; undoing it and reconciling");
                tx.batch_execute(&format!("ROLLBACK TO SAVEPOINT {DELTA_SAVEPOINT}"))
                    .await
                    .map_err(LoadError::db("undo the delta"))?;
                steps.lap("delta");
            }
            Ok(DeltaOutcome::BaseMismatch { expected, stored }) => {
                tracing::info!(env = %event.env, run_id = %event.run_id, base = %expected, ?stored, table = run.table.table_name(), "the table does not hold the delta's base; reconciling");
                steps.lap("delta");
            }
            // The table is not what `keyed_base` says (changed by hand), or the delta is not the
            // one computed against it: the whole dataset makes the table right either way.
            Err(err @ KeyedError::DeltaDisagrees { .. }) => {
                tracing::warn!(env = %event.env, run_id = %event.run_id, error = %err, "the delta does not fit the table; reconciling");
                steps.lap("delta");
            }
            Err(err) => return Err(err.into()),
        }
    }
    let spec = run.table.spec();
    let pause = config.read_pause.as_deref();
    let full = read::full_rows(store, spec, event, config.read_deadline, pause).await?;
    steps.lap("read_dataset");
    let applied = keyed::reconcile(
        tx,
        &event.env,
        &run.table,
        &event.run_id,
        &full.csv,
        Some(&full.keys),
        config.max_removed_share,
    )
    .await?;
    steps.record("reconcile", &applied.timings);
    Ok(applied)
}
