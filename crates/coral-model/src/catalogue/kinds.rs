//! The kinds of column a row family's declaration maps a message field to
//! (see [`crate::kept_span_columns`]): each kind fixes the field's Rust
//! type, the column's logical type and how a value passes between them.
//! Every engine implements each kind once (its DuckDB value, Arrow array,
//! ClickHouse field and migration read), so the code generated for a
//! family from its declaration needs nothing per column. The DuckDB forms,
//! which the agent's and the colony's embedded stores share, are here:
//! [`crate::duckdb_param`], [`crate::duckdb_value`], [`crate::duckdb_set`]
//! and [`crate::duckdb_select`] (they expand in the crate that uses them,
//! which has the `duckdb` crate).
//!
//! | kind | field | column | stored |
//! |---|---|---|---|
//! | `Text` | `String` | [`Ty::Text`] | as is |
//! | `I64` | `i64` | [`Ty::I64`] | as is |
//! | `U64` | `u64` | [`Ty::U64`] | as is |
//! | `F64` | `f64` | [`Ty::F64`] | as is |
//! | `Bool` | `bool` | [`Ty::Bool`] | as is |
//! | `Code` | `u32` | [`Ty::I32`] | a status code, signed |
//! | `OptI32` | `Option<i32>` | nullable [`Ty::I32`] | none is NULL |
//! | `ZeroNull` | `i32` | nullable [`Ty::I32`] | 0 (not set) is NULL |
//! | `Nanos` | `i64` (Unix ns) | [`Ty::Timestamp`] | to µs; not read back (a field stored this way is stored whole in another column) |
//! | `Secs` | `i64` (Unix s) | [`Ty::Timestamp`] | to µs, read back as seconds |
//! | `Samples` | `Vec<Sample>` | [`Ty::Text`] | as JSON ([`crate::samples_to_json`]) |

#[allow(unused_imports)]
use super::Ty;

/// The [`super::Column`] named `$name` of kind `$kind`.
macro_rules! kind_column {
    ($name:expr, Text) => {
        col($name, Ty::Text)
    };
    ($name:expr, I64) => {
        col($name, Ty::I64)
    };
    ($name:expr, U64) => {
        col($name, Ty::U64)
    };
    ($name:expr, F64) => {
        col($name, Ty::F64)
    };
    ($name:expr, Bool) => {
        col($name, Ty::Bool)
    };
    ($name:expr, Code) => {
        col($name, Ty::I32)
    };
    ($name:expr, OptI32) => {
        null($name, Ty::I32)
    };
    ($name:expr, ZeroNull) => {
        null($name, Ty::I32)
    };
    ($name:expr, Nanos) => {
        col($name, Ty::Timestamp)
    };
    ($name:expr, Secs) => {
        col($name, Ty::Timestamp)
    };
    ($name:expr, Samples) => {
        col($name, Ty::Text)
    };
}

/// A message field (`$e`, a place) of kind `$kind` as a DuckDB Appender or
/// statement parameter.
#[macro_export]
macro_rules! duckdb_param {
    (Text, $e:expr) => {
        &$e
    };
    (Code, $e:expr) => {
        $e as i32
    };
    (ZeroNull, $e:expr) => {
        ($e != 0).then_some($e)
    };
    (Samples, $e:expr) => {
        $crate::samples_to_json(&$e)
    };
    (Nanos, $e:expr) => {
        ::duckdb::types::Value::Timestamp(::duckdb::types::TimeUnit::Microsecond, $e / 1_000)
    };
    (Secs, $e:expr) => {
        ::duckdb::types::Value::Timestamp(::duckdb::types::TimeUnit::Microsecond, $e * 1_000_000)
    };
    ($kind:ident, $e:expr) => {
        $e
    };
}

/// Sets the message field `$field` of kind `$kind` from column `$i` of the
/// DuckDB row `$row`, selected as [`crate::duckdb_select`] names it (in a
/// function returning `Result<_, duckdb::Error>`); a `Nanos` column is not
/// read back.
#[macro_export]
macro_rules! duckdb_set {
    (Nanos, $field:expr, $row:expr, $i:expr) => {{
        let _ = $i;
    }};
    (Code, $field:expr, $row:expr, $i:expr) => {
        $field = $row.get::<_, i32>($i)? as u32
    };
    (ZeroNull, $field:expr, $row:expr, $i:expr) => {
        $field = $row.get::<_, Option<i32>>($i)?.unwrap_or(0)
    };
    (Samples, $field:expr, $row:expr, $i:expr) => {
        $field = $crate::samples_from_json(&$row.get::<_, String>($i)?)
    };
    ($kind:ident, $field:expr, $row:expr, $i:expr) => {
        $field = $row.get($i)?
    };
}

/// The DuckDB select-list entry reading column `$name` of kind `$kind` back
/// for [`crate::duckdb_set`]: its name, for `Secs` its Unix seconds, and
/// for `Nanos` (not read back) `NULL`.
#[macro_export]
macro_rules! duckdb_select {
    (Secs, $name:expr) => {
        concat!("epoch(", $name, ")::BIGINT")
    };
    // Not read back: nothing is fetched, the position stays.
    (Nanos, $name:expr) => {
        "NULL"
    };
    ($kind:ident, $name:expr) => {
        $name
    };
}

/// A message field (`$e`, a place) of kind `$kind` as an owned DuckDB value
/// (`duckdb::types::Value`), for a key compared in SQL.
#[macro_export]
macro_rules! duckdb_value {
    (Text, $e:expr) => {
        ::duckdb::types::Value::Text($e.clone())
    };
    (I64, $e:expr) => {
        ::duckdb::types::Value::BigInt($e)
    };
    (U64, $e:expr) => {
        ::duckdb::types::Value::UBigInt($e)
    };
    (F64, $e:expr) => {
        ::duckdb::types::Value::Double($e)
    };
    (Bool, $e:expr) => {
        ::duckdb::types::Value::Boolean($e)
    };
    (Code, $e:expr) => {
        ::duckdb::types::Value::Int($e as i32)
    };
    (OptI32, $e:expr) => {
        $e.map_or(::duckdb::types::Value::Null, ::duckdb::types::Value::Int)
    };
    (ZeroNull, $e:expr) => {
        if $e != 0 {
            ::duckdb::types::Value::Int($e)
        } else {
            ::duckdb::types::Value::Null
        }
    };
    (Nanos, $e:expr) => {
        ::duckdb::types::Value::Timestamp(::duckdb::types::TimeUnit::Microsecond, $e / 1_000)
    };
    (Secs, $e:expr) => {
        ::duckdb::types::Value::Timestamp(::duckdb::types::TimeUnit::Microsecond, $e * 1_000_000)
    };
    (Samples, $e:expr) => {
        ::duckdb::types::Value::Text($crate::samples_to_json(&$e))
    };
}
