//! How a message's field is kept in a column: the Rust types columns hold
//! ([`Stored`]) and the conversion of a field to and from its column's type
//! ([`Field`]). Code generated from a row family's declaration (see
//! [`crate::beyla_histogram_families`]) stores and reads every field through
//! these, whatever the engine.

use super::Ty;

/// A Rust type a column holds, and the column's logical type.
pub trait Stored {
    /// The column's logical type.
    const TY: Ty;
}

impl Stored for String {
    const TY: Ty = Ty::Text;
}

impl Stored for i32 {
    const TY: Ty = Ty::I32;
}

impl Stored for u64 {
    const TY: Ty = Ty::U64;
}

/// A message field kept in a column holding `C`.
pub trait Field<C> {
    /// The column's value for this field.
    fn to_column(&self) -> C;
    /// The field read back from its column.
    fn from_column(column: C) -> Self;
}

impl Field<String> for String {
    fn to_column(&self) -> String {
        self.clone()
    }

    fn from_column(column: String) -> Self {
        column
    }
}

impl Field<u64> for u64 {
    fn to_column(&self) -> u64 {
        *self
    }

    fn from_column(column: u64) -> Self {
        column
    }
}

/// Status codes travel unsigned and are stored as `INTEGER` (they are below
/// 1000; a value past `i32::MAX` would wrap, as it always has).
impl Field<i32> for u32 {
    fn to_column(&self) -> i32 {
        *self as i32
    }

    fn from_column(column: i32) -> Self {
        column as u32
    }
}
