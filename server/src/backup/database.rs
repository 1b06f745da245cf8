//! A consistent snapshot of the database while the server runs, and putting one back.
//!
//! SQLite: `VACUUM INTO` a copy (one read transaction: consistent), restored as the database
//! file. PostgreSQL: every table's rows as JSON lines, read in one REPEATABLE READ, READ ONLY
//! transaction (one snapshot, as pg_dump takes), restored into an empty database whose schema
//! is first brought to the backup's version, parents before children, sequences moved past the
//! restored ids.

use super::archive::{Reader, Writer};
use crate::store::{Conn, Db};
use diesel::connection::SimpleConnection;
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Text};
use std::collections::{BTreeMap, BTreeSet};
use std::io::BufRead;
use std::path::Path;

pub const SQLITE_ENTRY: &str = "database/ayush.db";
const PG_PREFIX: &str = "database/postgres/";
const PAGE: i64 = 2000;
const MIGRATIONS_TABLE: &str = "__diesel_schema_migrations";

#[derive(QueryableByName)]
struct One {
    #[diesel(sql_type = Text)]
    value: String,
}

#[derive(QueryableByName)]
struct Edge {
    #[diesel(sql_type = Text)]
    child: String,
    #[diesel(sql_type = Text)]
    parent: String,
}

#[derive(QueryableByName)]
struct Count {
    #[diesel(sql_type = BigInt)]
    n: i64,
}

/// What the snapshot says of itself.
pub struct Snapshot {
    pub schema_version: String,
    pub audit_head_seq: i64,
}

/// A failure inside a transaction: rolls it back, and says what went wrong.
struct Failed(String);

impl From<diesel::result::Error> for Failed {
    fn from(e: diesel::result::Error) -> Self {
        Failed(e.to_string())
    }
}

impl From<String> for Failed {
    fn from(e: String) -> Self {
        Failed(e)
    }
}

fn quote(ident: &str) -> String {
    format!("\"{}\"", ident.replace('"', "\"\""))
}

/// Copies the SQLite database into the backup.
pub fn snapshot_sqlite(conn: &mut Conn, writer: &mut Writer, scratch: &Path) -> Result<Snapshot, String> {
    let Db::Sqlite(c) = conn.db() else { return Err("not a SQLite database".into()) };
    let copy = scratch.join("ayush.db");
    let path = copy.to_str().ok_or("the scratch path is not UTF-8")?;
    c.batch_execute(&format!("VACUUM INTO '{}'", path.replace('\'', "''")))
        .map_err(|e| format!("copying the database: {e}"))?;
    // What the copy holds, read from the copy itself.
    let mut copy_conn = diesel::SqliteConnection::establish(path).map_err(|e| e.to_string())?;
    let version: One = diesel::sql_query(format!("SELECT MAX(version) AS value FROM {MIGRATIONS_TABLE}"))
        .get_result(&mut copy_conn)
        .map_err(|e| e.to_string())?;
    let head: Count = diesel::sql_query("SELECT seq AS n FROM audit_head WHERE id = 1")
        .get_result(&mut copy_conn)
        .map_err(|e| e.to_string())?;
    drop(copy_conn);
    writer.add_file(SQLITE_ENTRY, &copy, true)?;
    std::fs::remove_file(&copy).map_err(|e| e.to_string())?;
    Ok(Snapshot { schema_version: version.value, audit_head_seq: head.n })
}

/// Puts the SQLite copy in place as `target` (which must not exist).
pub fn restore_sqlite(reader: &mut Reader, target: &Path) -> Result<(), String> {
    reader.extract(SQLITE_ENTRY, target)
}

