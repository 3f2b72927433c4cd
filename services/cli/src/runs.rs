//! `etl runs`: the recent runs of an env, newest first: `succeeded`, `failed` (with the stage's
//! failure kind as its machine word, and the reason) or `superseded` (a later run was already
//! loaded; the reason names it).

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use serde::Serialize;
use shared::Env;

use crate::{Connections, db, say};

/// One line of the listing (and one run of `etl runs --json`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RunLine {
    pub run_id: String,
    /// `us`, `states`, `counties`.
    pub dataset: String,
    pub status: String,
    pub trigger: String,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub revised: i64,
    pub finished_at: Option<DateTime<Utc>>,
    /// The failure kind (`invalid_data`, `unavailable`…), empty unless the run failed.
    pub kind: String,
    /// Why it failed or was superseded.
    pub error: String,
}

/// `etl runs --json`.
#[derive(Debug, Clone, Serialize)]
pub struct RunList {
    pub env: String,
    pub runs: Vec<RunLine>,
}

pub async fn run(
    connections: &Connections,
    env: &Env,
    limit: i64,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let client = connections.connect_db().await?;
    let runs = if db::schema_exists(&client, env).await? {
        list(&client, env, limit).await?
    } else {
        Vec::new()
    };
    if json {
        crate::output::json(&RunList {
            env: env.to_string(),
            runs,
        });
    } else if runs.is_empty() {
        say!("env {env} has no runs yet");
    } else {
        say!("{}", header());
        for line in &runs {
            say!("{}", line.render());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The latest `limit` runs of `env`, newest first.
pub async fn list(
    client: &tokio_postgres::Client,
    env: &Env,
    limit: i64,
) -> anyhow::Result<Vec<RunLine>> {
    let sql = format!(
        "SELECT run_id, status, coalesce(trigger->>'kind', ''), \
                coalesce(inserted, 0)::bigint, coalesce(updated, 0)::bigint, coalesce(unchanged, 0)::bigint, \
                coalesce(removed, 0)::bigint, coalesce(revised, 0)::bigint, \
                finished_at, coalesce(kind, ''), coalesce(error, ''), \
                coalesce(to_jsonb(r)->>'dataset', 'us') \
         FROM \"{env}\".etl_runs r ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST LIMIT $1"
    );
    let rows = client.query(&sql, &[&limit.clamp(1, 1000)]).await?;
    rows.iter()
        .map(|row| {
            Ok(RunLine {
                run_id: row.try_get(0)?,
                status: row.try_get(1)?,
                trigger: row.try_get(2)?,
                inserted: row.try_get(3)?,
                updated: row.try_get(4)?,
                unchanged: row.try_get(5)?,
                removed: row.try_get(6)?,
                revised: row.try_get(7)?,
                finished_at: row.try_get(8)?,
                kind: row.try_get(9)?,
                error: row.try_get(10)?,
                dataset: row.try_get(11)?,
            })
        })
        .collect()
}

pub fn header() -> String {
    format!(
        "{:<24} {:<9} {:<10} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  {:<18}  reason",
        "run",
        "dataset",
        "status",
        "trigger",
        "inserted",
        "updated",
        "unchanged",
        "removed",
        "revised",
        "finished (UTC)",
        "kind"
    )
}

impl RunLine {
    /// One line, in the columns of [`header`]; a line break in the reason becomes a space, so
    /// each run stays one line.
    pub fn render(&self) -> String {
        let kind = if self.kind.is_empty() {
            "-"
        } else {
            &self.kind
        };
        format!(
            "{:<24} {:<9} {:<10} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  {:<18}  {}",
            self.run_id,
            self.dataset,
            self.status,
            self.trigger,
            self.inserted,
            self.updated,
            self.unchanged,
            self.removed,
            self.revised,
            self.finished_at
                .map(|at| at.format("%Y-%m-%d %H:%M:%S").to_string())
                .unwrap_or_default(),
            kind,
            one_line(&self.error),
        )
        .trim_end()
        .to_owned()
    }
}

/// `text` with every control character (line breaks, tabs) turned into a space.
pub fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_superseded_run_keeps_the_columns_aligned() {
        let succeeded = RunLine {
            run_id: "a".repeat(24),
            status: "succeeded".into(),
            trigger: "commit".into(),
            finished_at: Some("2024-01-01T06:00:00Z".parse().unwrap()),
            ..RunLine::default()
        };
        let superseded = RunLine {
            status: "superseded".into(),
            error: "superseded: run b, which comes after this one, was already loaded".into(),
            ..succeeded.clone()
        };
        let column = |line: &str| line.find("2024-01-01").unwrap();
        assert_eq!(column(&succeeded.render()), column(&superseded.render()));
        assert_eq!(header().find("finished"), Some(column(&succeeded.render())));
        assert!(superseded.render().contains(" superseded "));
    }

    #[test]
    fn a_failure_shows_its_kind_as_a_word_and_its_reason_on_one_line() {
        let failed = RunLine {
            run_id: "r1".into(),
            status: "failed".into(),
            kind: "suspicious_removal".into(),
            error: "the run would remove 40 of 100 dates\n(over 5 %)".into(),
            ..RunLine::default()
        };
        let line = failed.render();
        assert!(
            line.contains("  suspicious_removal  the run would remove"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        let succeeded = RunLine {
            status: "succeeded".into(),
            ..RunLine::default()
        };
        assert!(succeeded.render().ends_with('-'), "no kind reads as -");
    }
}
