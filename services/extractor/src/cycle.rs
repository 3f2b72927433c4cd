//! One round over every source — a poll, a trigger, or the daily run — and what it announces.
//!
//! Sources are checked first and announced after: when both have new commits, both payloads are
//! the latest in KV before either event goes out, so the transformer builds one run from both.

use chrono::{NaiveDate, Utc};
use shared::events::{Extracted, Failed, SCHEMA_VERSION, Stage, Trigger, TriggerKind};
use shared::ids::{RunId, TriggerId};
use shared::nats::publish;
use shared::store::{LatestWrite, put_latest};
use shared::{Dataset, Source, run_id};
use tokio::time::Instant;
use tracing::Instrument;

use crate::config::SourceSettings;
use crate::cursor;
use crate::error::RecordError;
use crate::failure::{Wait, judge};
use crate::github::GithubError;
use crate::poller::{Check, CheckError, Poller};
use crate::trouble::{self, Cause, Reported, Trouble};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CycleKind {
    /// The regular poll.
    Poll,
    /// `etl trigger`; `force` re-runs even when nothing changed, under `id`.
    Manual { force: bool, id: TriggerId },
    /// The daily run: always forced.
    Daily { date: NaiveDate },
}

impl CycleKind {
    pub fn forced_trigger(&self) -> Option<Trigger> {
        match self {
            CycleKind::Manual { force: true, id } => {
                Some(Trigger::forced(TriggerKind::Manual, id.clone()))
            }
            CycleKind::Daily { date } => {
                let id = TriggerId::new(format!("daily:{date}"))
                    .expect("`daily:` and an ISO date make a valid trigger id");
                Some(Trigger::forced(TriggerKind::Daily, id))
            }
            _ => None,
        }
    }

    /// The trigger a payload found by this cycle carries.
    pub fn trigger(&self, initial: bool) -> Trigger {
        if let Some(forced) = self.forced_trigger() {
            return forced;
        }
        match self {
            _ if initial => Trigger::new(TriggerKind::Initial),
            CycleKind::Manual { .. } => Trigger::new(TriggerKind::Manual),
            _ => Trigger::new(TriggerKind::Commit),
        }
    }
}

#[derive(Debug, Default)]
pub struct CycleReport {
    /// Sources with a new payload.
    pub extracted: Vec<Source>,
    /// Sources whose extracted event went out (new, or re-published when forced).
    pub published: Vec<Source>,
    /// The run the published events make, when both sources have a payload.
    pub run_id: Option<RunId>,
    /// One sentence per source that could not be checked or accepted.
    pub problems: Vec<String>,
}

impl Poller {
    pub async fn cycle(&mut self, kind: &CycleKind) -> CycleReport {
        let mut report = CycleReport::default();
        let mut fresh = Vec::new();
        let mut cursors = Vec::new();
        let mut transient = false;
        let now = Instant::now();
        for s in self.sources.clone() {
            let waiting = self.state(&s.source).retry_at.is_some_and(|at| at > now);
            if *kind == CycleKind::Poll && waiting {
                continue;
            }
            let span = tracing::debug_span!("check", source = %s.source);
            let started = std::time::Instant::now();
            let checked = self.check(&s).instrument(span).await;
            if let Some(metrics) = self.github.metrics() {
                let outcome = match &checked {
                    Ok(Check::New(_)) => "ok",
                    Ok(Check::Unchanged(_) | Check::SameContent(_)) => "unchanged",
                    Err(_) => "failed",
                };
                metrics
                    .record()
                    .stage("extract", self.env.as_str(), outcome, started.elapsed());
            }
            match checked {
                Ok(Check::Unchanged(refreshed)) => {
                    self.recovered(&s.source).await;
                    cursors.extend(refreshed.map(|c| (s.source.clone(), c)));
                }
                Ok(Check::SameContent(c)) => {
                    self.recovered(&s.source).await;
                    cursors.push((s.source.clone(), c));
                }
                Ok(Check::New(payload)) => fresh.push((s, payload)),
                Err(err) => {
                    transient |= self.is_transient(&err);
                    report
                        .problems
                        .push(self.handle_failure(&s, kind, err).await);
                }
            }
        }

        let mut events = Vec::new();
        for (s, payload) in &fresh {
            let event = Extracted {
                schema_version: SCHEMA_VERSION,
                env: self.env.clone(),
                dataset: s.dataset.clone(),
                source: s.source.clone(),
                dataset_sources: self.dataset_sources(&s.dataset),
                upstream: payload.upstream.clone(),
                object: payload.object.clone(),
                trigger: kind.trigger(payload.initial),
                fetched_at: payload.fetched_at,
            };
            events.push((event, payload.span.clone()));
        }
        let forced = kind.forced_trigger();
        if let Some(trigger) = &forced {
            for s in &self.sources {
                if fresh.iter().any(|(f, _)| f.source == s.source) {
                    continue;
                }
                match &self.state(&s.source).latest {
                    Some(latest) => {
                        // A re-run is a trace of its own.
                        let span = tracing::info_span!(
                            parent: None,
                            "rerun",
                            otel.name = %format!("rerun {}", s.source),
                            source = %s.source,
                            trigger = trigger.kind.as_str(),
                        );
                        // The dataset as configured now: a file added to or taken from it since the
                        // payload was extracted changes the run.
                        events.push((
                            Extracted {
                                trigger: trigger.clone(),
                                dataset: s.dataset.clone(),
                                dataset_sources: self.dataset_sources(&s.dataset),
                                ..latest.clone()
                            },
                            span,
                        ));
                    }
                    None => report.problems.push(format!(
                        "{} has no payload yet, so there is nothing to re-run",
                        s.source
                    )),
                }
            }
        }

        match self.announce(&events).await {
            Ok(announced) => {
                for (event, _) in events {
                    if announced.contains(&event.source) {
                        let source = event.source.clone();
                        report.published.push(source.clone());
                        self.state_mut(&source).latest = Some(event);
                    }
                }
                for (s, payload) in fresh {
                    report.extracted.push(s.source.clone());
                    self.recovered(&s.source).await;
                    cursors.push((s.source, payload.cursor));
                }
            }
            Err(err) => {
                transient = true;
                tracing::warn!(error = %err, "could not announce the new payloads; the next poll tries again");
                report
                    .problems
                    .push(format!("the new payloads could not be announced: {err}"));
            }
        }
        for (source, c) in cursors {
            match cursor::save(&self.stores.state, &self.env, &source, &c).await {
                Ok(()) => self.state_mut(&source).cursor = Some(c),
                Err(err) => {
                    tracing::warn!(%source, error = %err, "could not save the cursor; the next poll sees the commit again")
                }
            }
        }
        self.api_failures = if transient { self.api_failures + 1 } else { 0 };
        if !report.published.is_empty() {
            report.run_id =
                self.run_id(forced.unwrap_or_else(|| Trigger::new(TriggerKind::Commit)));
        }
        report
    }

