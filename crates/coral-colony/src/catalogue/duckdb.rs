//! The catalogue rendered for the embedded DuckDB store: every column, in
//! the declared order, rows merged in place (appenders name the columns
//! they write; a table written by an older version gets the columns it
//! lacks at its end, `store::schema::add_missing_columns`).

use super::{TABLES, Table, duckdb_columns};

/// `CREATE TABLE IF NOT EXISTS` for `table`.
pub fn create(table: &Table) -> String {
    format!(
        "CREATE TABLE IF NOT EXISTS {} (\n{}\n);\n",
        table.name,
        duckdb_columns(table.columns)
    )
}

/// The DDL of every table (idempotent).
pub fn ddl() -> String {
    TABLES.iter().map(create).collect()
}

#[cfg(test)]
mod tests {
    use duckdb::Connection;

    fn columns(conn: &Connection) -> Vec<(String, String, String, String, Option<String>)> {
        let mut stmt = conn
            .prepare(
                "SELECT table_name, column_name, data_type, is_nullable, column_default \
                 FROM information_schema.columns ORDER BY table_name, ordinal_position",
            )
            .unwrap();
        stmt.query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
    }

    fn written() -> Connection {
        let written = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/colony-schema-v2.sql"
        ))
        .unwrap();
        let before = Connection::open_in_memory().unwrap();
        before.execute_batch(&written).unwrap();
        before
    }

    fn rendered() -> Connection {
        let now = Connection::open_in_memory().unwrap();
        now.execute_batch(&crate::store::schema::ddl()).unwrap();
        now
    }

    /// Every column colonies have written is still declared, with its type,
    /// nullability and default: files on disk stay readable and writable.
    #[test]
    fn every_column_colonies_have_written_is_declared_as_it_was() {
        let (before, now) = (columns(&written()), columns(&rendered()));
        assert!(before.len() > 100, "the fixture declares every table");
        for w in &before {
            let r = now
                .iter()
                .find(|r| (&r.0, &r.1) == (&w.0, &w.1))
                .unwrap_or_else(|| panic!("{}.{} is on disk but no longer declared", w.0, w.1));
            assert_eq!(r, w, "{}.{} changed", w.0, w.1);
        }
    }

    /// A file written before columns were declared gets them at open: its
    /// tables then hold exactly the declared columns, of their types.
    #[test]
    fn an_older_file_gets_every_declared_column() {
        let before = written();
        before
            .execute_batch(
                "ALTER TABLE otel_spans DROP COLUMN samples;
                 ALTER TABLE trace_spans DROP COLUMN http_route;
                 ALTER TABLE cursors DROP COLUMN latest_seq_id;
                 ALTER TABLE beyla_sql_metrics DROP COLUMN error_count;",
            )
            .unwrap();
        let added = crate::store::schema::add_missing_columns(&before).unwrap();
        assert_eq!(
            added,
            [
                "cursors.latest_seq_id",
                "otel_spans.samples",
                "trace_spans.http_route",
                "beyla_sql_metrics.error_count"
            ]
        );
        let typed = |c: &Connection| {
            let mut all: Vec<(String, String, String)> = columns(c)
                .into_iter()
                .map(|(t, n, ty, _, _)| (t, n, ty))
                .collect();
            all.sort();
            all
        };
        assert_eq!(typed(&before), typed(&rendered()));
        assert!(
            crate::store::schema::add_missing_columns(&before)
                .unwrap()
                .is_empty()
        );
    }
}
