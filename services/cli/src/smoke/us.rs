//! The `us` dataset's smoke: three days of NYT's `us.csv` and JHU's series, and the checks of its
//! run.

use shared::events::{Notification, Trigger};
use shared::nats::Stores;
use shared::{Dataset, Env, Source, run_id, store};

use super::payload::{self, File, Published};
use crate::db;

/// Three NYT days…
pub const DUMMY_NYT: &str = "date,cases,deaths\n2020-01-22,1,0\n2020-01-23,1,0\n2020-01-24,2,0\n";
/// …and JHU's US rows for the same days, with another country's row that must be ignored.
pub const DUMMY_JHU: &str = "Date,Country/Region,Province/State,Confirmed,Recovered,Deaths\n\
2020-01-22,Afghanistan,,0,0,0\n2020-01-22,US,,1,0,0\n2020-01-23,US,,1,0,0\n2020-01-24,US,,2,0,0\n";
pub const EXPECTED_DAYS: u64 = 3;

/// Stores and records each source's dummy file in turn, NYT first, as events of `us` (which
/// predate datasets) are.
pub(super) async fn publish(
    stores: &Stores,
    env: &Env,
    trigger: &Trigger,
) -> anyhow::Result<Published> {
    let nyt = record(stores, env, Source::NYT, DUMMY_NYT, trigger).await?;
    let jhu = record(stores, env, Source::JHU, DUMMY_JHU, trigger).await?;
    Ok(Published {
        run_id: run_id::of_inputs(env, &nyt, &jhu, trigger),
        what: "published dummy NYT and JHU payloads".to_owned(),
    })
}

async fn record(
    stores: &Stores,
    env: &Env,
    source: Source,
    content: &str,
    trigger: &Trigger,
) -> anyhow::Result<shared::events::Extracted> {
    let location = source
        .default_location()
        .expect("the us smoke's sources are NYT and JHU");
    let file = File {
        dataset: &Dataset::US,
        dataset_sources: &[],
        source,
        path: &location.path,
        content,
    };
    let event = payload::store(stores, env, file, trigger).await?;
    store::record_extracted(stores, &event).await?;
    Ok(event)
}

/// The run inserted the three days, and `us_daily` holds them; returns the step to report.
pub(super) async fn check(
    notification: &Notification,
    pg: &tokio_postgres::Client,
    env: &Env,
) -> anyhow::Result<String> {
    if notification.counts.inserted != EXPECTED_DAYS {
        anyhow::bail!(
            "the run inserted {} days, expected {EXPECTED_DAYS}",
            notification.counts.inserted
        );
    }
    let stored = db::stored_rows(pg, env).await?;
    if stored.len() as u64 != EXPECTED_DAYS {
        anyhow::bail!(
            "{env}.us_daily holds {} rows, expected {EXPECTED_DAYS}",
            stored.len()
        );
    }
    Ok(format!(
        "{env}.us_daily holds the {EXPECTED_DAYS} expected days"
    ))
}
