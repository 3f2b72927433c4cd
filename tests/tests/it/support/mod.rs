//! What only the end-to-end tests need beyond `test_support`: settings for a pipeline against the
//! fake GitHub, the services as separate processes, and reading back what a run wrote to PostgreSQL
//! and sent by email.

pub mod otlp;
pub mod processes;

use std::time::Duration;

use etl_tests::fake_github::{FakeGithub, NewCommit};
use shared::config::Vars;
use shared::{Env, Source};
use test_support::mail::{Mail, wait_for_mails};
use test_support::stack;

/// The variables of a pipeline serving `env` alone whose extractor polls `github` every 300 ms.
pub fn pipeline_vars(env: &Env, github: &FakeGithub) -> Vars {
    let mut vars = stack::vars(env);
    for (name, value) in github.env_vars() {
        vars.set(name, value);
    }
    vars.set("POLL_INTERVAL", "300ms");
    vars
}

/// One commit of each upstream file, at its default location: `nyt` as NYT's `us.csv`, `jhu` as
/// the JHU file.
pub fn upstream_commits(nyt: &str, jhu: &str) -> Vec<NewCommit> {
    [(Source::NYT, nyt), (Source::JHU, jhu)]
        .into_iter()
        .map(|(source, content)| {
            let at = source.default_location().unwrap();
            NewCommit::new(&at.repo, &at.path, content.to_owned())
        })
        .collect()
}

/// `(date, cases, deaths, recovered)` of an env's `us_daily`, by date.
pub async fn stored_values(env: &Env) -> Vec<(String, i64, i64, Option<i64>)> {
    let sql = format!(
        "SELECT date::text, cases, deaths, recovered FROM \"{env}\".us_daily ORDER BY date"
    );
    test_support::connect()
        .await
        .query(&sql, &[])
        .await
        .expect("us_daily is readable")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// `(date, field, old, new)` recorded in `us_daily_changes` for a run.
pub async fn changes_of_run(
    env: &Env,
    run_id: &shared::ids::RunId,
) -> Vec<(String, String, Option<i64>, Option<i64>)> {
    let sql = format!(
        "SELECT date::text, field, old_value, new_value FROM \"{env}\".us_daily_changes WHERE run_id = $1 ORDER BY date, field"
    );
    test_support::connect()
        .await
        .query(&sql, &[&run_id.as_str()])
        .await
        .expect("us_daily_changes is readable")
        .iter()
        .map(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .collect()
}

/// The emails the stack's SMTP server received for `env`, once there are at least `count`.
pub async fn emails_for(env: &Env, count: usize, timeout: Duration) -> Vec<Mail> {
    wait_for_mails(&stack::maildir(), env, count, timeout).await
}
