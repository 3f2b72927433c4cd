//! The `etl_runs` table: one row per run — succeeded, failed, or superseded by a newer run — and
//! the `Loaded` event of a run that already succeeded, rebuilt from its row so it can be
//! published again.
//!
//! Runs are ordered by their [`RunOrder`] (upstream commit time, then the stream sequence of the
//! extracted event that started them), stored in `upstream_time` and `sequence`; no host's clock
//! decides which run is newer. Each row carries its run's dataset (`us`, `states`, `counties`),
//! and runs are ordered only against runs of the same dataset.

use chrono::{DateTime, NaiveDate, Utc};
use shared::events::{
    Correction, Counts, Dropped, Failed, Field, InputRef, Loaded, MAX_CORRECTIONS_IN_EVENT,
    RunOrder, SCHEMA_VERSION, Timings, Transformed, Trigger,
};
use shared::ids::RunId;
use shared::{Dataset, Env};
use tokio_postgres::types::Json;
use tokio_postgres::{Error, GenericClient, Row};

use crate::db::schema;
use crate::keyed::{self, Table};

/// When a run started, was transformed and finished loading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunTimes {
    pub started_at: DateTime<Utc>,
    pub transformed_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
}

/// Records a succeeded run (replacing an earlier failure of the same run, if any).
pub async fn record_succeeded(
    client: &impl GenericClient,
    loaded: &Loaded,
    order: RunOrder,
    times: RunTimes,
) -> Result<u64, Error> {
    let sql = format!(
        "INSERT INTO {s}.etl_runs AS r (run_id, status, stage, kind, error, trigger, inputs,
             inserted, updated, unchanged, removed, revised, corrections_total, rows, first_date,
             last_date, dropped, warnings, timings, duration_ms, started_at, transformed_at,
             finished_at, upstream_time, sequence, dataset)
         VALUES ($1, 'succeeded', 'load', NULL, NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11,
             $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22)
         ON CONFLICT (run_id) DO UPDATE SET status = 'succeeded', stage = 'load', kind = NULL,
             error = NULL, trigger = EXCLUDED.trigger, inputs = EXCLUDED.inputs,
             inserted = EXCLUDED.inserted, updated = EXCLUDED.updated,
             unchanged = EXCLUDED.unchanged, removed = EXCLUDED.removed,
             revised = EXCLUDED.revised, corrections_total = EXCLUDED.corrections_total,
             rows = EXCLUDED.rows, first_date = EXCLUDED.first_date,
             last_date = EXCLUDED.last_date, dropped = EXCLUDED.dropped,
             warnings = EXCLUDED.warnings, timings = EXCLUDED.timings,
             duration_ms = EXCLUDED.duration_ms, started_at = EXCLUDED.started_at,
             transformed_at = EXCLUDED.transformed_at, finished_at = EXCLUDED.finished_at,
             upstream_time = EXCLUDED.upstream_time, sequence = EXCLUDED.sequence,
             dataset = EXCLUDED.dataset
         WHERE r.status = 'failed'",
        s = schema(&loaded.env)
    );
    let c = &loaded.counts;
    client
        .execute(
            &sql,
            &[
                &loaded.run_id.as_str(),
                &Json(&loaded.trigger),
                &Json(&loaded.inputs),
                &signed(c.inserted),
                &signed(c.updated),
                &signed(c.unchanged),
                &signed(c.removed),
                &signed(c.revised),
                &signed(loaded.corrections_total),
                &signed(loaded.rows),
                &loaded.first_date,
                &loaded.last_date,
                &Json(&loaded.dropped),
                &Json(&loaded.warnings),
                &Json(&loaded.timings),
                &signed(loaded.duration_ms),
                &times.started_at,
                &times.transformed_at,
                &times.finished_at,
                &order.upstream_time,
                &signed(order.sequence),
                &loaded.dataset.as_str(),
            ],
        )
        .await
}

