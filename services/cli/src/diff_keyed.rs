//! `etl diff --dataset states|counties --file FILE…`: what a run of a keyed dataset with these
//! files would change in an env, without writing anything. The files are read and validated as
//! the transformer reads them; the table's rows are read back (one `COPY … TO STDOUT`, read-only)
//! as the dataset's own CSV and compared with the same delta the transformer computes.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use dataset::DataError;
use dataset::keyed::{self, Curated, Delta, Spec};
use futures::TryStreamExt;
use shared::Env;

use crate::{Connections, say};

/// What a run with these files would do to the env's table.
#[derive(Debug)]
pub enum Preview {
    /// The transform would refuse the files.
    Refused(DataError),
    /// The transform would pass; `refused` is set when the loader would still refuse the run
    /// (DESIGN rule 7 on the share of stored rows removed).
    Applies {
        next: Box<Curated>,
        delta: Box<Delta>,
        refused: Option<DataError>,
    },
}

/// Computes the preview with read-only queries.
pub async fn preview(
    connections: &Connections,
    spec: &'static Spec,
    files: &[(String, Vec<u8>)],
    env: &Env,
) -> anyhow::Result<Preview> {
    let named: Vec<(String, Vec<u8>)> = files.to_vec();
    let next = tokio::task::spawn_blocking(move || {
        let files: Vec<(&str, &[u8])> = named
            .iter()
            .map(|(name, bytes)| (name.as_str(), bytes.as_slice()))
            .collect();
        keyed::read(spec, &files)
    })
    .await?;
    let next = match next {
        Ok(next) => next,
        Err(err) => return Ok(Preview::Refused(err)),
    };
    let stored_csv = stored_csv(connections, spec, env).await?;
    let max_share = connections.max_removed_share;
    tokio::task::spawn_blocking(move || {
        // An empty table reads as a header alone, which the reader refuses: no base then.
        let stored = match stored_csv {
            Some(csv) => Some(
                keyed::read(spec, &[(spec.table, csv.as_slice())])
                    .context("the stored rows do not read back as the dataset")?,
            ),
            None => None,
        };
        let delta = keyed::delta(stored.as_ref(), &next)?;
        let refused = keyed::check_removal(
            spec,
            stored.as_ref().map_or(0, Curated::rows),
            delta.counts.removed as usize,
            max_share,
        )
        .err();
        Ok(Preview::Applies {
            next: Box::new(next),
            delta: Box::new(delta),
            refused,
        })
    })
    .await?
}

/// The table's rows as CSV with the upstream file's columns, or `None` when it holds none (or the
/// env has never been loaded).
async fn stored_csv(
    connections: &Connections,
    spec: &Spec,
    env: &Env,
) -> anyhow::Result<Option<Vec<u8>>> {
    let client = connections.connect_db().await?;
    let exists: bool = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM information_schema.tables \
             WHERE table_schema = $1 AND table_name = $2)",
            &[&env.as_str(), &spec.table],
        )
        .await?
        .get(0);
    if !exists {
        return Ok(None);
    }
    let columns = [&["date"], spec.keys, &["fips", "cases", "deaths"]].concat();
    let sql = format!(
        "COPY (SELECT {} FROM \"{env}\".{}) TO STDOUT WITH (FORMAT csv, HEADER)",
        columns.join(", "),
        spec.table
    );
    let chunks: Vec<bytes::Bytes> = client.copy_out(&sql).await?.try_collect().await?;
    let csv = chunks.concat();
    let has_rows = csv.iter().filter(|&&b| b == b'\n').count() > 1;
    Ok(has_rows.then_some(csv))
}

pub async fn run(
    connections: &Connections,
    spec: &'static Spec,
    paths: &[PathBuf],
    env: &Env,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let mut files = Vec::new();
    for path in paths {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        let name = path.file_name().map_or_else(
            || path.display().to_string(),
            |n| n.to_string_lossy().into_owned(),
        );
        files.push((name, bytes));
    }
    let preview = preview(connections, spec, &files, env).await?;
    if json {
        crate::output::json(&to_json(env, spec, &preview)?);
    }
    let refused = match &preview {
        Preview::Refused(err) => {
            if !json {
                say!("a run with these files would fail at transform: {err}");
            }
            true
        }
        Preview::Applies {
            next,
            delta,
            refused,
        } => {
            if !json {
                print(env, spec, next, delta)?;
                if let Some(err) = refused {
                    say!("the loader would refuse this run: {err}");
                }
            }
            refused.is_some()
        }
    };
    Ok(if refused {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// `etl diff --dataset … --json`: `would` is `refused_by_transform`, `refused_by_loader` or
/// `apply`; `changes` is the `<table>_changes` lines the run would write, as CSV.
pub fn to_json(env: &Env, spec: &Spec, preview: &Preview) -> anyhow::Result<serde_json::Value> {
    Ok(match preview {
        Preview::Refused(err) => serde_json::json!({
            "env": env.as_str(),
            "dataset": spec.name,
            "would": "refused_by_transform",
            "kind": err.kind().as_str(),
            "reason": err.to_string(),
        }),
        Preview::Applies {
            next,
            delta,
            refused,
        } => serde_json::json!({
            "env": env.as_str(),
            "dataset": spec.name,
            "would": if refused.is_some() { "refused_by_loader" } else { "apply" },
            "reason": refused.as_ref().map(ToString::to_string),
            "counts": delta.counts,
            "rows": next.rows(),
            "first_date": next.first_date(),
            "last_date": next.last_date(),
            "changes": String::from_utf8_lossy(&delta.changes_csv()?),
            "warnings": next.warnings(),
        }),
    })
}

fn print(env: &Env, spec: &Spec, next: &Curated, delta: &Delta) -> anyhow::Result<()> {
    let c = delta.counts;
    say!(
        "a {} run with these files in env {env} would: insert {}, update {}, leave {} unchanged, remove {} rows; {} rows revised upstream",
        spec.name,
        c.inserted,
        c.updated,
        c.unchanged,
        c.removed,
        c.revised
    );
    if let (Some(first), Some(last)) = (next.first_date(), next.last_date()) {
        say!(
            "dataset: {} rows of {} keys from {first} to {last}",
            next.rows(),
            next.keys()
        );
    }
    let changes = delta.changes_csv()?;
    for line in String::from_utf8_lossy(&changes).lines().skip(1) {
        say!("  revised: {line}");
    }
    for warning in next.warnings() {
        say!("warning: {warning}");
    }
    Ok(())
}
