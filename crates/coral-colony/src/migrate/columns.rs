//! The columns of one chunk DuckDB streamed, by name and type: each cast to
//! the Arrow type its catalogue type reads as (so the conversions do not
//! depend on how DuckDB hands a type to Arrow), and the rowid and agent of
//! each row for errors that name it.

use std::path::Path;

use duckdb::arrow::array::{
    Array, ArrayRef, AsArray, BinaryArray, BooleanArray, Float64Array, Int32Array, Int64Array,
    PrimitiveArray, StringArray, UInt64Array,
};
use duckdb::arrow::compute::cast;
use duckdb::arrow::datatypes::{
    ArrowPrimitiveType, DataType, Float64Type, Int32Type, Int64Type, UInt64Type,
};
use duckdb::arrow::record_batch::RecordBatch;

use super::MigrateError;
use crate::catalogue::Table;

/// A chunk of one table's rows.
pub(crate) struct Columns<'a> {
    table: &'static Table,
    path: &'a Path,
    batch: &'a RecordBatch,
    rowids: Int64Array,
}

impl<'a> Columns<'a> {
    /// The chunk `batch` of `table`, read from `path`.
    pub fn new(
        table: &'static Table,
        path: &'a Path,
        batch: &'a RecordBatch,
    ) -> Result<Columns<'a>, MigrateError> {
        let mut columns = Columns {
            table,
            path,
            batch,
            rowids: Int64Array::from(Vec::<i64>::new()),
        };
        columns.rowids = columns.i64("rowid")?;
        Ok(columns)
    }

    /// Rows in the chunk.
    pub fn len(&self) -> usize {
        self.batch.num_rows()
    }

    /// The rowid of row `i`.
    pub fn rowid(&self, i: usize) -> i64 {
        self.rowids.value(i)
    }

    fn failed(&self, detail: String) -> MigrateError {
        MigrateError::Read {
            table: self.table.name,
            path: self.path.to_owned(),
            detail,
        }
    }

    fn column(&self, name: &str, ty: &DataType) -> Result<ArrayRef, MigrateError> {
        let column = self
            .batch
            .column_by_name(name)
            .ok_or_else(|| self.failed(format!("the read returned no column {name}")))?;
        cast(column, ty).map_err(|e| self.failed(format!("column {name}: {e}")))
    }

    fn wrong(&self, name: &str) -> MigrateError {
        self.failed(format!("column {name} did not read as its type"))
    }

    /// A text column.
    pub fn text(&self, name: &str) -> Result<StringArray, MigrateError> {
        let a = self.column(name, &DataType::Utf8)?;
        a.as_string_opt::<i32>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// A binary column.
    pub fn blob(&self, name: &str) -> Result<BinaryArray, MigrateError> {
        let a = self.column(name, &DataType::Binary)?;
        a.as_binary_opt::<i32>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// A signed 64-bit column (timestamps are read as microseconds).
    pub fn i64(&self, name: &str) -> Result<Int64Array, MigrateError> {
        let a = self.column(name, &DataType::Int64)?;
        a.as_primitive_opt::<Int64Type>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// An unsigned 64-bit column.
    pub fn u64(&self, name: &str) -> Result<UInt64Array, MigrateError> {
        let a = self.column(name, &DataType::UInt64)?;
        a.as_primitive_opt::<UInt64Type>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// A signed 32-bit column.
    pub fn i32(&self, name: &str) -> Result<Int32Array, MigrateError> {
        let a = self.column(name, &DataType::Int32)?;
        a.as_primitive_opt::<Int32Type>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// A 64-bit float column.
    pub fn f64(&self, name: &str) -> Result<Float64Array, MigrateError> {
        let a = self.column(name, &DataType::Float64)?;
        a.as_primitive_opt::<Float64Type>()
            .cloned()
            .ok_or_else(|| self.wrong(name))
    }

    /// A boolean column.
    pub fn bool(&self, name: &str) -> Result<BooleanArray, MigrateError> {
        let a = self.column(name, &DataType::Boolean)?;
        a.as_boolean_opt().cloned().ok_or_else(|| self.wrong(name))
    }

    /// The error for row `i`'s undecodable `what`, naming its agent.
    pub fn corrupt(
        &self,
        i: usize,
        agents: &StringArray,
        what: &'static str,
        detail: impl std::fmt::Display,
    ) -> MigrateError {
        MigrateError::Corrupt {
            table: self.table.name,
            what,
            agent: agents.value(i).to_owned(),
            rowid: self.rowid(i),
            detail: detail.to_string(),
        }
    }
}

/// Row `i` of a nullable column.
pub(crate) fn opt<T: ArrowPrimitiveType>(a: &PrimitiveArray<T>, i: usize) -> Option<T::Native> {
    (!a.is_null(i)).then(|| a.value(i))
}

/// The column `$name` of `$c`, of kind `$kind` (`coral_model::catalogue`'s
/// kinds), as its Arrow array.
macro_rules! column {
    (Text, $c:expr, $name:expr) => {
        $c.text($name)
    };
    (U64, $c:expr, $name:expr) => {
        $c.u64($name)
    };
    (F64, $c:expr, $name:expr) => {
        $c.f64($name)
    };
    (Bool, $c:expr, $name:expr) => {
        $c.bool($name)
    };
    (Code, $c:expr, $name:expr) => {
        $c.i32($name)
    };
    (OptI32, $c:expr, $name:expr) => {
        $c.i32($name)
    };
    (ZeroNull, $c:expr, $name:expr) => {
        $c.i32($name)
    };
    // JSON, kept as it is.
    (Samples, $c:expr, $name:expr) => {
        $c.text($name)
    };
    // I64, and timestamps (read as µs, as ClickHouse stores them).
    ($kind:ident, $c:expr, $name:expr) => {
        $c.i64($name)
    };
}

/// Row `$i` of `$array`, a column of kind `$kind`, as a ClickHouse row's
/// value (`ch_ty!`).
macro_rules! cell {
    (Text, $array:expr, $i:expr) => {
        $array.value($i).to_owned()
    };
    (Samples, $array:expr, $i:expr) => {
        $array.value($i).to_owned()
    };
    (Bool, $array:expr, $i:expr) => {
        u8::from($array.value($i))
    };
    (OptI32, $array:expr, $i:expr) => {
        $crate::migrate::columns::opt(&$array, $i)
    };
    (ZeroNull, $array:expr, $i:expr) => {
        $crate::migrate::columns::opt(&$array, $i)
    };
    ($kind:ident, $array:expr, $i:expr) => {
        $array.value($i)
    };
}

/// A ClickHouse row's value of kind `$kind` (`cell!`) as bytes of a
/// migrated row's key ([`super::convert::key`]): text as UTF-8, numbers
/// little-endian.
macro_rules! key_bytes {
    (Text, $v:expr) => {
        $v.as_bytes().to_vec()
    };
    ($kind:ident, $v:expr) => {
        $v.to_le_bytes().to_vec()
    };
}
