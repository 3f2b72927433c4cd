//! Staleness alerts: a source whose newest upstream commit is older than `STALE_AFTER`.
//!
//! An *episode* is one stale commit: the alert goes out once for it (email when recipients are
//! configured, and a [`StaleAlert`] on `notify.<env>`), recorded in KV under
//! [`stale_key`]; a newer commit ends the episode, and if that one goes stale too it is a new
//! episode with an alert of its own. Sources are checked on every loaded run and periodically.
//!
//! The alert is its own event type rather than a [`shared::events::Notification`], whose
//! `status` is a run's outcome: readers of `notify.<env>` tell the two apart by `alert`
//! (`"stale"`) here versus `status` there.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use shared::events::{SCHEMA_VERSION, UpstreamRef};
use shared::nats::{self, NatsError, Stores};
use shared::store::{self, StoreError};
use shared::{Env, EnvScope, Shutdown, Source, subjects};
use tokio::sync::Mutex;

use crate::compose::Composed;
use crate::config::Routes;
use crate::doc::{Doc, link, text};
use crate::format;
use crate::ledger::{EmailFate, Ledger, Record};
use crate::mailer::{Mailer, SendError};

/// KV key of the staleness record of a source.
pub fn stale_key(env: &Env, source: Source) -> String {
    format!("{env}.stale.{source}")
}

/// Published on `notify.<env>` when a source went stale.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StaleAlert {
    pub schema_version: u32,
    /// Always `"stale"`: what sets this apart from a run notification.
    pub alert: String,
    pub env: Env,
    pub source: Source,
    /// The newest commit seen upstream, the one that is too old.
    pub upstream: UpstreamRef,
    pub age_secs: u64,
    pub stale_after_secs: u64,
    pub subject: String,
    /// The email's plain text.
    pub text: String,
    pub emailed: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email_note: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error("could not read or record staleness state: {0}")]
    Store(#[from] StoreError),
    #[error("could not publish the staleness alert: {0}")]
    Publish(#[from] NatsError),
    #[error("could not email the staleness alert for {env} {of}: {reason}")]
    Mail {
        env: Env,
        of: Source,
        reason: String,
    },
}

pub struct StaleWatch {
    pub stores: Stores,
    pub ledger: std::sync::Arc<Ledger>,
    pub mailer: Mailer,
    pub routes: Routes,
    pub dashboard_url: String,
    pub stale_after: Duration,
    /// The periodic check and the per-run check must not both alert for the same episode.
    pub lock: Mutex<()>,
}

impl StaleWatch {
    /// Checks both sources of `env`; returns the alerts raised now.
    pub async fn check_env(&self, env: &Env) -> Result<Vec<StaleAlert>, StaleError> {
        let _guard = self.lock.lock().await;
        let mut raised = Vec::new();
        let mut first_error = None;
        for source in Source::ALL {
            match self.check_source(env, source, Utc::now()).await {
                Ok(Some(alert)) => raised.push(alert),
                Ok(None) => {}
                Err(err) => {
                    tracing::warn!(%env, %source, error = %err, "staleness alert not done yet");
                    first_error.get_or_insert(err);
                }
            }
        }
        match first_error {
            Some(err) => Err(err),
            None => Ok(raised),
        }
    }

    async fn check_source(
        &self,
        env: &Env,
        source: Source,
        now: DateTime<Utc>,
    ) -> Result<Option<StaleAlert>, StaleError> {
        let Some(latest) = store::latest_extracted(&self.stores.state, env, source).await? else {
            return Ok(None);
        };
        let upstream = latest.upstream;
        let age = (now - upstream.commit_time).to_std().unwrap_or_default();
        if age <= self.stale_after {
            return Ok(None);
        }
        let key = stale_key(env, source);
        let mut record = match self.ledger.get(&key).await? {
            Some(record) if record.commit_sha.as_deref() == Some(&upstream.commit_sha) => record,
            _ => {
                // A new episode: tell people.
                let composed = compose(
                    env,
                    source,
                    &upstream,
                    age,
                    self.stale_after,
                    &self.dashboard_url,
                );
                let mut record = self.email(env, source, &upstream, &composed).await?;
                record.commit_sha = Some(upstream.commit_sha.clone());
                self.ledger.put(&key, &record).await?;
                record
            }
        };
        if record.published {
            return Ok(None);
        }
        let composed = compose(
            env,
            source,
            &upstream,
            age,
            self.stale_after,
            &self.dashboard_url,
        );
        let alert = StaleAlert {
            schema_version: SCHEMA_VERSION,
            alert: "stale".to_owned(),
            env: env.clone(),
            source,
            upstream: upstream.clone(),
            age_secs: age.as_secs(),
            stale_after_secs: self.stale_after.as_secs(),
            subject: record.subject.clone(),
            text: composed.text,
            emailed: record.emailed(),
            email_note: record.note.clone(),
        };
        let msg_id = format!("notify:{env}:stale:{source}:{}", upstream.commit_sha);
        nats::publish_event(&self.stores.js, &subjects::notify(env), &msg_id, &alert).await?;
        tracing::info!(%env, %source, commit = %upstream.commit_sha, age_days = age.as_secs() / 86_400, emailed = alert.emailed, "source is stale, alert sent");
        record.published = true;
        self.ledger.put(&key, &record).await?;
        Ok(Some(alert))
    }

    async fn email(
        &self,
        env: &Env,
        source: Source,
        upstream: &UpstreamRef,
        composed: &Composed,
    ) -> Result<Record, StaleError> {
        let to = self.routes.recipients(env);
        if to.is_empty() {
            return Ok(Record::new(EmailFate::Skipped, &composed.subject, 0, None));
        }
        let message_id = format!("stale.{source}.{}.{env}", upstream.commit_sha);
        match self.mailer.send(to, composed, &message_id).await {
            Ok(()) => Ok(Record::new(
                EmailFate::Sent,
                &composed.subject,
                to.len(),
                None,
            )),
            Err(SendError::Transient(reason)) => Err(StaleError::Mail {
                env: env.clone(),
                of: source,
                reason,
            }),
            Err(SendError::Refused(reason)) => {
                tracing::error!(%env, %source, %reason, "mail server refused the staleness alert for good");
                let note = format!("the mail server refused the email: {reason}");
                Ok(Record::new(
                    EmailFate::Refused,
                    &composed.subject,
                    to.len(),
                    Some(note),
                ))
            }
        }
    }

    /// Checks every env of `scope` now and then every `interval` until `shutdown`; after a
    /// failure (mail server down, say) it checks again sooner.
    pub async fn run_periodic(
        &self,
        scope: &EnvScope,
        interval: Duration,
        retry_max: Duration,
        shutdown: &Shutdown,
    ) {
        let mut failures: u32 = 0;
        while !shutdown.is_triggered() {
            let failed = match self.envs(scope).await {
                Ok(envs) => {
                    let mut failed = false;
                    for env in envs {
                        failed |= self.check_env(&env).await.is_err();
                    }
                    failed
                }
                Err(err) => {
                    tracing::warn!(error = %err, "cannot list the envs to check for staleness");
                    true
                }
            };
            failures = if failed { failures + 1 } else { 0 };
            let wait = if failed {
                nats::backoff(failures, Duration::from_secs(1), retry_max.min(interval))
            } else {
                interval
            };
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = shutdown.wait() => {}
            }
        }
    }

    /// The envs to check: the scope's, or for `*` every env with an extracted source in KV.
    async fn envs(&self, scope: &EnvScope) -> Result<Vec<Env>, async_nats::Error> {
        if let EnvScope::Only(envs) = scope {
            return Ok(envs.clone());
        }
        use futures::TryStreamExt;
        let keys: Vec<String> = self.stores.state.keys().await?.try_collect().await?;
        let mut envs: Vec<Env> = keys
            .iter()
            .filter_map(|key| {
                let (env, rest) = key.split_once('.')?;
                Source::ALL
                    .iter()
                    .any(|s| rest == format!("{s}.latest"))
                    .then(|| Env::new(env).ok())?
            })
            .collect();
        envs.sort();
        envs.dedup();
        Ok(envs)
    }
}

