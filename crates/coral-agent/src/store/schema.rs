//! The agent database schema (documented in ARCHITECTURE.md, "Agent storage"):
//! the row families of [`coral_model::catalogue`] rendered as the agent's
//! `*_local` tables, and the tables only the agent has.
//!
//! Every bucket and kept span carries a `seq_id` from one sequence that the
//! single writer assigns and persists (`coral_metadata.next_seq_id`) in the same
//! transaction as the rows, so the sequence continues across restarts and a
//! reader never sees a later id committed before an earlier one.

use std::fmt::Write;

use coral_model::catalogue::{
    AgentTable, BEYLA_GRPC, BEYLA_HTTP, BEYLA_SQL, BEYLA_TRACES, HOST_METRICS, OTEL_OPERATIONS,
    OTEL_SPANS, TRACE_SPANS, Table, duckdb_add_columns, duckdb_columns,
};

/// Bumped when the schema changes; [`super::migrate`] upgrades older files.
///
/// - `1`: each kept span held its resource's JSON (`otel_spans_local.resource`).
/// - `2`: resources are stored once in `otel_resources_local` and kept spans
///   refer to them by `resource_id`.
pub const SCHEMA_VERSION: &str = "2";

/// The row families numbered by the telemetry sequence (`next_seq_id`):
/// buckets (their operations go with them), kept spans and host samples.
pub(crate) const TELEMETRY: [&Table; 4] =
    [&OTEL_SPANS, &OTEL_OPERATIONS, &TRACE_SPANS, &HOST_METRICS];

/// The row families numbered by the Beyla sequence (`next_beyla_seq_id`).
pub(crate) const BEYLA: [&Table; 4] = [&BEYLA_HTTP, &BEYLA_GRPC, &BEYLA_SQL, &BEYLA_TRACES];

/// The tables only the agent has: its metadata (schema version, session,
/// sequences), kept spans' resources, stored once, and the RED of requests
/// acknowledged as stored whose minute is not flushed yet.
const AGENT_ONLY: &str = r#"
CREATE TABLE IF NOT EXISTS coral_metadata (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_resources_local (
    resource_id UBIGINT NOT NULL,
    resource    VARCHAR NOT NULL
);

-- With `agent.telemetry.ack: stored`, each commit appends the RED of the
-- requests it acknowledges here (an encoded TelemetryBucket per minute,
-- service and kind); when the minute is flushed, its bucket is written and
-- its rows here deleted in one transaction. Read back at start.
CREATE TABLE IF NOT EXISTS pending_red_local (
    minute BIGINT NOT NULL,
    bucket BLOB   NOT NULL
);
"#;

/// The agent's table of `family` (every family of [`TELEMETRY`] and
/// [`BEYLA`] has one).
pub(crate) const fn local(family: &'static Table) -> &'static AgentTable {
    match &family.agent {
        Some(table) => table,
        None => panic!("a row family the agent stores has an agent table"),
    }
}

/// An Appender on `family`'s agent table naming its declared columns in
/// order: rows are appended by column name, so a column added to an older
/// file at its end ([`add_missing_columns`]) is filled all the same.
pub(crate) fn appender<'a>(
    conn: &'a duckdb::Connection,
    family: &'static Table,
) -> Result<duckdb::Appender<'a>, duckdb::Error> {
    let table = local(family);
    conn.appender_with_columns(table.name, &table.column_names())
}

/// The agent's table of buckets.
pub(crate) const BUCKETS: &str = local(&OTEL_SPANS).name;
/// The agent's table of buckets' operations.
pub(crate) const OPERATIONS: &str = local(&OTEL_OPERATIONS).name;
/// The agent's table of kept spans.
pub(crate) const KEPT_SPANS: &str = local(&TRACE_SPANS).name;
/// The agent's table of host samples.
pub(crate) const HOST_SAMPLES: &str = local(&HOST_METRICS).name;
/// The agent's table of Beyla spans.
pub(crate) const BEYLA_SPANS: &str = local(&BEYLA_TRACES).name;

