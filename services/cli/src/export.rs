//! `etl export`: the curated dataset of an env, as the transformer wrote it to `etl-curated`, as
//! CSV or Parquet. Which run's: `--run`, or the run the stored table was made from: for `us` the
//! env's latest successful `us` run (the last in run order in `etl_runs`), for `states` and
//! `counties` the run `keyed_base` says the table holds.
//!
//! The object is read as the loader reads it (`shared::store::get_object`: within a deadline,
//! checked against the size and digest the store recorded); Parquet is written out byte for byte,
//! CSV is decoded from it (`dataset::from_parquet`). The operator's NATS identity may read every
//! bucket (scripts/nats-auth.sh).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde::Serialize;
use shared::daily::DailyRow;
use shared::ids::RunId;
use shared::nats::CURATED_BUCKET;
use shared::{Env, store};

use crate::Connections;

/// The largest curated object read (a real `us` one is tens of kB, the counties' at their final
/// size tens of MB).
pub const MAX_BYTES: u64 = 512 * 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Dataset {
    /// The US national daily series (`us_daily`).
    Us,
    /// The series per state (`states_daily`).
    States,
    /// The series per county (`counties_daily`).
    Counties,
}

impl Dataset {
    /// The keyed dataset's spec; `None` for `us`.
    fn keyed(self) -> Option<&'static dataset::keyed::Spec> {
        match self {
            Dataset::Us => None,
            Dataset::States => Some(&dataset::keyed::STATES),
            Dataset::Counties => Some(&dataset::keyed::COUNTIES),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Csv,
    Parquet,
}

#[derive(Debug, Clone)]
pub struct Request {
    pub dataset: Dataset,
    pub format: Format,
    /// A file, or stdout when `None` or `-`.
    pub output: Option<PathBuf>,
    /// A run's dataset instead of the latest loaded one.
    pub run: Option<String>,
}

/// What `--json` prints when the data went to a file.
#[derive(Debug, Clone, Serialize)]
pub struct Exported {
    pub env: String,
    pub run_id: String,
    pub object: String,
    pub format: &'static str,
    pub rows: usize,
    pub bytes: usize,
    pub output: String,
}

pub async fn run(
    connections: &Connections,
    env: &Env,
    request: &Request,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let to_stdout = request
        .output
        .as_ref()
        .is_none_or(|path| path.as_os_str() == "-");
    if json && to_stdout {
        return Err(crate::exit::usage(anyhow::anyhow!(
            "--json describes the export on stdout, so the data needs --output FILE"
        )));
    }
    let run_id = match &request.run {
        Some(run) => Some(
            RunId::new(run.as_str())
                .map_err(|err| crate::exit::usage(anyhow::anyhow!("--run: {err}")))?,
        ),
        None => None,
    };
    let js = async_nats::jetstream::new(connections.connect_nats("etl-export").await?);
    let curated = js
        .get_object_store(CURATED_BUCKET)
        .await
        .with_context(|| format!("opening the object store {CURATED_BUCKET}"))?;
    let keyed = request.dataset.keyed();
    let run_id = match (run_id, keyed) {
        (Some(run_id), _) => run_id,
        (None, None) => latest_us_run(connections, env).await?,
        (None, Some(spec)) => stored_base(connections, env, spec).await?,
    };
    let name = store::curated_object_name(env, &run_id);
    let object = store::object_info(&curated, CURATED_BUCKET, &name, store::OBJECT_DEADLINE)
        .await?
        .with_context(|| {
            format!("run {run_id} has no curated dataset in {CURATED_BUCKET} (no object {name})")
        })?;
    let parquet = store::get_object(&curated, &object, MAX_BYTES, store::OBJECT_DEADLINE).await?;
    // Decoding checks the object whatever the format asked; polars' reader blocks.
    let decoded = parquet.clone();
    let (rows, csv) = tokio::task::spawn_blocking(move || decode(&decoded, keyed))
        .await
        .context("decoding the curated dataset")?
        .with_context(|| format!("the curated dataset {name}"))?;
    let data = match request.format {
        Format::Parquet => parquet,
        Format::Csv => csv,
    };
    let output = match &request.output {
        Some(path) if !to_stdout => {
            std::fs::write(path, &data).with_context(|| format!("writing {}", path.display()))?;
            path.display().to_string()
        }
        _ => {
            crate::output::bytes(&data);
            "-".to_owned()
        }
    };
    tracing::info!(%run_id, object = %name, rows, "exported");
    if json {
        crate::output::json(&Exported {
            env: env.to_string(),
            run_id: run_id.to_string(),
            object: name,
            format: match request.format {
                Format::Csv => "csv",
                Format::Parquet => "parquet",
            },
            rows,
            bytes: data.len(),
            output,
        });
    }
    Ok(ExitCode::SUCCESS)
}

/// The curated Parquet's row count and CSV: `us_daily`'s columns for `us`, the keyed contract's
/// (`date,<key>,fips,cases,deaths,new_cases,new_deaths`) for a keyed dataset.
fn decode(
    parquet: &[u8],
    keyed: Option<&'static dataset::keyed::Spec>,
) -> Result<(usize, Vec<u8>), dataset::DataError> {
    match keyed {
        None => {
            let rows = dataset::from_parquet(parquet)?;
            Ok((rows.len(), to_csv(&rows).into_bytes()))
        }
        Some(spec) => {
            let curated = dataset::keyed::Curated::from_parquet(spec, parquet)?;
            Ok((curated.rows(), curated.rows_csv()?))
        }
    }
}

/// The run a keyed table holds (`keyed_base`).
async fn stored_base(
    connections: &Connections,
    env: &Env,
    spec: &dataset::keyed::Spec,
) -> anyhow::Result<RunId> {
    let client = connections.connect_db().await?;
    let sql = format!("SELECT run_id FROM \"{env}\".keyed_base WHERE dataset = $1");
    let row = client
        .query_opt(&sql, &[&spec.name])
        .await
        .with_context(|| {
            format!("env {env} has no keyed tables (never migrated?); name a run with --run")
        })?;
    let run: String = row
        .with_context(|| {
            format!(
                "env {env} has no loaded run of dataset {}; name one with --run",
                spec.name
            )
        })?
        .get(0);
    Ok(RunId::new(&run)?)
}

/// The env's latest successful `us` run, in run order: the one `us_daily` was made from.
async fn latest_us_run(connections: &Connections, env: &Env) -> anyhow::Result<RunId> {
    let client = connections.connect_db().await?;
    let none = || anyhow::anyhow!("env {env} has no loaded run of dataset us; name one with --run");
    if !crate::db::schema_exists(&client, env).await? {
        return Err(none());
    }
    // A schema not migrated to 0005 has no `dataset` column: its runs are all `us`.
    let sql = format!(
        "SELECT run_id FROM \"{env}\".etl_runs r
         WHERE status = 'succeeded' AND coalesce(to_jsonb(r)->>'dataset', 'us') = 'us'
         ORDER BY upstream_time DESC NULLS LAST, sequence DESC NULLS LAST, finished_at DESC
         LIMIT 1"
    );
    let row = client.query_opt(&sql, &[]).await?.ok_or_else(none)?;
    let run: String = row.get(0);
    Ok(RunId::new(&run)?)
}

/// The CSV columns: those of `us_daily`.
pub const CSV_HEADER: &str = "date,cases,deaths,recovered,new_cases,new_deaths,new_recovered";

/// The rows as CSV with [`CSV_HEADER`]; a value not reported is an empty field.
pub fn to_csv(rows: &[DailyRow]) -> String {
    let opt = |v: Option<i64>| v.map(|v| v.to_string()).unwrap_or_default();
    let mut csv = String::with_capacity(64 * (rows.len() + 1));
    csv.push_str(CSV_HEADER);
    csv.push('\n');
    for row in rows {
        csv.push_str(&format!(
            "{},{},{},{},{},{},{}\n",
            row.date,
            row.cases,
            row.deaths,
            opt(row.recovered),
            opt(row.new_cases),
            opt(row.new_deaths),
            opt(row.new_recovered)
        ));
    }
    csv
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;

    #[test]
    fn a_value_not_reported_is_an_empty_field() {
        let rows = [DailyRow {
            date: NaiveDate::from_ymd_opt(2020, 1, 22).unwrap(),
            cases: 1,
            deaths: 0,
            recovered: None,
            new_cases: Some(1),
            new_deaths: None,
            new_recovered: None,
        }];
        assert_eq!(
            to_csv(&rows),
            format!("{CSV_HEADER}\n2020-01-22,1,0,,1,,\n")
        );
    }
}
