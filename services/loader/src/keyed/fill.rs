//! A first load filled by several connections at once, then swapped in.
//!
//! PostgreSQL runs a `COPY` on one backend, one core: at county scale (2.3 M rows) it is half of
//! a first load. Rows copied by other connections are seen by the caller's transaction only once
//! those commit, so they go into a fresh table of the same shape, `<table>_fill`, and the
//! caller's transaction puts it in the table's place: it drops the empty table, renames the
//! filled one, builds the indexes the table had and gives back its grants and comment. Readers
//! see the old, empty table until that commits, then the full one, as with a load in place.
//!
//! Only a plain table is swapped ([`Swap::prepare`]): owned by the loader's role, with nothing
//! that depends on it besides its own indexes, constraints and defaults (no view, trigger,
//! policy, foreign key or publication, which a swap would drop or leave pointing at the old
//! table), and no storage options or column grants. The migrations make exactly such tables; a
//! table an operator has extended is filled in place instead.
//!
//! The fill table is dropped when anything fails before the swap. Should the caller's
//! transaction roll back after it, or the loader stop midway, a committed `<table>_fill` is left
//! behind; the next first load drops it before it starts.

use deadpool_postgres::{Object, Pool};
use shared::Env;
use shared::ids::RunId;
use tokio_postgres::Transaction;

use super::error::KeyedError;
use super::stage::{Indexes, Kind, classify, copy, copy_rows, run_default};
use super::table::Table;
use crate::db;

/// How many connections copy at once: PostgreSQL's server cores are not known from here, and
/// two already halve the COPY on the smallest machine that runs the whole stack.
const FILLERS: usize = 2;

/// What the caller's transaction needs to put a filled table in the table's place, known before
/// anything is filled.
pub(crate) struct Swap {
    indexes: Indexes,
    /// The table's grants (besides its owner's) and its comment, as statements.
    grants_and_comment: Vec<String>,
}

impl Swap {
    /// The table's indexes, grants and comment, if it is a plain table (see the module's text).
    pub(crate) async fn prepare(
        tx: &Transaction<'_>,
        env: &Env,
        table: &Table,
    ) -> Result<Option<Swap>, KeyedError> {
        let target = table.qualified(env);
        let row = tx
            .query_one(
                "SELECT c.relowner = current_user::regrole
                        AND NOT c.relrowsecurity AND c.reloptions IS NULL
                        AND NOT EXISTS (SELECT 1 FROM pg_attribute a
                                        WHERE a.attrelid = c.oid AND a.attacl IS NOT NULL)
                        AND NOT EXISTS (
                            SELECT 1 FROM pg_depend d
                            WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = c.oid
                              AND NOT (d.classid IN ('pg_type'::regclass, 'pg_attrdef'::regclass)
                                  OR d.classid = 'pg_class'::regclass AND EXISTS (
                                      SELECT 1 FROM pg_class i
                                      WHERE i.oid = d.objid AND i.relkind IN ('i', 't'))
                                  OR d.classid = 'pg_constraint'::regclass AND EXISTS (
                                      SELECT 1 FROM pg_constraint k
                                      WHERE k.oid = d.objid AND k.conrelid = c.oid
                                        AND k.contype IN ('p', 'u', 'c'))))
                        AND NOT EXISTS (SELECT 1 FROM pg_constraint k
                                        WHERE k.conrelid = c.oid AND k.contype NOT IN ('p', 'u', 'c')),
                        ARRAY(SELECT format('GRANT %s ON %s TO %s%s', g.privilege_type, $1::text,
                                            CASE WHEN g.grantee = 0 THEN 'PUBLIC'
                                                 ELSE g.grantee::regrole::text END,
                                            CASE WHEN g.is_grantable THEN ' WITH GRANT OPTION'
                                                 ELSE '' END)
                              FROM aclexplode(c.relacl) g WHERE g.grantee <> c.relowner)
                        || ARRAY(SELECT format('COMMENT ON TABLE %s IS %L', $1::text, comment)
                                 FROM obj_description(c.oid, 'pg_class') comment
                                 WHERE comment IS NOT NULL)
                 FROM pg_class c WHERE c.oid = $1::text::regclass",
                &[&target],
            )
            .await
            .map_err(KeyedError::db(table.table_name(), "look at the table's dependents"))?;
        if !row.get::<_, bool>(0) {
            return Ok(None);
        }
        Ok(Some(Swap {
            indexes: Indexes::of(tx, env, table).await?,
            grants_and_comment: row.get(1),
        }))
    }