/// Our tables, parents before children (by their foreign keys).
fn pg_tables(c: &mut crate::store::PgConn) -> Result<Vec<String>, String> {
    let tables: Vec<One> = diesel::sql_query(format!(
        "SELECT tablename::text AS value FROM pg_tables WHERE schemaname = current_schema() AND tablename <> '{MIGRATIONS_TABLE}' ORDER BY 1"
    ))
    .load(c)
    .map_err(|e| e.to_string())?;
    let edges: Vec<Edge> = diesel::sql_query(
        "SELECT cl.relname::text AS child, pa.relname::text AS parent FROM pg_constraint k \
         JOIN pg_class cl ON cl.oid = k.conrelid JOIN pg_class pa ON pa.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .load(c)
    .map_err(|e| e.to_string())?;
    let mut parents: BTreeMap<String, BTreeSet<String>> =
        tables.iter().map(|t| (t.value.clone(), BTreeSet::new())).collect();
    for e in edges.into_iter().filter(|e| e.child != e.parent) {
        parents.entry(e.child).or_default().insert(e.parent);
    }
    let mut ordered = Vec::new();
    while !parents.is_empty() {
        let ready: Vec<String> = parents
            .iter()
            .filter(|(_, ps)| ps.iter().all(|p| !parents.contains_key(p)))
            .map(|(t, _)| t.clone())
            .collect();
        if ready.is_empty() {
            return Err(format!("the tables' foreign keys form a cycle: {:?}", parents.keys()));
        }
        for t in ready {
            parents.remove(&t);
            ordered.push(t);
        }
    }
    Ok(ordered)
}

/// Writes every table's rows into the backup from one snapshot of the database.
pub fn snapshot_postgres(conn: &mut Conn, writer: &mut Writer) -> Result<Snapshot, String> {
    conn.transaction(|conn| -> Result<Snapshot, Failed> {
        let Db::Pg(c) = conn.db() else { return Err(Failed("not a PostgreSQL database".into())) };
        c.batch_execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").map_err(|e| e.to_string())?;
        let version: One = diesel::sql_query(format!("SELECT MAX(version)::text AS value FROM {MIGRATIONS_TABLE}"))
            .get_result(c)
            .map_err(|e| e.to_string())?;
        let head: Count = diesel::sql_query("SELECT seq AS n FROM audit_head WHERE id = 1")
            .get_result(c)
            .map_err(|e| e.to_string())?;
        for table in pg_tables(c)? {
            writer.add_with(&format!("{PG_PREFIX}{table}.jsonl"), |out| {
                let mut offset = 0;
                loop {
                    let rows: Vec<One> = diesel::sql_query(format!(
                        "SELECT row_to_json(t)::text AS value FROM {} t ORDER BY ctid LIMIT {PAGE} OFFSET {offset}",
                        quote(&table)
                    ))
                    .load(c)
                    .map_err(|e| format!("{table}: {e}"))?;
                    for row in &rows {
                        out.write_all(row.value.as_bytes()).map_err(|e| e.to_string())?;
                        out.write_all(b"\n").map_err(|e| e.to_string())?;
                    }
                    if (rows.len() as i64) < PAGE {
                        return Ok(());
                    }
                    offset += PAGE;
                }
            })?;
        }
        Ok(Snapshot { schema_version: version.value, audit_head_seq: head.n })
    })
    .map_err(|f| f.0)
}

/// Fills an empty database (its schema at the backup's version) with the backup's rows, in one
/// transaction.
pub fn restore_postgres(conn: &mut Conn, reader: &mut Reader) -> Result<usize, String> {
    conn.transaction(|conn| -> Result<usize, Failed> {
        let Db::Pg(c) = conn.db() else { return Err(Failed("not a PostgreSQL database".into())) };
        for table in ["users", "audit_events"] {
            let n: Count = diesel::sql_query(format!("SELECT count(*) AS n FROM {table}"))
                .get_result(c)
                .map_err(|e| e.to_string())?;
            if n.n > 0 {
                return Err(Failed(format!(
                    "the database already holds an Ayush installation ({table} has rows): restore into an empty database"
                )));
            }
        }
        let tables = pg_tables(c)?;
        let in_backup: BTreeSet<String> = reader
            .names()
            .filter_map(|n| n.strip_prefix(PG_PREFIX)?.strip_suffix(".jsonl").map(str::to_string))
            .collect();
        if let Some(missing) = tables.iter().find(|t| !in_backup.contains(*t)) {
            return Err(Failed(format!(
                "the backup has no rows for table {missing}: it was not taken at this schema"
            )));
        }
        // Rows the migrations seeded (the audit head, defaults) give way to the backup's.
        for table in tables.iter().rev() {
            c.batch_execute(&format!("DELETE FROM {}", quote(table))).map_err(|e| format!("{table}: {e}"))?;
        }
        let mut rows = 0;
        for table in &tables {
            let insert = format!(
                "INSERT INTO {0} SELECT * FROM json_populate_recordset(NULL::{0}, $1::json)",
                quote(table)
            );
            rows += reader.with_entry(&format!("{PG_PREFIX}{table}.jsonl"), |input| {
                let mut batch = Vec::new();
                let mut count = 0;
                let flush = |batch: &mut Vec<String>, c: &mut crate::store::PgConn| -> Result<(), String> {
                    if batch.is_empty() {
                        return Ok(());
                    }
                    let json = format!("[{}]", batch.join(","));
                    diesel::sql_query(&insert)
                        .bind::<Text, _>(json)
                        .execute(c)
                        .map_err(|e| format!("{table}: {e}"))?;
                    batch.clear();
                    Ok(())
                };
                for line in std::io::BufReader::new(input).lines() {
                    let line = line.map_err(|e| format!("{table}: {e}"))?;
                    if line.is_empty() {
                        continue;
                    }
                    batch.push(line);
                    count += 1;
                    if batch.len() >= 500 {
                        flush(&mut batch, c)?;
                    }
                }
                flush(&mut batch, c)?;
                Ok(count)
            })?;
        }
        // Sequences continue after the restored ids.
        let serials: Vec<Edge> = diesel::sql_query(
            "SELECT table_name::text AS child, column_name::text AS parent FROM information_schema.columns \
             WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'",
        )
        .load(c)
        .map_err(|e| e.to_string())?;
        for Edge { child: table, parent: column } in serials {
            c.batch_execute(&format!(
                "SELECT setval(pg_get_serial_sequence('{0}', '{1}'), COALESCE((SELECT MAX({2}) FROM {3}), 0) + 1, false)",
                quote(&table).replace('\'', "''"),
                column.replace('\'', "''"),
                quote(&column),
                quote(&table)
            ))
            .map_err(|e| format!("{table}.{column}: {e}"))?;
        }
        Ok(rows)
    })
    .map_err(|f| f.0)
}
