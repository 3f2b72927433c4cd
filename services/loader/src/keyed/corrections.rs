//! A keyed run's revisions as the `Loaded` event lists them: read back from `<table>_changes`,
//! the largest first, each with its key as people write it.

use shared::Env;
use shared::events::{Correction, Field};
use shared::ids::RunId;
use tokio_postgres::{Error, GenericClient};

use super::table::Table;

/// Up to `limit` of `run_id`'s lines in `table`'s changes, largest `|new − old|` first (a value
/// that appears or disappears counts from 0), then by key, date and field so the list is stable.
/// Each carries its key, most specific column first: `Harris, Texas`, `Texas`.
pub async fn corrections(
    client: &impl GenericClient,
    env: &Env,
    table: &Table,
    run_id: &RunId,
    limit: usize,
) -> Result<Vec<Correction>, Error> {
    let key_text = table
        .key()
        .iter()
        .rev()
        .copied()
        .collect::<Vec<_>>()
        .join(", ");
    // numeric: a difference of two bigints may not fit one.
    let sql = format!(
        "SELECT date, field, old_value, new_value, concat_ws(', ', {key_text}) AS key
         FROM {changes}
         WHERE run_id = $1
         ORDER BY abs(coalesce(new_value, 0)::numeric - coalesce(old_value, 0)) DESC,
                  {key}, date, field
         LIMIT $2",
        changes = table.qualified_changes(env),
        key = table.key_list(),
    );
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let rows = client.query(&sql, &[&run_id.as_str(), &limit]).await?;
    Ok(rows
        .iter()
        .map(|row| {
            let field: String = row.get(1);
            Correction {
                key: Some(row.get(4)),
                date: row.get(0),
                // The column's CHECK constraint admits only `cases` and `deaths`.
                field: if field == Field::Deaths.as_str() {
                    Field::Deaths
                } else {
                    Field::Cases
                },
                old: row.get(2),
                new: row.get(3),
            }
        })
        .collect())
}