    /// Puts the filled table in the place of the empty `table`, in the caller's transaction.
    async fn into_place(
        self,
        tx: &Transaction<'_>,
        env: &Env,
        table: &Table,
    ) -> Result<(), KeyedError> {
        let target = table.qualified(env);
        let failed = |step| KeyedError::db(table.table_name(), step);
        tx.batch_execute(&format!(
            "DROP TABLE {target};
             ALTER TABLE {fill} RENAME TO {name};
             ALTER TABLE {target} ALTER COLUMN run_id DROP DEFAULT",
            fill = fill_table(env, table),
            name = table.table_name(),
        ))
        .await
        .map_err(failed("put the filled table in place"))?;
        self.indexes.build_again(tx, table).await?;
        for statement in &self.grants_and_comment {
            tx.batch_execute(statement)
                .await
                .map_err(failed("give the table its grants and comment again"))?;
        }
        Ok(())
    }
}

/// Copies `csv` (a rows CSV with its header) into a fresh `<table>_fill` over [`FILLERS`]
/// connections of `pool` at once, each committing its share, then puts that table in the place
/// of the empty `table` in the caller's transaction. Returns the rows copied.
pub(crate) async fn fill_and_swap(
    tx: &Transaction<'_>,
    pool: &Pool,
    env: &Env,
    table: &Table,
    csv: &[u8],
    run_id: &RunId,
    swap: Swap,
) -> Result<u64, KeyedError> {
    create(pool, env, table, run_id).await?;
    let filled = async {
        let copied = fill(pool, env, table, csv).await?;
        swap.into_place(tx, env, table).await?;
        Ok(copied)
    }
    .await;
    if filled.is_err() {
        drop_fill(pool, env, table).await;
    }
    filled
}

/// `"<schema>".<table>_fill`.
fn fill_table(env: &Env, table: &Table) -> String {
    format!("{}.{}_fill", db::schema(env), table.table_name())
}

/// A fresh, empty `<table>_fill` with the table's columns, defaults and checks, no index, and
/// `run_id` as its rows' run; one left by an earlier attempt goes first.
async fn create(pool: &Pool, env: &Env, table: &Table, run_id: &RunId) -> Result<(), KeyedError> {
    let fill = fill_table(env, table);
    connection(pool, table)
        .await?
        .batch_execute(&format!(
            "DROP TABLE IF EXISTS {fill};
             CREATE TABLE {fill} (LIKE {target} INCLUDING ALL EXCLUDING INDEXES);
             {default}",
            target = table.qualified(env),
            default = run_default(&fill, run_id),
        ))
        .await
        .map_err(KeyedError::db(
            table.table_name(),
            "create the table to fill",
        ))
}

/// Copies `csv` into `<table>_fill`, a share per connection, all at once; the rows copied.
async fn fill(pool: &Pool, env: &Env, table: &Table, csv: &[u8]) -> Result<u64, KeyedError> {
    let statement = copy_rows(table, &fill_table(env, table));
    let shares = split(csv, FILLERS);
    let copies = shares.iter().map(|share| {
        let statement = &statement;
        async move {
            let mut client = connection(pool, table).await?;
            let copying = client
                .transaction()
                .await
                .map_err(KeyedError::db(table.table_name(), "begin a fill"))?;
            let copied = copy(&copying, statement, share).await.map_err(|source| {
                classify(table, Kind::Rows, "COPY the rows into the table", source)
            })?;
            copying
                .commit()
                .await
                .map_err(KeyedError::db(table.table_name(), "commit a fill"))?;
            Ok::<_, KeyedError>(copied)
        }
    });
    let copied = futures::future::try_join_all(copies).await?;
    Ok(copied.into_iter().sum())
}

