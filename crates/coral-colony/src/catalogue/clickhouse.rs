//! The catalogue rendered for ClickHouse (SQL that runs on 18.16 and on
//! current servers).
//!
//! - Rows from agents are never merged in place: each part of a bucket is
//!   a row of its own, keyed by (agent, store session, seq_id), and queries
//!   merge them (counts add, sketch bins merge with `sumMap`). The key leads
//!   with the columns queries look rows up by; since a row's lookup columns
//!   are a function of its key, the sort key is unique per row, and a page
//!   stored twice (a colony killed between the insert and its cursor, two
//!   colonies during a hand-over) collapses in `ReplacingMergeTree` and is
//!   excluded at read time by `FINAL`.
//! - The colony's records (agents, cursors, gaps) are `ReplacingMergeTree`
//!   versioned by a timestamp: the newest version wins.
//! - Timestamps are Int64 microseconds since the Unix epoch (18.16 has no
//!   `DateTime64`); dated tables are partitioned by day, so retention drops
//!   whole partitions.
//! - Sketches are stored as their bins (`<col>_index`, `<col>_count`), the
//!   zero count and the relative accuracy; histograms as bounds and counts.
//! - With a cluster, each table is `<name>_local` on every shard (`ON
//!   CLUSTER`, which needs the servers' ZooKeeper) behind a `Distributed`
//!   table named as the table, sharded by agent id ([`shard_key`]), so one
//!   agent's rows and records live on one shard: a page stored twice
//!   collapses there, and `FINAL`, which each shard applies to its own
//!   rows, counts it once. Inserts wait until every shard has its rows.

use super::{CLICKHOUSE_ONLY, Column, Kind, Role, TABLES, Table, Ty};

/// Where the tables live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// The database.
    pub database: String,
    /// The cluster (`remote_servers`) name, when sharded.
    pub cluster: Option<String>,
}

/// The columns every agent row starts with.
pub const ROW_KEY: [&str; 3] = ["agent_id", "session_id", "seq_id"];

/// The ClickHouse columns of `column`, with their types.
pub fn columns_of(column: &Column, version: bool) -> Vec<(String, String)> {
    let scalar = |t: &str| {
        if column.nullable && !version {
            format!("Nullable({t})")
        } else {
            t.to_owned()
        }
    };
    let n = column.name;
    match column.ty {
        Ty::Text => vec![(n.into(), scalar("String"))],
        Ty::U64 => vec![(n.into(), scalar("UInt64"))],
        Ty::I64 | Ty::Timestamp => vec![(n.into(), scalar("Int64"))],
        Ty::I32 => vec![(n.into(), scalar("Int32"))],
        Ty::F64 => vec![(n.into(), scalar("Float64"))],
        Ty::Bool => vec![(n.into(), scalar("UInt8"))],
        Ty::TextList => vec![(n.into(), "Array(String)".into())],
        Ty::Sketch => vec![
            (format!("{n}_accuracy"), "Float64".into()),
            (format!("{n}_zero"), "UInt64".into()),
            (format!("{n}_index"), "Array(Int32)".into()),
            (format!("{n}_count"), "Array(UInt64)".into()),
        ],
        Ty::Histogram => vec![
            (format!("{n}_bounds"), "Array(Float64)".into()),
            (format!("{n}_counts"), "Array(UInt64)".into()),
        ],
    }
}

/// The table's ClickHouse columns, in order, with their types and defaults.
pub fn columns(table: &Table) -> Vec<(String, String, Option<&'static str>)> {
    let mut out: Vec<(String, String, Option<&'static str>)> = Vec::new();
    if table.kind == Kind::AgentRows {
        out.push(("agent_id".into(), "String".into(), None));
        out.push(("session_id".into(), "String".into(), None));
        out.push(("seq_id".into(), "UInt64".into(), None));
    }
    for c in table.columns {
        if table.kind == Kind::AgentRows && (c.role != Role::Data || ROW_KEY.contains(&c.name)) {
            continue;
        }
        let version = table.version == Some(c.name);
        for (name, ty) in columns_of(c, version) {
            out.push((name, ty, c.default));
        }
    }
    out
}

/// The column names of [`columns`].
pub fn column_names(table: &Table) -> Vec<String> {
    columns(table).into_iter().map(|(n, _, _)| n).collect()
}

/// The sort (and de-duplication) key.
pub fn order_by(table: &Table) -> Vec<&'static str> {
    let mut key: Vec<&'static str> = table.lookup.to_vec();
    if table.kind == Kind::AgentRows {
        key.extend(ROW_KEY);
    }
    key.extend(table.part_key);
    let mut seen = Vec::new();
    key.retain(|c| {
        let new = !seen.contains(c);
        seen.push(*c);
        new
    });
    key
}

