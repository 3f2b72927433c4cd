//! The email of a keyed dataset's run (`states`, `counties`): the dataset is named in the subject
//! and the text, its changes are counted in rows (one per date and key), and its largest
//! revisions are listed with their key. A keyed dataset's files are read together, not joined, so
//! nothing is dropped by a join.

use shared::events::Loaded;

use super::{
    Composed, ROWS, corrections_section, dashboard_line, gist, inputs_section, run_line,
    warnings_section,
};
use crate::doc::{Doc, text};
use crate::format;

pub(super) fn compose(e: &Loaded, dashboard_url: &str) -> Composed {
    let (env, dataset) = (&e.env, &e.dataset);
    let gist = gist(&e.counts, ROWS);
    let subject = match &gist {
        Some(gist) => format!("[{env}] COVID-19 {dataset} data updated: {gist}"),
        None => format!("[{env}] COVID-19 {dataset} data unchanged"),
    };
    let mut doc = Doc::new();
    doc.paragraph(&[text(match gist {
        Some(_) => format!("The COVID-19 {dataset} data for {env} was updated from upstream."),
        None => format!(
            "The COVID-19 {dataset} data for {env} is unchanged: this run found nothing new upstream."
        ),
    })]);

    doc.heading("Changes");
    let c = &e.counts;
    // `revised` counts rows with a revised value, the corrections each value: a revision often
    // changes cases and deaths of one row at once.
    let values = e.corrections_total.max(e.corrections.len() as u64);
    let revised = if c.revised == 0 {
        format::count_u(values)
    } else {
        format!(
            "{} (in {})",
            format::count_u(values),
            format::plural(c.revised, "row", "rows")
        )
    };
    doc.facts(&[
        ("dataset", vec![text(dataset.as_str())]),
        ("new rows", vec![text(format::count_u(c.inserted))]),
        ("revised values", vec![text(revised)]),
        ("updated rows", vec![text(format::count_u(c.updated))]),
        ("unchanged rows", vec![text(format::count_u(c.unchanged))]),
        ("removed rows", vec![text(format::count_u(c.removed))]),
        (
            "rows stored",
            vec![text(format!(
                "{} ({} to {})",
                format::count_u(e.rows),
                e.first_date,
                e.last_date
            ))],
        ),
    ]);

    // The loader lists the corrections largest first, so the ones shown are the ones that matter.
    corrections_section(
        &mut doc,
        "Largest revised upstream values (old → new)",
        e,
        |c| {
            let value = format!(
                "{}  {} {} → {}",
                c.date,
                c.field.as_str(),
                format::value(c.old),
                format::value(c.new)
            );
            match &c.key {
                Some(key) => format!("{key}  {value}"),
                None => value,
            }
        },
    );

    inputs_section(&mut doc, "Upstream commits used", &e.inputs);
    warnings_section(&mut doc, &e.warnings);
    run_line(&mut doc, e);
    dashboard_line(&mut doc, dashboard_url);
    let (text, html) = doc.finish(&subject);
    Composed {
        subject,
        text,
        html,
    }
}
