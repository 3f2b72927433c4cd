//! What people are told about a run: the email (subject, plain text, HTML) and the
//! [`Notification`] published on `notify.<env>`, both built from the run's event alone, so that a
//! redelivered event produces the very same message.

use shared::Env;
use shared::events::{
    Counts, EmailFate, Failed, InputRef, Loaded, Notification, RunStatus, SCHEMA_VERSION, Stage,
};
use shared::ids::RunId;
use shared::message::Event;
use shared::settle::RunContext;

use crate::doc::{Doc, Inline, link, text};
use crate::format;

/// Revised values listed in an email; the rest are counted ("and N more").
pub const MAX_CORRECTIONS_IN_EMAIL: usize = 20;
/// Corrections carried by a notification; the full list is in `us_daily_changes`.
pub const MAX_CORRECTIONS_IN_NOTIFICATION: usize = 100;
/// Longest failure reason quoted in a subject line.
const MAX_REASON_IN_SUBJECT: usize = 140;

/// An email's content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Composed {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The two events the notifier tells people about.
#[derive(Debug, Clone)]
pub enum RunEvent {
    Loaded(Box<Loaded>),
    Failed(Box<Failed>),
}

impl RunEvent {
    /// The run event in a delivered event; `None` for any other kind of event.
    pub fn of(event: Event) -> Option<Self> {
        match event {
            Event::Loaded(e) => Some(Self::Loaded(e)),
            Event::Failed(e) => Some(Self::Failed(e)),
            _ => None,
        }
    }

    pub fn env(&self) -> &Env {
        match self {
            Self::Loaded(e) => &e.env,
            Self::Failed(e) => &e.env,
        }
    }

    /// The identity notifications are de-duplicated by: the run, or the failure.
    pub fn id(&self) -> RunId {
        match self {
            Self::Loaded(e) => e.run_id.clone(),
            Self::Failed(e) => e.id(),
        }
    }

    /// A successful run that changed nothing stored.
    pub fn is_unchanged(&self) -> bool {
        match self {
            Self::Loaded(e) => gist(&e.counts).is_none(),
            Self::Failed(_) => false,
        }
    }

    /// A failure of the notifier itself: a message it gave up on, most often an email the mail
    /// server never took.
    pub fn is_notify_failure(&self) -> bool {
        matches!(self, Self::Failed(e) if e.stage == Stage::Notify)
    }

    /// What a failure report of the notifier says about this event's run. Never the run's id:
    /// the report is about the notice, not the run, and under the run's id it would take the
    /// place of the run's own notification and record (`etl_runs`, the notifier's ledger).
    pub fn failure_context(&self) -> RunContext {
        match self {
            Self::Loaded(e) => RunContext {
                run_id: None,
                inputs: e.inputs.clone(),
                trigger: Some(e.trigger.clone()),
                source: None,
            },
            Self::Failed(e) => RunContext {
                run_id: None,
                inputs: e.inputs.clone(),
                trigger: e.trigger.clone(),
                source: e.source,
            },
        }
    }

    pub fn compose(&self, dashboard_url: &str) -> Composed {
        match self {
            Self::Loaded(e) => compose_loaded(e, dashboard_url),
            Self::Failed(e) => compose_failed(e, dashboard_url),
        }
    }