/// How a cluster spreads `table`'s rows over its shards: by agent, so an
/// agent's rows, cursor and gaps live on one shard (its duplicates collapse
/// there, and `FINAL` on each shard excludes them); tables without an agent
/// by their identity, so every version of a record meets on one shard.
pub fn shard_key(table: &Table) -> String {
    let key: Vec<&str> = if table.column("agent_id").is_some() {
        vec!["agent_id"]
    } else {
        table.part_key.to_vec()
    };
    let key = key
        .iter()
        .map(|c| format!("`{c}`"))
        .collect::<Vec<_>>()
        .join(", ");
    format!("cityHash64({key})")
}

impl Target {
    /// `db.name`, quoted.
    pub fn qualified(&self, name: &str) -> String {
        format!("`{}`.`{name}`", self.database)
    }

    /// The name rows are written to and read from (the `Distributed` table
    /// in a cluster).
    pub fn table(&self, table: &Table) -> String {
        self.qualified(table.name)
    }

    fn on_cluster(&self) -> String {
        match &self.cluster {
            Some(c) => format!(" ON CLUSTER `{c}`"),
            None => String::new(),
        }
    }

    /// `CREATE DATABASE IF NOT EXISTS`.
    pub fn create_database(&self) -> String {
        format!(
            "CREATE DATABASE IF NOT EXISTS `{}`{}",
            self.database,
            self.on_cluster()
        )
    }

    /// The statements that create `table` (one, or the local table and its
    /// `Distributed` table in a cluster).
    pub fn create(&self, table: &Table) -> Vec<String> {
        let cols = columns(table)
            .into_iter()
            .map(|(name, ty, default)| match default {
                Some(d) => format!("    `{name}` {ty} DEFAULT {d}"),
                None => format!("    `{name}` {ty}"),
            })
            .collect::<Vec<_>>()
            .join(",\n");
        let engine = match table.version {
            Some(v) => format!("ReplacingMergeTree(`{v}`)"),
            None => "ReplacingMergeTree".to_owned(),
        };
        let partition = match table.time {
            Some(t) => format!(" PARTITION BY toYYYYMMDD(toDateTime(intDiv(`{t}`, 1000000)))"),
            None => String::new(),
        };
        let order = order_by(table)
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ");
        self.create_table(
            table.name,
            &format!("(\n{cols}\n) ENGINE = {engine}{partition} ORDER BY ({order})"),
            &shard_key(table),
        )
    }

    /// The statements that create the table `name` with `body` (columns,
    /// engine, order), on every shard behind a `Distributed` table sharded
    /// by `shard_key` in a cluster. For tables outside the catalogue (the
    /// migration's progress).
    pub fn create_table(&self, name: &str, body: &str, shard_key: &str) -> Vec<String> {
        let local = self.partitioned_name(name);
        let mut statements = vec![format!(
            "CREATE TABLE IF NOT EXISTS {}{} {body}",
            self.qualified(&local),
            self.on_cluster()
        )];
        if let Some(cluster) = &self.cluster {
            statements.push(format!(
                "CREATE TABLE IF NOT EXISTS {}{} AS {} ENGINE = Distributed(`{cluster}`, `{}`, `{local}`, {shard_key})",
                self.qualified(name),
                self.on_cluster(),
                self.qualified(&local),
                self.database,
            ));
        }
        statements
    }

    /// Every statement of the schema, in order.
    pub fn ddl(&self) -> Vec<String> {
        let mut all = vec![self.create_database()];
        for table in TABLES.iter().chain(CLICKHOUSE_ONLY) {
            all.extend(self.create(table));
        }
        all
    }

