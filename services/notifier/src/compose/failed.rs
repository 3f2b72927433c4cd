//! The email of a failure: of a run at any stage, or of the notifier itself. A keyed dataset's
//! failure names the dataset; a `us` one reads as it did before datasets existed.

use shared::events::{Failed, Stage};

use super::{Composed, MAX_REASON_IN_SUBJECT, dashboard_line, inputs_section};
use crate::doc::{Doc, Inline, text};
use crate::format;

pub(super) fn compose(e: &Failed, dashboard_url: &str) -> Composed {
    let env = &e.env;
    let stage = e.stage.as_str();
    let dataset = (!e.dataset.is_us()).then_some(&e.dataset);
    let etl = match dataset {
        Some(dataset) => format!("COVID-19 {dataset} ETL"),
        None => "COVID-19 ETL".to_owned(),
    };
    // The notifier's own failures are about a notice, not a run: the run and its data are as
    // they were, and the message is kept as a dead letter.
    let own = e.stage == Stage::Notify;
    let reason = format::one_line(&e.reason, MAX_REASON_IN_SUBJECT);
    let subject = if own {
        format!("[{env}] {etl} notification failed: {reason}")
    } else {
        format!("[{env}] {etl} failed at {stage}: {reason}")
    };
    let mut doc = Doc::new();
    doc.paragraph(&[text(match (own, dataset) {
        (true, None) => format!("The notifier gave up on a notice for {env}."),
        (true, Some(dataset)) => {
            format!("The notifier gave up on a notice about the {dataset} data of {env}.")
        }
        (false, None) => format!("The COVID-19 ETL run for {env} failed at the {stage} stage."),
        (false, Some(dataset)) => {
            format!("The COVID-19 {dataset} run for {env} failed at the {stage} stage.")
        }
    })]);
    let run = match &e.run_id {
        Some(run_id) => run_id.to_string(),
        None if e.stage == Stage::Extract => format!("none (extraction {})", e.id()),
        None => format!("none (failure {})", e.id()),
    };
    let mut facts: Vec<(&str, Vec<Inline>)> = Vec::new();
    if let Some(dataset) = dataset {
        facts.push(("dataset", vec![text(dataset.as_str())]));
    }
    facts.extend([
        ("stage", vec![text(stage)]),
        ("reason", vec![text(e.reason.clone())]),
        ("kind", vec![text(e.kind.as_str())]),
        ("run", vec![text(run)]),
        ("failed at", vec![text(format::time(e.failed_at))]),
    ]);
    doc.facts(&facts);
    doc.paragraph(&[text(if own {
        format!(
            "The run itself is not affected. The message is kept in the dead-letter stream (etl.{env}.dead.notify) and can be published again once the cause is fixed."
        )
    } else {
        "The stored data was left unchanged: the database still holds the last successful run."
            .to_owned()
    })]);
    inputs_section(&mut doc, "Upstream inputs", &e.inputs);
    dashboard_line(&mut doc, dashboard_url);
    let (text, html) = doc.finish(&subject);
    Composed {
        subject,
        text,
        html,
    }
}