/// Records that the run of `transformed` was not applied because `newer` (a later run by
/// [`RunOrder`]) had already succeeded; recording it again changes nothing. A failure of the same
/// run recorded earlier is replaced: the run got further since.
pub async fn record_superseded(
    client: &impl GenericClient,
    transformed: &Transformed,
    newer: &RunId,
    times: RunTimes,
) -> Result<u64, Error> {
    let sql = format!(
        "INSERT INTO {s}.etl_runs AS r (run_id, status, stage, kind, error, superseded_by,
             trigger, inputs, rows, first_date, last_date, dropped, warnings, started_at,
             transformed_at, finished_at, upstream_time, sequence, dataset)
         VALUES ($1, 'superseded', 'load', NULL, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12,
             $13, $14, $15, $16)
         ON CONFLICT (run_id) DO UPDATE SET status = 'superseded', stage = 'load', kind = NULL,
             error = EXCLUDED.error, superseded_by = EXCLUDED.superseded_by,
             trigger = EXCLUDED.trigger, inputs = EXCLUDED.inputs, rows = EXCLUDED.rows,
             first_date = EXCLUDED.first_date, last_date = EXCLUDED.last_date,
             dropped = EXCLUDED.dropped, warnings = EXCLUDED.warnings,
             transformed_at = EXCLUDED.transformed_at, finished_at = EXCLUDED.finished_at,
             upstream_time = EXCLUDED.upstream_time, sequence = EXCLUDED.sequence,
             dataset = EXCLUDED.dataset
         WHERE r.status = 'failed'",
        s = schema(&transformed.env)
    );
    let t = transformed;
    let reason = format!(
        "superseded: run {newer}, which comes after this one, was already loaded; this run \
         (upstream commits up to {}, extraction #{}) was not applied",
        t.order.upstream_time.format("%Y-%m-%d %H:%M:%S UTC"),
        t.order.sequence
    );
    client
        .execute(
            &sql,
            &[
                &t.run_id.as_str(),
                &reason,
                &newer.as_str(),
                &Json(&t.trigger),
                &Json(&t.inputs),
                &signed(t.rows),
                &t.first_date,
                &t.last_date,
                &Json(&t.dropped),
                &Json(&t.warnings),
                &times.started_at,
                &times.transformed_at,
                &times.finished_at,
                &t.order.upstream_time,
                &signed(t.order.sequence),
                &t.dataset.as_str(),
            ],
        )
        .await
}

/// When the env's last successful run finished, if it had one.
pub async fn last_succeeded(
    client: &impl GenericClient,
    env: &Env,
) -> Result<Vec<(String, DateTime<Utc>)>, Error> {
    let sql = format!(
        "SELECT dataset, max(finished_at) FROM {s}.etl_runs
         WHERE status = 'succeeded' AND finished_at IS NOT NULL GROUP BY dataset",
        s = schema(env)
    );
    client
        .query(&sql, &[])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
        .collect()
}

/// Records a failed run, keyed by [`Failed::id`]: recording the same failure twice changes
/// nothing, and a run that already succeeded (or was superseded) is never marked failed.
/// Returns whether the failure is new (a first record, not a repeat or an ignored one).
pub async fn record_failed(
    client: &impl GenericClient,
    failed: &Failed,
    started_at: DateTime<Utc>,
) -> Result<bool, Error> {
    let sql = format!(
        "INSERT INTO {s}.etl_runs AS r (run_id, status, stage, kind, error, trigger, inputs,
             started_at, finished_at, dataset)
         VALUES ($1, 'failed', $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (run_id) DO UPDATE SET stage = EXCLUDED.stage, kind = EXCLUDED.kind,
             error = EXCLUDED.error, trigger = EXCLUDED.trigger, inputs = EXCLUDED.inputs,
             finished_at = EXCLUDED.finished_at, dataset = EXCLUDED.dataset
         WHERE r.status = 'failed'
         RETURNING (xmax = 0) AS inserted",
        s = schema(&failed.env)
    );
    let row = client
        .query_opt(
            &sql,
            &[
                &failed.id().as_str(),
                &failed.stage.as_str(),
                &failed.kind.as_str(),
                &failed.reason,
                &failed.trigger.as_ref().map(Json),
                &Json(&failed.inputs),
                &started_at.min(failed.failed_at),
                &failed.failed_at,
                &failed.dataset.as_str(),
            ],
        )
        .await?;
    // No row: the run had succeeded (or was superseded), and stays so.
    row.map_or(Ok(false), |row| row.try_get(0))
}

