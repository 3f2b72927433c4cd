//! The staging tables (temporary, dropped at commit) and the COPY of each CSV buffer into them;
//! and the COPY of a whole dataset straight into an empty table ([`copy_into_empty`]).
//!
//! The CSV columns are the contract's, in its order; `HEADER MATCH` makes PostgreSQL check the
//! header line against them, so a buffer with other columns fails instead of loading shifted
//! values. Each staging table gets its primary key after the COPY (one bulk index build): a
//! (date, key) given twice fails the call.

use std::io::Cursor;

use futures::{SinkExt, pin_mut};
use shared::Env;
use shared::ids::RunId;
use tokio_postgres::Transaction;
use tokio_postgres::error::SqlState;

use super::error::KeyedError;
use super::table::Table;

/// The bytes handed to PostgreSQL per COPY message.
const CHUNK: usize = 1 << 20;

/// Which CSV buffer: its staging table's suffix, its columns besides date and key, the types of
/// those, and whether `field` is part of the key.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Kind {
    /// `date,<key>,fips,cases,deaths,new_cases,new_deaths`
    Rows,
    /// `date,<key>`
    Removed,
    /// `date,<key>,field,old_value,new_value`
    Changes,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Rows => "rows",
            Kind::Removed => "removed",
            Kind::Changes => "changes",
        }
    }

    /// The columns after `date,<key>`, with their staging types.
    fn columns(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Kind::Rows => &[
                ("fips", "text"),
                ("cases", "bigint"),
                ("deaths", "bigint"),
                ("new_cases", "bigint"),
                ("new_deaths", "bigint"),
            ],
            Kind::Removed => &[],
            Kind::Changes => &[
                (
                    "field",
                    "text NOT NULL CHECK (field IN ('cases', 'deaths'))",
                ),
                ("old_value", "bigint"),
                ("new_value", "bigint"),
            ],
        }
    }

    /// The staging table's primary key besides date and key.
    fn extra_key(self) -> &'static str {
        match self {
            Kind::Changes => ", field",
            Kind::Rows | Kind::Removed => "",
        }
    }
}

/// Stages `csv` as `kind` for `table`; returns the staging table's name and its row count.
pub(crate) async fn stage(
    tx: &Transaction<'_>,
    table: &Table,
    kind: Kind,
    csv: &[u8],
) -> Result<(String, u64), KeyedError> {
    let staging = table.staging(kind.name());
    let key_columns: Vec<String> = table
        .key()
        .iter()
        .map(|k| format!("{k} text NOT NULL"))
        .collect();
    let other_columns: Vec<String> = kind
        .columns()
        .iter()
        .map(|(name, ty)| format!("{name} {ty}"))
        .collect();
    let definition = std::iter::once("date date NOT NULL".to_owned())
        .chain(key_columns)
        .chain(other_columns)
        .collect::<Vec<_>>()
        .join(", ");
    // A second staging of the same kind in one transaction (a reconcile after a delta that did
    // not fit) starts from an empty table.
    tx.batch_execute(&format!(
        "DROP TABLE IF EXISTS pg_temp.{staging};
         CREATE TEMP TABLE {staging} ({definition}) ON COMMIT DROP"
    ))
    .await
    .map_err(KeyedError::db(table.table_name(), "create a staging table"))?;

    let columns = std::iter::once("date")
        .chain(table.key().iter().copied())
        .chain(kind.columns().iter().map(|(name, _)| *name))
        .collect::<Vec<_>>()
        .join(", ");
    let copied = copy(
        tx,
        &format!("COPY {staging} ({columns}) FROM STDIN (FORMAT csv, HEADER MATCH)"),
        csv,
    )
    .await
    .map_err(|source| classify(table, kind, "COPY the CSV into staging", source))?;
    tx.batch_execute(&format!(
        "ALTER TABLE {staging} ADD PRIMARY KEY ({}, date{})",
        table.key_list(),
        kind.extra_key()
    ))
    .await
    .map_err(|source| classify(table, kind, "key the staged rows", source))?;
    Ok((staging, copied))
}

