//! The embedded (DuckDB) rendering both the agent and the colony store
//! with: a column list in declared order (appenders write by position).

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
