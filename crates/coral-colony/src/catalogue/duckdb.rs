//! The catalogue rendered for the embedded DuckDB store: every column, in
//! the declared order (appenders write by position), rows merged in place.

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

    #[test]
    fn the_rendered_tables_are_the_ones_colonies_have_written() {
        let written = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/colony-schema-v2.sql"
        ))
        .unwrap();
        let before = Connection::open_in_memory().unwrap();
        before.execute_batch(&written).unwrap();
        let now = Connection::open_in_memory().unwrap();
        now.execute_batch(&crate::store::schema::ddl()).unwrap();
        let (before, now) = (columns(&before), columns(&now));
        assert!(before.len() > 100, "the fixture declares every table");
        assert_eq!(now, before);
    }
}
