//! Applying one run to an env's tables, in one transaction on one connection.
//!
//! Under a transaction-scoped advisory lock per env (so runs of one env never overlap, across
//! processes too): a run that already succeeded changes nothing and its `Loaded` event is rebuilt
//! from `etl_runs`; a run that comes before one that already succeeded (by [`RunOrder`], never by
//! a clock) is recorded as superseded; otherwise the stored rows are diffed with the run's rows,
//! DESIGN rule 7 is checked, the run's SQL is applied (`write`) and the run recorded in
//! `etl_runs`. The SQL row counts must agree with the diff's, or nothing is committed.
//!
//! [`RunOrder`]: shared::events::RunOrder
//!
//! No wait is unbounded: the session's `lock_timeout` (`DB_LOCK_TIMEOUT`) applies to the advisory
//! lock and to every table lock alike, and its error (SQLSTATE 55P03) is transient, so a load
//! stuck behind another session gives up, rolls back and is retried later.

use std::time::Instant;

use chrono::{DateTime, Utc};
use dataset::DailyRow;
use shared::Env;
use shared::events::{
    Failed, FailureKind, Loaded, MAX_CORRECTIONS_IN_EVENT, SCHEMA_VERSION, Stage, Timings,
    Transformed,
};
use shared::ids::RunId;
use tokio_postgres::{Client, IsolationLevel, Transaction};

use crate::db;
use crate::error::LoadError;
use crate::runs::{self, RunTimes};
use crate::write::{check_counts, stage, write};

/// A run ready to be applied: its transformed event and the rows of its curated dataset.
#[derive(Debug, Clone)]
pub struct RunToLoad {
    pub transformed: Transformed,
    pub rows: Vec<DailyRow>,
    /// When the run started: the fetch of the extraction that triggered it.
    pub started_at: DateTime<Utc>,
    /// When the transformer took the run up, by its clock: shown in `etl_runs`, never compared
    /// (runs are ordered by `transformed.order`).
    pub transformed_at: DateTime<Utc>,
    /// Load steps timed before the transaction (reading the dataset), in ms.
    pub timings: Timings,
}

/// What applying a run did.
#[derive(Debug, Clone, PartialEq)]
pub enum Applied {
    /// The run was committed; publish this event.
    Loaded(Box<Loaded>),
    /// The run had already succeeded: nothing changed; this is its event, rebuilt from `etl_runs`.
    AlreadyLoaded(Box<Loaded>),
    /// DESIGN rule 7: the run would remove too many stored dates. It is recorded as failed and
    /// `us_daily` is untouched; publish this event. It is the run's answer, not a failure to
    /// handle the message. `first`: recorded now, not by an earlier delivery.
    Suspicious { failed: Box<Failed>, first: bool },
    /// A run that comes after this one already succeeded (this one was overtaken while being
    /// retried): `us_daily` is untouched, so older data never overwrites newer, and the run is
    /// recorded as `superseded` by `by`. Nothing is announced.
    Superseded { by: RunId },
}

/// Applies `run` to its env (whose schema must be migrated) in one transaction.
pub async fn apply_run(
    client: &mut Client,
    run: &RunToLoad,
    max_removed_share: f64,
) -> Result<Applied, LoadError> {
    let t = &run.transformed;
    let mut steps = Steps::new(run.timings.clone());
    let tx = begin_locked(client, &t.env).await?;
    let times = RunTimes {
        started_at: run.started_at,
        transformed_at: run.transformed_at,
        finished_at: Utc::now(),
    };
    if let Some(settled) = settled_before(&tx, t, times).await? {
        tx.commit().await.map_err(LoadError::db("commit"))?;
        return Ok(settled);
    }
    steps.lap("lock");

    let stored = db::stored_rows(&tx, &t.env)
        .await
        .map_err(LoadError::db("read us_daily"))?;
    let diff = dataset::diff::diff(&stored, &run.rows);
    let counts = diff.counts();
    steps.lap("diff");

    if let Err(err) =
        dataset::diff::check_removal(stored.len(), diff.removed.len(), max_removed_share)
    {
        return refuse_suspicious(tx, t, err.to_string(), run.started_at).await;
    }

    let staged = stage(&tx, &run.rows).await?;
    steps.lap("copy");
    let sql = write(&tx, t, &diff.corrections).await?;
    steps.lap("apply");
    check_counts(&sql, staged, &diff.corrections, &counts)?;

    let finished_at = Utc::now();
    let loaded = Loaded {
        schema_version: SCHEMA_VERSION,
        env: t.env.clone(),
        dataset: t.dataset.clone(),
        run_id: t.run_id.clone(),
        trigger: t.trigger.clone(),
        inputs: t.inputs.clone(),
        counts,
        corrections: diff
            .corrections
            .iter()
            .take(MAX_CORRECTIONS_IN_EVENT)
            .cloned()
            .collect(),
        corrections_total: diff.corrections.len() as u64,
        rows: run.rows.len() as u64,
        first_date: t.first_date,
        last_date: t.last_date,
        dropped: t.dropped.clone(),
        warnings: t.warnings.clone(),
        duration_ms: u64::try_from((finished_at - run.started_at).num_milliseconds()).unwrap_or(0),
        timings: stage_timings(&t.timings, steps.timings),
    };
    let recorded = runs::record_succeeded(
        &tx,
        &loaded,
        t.order,
        RunTimes {
            started_at: run.started_at,
            transformed_at: run.transformed_at,
            finished_at,
        },
    )
    .await
    .map_err(LoadError::db("record the run"))?;
    if recorded != 1 {
        return Err(LoadError::CountMismatch(format!(
            "recording the run in etl_runs wrote {recorded} rows, not 1"
        )));
    }
    tx.commit().await.map_err(LoadError::db("commit"))?;
    Ok(Applied::Loaded(Box::new(loaded)))
}