    /// The run id the transformer derives from the latest payloads of `us`'s two sources, or else
    /// of the first dataset polled (the run `etl trigger --wait` follows).
    pub fn run_id(&self, trigger: Trigger) -> Option<RunId> {
        let dataset = &self.sources.first()?.dataset;
        let latest = |source: &Source| self.state.get(source)?.latest.as_ref();
        if dataset.is_us() {
            let nyt = latest(&Source::NYT)?;
            let jhu = latest(&Source::JHU)?;
            return Some(run_id::of_inputs(&self.env, nyt, jhu, &trigger));
        }
        let inputs = self
            .dataset_sources(dataset)
            .iter()
            .map(latest)
            .collect::<Option<Vec<_>>>()?;
        Some(run_id::of_dataset(&self.env, dataset, &inputs, &trigger))
    }

    /// The sources of `dataset`, in the order its transform reads them.
    fn dataset_sources(&self, dataset: &Dataset) -> Vec<Source> {
        self.sources
            .iter()
            .filter(|s| s.dataset == *dataset)
            .map(|s| s.source.clone())
            .collect()
    }

    /// Every latest first, then the events, so a transformer woken by the first event already
    /// sees the other source's new payload. A source whose latest in KV is already of a newer
    /// commit (another extractor replica stored it) is left alone and not announced. Returns the
    /// sources announced.
    async fn announce(
        &self,
        events: &[(Extracted, tracing::Span)],
    ) -> Result<Vec<Source>, RecordError> {
        let mut announced = Vec::new();
        for (event, _) in events {
            match put_latest(&self.stores.state, event).await? {
                LatestWrite::Written => announced.push(event.source.clone()),
                LatestWrite::Newer { commit_sha } => tracing::warn!(
                    source = %event.source,
                    commit = %event.upstream.commit_sha,
                    newer = %commit_sha,
                    "a newer payload of this source is already stored; this one is not announced"
                ),
            }
        }
        for (event, span) in events.iter().filter(|(e, _)| announced.contains(&e.source)) {
            async {
                publish(&self.stores.js, event).await?;
                tracing::info!(
                    source = %event.source,
                    commit = %event.upstream.commit_sha,
                    sha256 = %event.object.sha256,
                    trigger = event.trigger.kind.as_str(),
                    "extracted"
                );
                Ok::<_, RecordError>(())
            }
            .instrument(span.clone())
            .await?;
        }
        Ok(announced)
    }

    /// Trouble that may pass by itself (server errors, timeouts, NATS): the next poll backs off.
    fn is_transient(&self, err: &CheckError) -> bool {
        matches!(
            err,
            CheckError::Github(
                GithubError::Status { .. }
                    | GithubError::Transport { .. }
                    | GithubError::Decode { .. }
            ) | CheckError::Store(_)
        )
    }

    /// The source answered: its trouble is over, so the next failure is a new one and its cause is
    /// reported again.
    async fn recovered(&mut self, source: &Source) {
        let state = self.state_mut(source);
        state.retry_at = None;
        let Some(trouble) = state.trouble.take() else {
            return;
        };
        tracing::info!(%source, since = %trouble.since, was = %trouble.kind, "the source works again");
        if let Err(err) = trouble::clear(&self.stores.state, &self.env, source).await {
            tracing::warn!(%source, error = %err, "could not clear the source's trouble in KV");
        }
    }