/// Each of `families`' agent tables that dates its rows, with the column
/// that does (retention).
pub(crate) fn dated(families: &[&'static Table]) -> Vec<(&'static str, &'static str)> {
    families
        .iter()
        .filter_map(|f| Some((local(f).name, f.agent_time()?)))
        .collect()
}

/// Adds to each declared table the columns the catalogue declares that
/// the file lacks (a table written before they were declared); returns
/// them as `table.column`. Run at open, after the upgrades of
/// [`super::migrate`].
pub(crate) fn add_missing_columns(conn: &duckdb::Connection) -> Result<Vec<String>, duckdb::Error> {
    let mut added = Vec::new();
    for family in TELEMETRY.iter().chain(&BEYLA) {
        let table = local(family);
        let present: Vec<String> = conn
            .prepare_cached(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            )?
            .query_map([table.name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let missing = duckdb_add_columns(table.name, table.columns, &present);
        for (column, statement) in missing {
            conn.execute_batch(&statement)?;
            added.push(format!("{}.{column}", table.name));
        }
    }
    Ok(added)
}

/// Idempotent DDL run at open: every table of the agent database.
pub fn ddl() -> String {
    let mut sql = AGENT_ONLY.to_owned();
    for family in TELEMETRY.iter().chain(&BEYLA) {
        let table = local(family);
        let _ = write!(
            sql,
            "\nCREATE TABLE IF NOT EXISTS {} (\n{}\n);\n",
            table.name,
            duckdb_columns(table.columns)
        );
    }
    sql
}

#[cfg(test)]
mod tests {
    use duckdb::Connection;

    use super::*;

    type Row = (String, String, String, String, Option<String>, i64);

    fn columns(conn: &Connection) -> Vec<Row> {
        let mut stmt = conn
            .prepare(
                "SELECT table_name, column_name, data_type, is_nullable, column_default, \
                 ordinal_position::BIGINT \
                 FROM information_schema.columns ORDER BY table_name, ordinal_position",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
            ))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn constraints(conn: &Connection) -> Vec<(String, String, String)> {
        let mut stmt = conn
            .prepare(
                "SELECT table_name, constraint_type, constraint_column_names::VARCHAR AS names \
                 FROM duckdb_constraints() ORDER BY table_name, constraint_type, names",
            )
            .unwrap();
        stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    fn written() -> Connection {
        let before = Connection::open_in_memory().unwrap();
        before
            .execute_batch(include_str!("../../tests/fixtures/agent-schema-v2.sql"))
            .unwrap();
        before
    }

    fn rendered() -> Connection {
        let now = Connection::open_in_memory().unwrap();
        now.execute_batch(&ddl()).unwrap();
        now
    }

    /// Every column agents have written is still declared, with its type,
    /// nullability and default, and the constraints are the same: files on
    /// disk stay readable and writable.
    #[test]
    fn every_column_agents_have_written_is_declared_as_it_was() {
        let (before, now) = (written(), rendered());
        let (on_disk, declared) = (columns(&before), columns(&now));
        assert!(on_disk.len() > 100, "the fixture declares every table");
        for w in &on_disk {
            let r = declared
                .iter()
                .find(|r| (&r.0, &r.1) == (&w.0, &w.1))
                .unwrap_or_else(|| panic!("{}.{} is on disk but no longer declared", w.0, w.1));
            assert_eq!(
                (&r.2, &r.3, &r.4),
                (&w.2, &w.3, &w.4),
                "{}.{} changed",
                w.0,
                w.1
            );
        }
        assert_eq!(constraints(&now), constraints(&before));
    }

    /// A file written before columns were declared gets them at open: its
    /// tables then hold exactly the declared columns, of their types.
    #[test]
    fn an_older_file_gets_every_declared_column() {
        let before = written();
        before
            .execute_batch(
                "ALTER TABLE otel_buckets_local DROP COLUMN samples;
                 ALTER TABLE otel_spans_local DROP COLUMN http_route;
                 ALTER TABLE beyla_grpc_metrics_local DROP COLUMN grpc_method;",
            )
            .unwrap();
        let added = add_missing_columns(&before).unwrap();
        assert_eq!(
            added,
            [
                "otel_buckets_local.samples",
                "otel_spans_local.http_route",
                "beyla_grpc_metrics_local.grpc_method"
            ]
        );
        let typed = |c: &Connection| {
            let mut all: Vec<(String, String, String)> = columns(c)
                .into_iter()
                .map(|(t, n, ty, ..)| (t, n, ty))
                .collect();
            all.sort();
            all
        };
        assert_eq!(typed(&before), typed(&rendered()));
        assert!(add_missing_columns(&before).unwrap().is_empty());
    }

    #[test]
    fn retention_dates_every_table_but_operations_which_go_with_their_bucket() {
        assert_eq!(
            dated(&TELEMETRY),
            [
                ("otel_buckets_local", "bucket_time"),
                ("otel_spans_local", "start_time"),
                ("host_metrics_local", "bucket_time"),
            ]
        );
        assert_eq!(
            dated(&BEYLA),
            [
                ("beyla_http_metrics_local", "minute"),
                ("beyla_grpc_metrics_local", "minute"),
                ("beyla_sql_metrics_local", "minute"),
                ("beyla_traces_local", "start_time"),
            ]
        );
    }
}
