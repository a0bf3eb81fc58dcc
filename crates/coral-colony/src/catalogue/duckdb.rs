//! The catalogue rendered for the embedded DuckDB store: every column, in
//! the declared order (appenders write by position), rows merged in place.

use std::fmt::Write;

use super::{TABLES, Table, Ty};

fn sql_type(ty: Ty) -> &'static str {
    match ty {
        Ty::Text => "VARCHAR",
        Ty::U64 => "UBIGINT",
        Ty::I64 => "BIGINT",
        Ty::I32 => "INTEGER",
        Ty::F64 => "DOUBLE",
        Ty::Bool => "BOOLEAN",
        Ty::Timestamp => "TIMESTAMP",
        Ty::Sketch | Ty::Histogram => "BLOB",
        Ty::TextList => "VARCHAR[]",
    }
}

/// `CREATE TABLE IF NOT EXISTS` for `table`.
pub fn create(table: &Table) -> String {
    let mut sql = format!("CREATE TABLE IF NOT EXISTS {} (\n", table.name);
    for (i, c) in table.columns.iter().enumerate() {
        let _ = write!(sql, "    {} {}", c.name, sql_type(c.ty));
        if !c.nullable {
            sql.push_str(" NOT NULL");
        }
        if let Some(default) = c.default {
            let _ = write!(sql, " DEFAULT {default}");
        }
        sql.push_str(if i + 1 < table.columns.len() {
            ",\n"
        } else {
            "\n);\n"
        });
    }
    sql
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
