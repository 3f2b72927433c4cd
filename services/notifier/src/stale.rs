//! Staleness alerts: a source whose newest upstream commit is older than `STALE_AFTER`.
//!
//! An *episode* is one stale commit: the alert goes out once for it, as a notice of its own
//! ([`crate::notice`]: the [`StaleAlert`] on `notify.<env>` at once, then the email when
//! recipients are configured, then its [`shared::events::EmailReport`]), recorded under the
//! alert's id ([`StaleAlert::id`]: env, source and commit). A newer commit ends the episode, and
//! if that one goes stale too it is a new episode with an alert of its own. Sources are checked
//! on every loaded run and periodically; an email that waits on the mail server is tried again
//! by the next check.
//!
//! Of several notifiers serving the same envs, one at a time checks (both on loaded runs and
//! periodically): the holder of a lease in KV ([`shared::lease`], key
//! `stale-check.<scope>.lease`), since two checking at once could both alert. Another takes the
//! lease over within `LEASE_PERIOD` once its holder is gone. Replicas share a lease when they
//! serve the same `ETL_ENVS`; notifiers whose scopes only overlap (`prod` and `*`) do not, and
//! would both check the envs they share.
//!
//! The alert is its own event type rather than a [`shared::events::Notification`], whose
//! `status` is a run's outcome: readers of `notify.<env>` tell the two apart by `alert`
//! (`"stale"`) here versus `status` there.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use shared::events::{EmailFate, SCHEMA_VERSION, StaleAlert, UpstreamRef};
use shared::lease::Standing;
use shared::nats::{self, Stores};
use shared::store::{self, StoreError};
use shared::{Env, EnvScope, Shutdown, Source};
use tokio::sync::{Mutex, watch};

use crate::compose::Composed;
use crate::config::Routes;
use crate::doc::{Doc, link, text};
use crate::format;
use crate::notice::{Email, Notice, NoticeError, Notices};

#[derive(Debug, thiserror::Error)]
pub enum StaleError {
    #[error("could not read the latest extracted payload: {0}")]
    Latest(#[from] StoreError),
    #[error("staleness alert: {0}")]
    Notice(#[from] NoticeError),
}

pub struct StaleWatch {
    pub stores: Stores,
    pub notices: Arc<Notices>,
    pub routes: Routes,
    pub dashboard_url: String,
    pub stale_after: Duration,
    /// This notifier's standing in the staleness lease, kept by [`shared::lease::keep`].
    pub standing: watch::Receiver<Standing>,
    /// The periodic check and the per-run check must not both work on the same episode.
    pub lock: Mutex<()>,
}

/// The KV key of the staleness check's lease of the notifiers serving `scope`.
pub fn lease_key(scope: &EnvScope) -> String {
    format!("stale-check.{}.lease", scope.label())
}

impl StaleWatch {
    /// Checks both sources of `env`, when this notifier holds the staleness lease; returns how
    /// many alerts were published now.
    pub async fn check_env(&self, env: &Env) -> Result<usize, StaleError> {
        let _guard = self.lock.lock().await;
        if let Standing::Standby { holder } = &*self.standing.borrow() {
            tracing::debug!(%env, ?holder, "another notifier checks staleness");
            return Ok(0);
        }
        let mut raised = 0;
        let mut first_error = None;
        for source in &Source::US {
            match self.check_source(env, source, Utc::now()).await {
                Ok(published) => raised += usize::from(published),
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
        source: &Source,
        now: DateTime<Utc>,
    ) -> Result<bool, StaleError> {
        let Some(latest) = store::latest_extracted(&self.stores.state, env, source).await? else {
            return Ok(false);
        };
        let upstream = latest.upstream;
        let age = (now - upstream.commit_time).to_std().unwrap_or_default();
        if age <= self.stale_after {
            return Ok(false);
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
            source: source.clone(),
            upstream,
            age_secs: age.as_secs(),
            stale_after_secs: self.stale_after.as_secs(),
            subject: composed.subject.clone(),
            text: composed.text.clone(),
            email: EmailFate::Pending,
            email_note: None,
        };
        let id = alert.id();
        let notice = Notice {
            env,
            id: &id,
            composed: &composed,
            email: Email::to(self.routes.recipients(env)),
        };
        let delivered = self
            .notices
            .deliver(&notice, |email, email_note| StaleAlert {
                email,
                email_note,
                ..alert.clone()
            })
            .await?;
        if delivered.published_now {
            tracing::info!(%env, %source, commit = %alert.upstream.commit_sha, age_days = age.as_secs() / 86_400, email = delivered.email.as_str(), "source is stale, alert published");
        }
        Ok(delivered.published_now)
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
        let mut standing = self.standing.clone();
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
                // A notifier that takes the lease over checks at once.
                Ok(()) = standing.changed() => {}
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
                Source::US
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
    source: &Source,
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
            commit_sha: "1a2b3c4d5e".parse().unwrap(),
            commit_time: Utc.with_ymd_and_hms(2023, 3, 23, 14, 5, 0).unwrap(),
            covered_commits: vec![],
        };
        let week = Duration::from_secs(7 * 86_400);
        let c = compose(
            &Env::prod(),
            &Source::NYT,
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
}
