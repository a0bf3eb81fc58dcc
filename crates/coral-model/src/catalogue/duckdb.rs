//! The embedded (DuckDB) rendering both the agent and the colony store
//! with: a column list in declared order, and the statements that add a
//! declared column to a table written before it existed.

use std::fmt::Write;

use super::{Column, Ty};

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

/// The column definitions of a DuckDB `CREATE TABLE` of `columns`, one per
/// line, in order.
pub fn duckdb_columns(columns: &[Column]) -> String {
    let mut sql = String::new();
    for (i, c) in columns.iter().enumerate() {
        if i > 0 {
            sql.push_str(",\n");
        }
        let _ = write!(sql, "    {} {}", c.name, sql_type(c.ty));
        if !c.nullable {
            sql.push_str(" NOT NULL");
        }
        if let Some(default) = c.default {
            let _ = write!(sql, " DEFAULT {default}");
        }
    }
    sql
}

/// A value for the rows a table holds when `ty`'s column is added to it.
fn zero(ty: Ty) -> &'static str {
    match ty {
        Ty::Text => "''",
        Ty::U64 | Ty::I64 | Ty::I32 | Ty::F64 => "0",
        Ty::Bool => "false",
        Ty::Timestamp => "'epoch'::TIMESTAMP",
        Ty::Sketch | Ty::Histogram => "''::BLOB",
        Ty::TextList => "[]",
    }
}

/// The columns of `columns` that `table` does not have (`present`, its
/// column names), each with the `ALTER TABLE` statement that adds it: a
/// column declared after the table was first written. Each is added at the table's end (rows are
/// appended by column name, so the position does not matter) with its
/// declared default, or, for a column that holds a value in every row, the
/// type's zero for the rows already there (`NOT NULL` cannot be added to
/// rows that exist). Such a column stays nullable with that default, where
/// a fresh table's is `NOT NULL` without one; the stores read both alike.
pub fn duckdb_add_columns(
    table: &str,
    columns: &[Column],
    present: &[String],
) -> Vec<(&'static str, String)> {
    columns
        .iter()
        .filter(|c| !present.iter().any(|p| p == c.name))
        .map(|c| {
            let default = c
                .default
                .or((!c.nullable).then(|| zero(c.ty)))
                .map(|d| format!(" DEFAULT {d}"))
                .unwrap_or_default();
            let statement = format!(
                "ALTER TABLE {table} ADD COLUMN {} {}{default}",
                c.name,
                sql_type(c.ty)
            );
            (c.name, statement)
        })
        .collect()
}