/// The staleness email.
pub fn compose(
    env: &Env,
    source: Source,
    upstream: &UpstreamRef,
    age: Duration,
    stale_after: Duration,
    dashboard_url: &str,
) -> Composed {
    let age_text = format::duration_ms(age.as_millis() as u64);
    let subject =
        format!("[{env}] COVID-19 source {source} is stale: no new commit for {age_text}");
    let mut doc = Doc::new();
    doc.paragraph(&[text(format!(
        "The {source} source for {env} has had no new upstream commit for {age_text} (alert threshold: {}).",
        format::duration_ms(stale_after.as_millis() as u64)
    ))]);
    doc.facts(&[
        ("source", vec![text(source.as_str())]),
        ("repository", vec![text(upstream.repo.clone())]),
        ("file", vec![text(upstream.path.clone())]),
        (
            "latest commit",
            vec![link(
                format::short_sha(&upstream.commit_sha),
                format::commit_url(upstream),
            )],
        ),
        ("committed", vec![text(format::time(upstream.commit_time))]),
    ]);
    doc.paragraph(&[text(
        "The pipeline keeps serving the latest data it has. This alert is sent once for this commit; a newer commit that goes stale too will be reported again.",
    )]);
    doc.paragraph(&[text("Dashboard: "), link(dashboard_url, dashboard_url)]);
    let (text, html) = doc.finish(&subject);
    Composed {
        subject,
        text,
        html,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn the_staleness_email_names_source_commit_and_age() {
        let upstream = UpstreamRef {
            repo: "nytimes/covid-19-data".into(),
            path: "us.csv".into(),
            commit_sha: "1a2b3c4d5e".into(),
            commit_time: Utc.with_ymd_and_hms(2023, 3, 23, 14, 5, 0).unwrap(),
            covered_commits: vec![],
        };
        let week = Duration::from_secs(7 * 86_400);
        let c = compose(
            &Env::prod(),
            Source::Nyt,
            &upstream,
            Duration::from_secs(15 * 86_400),
            week,
            "http://d",
        );
        assert_eq!(
            c.subject,
            "[prod] COVID-19 source nyt is stale: no new commit for 15 days"
        );
        assert!(c.text.contains("  latest commit: 1a2b3c4 (https://github.com/nytimes/covid-19-data/commit/1a2b3c4d5e)\n"));
        assert!(c.text.contains("(alert threshold: 7 days)"));
    }

    #[test]
    fn keys_live_under_the_env() {
        assert_eq!(
            stale_key(&Env::new("test").unwrap(), Source::Jhu),
            "test.stale.jhu"
        );
    }
}
