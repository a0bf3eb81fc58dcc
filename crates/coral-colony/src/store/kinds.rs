//! The colony's embedded-store values for each kind of column a row
//! family's declaration names (`coral_model::catalogue`'s kinds):
//! [`arrow!`] builds a kind's Arrow array from the fields of a page's rows.
//! Code generated from a family's declaration uses only these.

/// The Arrow array of kind `$kind` from `$values`, an iterator over
/// references to the fields.
macro_rules! arrow {
    (Text, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::StringArray::from_iter_values(
            $values,
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (I64, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::Int64Array::from_iter_values(
            $values.copied(),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (U64, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::UInt64Array::from_iter_values(
            $values.copied(),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (F64, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::Float64Array::from_iter_values(
            $values.copied(),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (Bool, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::BooleanArray::from_iter(
            $values.map(|v| Some(*v)),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (Code, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::Int32Array::from_iter_values(
            $values.map(|v| *v as i32),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (OptI32, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::Int32Array::from_iter(
            $values.copied(),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (ZeroNull, $values:expr) => {
        ::std::sync::Arc::new(::duckdb::arrow::array::Int32Array::from_iter(
            $values.map(|v| (*v != 0).then_some(*v)),
        )) as ::duckdb::arrow::array::ArrayRef
    };
    (Nanos, $values:expr) => {
        ::std::sync::Arc::new(
            ::duckdb::arrow::array::TimestampMicrosecondArray::from_iter_values(
                $values.map(|v| *v / 1_000),
            ),
        ) as ::duckdb::arrow::array::ArrayRef
    };
    (Secs, $values:expr) => {
        ::std::sync::Arc::new(
            ::duckdb::arrow::array::TimestampMicrosecondArray::from_iter_values(
                $values.map(|v| *v * 1_000_000),
            ),
        ) as ::duckdb::arrow::array::ArrayRef
    };
}
