//! The declarations hold together: each side's table is well formed and a
//! column both sides hold is one column.

use super::*;

fn agent_rows() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().filter(|t| t.kind == Kind::AgentRows)
}

#[test]
fn rows_from_agents_have_an_agent_table_and_records_do_not() {
    for table in TABLES.iter().chain(CLICKHOUSE_ONLY) {
        match (table.kind, table.agent) {
            (Kind::AgentRows, Some(agent)) => {
                assert!(agent.name.ends_with("_local"), "{}", agent.name);
                let first = agent.columns[0].name;
                assert!(
                    first == "seq_id" || first == "bucket_seq_id",
                    "{} starts with {first}",
                    agent.name
                );
            }
            (Kind::Records, None) => {}
            (kind, agent) => panic!("{}: {kind:?} with {agent:?}", table.name),
        }
    }
}

#[test]
fn a_column_both_sides_hold_has_one_type() {
    for table in agent_rows() {
        let agent = table.agent.unwrap();
        for c in agent.columns {
            assert_ne!(c.side, Side::Colony, "{}.{}", agent.name, c.name);
            if let Some(theirs) = table.column(c.name) {
                assert_eq!(
                    (c.ty, c.nullable, c.default),
                    (theirs.ty, theirs.nullable, theirs.default),
                    "{} and {} disagree on {}",
                    agent.name,
                    table.name,
                    c.name
                );
            }
        }
        assert!(
            table.columns.iter().all(|c| c.side != Side::Agent),
            "{}",
            table.name
        );
        assert!(
            table.columns.iter().any(|c| c.name == "agent_id"),
            "{} says which agent sent a row",
            table.name
        );
    }
}

#[test]
fn no_table_names_a_column_twice() {
    let agents = agent_rows().map(|t| t.agent.unwrap());
    let sides = TABLES
        .iter()
        .chain(CLICKHOUSE_ONLY)
        .map(|t| (t.name, t.columns))
        .chain(agents.map(|a| (a.name, a.columns)));
    for (name, columns) in sides {
        for (i, c) in columns.iter().enumerate() {
            assert!(
                columns[..i].iter().all(|d| d.name != c.name),
                "{name}.{}",
                c.name
            );
        }
    }
}

#[test]
fn the_agent_dates_its_rows_where_it_has_the_time_column() {
    assert_eq!(OTEL_SPANS.agent_time(), Some("bucket_time"));
    assert_eq!(TRACE_SPANS.agent_time(), Some("start_time"));
    assert_eq!(BEYLA_HTTP.agent_time(), Some("minute"));
    assert_eq!(
        OTEL_OPERATIONS.agent_time(),
        None,
        "an operation goes with its bucket"
    );
    assert_eq!(AGENTS.agent_time(), None);
}

/// The columns a bucket-like family's declaration maps, with their types:
/// key, columns, derived, then the sketch.
macro_rules! declared_bucket_columns {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {{
        use super::columns::{col, null};
        let declared: Vec<Column> = vec![
            $(kind_column!(stringify!($kc), $kk),)+
            $(kind_column!(stringify!($c), $k),)+
            $(kind_column!(stringify!($dc), $dk),)+
            col("sketch", Ty::Sketch),
        ];
        let _ = null;
        (&$table, declared)
    }};
}

/// A bucket-like family's tables hold exactly its declared columns, of the
/// declared types, besides the columns each side keeps of its own.
#[test]
fn bucket_tables_hold_their_declared_columns() {
    let families = [
        crate::bucket_columns!(declared_bucket_columns),
        crate::operation_columns!(declared_bucket_columns),
    ];
    // Columns not mapped from the message, by side.
    let agent_own = ["seq_id", "bucket_seq_id", "flushed_at"];
    let colony_own = [
        "agent_id",
        "sample_traces",
        "parts",
        "updated_at",
        // An operation's bucket key.
        "bucket_time",
        "service_name",
        "span_kind",
    ];
    for (table, declared) in families {
        let agent = table.agent.unwrap();
        for (name, columns, own) in [
            (agent.name, agent.columns, &agent_own[..]),
            (table.name, table.columns, &colony_own[..]),
        ] {
            for d in &declared {
                let c = columns
                    .iter()
                    .find(|c| c.name == d.name)
                    .unwrap_or_else(|| panic!("{name} has no {}", d.name));
                assert_eq!((c.ty, c.nullable), (d.ty, d.nullable), "{name}.{}", d.name);
            }
            for c in columns {
                assert!(
                    declared.iter().any(|d| d.name == c.name) || own.contains(&c.name),
                    "{name}.{} is neither declared nor the table's own",
                    c.name
                );
            }
        }
    }
}
