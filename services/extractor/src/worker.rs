//! The extractor's one loop: polls on its interval, answers triggers, runs the daily run. It owns
//! the [`Poller`], so polls and triggers never race on a source's state.
//!
//! All three happen only while this replica holds the env's polling [`Lease`]; the others keep
//! checking it, and the one that takes it over reloads the sources' state from KV first.

use std::time::Duration;

use chrono::{NaiveDate, NaiveTime, Utc};
use shared::events::{TriggerReply, TriggerRequest};
use shared::ids::TriggerId;
use shared::lease::Standing;
use shared::{Env, Shutdown};
use tokio::sync::mpsc;
use tokio::sync::watch;
use tokio::time::{Instant, sleep, sleep_until};

use crate::cycle::{CycleKind, CycleReport};
use crate::download::short;
use crate::poller::Poller;
use crate::schedule::next_daily;
use crate::trigger::TriggerCommand;

pub struct Worker {
    poller: Poller,
    /// This replica's standing in the polling lease, kept by [`shared::lease::keep`].
    lease: watch::Receiver<Standing>,
    /// Whether this replica held the lease when last asked (and has reloaded the state since).
    holding: bool,
    /// The standing last logged.
    last_standing: Standing,
    env: Env,
    poll_interval: Duration,
    daily_run_at: NaiveTime,
    last_daily: Option<NaiveDate>,
    /// Why polls are slower than the interval, while they are.
    slowed: Option<String>,
}

impl Worker {
    pub fn new(
        poller: Poller,
        lease: watch::Receiver<Standing>,
        env: Env,
        poll_interval: Duration,
        daily_run_at: NaiveTime,
    ) -> Worker {
        Worker {
            poller,
            lease,
            holding: false,
            last_standing: Standing::Standby { holder: None },
            env,
            poll_interval,
            daily_run_at,
            last_daily: None,
            slowed: None,
        }
    }

    pub async fn run(mut self, mut commands: mpsc::Receiver<TriggerCommand>, shutdown: Shutdown) {
        // The first poll is at once: the initial load on empty state, else catching up.
        let mut next_poll = Instant::now();
        // Kept across passes and advanced only once the daily run has run: recomputed on every
        // pass, a poll still running at DAILY_RUN_AT would push it to the next day.
        let mut daily_at = next_daily(Utc::now(), self.daily_run_at);
        loop {
            let until_daily = (daily_at - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                _ = shutdown.wait() => break,
                Some(command) = commands.recv() => {
                    let reply = match self.holds_lease().await {
                        true => Some(self.trigger(command.request).await),
                        false => None,
                    };
                    let _ = command.reply.send(reply);
                }
                Ok(()) = self.lease.changed() => {
                    // A replica that takes the lease over polls at once.
                    let was_holding = self.holding;
                    if self.holds_lease().await && !was_holding {
                        next_poll = Instant::now();
                    }
                }
                _ = sleep_until(next_poll) => {
                    if self.holds_lease().await {
                        self.poller.cycle(&CycleKind::Poll).await;
                        next_poll = self.schedule_next_poll();
                    } else {
                        next_poll = Instant::now() + self.poll_interval;
                    }
                }
                _ = sleep(until_daily) => {
                    let date = daily_at.date_naive();
                    if self.last_daily != Some(date) && self.holds_lease().await {
                        self.last_daily = Some(date);
                        tracing::info!(%date, "daily run");
                        let report = self.poller.cycle(&CycleKind::Daily { date }).await;
                        tracing::info!(run_id = ?report.run_id, published = ?report.published, problems = ?report.problems, "daily run done");
                    }
                    daily_at = next_daily(Utc::now(), self.daily_run_at);
                }
            }
        }
        tracing::info!("extractor stopped");
    }

    /// Whether this replica holds the polling lease, and so may poll now. Taking it over from
    /// another replica first reloads what that one stored; a replica that cannot reload does not
    /// poll until it can.
    async fn holds_lease(&mut self) -> bool {
        let standing = self.lease.borrow_and_update().clone();
        let holding = standing == Standing::Holder;
        if holding && !self.holding {
            if let Err(err) = self.poller.reload().await {
                tracing::warn!(error = %err, "holds the polling lease but cannot read the sources' state yet; not polling");
                return false;
            }
            tracing::info!("this extractor now polls (it holds the lease)");
        } else if !holding && self.holding {
            tracing::warn!(
                ?standing,
                "this extractor stopped polling: another holds the lease"
            );
        } else if !holding && standing != self.last_standing {
            tracing::info!(
                ?standing,
                "standing by: another extractor of this env polls"
            );
        }
        self.last_standing = standing;
        self.holding = holding;
        holding
    }

    async fn trigger(&mut self, request: TriggerRequest) -> TriggerReply {
        let id = request.id.clone().unwrap_or_else(|| {
            TriggerId::new(format!(
                "manual:{}",
                Utc::now().format("%Y%m%dT%H%M%S%.3fZ")
            ))
            .expect("`manual:` and a compact timestamp make a valid trigger id")
        });
        let report = self
            .poller
            .cycle(&CycleKind::Manual {
                force: request.force,
                id,
            })
            .await;
        let message = self.describe(&report, request.force);
        tracing::info!(run_id = ?report.run_id, %message, "trigger answered");
        TriggerReply {
            env: self.env.clone(),
            extracted: report.published,
            run_id: report.run_id,
            message,
        }
    }

    /// One sentence for the person who triggered: what was checked and what happens next.
    fn describe(&self, report: &CycleReport, force: bool) -> String {
        let at: Vec<String> = self
            .poller
            .sources
            .iter()
            .filter_map(|s| {
                let latest = self.poller.state.get(&s.source)?.latest.as_ref()?;
                Some(format!(
                    "{} at {}",
                    s.source,
                    short(&latest.upstream.commit_sha)
                ))
            })
            .collect();
        let at = match at.len() {
            0 => "no payload yet".to_owned(),
            2 => at.join(" and "),
            _ => at.join(", "),
        };
        let mut message = match (&report.run_id, report.extracted.is_empty()) {
            (Some(run), false) => format!("new upstream data extracted ({at}); run {run} follows"),
            (Some(run), true) if force => {
                format!("re-running with the latest payloads ({at}) as run {run}")
            }
            (None, false) => format!(
                "new upstream data extracted ({at}); a run follows once every source of its dataset has a payload"
            ),
            _ if force => format!("nothing could be re-run ({at})"),
            _ => format!("upstream unchanged ({at}); nothing to run, use --force to re-run anyway"),
        };
        if !report.problems.is_empty() {
            message.push_str("; problems: ");
            message.push_str(&report.problems.join("; "));
        }
        message
    }

    fn schedule_next_poll(&mut self) -> Instant {
        let (delay, why) = self.poller.next_poll_in();
        match why {
            Some(why) => {
                tracing::info!(next_poll_in_s = delay.as_secs_f64(), interval_s = self.poll_interval.as_secs_f64(), %why, "polling later than the interval");
                self.slowed = Some(why);
            }
            None => {
                if self.slowed.take().is_some() {
                    tracing::info!(
                        interval_s = self.poll_interval.as_secs_f64(),
                        "polling at the regular interval again"
                    );
                }
            }
        }
        Instant::now() + delay
    }
}