/// The `Loaded` event of `run_id` if it already succeeded in `env`.
pub async fn find_succeeded(
    client: &impl GenericClient,
    env: &Env,
    run_id: &RunId,
) -> Result<Option<Loaded>, Error> {
    let run_id_sql = run_id.as_str();
    let s = schema(env);
    let sql = format!(
        "SELECT trigger, inputs, inserted, updated, unchanged, removed, revised, corrections_total,
             rows, first_date, last_date, dropped, warnings, timings, duration_ms, dataset
         FROM {s}.etl_runs WHERE run_id = $1 AND status = 'succeeded'"
    );
    let Some(row) = client.query_opt(&sql, &[&run_id_sql]).await? else {
        return Ok(None);
    };
    // Only the loader writes the column, and only valid names.
    let dataset = Dataset::new(row.get::<_, String>("dataset")).unwrap_or_default();
    let corrections = match Table::of(dataset.as_str()) {
        Some(table) => {
            keyed::corrections(client, env, &table, run_id, MAX_CORRECTIONS_IN_EVENT).await?
        }
        None => us_corrections(client, env, run_id).await?,
    };
    Ok(Some(loaded_from_row(
        env,
        dataset,
        run_id,
        &row,
        corrections,
    )))
}

/// The first [`MAX_CORRECTIONS_IN_EVENT`] lines of `us_daily_changes` for `run_id`, by date.
async fn us_corrections(
    client: &impl GenericClient,
    env: &Env,
    run_id: &RunId,
) -> Result<Vec<Correction>, Error> {
    let rows = client
        .query(
            &format!(
                "SELECT date, field, old_value, new_value FROM {}.us_daily_changes
                 WHERE run_id = $1 ORDER BY date, field LIMIT $2",
                schema(env)
            ),
            &[&run_id.as_str(), &(MAX_CORRECTIONS_IN_EVENT as i64)],
        )
        .await?;
    Ok(rows.iter().map(correction).collect())
}

/// The newest succeeded run of `dataset` that comes after `order`, if any: a run arriving after it
/// (a retried delivery overtaken by a newer run) must not overwrite newer data. Runs of other
/// datasets write other tables, and never count.
///
/// Rows compare as `(upstream_time, sequence)`; a row recorded before runs carried an order has
/// no sequence, and so is newer only when its upstream commits are strictly newer.
pub async fn newer_success(
    client: &impl GenericClient,
    env: &Env,
    dataset: &Dataset,
    order: RunOrder,
) -> Result<Option<RunId>, Error> {
    let sql = format!(
        "SELECT run_id FROM {}.etl_runs
         WHERE status = 'succeeded' AND dataset = $3 AND (upstream_time, sequence) > ($1, $2)
         ORDER BY upstream_time DESC, sequence DESC NULLS LAST LIMIT 1",
        schema(env)
    );
    let Some(row) = client
        .query_opt(
            &sql,
            &[
                &order.upstream_time,
                &signed(order.sequence),
                &dataset.as_str(),
            ],
        )
        .await?
    else {
        return Ok(None);
    };
    let run_id: String = row.get(0);
    // Only the loader writes run ids, and only valid ones; an edited row is still a newer run.
    Ok(Some(RunId::new(run_id).unwrap_or_else(|_| {
        RunId::new("unknown").expect("a valid run id")
    })))
}

fn loaded_from_row(
    env: &Env,
    dataset: Dataset,
    run_id: &RunId,
    row: &Row,
    corrections: Vec<Correction>,
) -> Loaded {
    let count = |name: &str| unsigned(row.get::<_, Option<i64>>(name));
    Loaded {
        schema_version: SCHEMA_VERSION,
        env: env.clone(),
        dataset,
        run_id: run_id.clone(),
        trigger: row.get::<_, Json<Trigger>>("trigger").0,
        inputs: row.get::<_, Json<Vec<InputRef>>>("inputs").0,
        counts: Counts {
            inserted: count("inserted"),
            updated: count("updated"),
            unchanged: count("unchanged"),
            removed: count("removed"),
            revised: count("revised"),
        },
        corrections,
        corrections_total: count("corrections_total"),
        rows: count("rows"),
        first_date: row.get::<_, NaiveDate>("first_date"),
        last_date: row.get::<_, NaiveDate>("last_date"),
        dropped: row.get::<_, Json<Dropped>>("dropped").0,
        warnings: row.get::<_, Json<Vec<String>>>("warnings").0,
        duration_ms: count("duration_ms"),
        timings: row.get::<_, Json<Timings>>("timings").0,
    }
}

fn correction(row: &Row) -> Correction {
    let field: String = row.get(1);
    Correction {
        key: None,
        date: row.get(0),
        // The column's CHECK constraint admits only these three names.
        field: Field::ALL
            .into_iter()
            .find(|f| f.as_str() == field)
            .unwrap_or(Field::Cases),
        old: row.get(2),
        new: row.get(3),
    }
}

fn signed(n: u64) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

fn unsigned(n: Option<i64>) -> u64 {
    n.and_then(|n| u64::try_from(n).ok()).unwrap_or(0)
}