/// The transformer's steps then the loader's, each named after its stage (the keyed loads' too).
pub(crate) fn stage_timings(transform: &Timings, load: Timings) -> Timings {
    let transform = transform
        .iter()
        .map(|(step, ms)| (format!("transform.{step}"), *ms));
    let load = load
        .into_iter()
        .map(|(step, ms)| (format!("load.{step}"), ms));
    transform.chain(load).collect()
}

/// Milliseconds per step, in the order the steps ran (the keyed loads use it too).
pub(crate) struct Steps {
    pub(crate) timings: Timings,
    last: Instant,
}

impl Steps {
    pub(crate) fn new(timings: Timings) -> Self {
        Self {
            timings,
            last: Instant::now(),
        }
    }

    pub(crate) fn lap(&mut self, name: &str) {
        let ms = u64::try_from(self.last.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.timings.push((name.to_owned(), ms));
        self.last = Instant::now();
    }

    /// Adds the steps a call timed itself (a keyed load's), as `<prefix>.<step>`, in place of a
    /// lap of its own.
    pub(crate) fn record(&mut self, prefix: &str, steps: &Timings) {
        self.timings.extend(
            steps
                .iter()
                .map(|(step, ms)| (format!("{prefix}.{step}"), *ms)),
        );
        self.last = Instant::now();
    }
}

/// Begins the transaction a run is loaded in, holding the env's load lock until it ends: no two
/// loads of an env overlap, across processes too. It is READ COMMITTED whatever the server's
/// default: each statement must see what committed before it, the lock's holder included (a
/// first keyed load looks again at its table once it has locked it).
pub(crate) async fn begin_locked<'c>(
    client: &'c mut Client,
    env: &Env,
) -> Result<Transaction<'c>, LoadError> {
    let tx = client
        .build_transaction()
        .isolation_level(IsolationLevel::ReadCommitted)
        .start()
        .await
        .map_err(LoadError::db("begin a transaction"))?;
    tx.execute(
        "SELECT pg_advisory_xact_lock($1)",
        &[&db::lock_key("load", env)],
    )
    .await
    .map_err(LoadError::db("take the env's load lock"))?;
    Ok(tx)
}

/// What became of `event`'s run before it is applied, if it is settled already: loaded (its event
/// rebuilt from `etl_runs`), or superseded by a later run of its dataset, which is recorded with
/// `times`. The caller commits.
pub(crate) async fn settled_before(
    tx: &Transaction<'_>,
    event: &Transformed,
    times: RunTimes,
) -> Result<Option<Applied>, LoadError> {
    if let Some(loaded) = runs::find_succeeded(tx, &event.env, &event.run_id)
        .await
        .map_err(LoadError::db("read etl_runs"))?
    {
        return Ok(Some(Applied::AlreadyLoaded(Box::new(loaded))));
    }
    let Some(by) = runs::newer_success(tx, &event.env, &event.dataset, event.order)
        .await
        .map_err(LoadError::db("read etl_runs"))?
    else {
        return Ok(None);
    };
    runs::record_superseded(tx, event, &by, times)
        .await
        .map_err(LoadError::db("record the superseded run"))?;
    Ok(Some(Applied::Superseded { by }))
}

/// DESIGN rule 7: `event`'s run is recorded as failed with `reason`, the table left as it was, and
/// the transaction committed; the caller announces the failed event.
pub(crate) async fn refuse_suspicious(
    tx: Transaction<'_>,
    event: &Transformed,
    reason: String,
    started_at: DateTime<Utc>,
) -> Result<Applied, LoadError> {
    let failed = Failed {
        schema_version: SCHEMA_VERSION,
        env: event.env.clone(),
        dataset: event.dataset.clone(),
        run_id: Some(event.run_id.clone()),
        stage: Stage::Load,
        kind: FailureKind::SuspiciousRemoval,
        reason,
        inputs: event.inputs.clone(),
        trigger: Some(event.trigger.clone()),
        source: None,
        cause: None,
        failed_at: Utc::now(),
    };
    let first = runs::record_failed(&tx, &failed, started_at)
        .await
        .map_err(LoadError::db("record the failed run"))?;
    tx.commit().await.map_err(LoadError::db("commit"))?;
    Ok(Applied::Suspicious {
        failed: Box::new(failed),
        first,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timings_are_named_after_their_stage_in_order() {
        let transform = vec![("read".to_owned(), 1), ("transform".to_owned(), 2)];
        let load = vec![("lock".to_owned(), 3)];
        let names: Vec<String> = stage_timings(&transform, load)
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        assert_eq!(
            names,
            ["transform.read", "transform.transform", "load.lock"]
        );
    }
}
