//! `<dataset>_keys` (migration 0006): the keys a keyed table holds, with the FIPS code of each
//! key's latest row and its first and last dates. Readers go through it instead of secondary
//! indexes on the big table; the loader rebuilds it at the end of every load.

use shared::Env;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::table::Table;

/// Makes `table`'s key list what the table holds now; returns the keys listed. A loose index scan
/// of the primary key (key, date): each step jumps to the next key, then reads its first and last
/// rows, so a few thousand keys over millions of rows cost a few thousand index probes, and a
/// table changed by hand is listed as it is.
pub(crate) async fn refresh(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
) -> Result<u64, KeyedError> {
    let rows = table.qualified(env);
    let keys = table.qualified_keys(env);
    let key = table.key_list();
    let same_key = table
        .key()
        .iter()
        .map(|c| format!("d.{c} = k.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    tx.execute(&format!("DELETE FROM {keys}"), &[])
        .await
        .map_err(KeyedError::db(table.table_name(), "clear the key list"))?;
    tx.execute(
        &format!(
            "WITH RECURSIVE k AS (
                 (SELECT {key} FROM {rows} ORDER BY {key} LIMIT 1)
                 UNION ALL
                 SELECT {next_key} FROM k CROSS JOIN LATERAL (
                     SELECT {key} FROM {rows} WHERE ({key}) > ({k_key})
                     ORDER BY {key} LIMIT 1) n
             )
             INSERT INTO {keys} ({key}, fips, first_date, last_date)
             SELECT {k_key}, l.fips, f.date, l.date FROM k
             CROSS JOIN LATERAL (SELECT d.date FROM {rows} d WHERE {same_key}
                                 ORDER BY d.date LIMIT 1) f
             CROSS JOIN LATERAL (SELECT d.date, d.fips FROM {rows} d WHERE {same_key}
                                 ORDER BY d.date DESC LIMIT 1) l",
            next_key = table.key_of("n"),
            k_key = table.key_of("k"),
        ),
        &[],
    )
    .await
    .map_err(KeyedError::db(table.table_name(), "list the table's keys"))
}