    /// The notification for this run. `email` is `pending` while an email is on its way and
    /// `skipped` when none is due (`email_note` says why, when recipients are configured).
    pub fn notification(
        &self,
        composed: &Composed,
        email: EmailFate,
        email_note: Option<String>,
    ) -> Notification {
        let mut n = Notification {
            schema_version: SCHEMA_VERSION,
            env: self.env().clone(),
            run_id: self.id(),
            status: RunStatus::Succeeded,
            subject: composed.subject.clone(),
            text: composed.text.clone(),
            counts: Counts::default(),
            stage: None,
            kind: None,
            reason: None,
            inputs: Vec::new(),
            corrections: Vec::new(),
            dropped: Default::default(),
            warnings: Vec::new(),
            duration_ms: 0,
            email,
            email_note,
        };
        match self {
            Self::Loaded(e) => {
                n.counts = e.counts;
                n.inputs = e.inputs.clone();
                n.corrections = e
                    .corrections
                    .iter()
                    .take(MAX_CORRECTIONS_IN_NOTIFICATION)
                    .cloned()
                    .collect();
                n.dropped = e.dropped.clone();
                n.warnings = e.warnings.clone();
                n.duration_ms = e.duration_ms;
            }
            Self::Failed(e) => {
                n.status = RunStatus::Failed;
                n.stage = Some(e.stage);
                n.kind = Some(e.kind);
                n.reason = Some(e.reason.clone());
                n.inputs = e.inputs.clone();
            }
        }
        n
    }
}