/// Drops `<table>_fill` after a failure; a failure to do so is only logged (the next first load
/// drops it), since the failure being reported is the one that matters.
async fn drop_fill(pool: &Pool, env: &Env, table: &Table) {
    let fill = fill_table(env, table);
    let dropped = match connection(pool, table).await {
        Ok(client) => client
            .batch_execute(&format!("DROP TABLE IF EXISTS {fill}"))
            .await
            .map_err(|err| err.to_string()),
        Err(err) => Err(err.to_string()),
    };
    if let Err(error) = dropped {
        tracing::warn!(%env, table = %fill, %error, "could not drop the table of a failed fill");
    }
}

async fn connection(pool: &Pool, table: &Table) -> Result<Object, KeyedError> {
    pool.get().await.map_err(|source| KeyedError::Pool {
        table: table.table_name(),
        source,
    })
}

/// `csv` cut into `parts` shares of whole lines, each a CSV with the header line: the first
/// share has it already, the others get a copy. A line break inside a quoted field is not a cut.
fn split(csv: &[u8], parts: usize) -> Vec<Vec<u8>> {
    let header_end = csv
        .iter()
        .position(|&b| b == b'\n')
        .map_or(csv.len(), |at| at + 1);
    let (header, body) = csv.split_at(header_end);
    let mut shares = Vec::with_capacity(parts);
    let mut start = 0;
    for part in 1..=parts {
        let end = if part == parts {
            body.len()
        } else {
            record_end_from(body, start, body.len() * part / parts)
        };
        let mut share = Vec::with_capacity(header.len() + end - start);
        share.extend_from_slice(header);
        share.extend_from_slice(&body[start..end]);
        shares.push(share);
        start = end;
    }
    shares
}

/// The first record boundary of `body` at or after offset `at` (just past a line break whose
/// quotes before it, counted from `from`, a record's start, are paired), or its end.
fn record_end_from(body: &[u8], from: usize, at: usize) -> usize {
    let mut quoted = false;
    for (offset, &byte) in body.iter().enumerate().skip(from) {
        match byte {
            b'"' => quoted = !quoted,
            b'\n' if !quoted && offset + 1 >= at => return offset + 1,
            _ => {}
        }
    }
    body.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CSV: &str = "date,state\n2020-03-01,\"A\nB\"\n2020-03-02,\"C,\"\"D\"\"\"\n2020-03-03,E\n";

    fn text(shares: Vec<Vec<u8>>) -> Vec<String> {
        shares
            .into_iter()
            .map(|share| String::from_utf8(share).unwrap())
            .collect()
    }

    #[test]
    fn shares_are_whole_records_each_with_the_header() {
        assert_eq!(
            text(split(CSV.as_bytes(), 2)),
            [
                "date,state\n2020-03-01,\"A\nB\"\n2020-03-02,\"C,\"\"D\"\"\"\n",
                "date,state\n2020-03-03,E\n",
            ]
        );
        assert_eq!(
            text(split(CSV.as_bytes(), 3)),
            [
                "date,state\n2020-03-01,\"A\nB\"\n",
                "date,state\n2020-03-02,\"C,\"\"D\"\"\"\n",
                "date,state\n2020-03-03,E\n",
            ]
        );
    }

    #[test]
    fn a_csv_of_a_header_alone_gives_shares_of_the_header() {
        assert_eq!(
            text(split(b"date,state\n", 2)),
            ["date,state\n", "date,state\n"]
        );
    }
}
