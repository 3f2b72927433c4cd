//! The email of a `us` run: the national series, counted in days. Its wording is the one people
//! received before datasets existed, and stays so.

use shared::events::Loaded;

use super::{
    Composed, DAYS, corrections_section, dashboard_line, gist, inputs_section, run_line,
    warnings_section,
};
use crate::doc::{Doc, text};
use crate::format;

pub(super) fn compose(e: &Loaded, dashboard_url: &str) -> Composed {
    let env = &e.env;
    let gist = gist(&e.counts, DAYS);
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

    corrections_section(&mut doc, "Revised upstream values (old → new)", e, |c| {
        format!(
            "{} {}: {} → {}",
            c.date,
            c.field.as_str(),
            format::value(c.old),
            format::value(c.new)
        )
    });

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
