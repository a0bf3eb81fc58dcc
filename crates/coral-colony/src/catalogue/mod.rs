//! The colony's stored tables, declared once.
//!
//! Each table is a list of columns with a logical type ([`Ty`]), the column
//! that dates its rows (retention, daily partitions) and the columns its
//! queries look rows up by. Each storage engine renders the same
//! declaration its own way: [`duckdb`] to the embedded store's DDL (the
//! tables `coral up` has always written), [`clickhouse`] to MergeTree tables
//! whose rows carry the key that makes a page stored twice count once
//! (agent, store session, seq_id). A column added here reaches both engines.

pub mod clickhouse;
pub mod duckdb;
mod tables;

pub use tables::{
    AGENTS, BEYLA_GRPC, BEYLA_HTTP, BEYLA_SQL, BEYLA_TRACES, CLICKHOUSE_ONLY, COLONIES, CURSORS,
    GAPS, HOST_METRICS, OTEL_OPERATIONS, OTEL_SPANS, TABLES, TRACE_SPANS,
};

/// A column's logical type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// UTF-8 text.
    Text,
    /// Unsigned 64-bit integer.
    U64,
    /// Signed 64-bit integer.
    I64,
    /// Signed 32-bit integer.
    I32,
    /// 64-bit float.
    F64,
    /// True or false.
    Bool,
    /// A point in time, microsecond precision.
    Timestamp,
    /// A duration sketch (`coral.common.v1.DurationSketch`): one encoded
    /// value in DuckDB; its bins as arrays in ClickHouse, so a query merges
    /// sketches with `sumMap`.
    Sketch,
    /// A Beyla latency histogram (`coral.common.v1.LatencyHistogram`): one
    /// encoded value in DuckDB; bounds and counts as arrays in ClickHouse.
    Histogram,
    /// A list of texts.
    TextList,
}

/// What a column is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Data every engine stores.
    Data,
    /// Computed from other columns when a row is written (a merged bucket's
    /// percentiles): kept where rows are merged in place, computed at read
    /// time where they are not.
    Derived,
    /// Book-keeping of rows merged in place (how many parts, when).
    Merge,
}

/// One column.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Its name.
    pub name: &'static str,
    /// Its logical type.
    pub ty: Ty,
    /// True when the column may hold no value.
    pub nullable: bool,
    /// A default for rows written before the column existed.
    pub default: Option<&'static str>,
    /// What it is for.
    pub role: Role,
}

/// How a table's rows are identified across engines.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Rows from an agent's store: in ClickHouse each carries the agent store
    /// session and the agent's seq_id, and (agent, session, seq_id, plus
    /// [`Table::part_key`]) identifies it.
    AgentRows,
    /// The colony's own records, one per [`Table::part_key`] (the newest
    /// version wins, by [`Table::version`]).
    Records,
}

/// One stored table.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The table's name.
    pub name: &'static str,
    /// Its columns, in the embedded store's order.
    pub columns: &'static [Column],
    /// The column that dates a row (retention, daily partitions), if any.
    pub time: Option<&'static str>,
    /// Columns queries look rows up by, leading the sort order.
    pub lookup: &'static [&'static str],
    /// Whether rows come from agents or are the colony's own.
    pub kind: Kind,
    /// Columns that, after the row key, tell rows apart: for agent rows,
    /// what distinguishes rows with one seq_id (an operation of a bucket);
    /// for records, the whole identity.
    pub part_key: &'static [&'static str],
    /// For records: the column whose greatest value is the current version.
    pub version: Option<&'static str>,
}

impl Table {
    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// A stored data column (shorthand for the declarations).
pub(crate) const fn col(name: &'static str, ty: Ty) -> Column {
    Column {
        name,
        ty,
        nullable: false,
        default: None,
        role: Role::Data,
    }
}

/// A column that may hold no value.
pub(crate) const fn null(name: &'static str, ty: Ty) -> Column {
    Column {
        nullable: true,
        ..col(name, ty)
    }
}

/// A derived column.
pub(crate) const fn derived(name: &'static str, ty: Ty) -> Column {
    Column {
        role: Role::Derived,
        ..col(name, ty)
    }
}

/// A merge book-keeping column.
pub(crate) const fn merge(name: &'static str, ty: Ty) -> Column {
    Column {
        role: Role::Merge,
        ..col(name, ty)
    }
}