/// Fills the empty `table`, locked against every other session ([`super::reconcile`] made sure),
/// with the rows CSV of a whole dataset, `COPY`ed straight into it as
/// `run_id`: no staging table and no row-by-row upsert, since every row is new. Every index goes
/// first, the primary key's too, and is built again after: one sort of millions of rows costs a
/// fraction of keeping an index up to date row by row (2.3 M county rows: COPY with the primary
/// key in place took 11 s, without it 5.3 s plus 2.7 s to build it). Building the primary key
/// again still refuses a repeated (date, key), naming it, as the staging table's would. Returns
/// the rows copied.
///
/// It all happens in the caller's transaction, so no reader ever sees the table without its
/// indexes or half filled; they wait for the commit instead (dropping an index locks the table),
/// which only a first load makes them do. The table is not analyzed here: its indexes' builds
/// record its size, which is what the readers' key-by-key plans need, and autovacuum gathers the
/// statistics within a minute of the commit.
pub(crate) async fn copy_into_empty(
    tx: &Transaction<'_>,
    env: &Env,
    table: &Table,
    csv: &[u8],
    run_id: &RunId,
) -> Result<u64, KeyedError> {
    let target = table.qualified(env);
    let failed = |step| KeyedError::db(table.table_name(), step);
    // Sorting the primary key in memory rather than in batches on disk; for this transaction only.
    tx.batch_execute(&format!(
        "SET LOCAL maintenance_work_mem = '{BUILD_MEMORY}'"
    ))
    .await
    .map_err(failed("give the index builds their memory"))?;
    // Emptied in this subtransaction, the table takes its rows already frozen (`FREEZE`): that
    // skips the hint-bit writes of their first reads and the pass vacuum would make over the whole
    // table to freeze them later, and costs PostgreSQL less (2.3 M county rows: 4.7 s instead of
    // 5.5 s). A frozen row is seen, once committed, even by a snapshot taken before the load;
    // with the table empty before, such a reader sees the rows early rather than anything wrong.
    tx.batch_execute(&format!("TRUNCATE {target}"))
        .await
        .map_err(failed("empty the table"))?;
    let indexes = Indexes::drop_all(tx, env, table).await?;
    // COPY cannot fill a column with a constant: the run id is the column's default meanwhile.
    // A run id is letters, digits, `_` and `-`, so it is a safe literal.
    tx.batch_execute(&format!(
        "ALTER TABLE {target} ALTER COLUMN run_id SET DEFAULT '{run_id}'"
    ))
    .await
    .map_err(failed("set the run as the rows' default"))?;
    let columns = std::iter::once("date")
        .chain(table.key().iter().copied())
        .chain(Kind::Rows.columns().iter().map(|(name, _)| *name))
        .collect::<Vec<_>>()
        .join(", ");
    let copied = copy(
        tx,
        &format!("COPY {target} ({columns}) FROM STDIN (FORMAT csv, HEADER MATCH, FREEZE)"),
        csv,
    )
    .await
    .map_err(|source| classify(table, Kind::Rows, "COPY the rows into the table", source))?;
    tx.batch_execute(&format!(
        "ALTER TABLE {target} ALTER COLUMN run_id DROP DEFAULT"
    ))
    .await
    .map_err(failed("drop the rows' default run"))?;
    indexes.build_again(tx, table).await?;
    Ok(copied)
}

/// `maintenance_work_mem` for a first load's index builds: the primary key of 2.3 M county rows
/// sorts in ≈ 200 MB.
const BUILD_MEMORY: &str = "512MB";

/// A table's indexes as they were before [`Indexes::drop_all`], to build again: the statements
/// that make them, constraints (the primary key) first.
struct Indexes {
    statements: Vec<String>,
}

impl Indexes {
    async fn drop_all(
        tx: &Transaction<'_>,
        env: &Env,
        table: &Table,
    ) -> Result<Indexes, KeyedError> {
        let target = table.qualified(env);
        let schema = crate::db::schema(env);
        let failed = |step| KeyedError::db(table.table_name(), step);
        // An index that backs a constraint goes with the constraint; the others on their own.
        let rows = tx
            .query(
                "SELECT quote_ident(con.conname), pg_get_constraintdef(con.oid),
                        quote_ident(c.relname), pg_get_indexdef(c.oid)
                 FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid
                 LEFT JOIN pg_constraint con ON con.conindid = x.indexrelid
                     AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u')
                 WHERE x.indrelid = $1::text::regclass
                 ORDER BY con.conname IS NULL, c.relname",
                &[&target],
            )
            .await
            .map_err(failed("list the indexes"))?;
        let mut statements = Vec::with_capacity(rows.len());
        for row in &rows {
            let constraint: Option<String> = row.get(0);
            let (drop, build) = match constraint {
                Some(name) => (
                    format!("ALTER TABLE {target} DROP CONSTRAINT {name}"),
                    format!(
                        "ALTER TABLE {target} ADD CONSTRAINT {name} {}",
                        row.get::<_, String>(1)
                    ),
                ),
                None => (
                    format!("DROP INDEX {schema}.{}", row.get::<_, String>(2)),
                    row.get(3),
                ),
            };
            tx.batch_execute(&drop)
                .await
                .map_err(failed("drop an index"))?;
            statements.push(build);
        }
        Ok(Indexes { statements })
    }

    /// Builds every index again; a repeated (date, key) fails the primary key's build, and is the
    /// CSV's fault.
    async fn build_again(self, tx: &Transaction<'_>, table: &Table) -> Result<(), KeyedError> {
        for statement in &self.statements {
            tx.batch_execute(statement)
                .await
                .map_err(|source| classify(table, Kind::Rows, "build an index again", source))?;
        }
        Ok(())
    }
}

/// Streams `csv` into a `COPY … FROM STDIN` statement; the rows PostgreSQL read.
pub(crate) async fn copy(
    tx: &Transaction<'_>,
    statement: &str,
    csv: &[u8],
) -> Result<u64, tokio_postgres::Error> {
    let sink = tx.copy_in::<_, Cursor<Vec<u8>>>(statement).await?;
    pin_mut!(sink);
    for chunk in csv.chunks(CHUNK) {
        sink.send(Cursor::new(chunk.to_vec())).await?;
    }
    sink.as_mut().finish().await
}

/// A COPY or key error caused by the buffer's content is the buffer's fault; anything else is
/// PostgreSQL's, failing `step`.
fn classify(
    table: &Table,
    kind: Kind,
    step: &'static str,
    source: tokio_postgres::Error,
) -> KeyedError {
    let bad_content = source.code().is_some_and(|code| {
        let class = &code.code()[..2];
        // 22: a bad value or file format; 23: a missing key, a repeated (date, key), a check.
        matches!(class, "22" | "23") || *code == SqlState::UNDEFINED_COLUMN
    });
    if bad_content {
        KeyedError::InvalidCsv {
            table: table.table_name(),
            what: kind.name(),
            source,
        }
    } else {
        KeyedError::db(table.table_name(), step)(source)
    }
}