    /// The table whose partitions retention drops and whose rows mutations
    /// change (the local table on each shard in a cluster).
    pub fn partitioned(&self, table: &Table) -> String {
        self.partitioned_name(table.name)
    }

    fn partitioned_name(&self, name: &str) -> String {
        match &self.cluster {
            Some(_) => format!("{name}_local"),
            None => name.to_owned(),
        }
    }

    /// Where the server lists the tables' parts: `system.parts`, or every
    /// shard's in a cluster.
    pub fn parts(&self) -> String {
        match &self.cluster {
            Some(c) => format!("cluster('{c}', system, parts)"),
            None => "system.parts".to_owned(),
        }
    }

    /// The tables that hold `table`'s columns, each with the `ALTER TABLE`
    /// that changes it: the table (on every shard in a cluster) and, in a
    /// cluster, its `Distributed` table. Each is named as `system.columns`
    /// lists it.
    pub fn column_holders(&self, table: &Table) -> Vec<(String, String)> {
        let mut holders = vec![(self.partitioned(table), self.alter(table))];
        if self.cluster.is_some() {
            holders.push((
                table.name.to_owned(),
                format!(
                    "ALTER TABLE {}{}",
                    self.qualified(table.name),
                    self.on_cluster()
                ),
            ));
        }
        holders
    }

    /// `alter` (of [`column_holders`](Self::column_holders)) adding column
    /// `name` of ClickHouse type `ty`, written before the column was
    /// declared: existing rows read `default`, or the type's default value.
    pub fn add_column(
        alter: &str,
        name: &str,
        ty: &str,
        default: Option<&str>,
        if_not_exists: bool,
    ) -> String {
        let default = default.map(|d| format!(" DEFAULT {d}")).unwrap_or_default();
        let if_not_exists = if if_not_exists { "IF NOT EXISTS " } else { "" };
        format!("{alter} ADD COLUMN {if_not_exists}`{name}` {ty}{default}")
    }

    /// `ALTER TABLE` of [`partitioned`](Self::partitioned), on every shard
    /// in a cluster; the caller adds the action.
    pub fn alter(&self, table: &Table) -> String {
        format!(
            "ALTER TABLE {}{}",
            self.qualified(&self.partitioned(table)),
            self.on_cluster()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalogue::{OTEL_SPANS, TRACE_SPANS};

    #[test]
    fn agent_rows_are_keyed_by_agent_session_and_seq_id_after_their_lookup_columns() {
        assert_eq!(
            order_by(&OTEL_SPANS),
            [
                "service_name",
                "bucket_time",
                "agent_id",
                "session_id",
                "seq_id"
            ]
        );
        assert_eq!(
            order_by(&TRACE_SPANS),
            ["trace_id", "agent_id", "session_id", "seq_id"]
        );
        let names = column_names(&OTEL_SPANS);
        assert_eq!(&names[..3], ["agent_id", "session_id", "seq_id"]);
        assert!(names.contains(&"sketch_index".to_owned()));
        assert!(
            !names.iter().any(|n| n == "p99_ms" || n == "parts"),
            "derived and merge columns stay in the embedded store: {names:?}"
        );
    }

    #[test]
    fn records_without_an_agent_are_sharded_by_their_identity() {
        use crate::catalogue::{COLONIES, CURSORS};
        assert_eq!(shard_key(&CURSORS), "cityHash64(`agent_id`)");
        assert_eq!(shard_key(&COLONIES), "cityHash64(`colony_id`, `instance`)");
    }

    #[test]
    fn a_cluster_gets_local_tables_behind_distributed_ones() {
        let target = Target {
            database: "coral".into(),
            cluster: Some("two".into()),
        };
        let sql = target.create(&TRACE_SPANS);
        assert_eq!(sql.len(), 2);
        assert!(sql[0].starts_with(
            "CREATE TABLE IF NOT EXISTS `coral`.`trace_spans_local` ON CLUSTER `two`"
        ));
        assert!(
            sql[1].contains(
                "Distributed(`two`, `coral`, `trace_spans_local`, cityHash64(`agent_id`))"
            )
        );
    }
}
