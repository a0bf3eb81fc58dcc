//! Shorthand for the declarations, and each side's columns taken from a
//! row family's declared ones at compile time.

use super::{Column, Role, Side, Ty};

/// A stored data column on both sides.
pub(super) const fn col(name: &'static str, ty: Ty) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        default: None,
        role: Role::Data,
        side: Side::Both,
    }
}

/// A column that may hold no value.
pub(super) const fn null(name: &'static str, ty: Ty) -> Column {
    Column {
        nullable: true,
        ..col(name, ty)
    }
}

/// A derived column.
pub(super) const fn derived(name: &'static str, ty: Ty) -> Column {
    Column {
        role: Role::Derived,
        ..col(name, ty)
    }
}

/// A merge book-keeping column.
pub(super) const fn merge(name: &'static str, ty: Ty) -> Column {
    Column {
        role: Role::Merge,
        ..col(name, ty)
    }
}

/// `column`, in the agent's table only.
pub(super) const fn agent_only(column: Column) -> Column {
    Column {
        side: Side::Agent,
        ..column
    }
}

/// `column`, in the colony's table only.
pub(super) const fn colony_only(column: Column) -> Column {
    Column {
        side: Side::Colony,
        ..column
    }
}

/// How many of `columns` the table of `side` holds.
pub(super) const fn count(columns: &[Column], side: Side) -> usize {
    let (mut n, mut i) = (0, 0);
    while i < columns.len() {
        if columns[i].side.holds(side) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The `N` columns of `columns` the table of `side` holds, in order.
pub(super) const fn project<const N: usize>(columns: &[Column], side: Side) -> [Column; N] {
    let mut out = [col("", Ty::Text); N];
    let (mut i, mut j) = (0, 0);
    while i < columns.len() {
        if columns[i].side.holds(side) {
            out[j] = columns[i];
            j += 1;
        }
        i += 1;
    }
    assert!(j == N, "the count and the projection disagree");
    out
}

/// The columns of a declared list (a `const` item) that the table of a
/// side holds, as a `&'static [Column]`.
macro_rules! side {
    ($side:expr, $columns:expr) => {
        &const {
            $crate::catalogue::columns::project::<
                { $crate::catalogue::columns::count($columns, $side) },
            >($columns, $side)
        }
    };
}
