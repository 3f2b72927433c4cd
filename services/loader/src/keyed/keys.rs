//! `<dataset>_keys` (migration 0006): the keys a keyed table holds, with the FIPS code of each
//! key's latest row and its first and last dates. Readers go through it instead of secondary
//! indexes on the big table. A reconcile takes the dataset's own ([`replace`]) or rebuilds it
//! from the table ([`refresh`]); a delta, applied only to the base it was computed against,
//! carries it along ([`follow`]).

use shared::Env;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::stage::copy;
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
    let same_key = table.same_key("d", "k");
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

/// Makes `table`'s key list `csv` (`<key columns>,fips,first_date,last_date` with its header, as
/// `dataset::keyed::Curated::keys_csv` writes it): the key list of the dataset the table was
/// just made to hold, in a few milliseconds where [`refresh`] probes the table ten thousand times
/// (≈ 0.3 s for the counties).
pub(crate) async fn replace(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    csv: &[u8],
) -> Result<(), KeyedError> {
    let keys = table.qualified_keys(env);
    let failed = |step| KeyedError::db(table.table_name(), step);
    tx.execute(&format!("DELETE FROM {keys}"), &[])
        .await
        .map_err(failed("clear the key list"))?;
    let statement = format!(
        "COPY {keys} ({}, fips, first_date, last_date) FROM STDIN (FORMAT csv, HEADER MATCH)",
        table.key_list()
    );
    copy(tx, &statement, csv)
        .await
        .map_err(failed("copy the dataset's key list"))?;
    Ok(())
}

/// Carries `table`'s key list along a delta just applied, whose staged tables are `rows` (the new
/// and changed rows) and `removed` (the rows that left), reading only those and the keys they
/// touch. A key that lost rows is listed again from the table (or no longer, when none is left);
/// a key with rows staged takes their first date if earlier, their last date if later, and the
/// FIPS code of its latest row when that row is staged; a key new to the table is added. A daily
/// county run stages a day for every county, so this costs a few thousand lines rather than the
/// ten thousand index probes of a [`refresh`] (≈ 0.3 s at county scale).
pub(crate) async fn follow(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    rows: &str,
    removed: &str,
) -> Result<(), KeyedError> {
    let table_rows = table.qualified(env);
    let keys = table.qualified_keys(env);
    let key = table.key_list();
    let failed = KeyedError::db(table.table_name(), "carry the key list along the delta");
    tx.batch_execute(&format!(
        "DELETE FROM {keys} k USING (SELECT DISTINCT {key} FROM {removed}) r WHERE {k_r};
         INSERT INTO {keys} ({key}, fips, first_date, last_date)
         SELECT {r_key}, l.fips, f.date, l.date FROM (SELECT DISTINCT {key} FROM {removed}) r
         CROSS JOIN LATERAL (SELECT d.date FROM {table_rows} d WHERE {d_r}
                             ORDER BY d.date LIMIT 1) f
         CROSS JOIN LATERAL (SELECT d.date, d.fips FROM {table_rows} d WHERE {d_r}
                             ORDER BY d.date DESC LIMIT 1) l;
         INSERT INTO {keys} AS k ({key}, fips, first_date, last_date)
         SELECT DISTINCT ON ({key}) {key}, fips, min(date) OVER (PARTITION BY {key}), date
         FROM {rows} ORDER BY {key}, date DESC
         ON CONFLICT ({key}) DO UPDATE SET
             first_date = least(k.first_date, EXCLUDED.first_date),
             fips = CASE WHEN EXCLUDED.last_date >= k.last_date THEN EXCLUDED.fips ELSE k.fips END,
             last_date = greatest(k.last_date, EXCLUDED.last_date)",
        k_r = table.same_key("k", "r"),
        d_r = table.same_key("d", "r"),
        r_key = table.key_of("r"),
    ))
    .await
    .map_err(failed)
}
