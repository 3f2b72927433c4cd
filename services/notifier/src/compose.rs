//! What people are told about a run: the email (subject, plain text, HTML) and the
//! [`Notification`] published on `notify.<env>`, both built from the run's event alone, so that a
//! redelivered event produces the very same message.
//!
//! The email of a successful run is written per kind of dataset: `us.rs` for the national series
//! (in days; its wording predates datasets and is kept), `keyed.rs` for `states` and `counties`
//! (in rows, the dataset named, revisions listed with their key); `failed.rs` writes every
//! failure's. The sections they share are here.

use shared::events::{
    Correction, Counts, EmailFate, Failed, InputRef, Loaded, Notification, RunStatus,
    SCHEMA_VERSION, Stage,
};
use shared::ids::RunId;
use shared::message::Event;
use shared::settle::RunContext;
use shared::{Dataset, Env};

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

    pub fn dataset(&self) -> &Dataset {
        match self {
            Self::Loaded(e) => &e.dataset,
            Self::Failed(e) => &e.dataset,
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
            Self::Loaded(e) => gist(&e.counts, DAYS).is_none(),
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
                dataset: e.dataset.clone(),
                run_id: None,
                inputs: e.inputs.clone(),
                trigger: Some(e.trigger.clone()),
                source: None,
            },
            Self::Failed(e) => RunContext {
                dataset: e.dataset.clone(),
                run_id: None,
                inputs: e.inputs.clone(),
                trigger: e.trigger.clone(),
                source: e.source.clone(),
            },
        }
    }

    pub fn compose(&self, dashboard_url: &str) -> Composed {
        match self {
            Self::Loaded(e) if e.dataset.is_us() => us::compose(e, dashboard_url),
            Self::Loaded(e) => keyed::compose(e, dashboard_url),
            Self::Failed(e) => failed::compose(e, dashboard_url),
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
            dataset: self.dataset().clone(),
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

/// The revised values a run lists, one item each by `line`, at most [`MAX_CORRECTIONS_IN_EMAIL`]
/// of them and a count of the rest; nothing when none was revised.
/// What a run's changes are counted in: `us`'s days, or a keyed dataset's rows (one per date and
/// key).
#[derive(Debug, Clone, Copy)]
struct Unit {
    one: &'static str,
    many: &'static str,
}

const DAYS: Unit = Unit {
    one: "day",
    many: "days",
};
const ROWS: Unit = Unit {
    one: "row",
    many: "rows",
};

/// The subject's summary of what changed, counted in `unit`, or `None` when nothing did.
fn gist(c: &Counts, unit: Unit) -> Option<String> {
    let counted = |n| format::plural(n, unit.one, unit.many);
    let mut parts = Vec::new();
    if c.inserted > 0 {
        parts.push(format::plural(
            c.inserted,
            &format!("new {}", unit.one),
            &format!("new {}", unit.many),
        ));
    }
    if c.revised > 0 {
        parts.push(format!("{} revised", format::count_u(c.revised)));
    }
    if c.removed > 0 {
        parts.push(format!("{} removed", counted(c.removed)));
    }
    if parts.is_empty() && c.updated > 0 {
        parts.push(format!("{} updated", counted(c.updated)));
    }
    (!parts.is_empty()).then(|| parts.join(", "))
}

fn corrections_section(
    doc: &mut Doc,
    title: &str,
    e: &Loaded,
    line: impl Fn(&Correction) -> String,
) {
    if e.corrections.is_empty() {
        return;
    }
    doc.heading(title);
    let mut items: Vec<Vec<Inline>> = e
        .corrections
        .iter()
        .take(MAX_CORRECTIONS_IN_EMAIL)
        .map(|c| vec![text(line(c))])
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

fn warnings_section(doc: &mut Doc, warnings: &[String]) {
    doc.heading("Data-quality warnings");
    if warnings.is_empty() {
        doc.paragraph(&[text("none")]);
    } else {
        let items: Vec<Vec<Inline>> = warnings.iter().map(|w| vec![text(w.clone())]).collect();
        doc.items(&items);
    }
}

/// Which run it was, why it ran and how long it took.
fn run_line(doc: &mut Doc, e: &Loaded) {
    doc.paragraph(&[text(format!(
        "Run {} (trigger: {}) took {}.",
        e.run_id,
        e.trigger.kind.as_str(),
        format::duration_ms(e.duration_ms)
    ))]);
}

fn dashboard_line(doc: &mut Doc, dashboard_url: &str) {
    doc.paragraph(&[text("Dashboard: "), link(dashboard_url, dashboard_url)]);
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

mod failed;
mod keyed;
mod us;

#[cfg(test)]
mod tests;