/// The subject's summary of what changed, or `None` when nothing did.
fn gist(c: &Counts) -> Option<String> {
    let mut parts = Vec::new();
    if c.inserted > 0 {
        parts.push(format::plural(c.inserted, "new day", "new days"));
    }
    if c.revised > 0 {
        parts.push(format!("{} revised", format::count_u(c.revised)));
    }
    if c.removed > 0 {
        parts.push(format!(
            "{} removed",
            format::plural(c.removed, "day", "days")
        ));
    }
    if parts.is_empty() && c.updated > 0 {
        parts.push(format!(
            "{} updated",
            format::plural(c.updated, "day", "days")
        ));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn compose_loaded(e: &Loaded, dashboard_url: &str) -> Composed {
    let env = &e.env;
    let gist = gist(&e.counts);
    let subject = match &gist {
        Some(gist) => format!("[{env}] COVID-19 data updated: {gist}"),
        None => format!("[{env}] COVID-19 data unchanged"),
    };
    let mut doc = Doc::new();
    doc.paragraph(&[text(match gist {
        Some(_) => format!("The COVID-19 data for {env} was updated from upstream."),
        None => format!(
            "The COVID-19 data for {env} is unchanged: this run found nothing new upstream."
        ),
    })]);

    doc.heading("Changes");
    let c = &e.counts;
    doc.facts(&[
        ("new days", vec![text(format::count_u(c.inserted))]),
        ("revised", vec![text(format::count_u(c.revised))]),
        ("updated", vec![text(format::count_u(c.updated))]),
        ("unchanged", vec![text(format::count_u(c.unchanged))]),
        ("removed", vec![text(format::count_u(c.removed))]),
        (
            "days stored",
            vec![text(format!(
                "{} ({} to {})",
                format::count_u(e.rows),
                e.first_date,
                e.last_date
            ))],
        ),
    ]);

    if !e.corrections.is_empty() {
        doc.heading("Revised upstream values (old → new)");
        let mut items: Vec<Vec<Inline>> = e
            .corrections
            .iter()
            .take(MAX_CORRECTIONS_IN_EMAIL)
            .map(|c| {
                vec![text(format!(
                    "{} {}: {} → {}",
                    c.date,
                    c.field.as_str(),
                    format::value(c.old),
                    format::value(c.new)
                ))]
            })
            .collect();
        let shown = items.len() as u64;
        let total = e.corrections_total.max(e.corrections.len() as u64);
        if total > shown {
            items.push(vec![text(format!(
                "and {} more",
                format::count_u(total - shown)
            ))]);
        }
        doc.items(&items);
    }

    inputs_section(&mut doc, "Upstream commits used", &e.inputs);

    doc.heading("Days dropped by the join (found in only one source)");
    let dates = |n: u64, dates: &[chrono::NaiveDate]| {
        if n == 0 {
            return "none".to_owned();
        }
        let mut listed: Vec<String> = dates.iter().map(ToString::to_string).collect();
        if n > dates.len() as u64 {
            listed.push("…".to_owned());
        }
        format!("{} ({})", format::count_u(n), listed.join(", "))
    };
    doc.facts(&[
        (
            "only in NYT",
            vec![text(dates(e.dropped.only_nyt, &e.dropped.only_nyt_dates))],
        ),
        (
            "only in JHU",
            vec![text(dates(e.dropped.only_jhu, &e.dropped.only_jhu_dates))],
        ),
    ]);

    doc.heading("Data-quality warnings");
    if e.warnings.is_empty() {
        doc.paragraph(&[text("none")]);
    } else {
        let items: Vec<Vec<Inline>> = e.warnings.iter().map(|w| vec![text(w.clone())]).collect();
        doc.items(&items);
    }

    doc.paragraph(&[text(format!(
        "Run {} (trigger: {}) took {}.",
        e.run_id,
        e.trigger.kind.as_str(),
        format::duration_ms(e.duration_ms)
    ))]);
    doc.paragraph(&[text("Dashboard: "), link(dashboard_url, dashboard_url)]);
    let (text, html) = doc.finish(&subject);
    Composed {
        subject,
        text,
        html,
    }
}

fn compose_failed(e: &Failed, dashboard_url: &str) -> Composed {
    let env = &e.env;
    let stage = e.stage.as_str();
    // The notifier's own failures are about a notice, not a run: the run and its data are as
    // they were, and the message is kept as a dead letter.
    let own = e.stage == Stage::Notify;
    let reason = format::one_line(&e.reason, MAX_REASON_IN_SUBJECT);
    let subject = if own {
        format!("[{env}] COVID-19 ETL notification failed: {reason}")
    } else {
        format!("[{env}] COVID-19 ETL failed at {stage}: {reason}")
    };
    let mut doc = Doc::new();
    doc.paragraph(&[text(if own {
        format!("The notifier gave up on a notice for {env}.")
    } else {
        format!("The COVID-19 ETL run for {env} failed at the {stage} stage.")
    })]);
    let run = match &e.run_id {
        Some(run_id) => run_id.to_string(),
        None if e.stage == Stage::Extract => format!("none (extraction {})", e.id()),
        None => format!("none (failure {})", e.id()),
    };
    doc.facts(&[
        ("stage", vec![text(stage)]),
        ("reason", vec![text(e.reason.clone())]),
        ("kind", vec![text(e.kind.as_str())]),
        ("run", vec![text(run)]),
        ("failed at", vec![text(format::time(e.failed_at))]),
    ]);
    doc.paragraph(&[text(if own {
        format!(
            "The run itself is not affected. The message is kept in the dead-letter stream (etl.{env}.dead.notify) and can be published again once the cause is fixed."
        )
    } else {
        "The stored data was left unchanged: the database still holds the last successful run."
            .to_owned()
    })]);
    inputs_section(&mut doc, "Upstream inputs", &e.inputs);
    doc.paragraph(&[text("Dashboard: "), link(dashboard_url, dashboard_url)]);
    let (text, html) = doc.finish(&subject);
    Composed {
        subject,
        text,
        html,
    }
}

/// One item per input: source, file, short sha linked to the commit, commit time.
fn inputs_section(doc: &mut Doc, title: &str, inputs: &[InputRef]) {
    doc.heading(title);
    if inputs.is_empty() {
        doc.paragraph(&[text("none recorded")]);
        return;
    }
    let items: Vec<Vec<Inline>> = inputs
        .iter()
        .map(|input| {
            let up = &input.upstream;
            let mut line = vec![
                text(format!("{}: {} {} at ", input.source, up.repo, up.path)),
                link(format::short_sha(&up.commit_sha), format::commit_url(up)),
                text(format!(", committed {}", format::time(up.commit_time))),
            ];
            if up.covered_commits.len() > 1 {
                line.push(text(format!(
                    " (covers {} commits)",
                    up.covered_commits.len()
                )));
            }
            line
        })
        .collect();
    doc.items(&items);
}

#[cfg(test)]
mod tests;