    /// Backs the source off, remembers its trouble (in KV too, for `etl status` and restarts) and,
    /// where a person must act, reports it once per cause; returns one sentence.
    async fn handle_failure(
        &mut self,
        s: &SourceSettings,
        kind: &CycleKind,
        err: CheckError,
    ) -> String {
        let source = &s.source;
        let trigger = kind.trigger(self.state(source).latest.is_none());
        let failures = self
            .state(source)
            .trouble
            .as_ref()
            .map_or(0, |t| t.failures);
        let verdict = judge(
            s,
            err,
            failures + 1,
            self.poll_interval,
            self.permission_backoff,
        );
        let (now, now_utc) = (Instant::now(), Utc::now());
        let (retry_at, until) = match verdict.wait {
            Wait::NextPoll => (None, None),
            Wait::Source(wait) => (Some(now + wait), Some(now_utc + wait)),
            Wait::RateLimit(at) => (None, Some(now_utc + at.saturating_duration_since(now))),
        };
        let state = self.state_mut(source);
        let previous = state.trouble.take();
        state.retry_at = retry_at;
        state.trouble = Some(Trouble {
            kind: verdict.kind.to_owned(),
            reason: verdict.reason.clone(),
            since: previous.as_ref().map_or(now_utc, |t| t.since),
            failures: failures + u32::from(verdict.counts),
            until,
            reported: previous.and_then(|t| t.reported),
        });
        if let Some(cause) = verdict.report {
            self.report_failed(source, cause, &verdict.reason, trigger)
                .await;
        }
        if let Some(trouble) = &self.state(source).trouble
            && let Err(err) = trouble::save(&self.stores.state, &self.env, source, trouble).await
        {
            tracing::warn!(%source, error = %err, "could not save the source's trouble in KV");
        }
        verdict.reason
    }

    /// Publishes `etl.<env>.failed.extract` for `cause`, unless it is the cause last reported for
    /// the source: a person hears of each cause once, and again only when it changes or after the
    /// source has worked in between.
    async fn report_failed(
        &mut self,
        source: &Source,
        cause: Cause,
        reason: &str,
        trigger: Trigger,
    ) {
        let state = self.state(source);
        let reported = state.trouble.as_ref().and_then(|t| t.reported.as_ref());
        if reported.is_some_and(|r| r.cause == cause) {
            tracing::debug!(%source, kind = cause.kind.as_str(), "already reported; not again until the cause changes or the source recovers");
            return;
        }
        let dataset = self
            .sources
            .iter()
            .find(|s| s.source == *source)
            .map(|s| s.dataset.clone())
            .unwrap_or_default();
        let failed = Failed {
            schema_version: SCHEMA_VERSION,
            env: self.env.clone(),
            dataset,
            run_id: None,
            stage: Stage::Extract,
            kind: cause.kind,
            reason: reason.to_owned(),
            inputs: Vec::new(),
            trigger: Some(trigger),
            source: Some(source.clone()),
            // A refused commit is one failure however often it is refused. A failure of the
            // source as a whole has no commit: its moment sets it apart, and it is reported once
            // until the source recovers, so the same trouble coming back later is a new event.
            cause: cause.commit.as_ref().map(ToString::to_string),
            failed_at: Utc::now(),
        };
        match publish(&self.stores.js, &failed).await {
            Ok(_) => {
                if let Some(trouble) = self.state_mut(source).trouble.as_mut() {
                    trouble.reported = Some(Reported {
                        cause,
                        at: failed.failed_at,
                    });
                }
            }
            Err(err) => {
                tracing::warn!(%source, error = %err, "could not publish the failed extract; the next failure tries again")
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn polls_mark_payloads_as_commits_or_the_initial_load() {
        assert_eq!(
            CycleKind::Poll.trigger(false),
            Trigger::new(TriggerKind::Commit)
        );
        assert_eq!(
            CycleKind::Poll.trigger(true),
            Trigger::new(TriggerKind::Initial)
        );
        let manual = CycleKind::Manual {
            force: false,
            id: TriggerId::new("t1").unwrap(),
        };
        assert_eq!(manual.trigger(false), Trigger::new(TriggerKind::Manual));
        assert_eq!(manual.forced_trigger(), None);
    }

    #[test]
    fn forced_and_daily_runs_carry_their_id() {
        let forced = CycleKind::Manual {
            force: true,
            id: TriggerId::new("t1").unwrap(),
        };
        assert_eq!(
            forced.trigger(true),
            Trigger::forced(TriggerKind::Manual, TriggerId::new("t1").unwrap())
        );
        let daily = CycleKind::Daily {
            date: NaiveDate::from_ymd_opt(2026, 3, 1).unwrap(),
        };
        assert_eq!(
            daily.trigger(false),
            Trigger::forced(
                TriggerKind::Daily,
                TriggerId::new("daily:2026-03-01").unwrap()
            )
        );
    }
}
