//! `etl diff`: what a run with these two files would change in an env, without writing anything.

use std::path::Path;
use std::process::ExitCode;

use anyhow::Context;
use dataset::diff::Diff;
use dataset::{Curated, DataError};
use shared::Env;

use crate::{Connections, db, say};

/// What a run with a pair of payloads would do to an env's table.
#[derive(Debug)]
pub enum Preview {
    /// The transform would refuse the payloads.
    Refused(DataError),
    /// The transform would pass; `refused` is set when the loader would still refuse the run
    /// (DESIGN rule 7).
    Applies {
        curated: Box<Curated>,
        diff: Diff,
        refused: Option<DataError>,
    },
}

/// Computes the preview with read-only queries: nothing is written anywhere.
pub async fn preview(
    connections: &Connections,
    nyt: &[u8],
    jhu: &[u8],
    env: &Env,
) -> anyhow::Result<Preview> {
    let curated = match dataset::transform(nyt, jhu) {
        Ok(curated) => curated,
        Err(err) => return Ok(Preview::Refused(err)),
    };
    let client = connections.connect_db().await?;
    let stored = db::stored_rows(&client, env).await?;
    let diff = dataset::diff::diff(&stored, &curated.rows);
    let refused = dataset::diff::check_removal(
        stored.len(),
        diff.removed.len(),
        connections.max_removed_share,
    )
    .err();
    Ok(Preview::Applies {
        curated: Box::new(curated),
        diff,
        refused,
    })
}

pub async fn run(
    connections: &Connections,
    nyt: &Path,
    jhu: &Path,
    env: &Env,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let nyt_bytes = std::fs::read(nyt).with_context(|| format!("reading {}", nyt.display()))?;
    let jhu_bytes = std::fs::read(jhu).with_context(|| format!("reading {}", jhu.display()))?;
    let preview = preview(connections, &nyt_bytes, &jhu_bytes, env).await?;
    if json {
        crate::output::json(&to_json(env, &preview));
    }
    match preview {
        Preview::Refused(err) => {
            if !json {
                say!("a run with these files would fail at transform: {err}");
            }
            Ok(ExitCode::FAILURE)
        }
        Preview::Applies {
            curated,
            diff,
            refused,
        } => {
            if !json {
                print(env, &curated, &diff);
            }
            match refused {
                Some(err) => {
                    if !json {
                        say!("the loader would refuse this run: {err}");
                    }
                    Ok(ExitCode::FAILURE)
                }
                None => Ok(ExitCode::SUCCESS),
            }
        }
    }
}

/// `etl diff --json`: `would` is `refused_by_transform`, `refused_by_loader` or `apply`.
pub fn to_json(env: &Env, preview: &Preview) -> serde_json::Value {
    match preview {
        Preview::Refused(err) => serde_json::json!({
            "env": env.as_str(),
            "would": "refused_by_transform",
            "kind": err.kind().as_str(),
            "reason": err.to_string(),
        }),
        Preview::Applies {
            curated,
            diff,
            refused,
        } => {
            let counts = diff.counts();
            let corrections: Vec<serde_json::Value> = diff
                .corrections
                .iter()
                .map(|c| {
                    serde_json::json!({
                        "date": c.date, "field": c.field.as_str(), "old": c.old, "new": c.new,
                    })
                })
                .collect();
            serde_json::json!({
                "env": env.as_str(),
                "would": if refused.is_some() { "refused_by_loader" } else { "apply" },
                "reason": refused.as_ref().map(ToString::to_string),
                "counts": counts,
                "rows": curated.rows.len(),
                "first_date": curated.rows.first().map(|r| r.date),
                "last_date": curated.rows.last().map(|r| r.date),
                "dropped": curated.dropped,
                "corrections": corrections,
                "removed": diff.removed,
                "warnings": curated.warnings,
            })
        }
    }
}

fn print(env: &Env, curated: &Curated, diff: &Diff) {
    let counts = diff.counts();
    say!(
        "a run with these files in env {env} would: insert {}, update {}, leave {} unchanged, remove {}; {} dates revised upstream",
        counts.inserted,
        counts.updated,
        counts.unchanged,
        counts.removed,
        counts.revised
    );
    if let (Some(first), Some(last)) = (curated.rows.first(), curated.rows.last()) {
        say!(
            "dataset: {} days from {} to {}",
            curated.rows.len(),
            first.date,
            last.date
        );
    }
    let dropped = &curated.dropped;
    if dropped.only_nyt + dropped.only_jhu > 0 {
        say!(
            "dropped by the join: {} days only in NYT, {} only in JHU",
            dropped.only_nyt,
            dropped.only_jhu
        );
    }
    for correction in &diff.corrections {
        say!(
            "  {} {}: {} -> {}",
            correction.date,
            correction.field.as_str(),
            show(correction.old),
            show(correction.new)
        );
    }
    for date in &diff.removed {
        say!("  {date}: would be removed");
    }
    for warning in &curated.warnings {
        say!("warning: {warning}");
    }
}

fn show(value: Option<i64>) -> String {
    value.map_or_else(|| "not reported".to_owned(), |v| v.to_string())
}
