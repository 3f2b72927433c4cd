//! Reading a keyed run's objects from `etl-curated`: the three CSV parts of its delta, or its
//! whole curated dataset (Parquet), decoded into the `rows` CSV a reconcile stages and checked
//! against what the event announced.

use std::time::{Duration, Instant};

use async_nats::jetstream::object_store::ObjectStore;
use chrono::NaiveDate;
use dataset::keyed::{Curated, Spec};
use shared::events::{Delta, Transformed};

use crate::curated::{self, ReadPause};
use crate::error::LoadError;

/// The three parts of a run's delta, as read (the keyed contract's CSV).
pub(crate) struct DeltaParts {
    pub rows: Vec<u8>,
    pub removed: Vec<u8>,
    pub changes: Vec<u8>,
}

/// Reads the parts of `delta`, all within one `deadline`.
pub(crate) async fn delta_parts(
    store: &ObjectStore,
    delta: &Delta,
    deadline: Duration,
) -> Result<DeltaParts, LoadError> {
    let started = Instant::now();
    let left = || deadline.saturating_sub(started.elapsed());
    Ok(DeltaParts {
        rows: curated::read_delta_part(store, &delta.rows, left()).await?,
        removed: curated::read_delta_part(store, &delta.removed, left()).await?,
        changes: curated::read_delta_part(store, &delta.changes, left()).await?,
    })
}

/// A run's whole curated dataset as a reconcile takes it: every row as the `rows` CSV, and its
/// key list.
pub(crate) struct FullRows {
    pub csv: Vec<u8>,
    pub keys: Vec<u8>,
}

/// Reads `event`'s curated dataset within `deadline` and decodes it; its rows and dates must be
/// the ones the event announced.
pub(crate) async fn full_rows(
    store: &ObjectStore,
    spec: &'static Spec,
    event: &Transformed,
    deadline: Duration,
    pause: Option<&ReadPause>,
) -> Result<FullRows, LoadError> {
    let object = curated::read(store, &event.object, deadline, pause).await?;
    let name = event.object.name.clone();
    // Polars' Parquet reader calls `block_in_place`, which panics on a current-thread runtime,
    // and the decoding is CPU work: a blocking thread does it.
    let (curated, full) = tokio::task::spawn_blocking(move || {
        let curated = Curated::from_parquet(spec, &object.bytes)
            .map_err(|error| LoadError::Parquet { name, error })?;
        let decode = |error: dataset::DataError| LoadError::Decode(error.to_string());
        let csv = curated.rows_csv().map_err(decode)?;
        let keys = curated.keys_csv().map_err(decode)?;
        Ok::<_, LoadError>((curated, FullRows { csv, keys }))
    })
    .await
    .map_err(|err| LoadError::Decode(err.to_string()))??;
    check_announced(
        event,
        curated.rows(),
        curated.first_date(),
        curated.last_date(),
    )?;
    Ok(full)
}

/// The dataset holds the rows and dates its event announced.
fn check_announced(
    event: &Transformed,
    rows: usize,
    first: Option<NaiveDate>,
    last: Option<NaiveDate>,
) -> Result<(), LoadError> {
    let name = &event.object.name;
    if rows as u64 != event.rows {
        return Err(LoadError::RowCount {
            name: name.clone(),
            announced: event.rows,
            found: rows,
        });
    }
    let dates = |d: Option<NaiveDate>| d.map_or_else(|| "no date".to_owned(), |d| d.to_string());
    for (field, announced, found) in [
        ("first_date", event.first_date, first),
        ("last_date", event.last_date, last),
    ] {
        if found != Some(announced) {
            return Err(LoadError::Announced {
                name: name.clone(),
                field,
                announced: announced.to_string(),
                found: dates(found),
            });
        }
    }
    Ok(())
}
