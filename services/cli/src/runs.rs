//! `etl runs`: the recent runs of an env, newest first: `succeeded`, `failed` (with the stage's
//! failure kind as its machine word, and the reason) or `superseded` (a later run was already
//! loaded; the reason names it).

use std::process::ExitCode;

use shared::Env;

use crate::Connections;
use crate::db;

/// One line of the listing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RunLine {
    pub run_id: String,
    pub status: String,
    pub trigger: String,
    pub inserted: i64,
    pub updated: i64,
    pub unchanged: i64,
    pub removed: i64,
    pub revised: i64,
    /// `YYYY-MM-DD HH:MM:SS` in UTC, or empty.
    pub finished: String,
    /// The failure kind (`invalid_data`, `unavailable`…), empty unless the run failed.
    pub kind: String,
    /// Why it failed or was superseded.
    pub error: String,
}

pub async fn run(connections: &Connections, env: &Env, limit: i64) -> anyhow::Result<ExitCode> {
    let client = db::connect(&connections.database_url).await?;
    if !db::schema_exists(&client, env).await? {
        println!("env {env} has no runs yet");
        return Ok(ExitCode::SUCCESS);
    }
    let sql = format!(
        "SELECT run_id, status, coalesce(trigger->>'kind', ''), \
                coalesce(inserted, 0)::bigint, coalesce(updated, 0)::bigint, coalesce(unchanged, 0)::bigint, \
                coalesce(removed, 0)::bigint, coalesce(revised, 0)::bigint, \
                coalesce(to_char(finished_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS'), ''), \
                coalesce(kind, ''), coalesce(error, '') \
         FROM \"{env}\".etl_runs ORDER BY coalesce(finished_at, started_at) DESC NULLS LAST LIMIT $1"
    );
    let rows = client.query(&sql, &[&limit.clamp(1, 1000)]).await?;
    println!("{}", header());
    for row in rows {
        let line = RunLine {
            run_id: row.try_get(0)?,
            status: row.try_get(1)?,
            trigger: row.try_get(2)?,
            inserted: row.try_get(3)?,
            updated: row.try_get(4)?,
            unchanged: row.try_get(5)?,
            removed: row.try_get(6)?,
            revised: row.try_get(7)?,
            finished: row.try_get(8)?,
            kind: row.try_get(9)?,
            error: row.try_get(10)?,
        };
        println!("{}", line.render());
    }
    Ok(ExitCode::SUCCESS)
}

pub fn header() -> String {
    format!(
        "{:<24} {:<10} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  {:<18}  reason",
        "run",
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
            "{:<24} {:<10} {:<8} {:>8} {:>8} {:>9} {:>8} {:>8}  {:<19}  {:<18}  {}",
            self.run_id,
            self.status,
            self.trigger,
            self.inserted,
            self.updated,
            self.unchanged,
            self.removed,
            self.revised,
            self.finished,
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
            finished: "2024-01-01 06:00:00".into(),
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
