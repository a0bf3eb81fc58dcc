//! Every stored table, declared once.
//!
//! A row family (a 1-minute bucket, a bucket's operations, a kept span, a
//! host sample, a Beyla histogram family, a Beyla span) is one [`Table`]:
//! its columns with a logical type ([`Ty`]), the column that dates its rows
//! (retention, daily partitions) and the columns its queries look rows up
//! by. Agents store each family in a `*_local` table of their embedded
//! DuckDB ([`Table::agent`]); the colony stores it in a table of its own
//! ([`Table::name`], [`Table::columns`]), next to tables only the colony has
//! (its records of agents, cursors and gaps).
//!
//! The two sides differ in small, real ways that files on disk hold: agents
//! number rows with `seq_id`, the colony says which agent sent them
//! (`agent_id`); the agent keeps book-keeping the colony does not (when a
//! bucket was flushed, a kept span's resource by id), the colony keeps
//! derived and merge columns the agent does not. Each declared column says
//! which side it is on ([`Side`]), and each side's table is the declared
//! columns of that side, in the declared order.
//!
//! These are plain declarations: each storage engine renders them to its
//! own DDL (the agent's DuckDB store, the colony's DuckDB or ClickHouse
//! store), so a column added here reaches every engine.

#[macro_use]
mod columns;
#[macro_use]
mod kinds;
mod beyla;
mod duckdb;
mod otel;
mod records;

pub use beyla::{BEYLA_GRPC, BEYLA_HTTP, BEYLA_SQL, BEYLA_TRACES};
pub use duckdb::{duckdb_add_columns, duckdb_columns};
pub use otel::{HOST_METRICS, OTEL_OPERATIONS, OTEL_SPANS, TRACE_SPANS};
pub use records::{AGENT_POLLS, AGENTS, COLONIES, CURSORS, GAPS};

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

/// Which tables of a row family hold a column.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The agent's table and the colony's.
    Both,
    /// Only the agent's table.
    Agent,
    /// Only the colony's table.
    Colony,
}

impl Side {
    /// Whether a column declared on `self` is in the table of `side`.
    pub const fn holds(self, side: Side) -> bool {
        matches!(
            (self, side),
            (Side::Both, _) | (Side::Agent, Side::Agent) | (Side::Colony, Side::Colony)
        )
    }
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
    /// Which tables of its row family hold it.
    pub side: Side,
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

/// A row family's table in an agent's store.
#[derive(Debug, Clone, Copy)]
pub struct AgentTable {
    /// The table's name (`*_local`).
    pub name: &'static str,
    /// Its columns ([`Side::Both`] and [`Side::Agent`]), in the order
    /// appenders write them.
    pub columns: &'static [Column],
}

impl AgentTable {
    /// Its column names, in order (appenders name the columns they write).
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }
}

/// One stored table of the colony, with the agent's table of the same rows.
#[derive(Debug, Clone, Copy)]
pub struct Table {
    /// The colony's table name.
    pub name: &'static str,
    /// The colony's columns ([`Side::Both`] and [`Side::Colony`]), in its
    /// embedded store's order.
    pub columns: &'static [Column],
    /// The agent's table of these rows, for rows that come from agents.
    pub agent: Option<AgentTable>,
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
    /// The colony's column names, in order (appenders name the columns
    /// they write).
    pub fn column_names(&self) -> Vec<&'static str> {
        self.columns.iter().map(|c| c.name).collect()
    }

    /// The column named `name`.
    pub fn column(&self, name: &str) -> Option<&'static Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    /// The column that dates a row in the agent's table: [`Table::time`]
    /// when the agent's table has it.
    pub fn agent_time(&self) -> Option<&'static str> {
        let agent = self.agent?;
        self.time.filter(|t| agent.column(t).is_some())
    }
}

/// Tables only the ClickHouse store has (an embedded colony is alone).
pub const CLICKHOUSE_ONLY: &[Table] = &[COLONIES, AGENT_POLLS];

/// Every table of the colony, in the order they are created.
pub const TABLES: &[Table] = &[
    AGENTS,
    CURSORS,
    GAPS,
    OTEL_SPANS,
    OTEL_OPERATIONS,
    TRACE_SPANS,
    HOST_METRICS,
    BEYLA_HTTP,
    BEYLA_GRPC,
    BEYLA_SQL,
    BEYLA_TRACES,
];

#[cfg(test)]
mod tests;
