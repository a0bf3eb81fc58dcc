//! The colony database schema (documented in ARCHITECTURE.md, "Colony storage"),
//! rendered from [`crate::catalogue`].
//!
//! `otel_spans` is RFD 025's table of 1-minute summaries, one row per
//! (bucket_time, agent_id, service_name, span_kind); the serialized sketch is
//! kept so that a bucket arriving in parts merges instead of overwriting.
//! `cursors` holds, per (agent, stream), the agent's store session, the
//! highest seq_id stored here and the newest seq_id the agent reported
//! holding; it is updated in the same transaction as the rows it covers.

/// Bumped when the schema changes incompatibly. Version 2 added
/// `cursors.latest_seq_id`; [`MIGRATE_FROM_1`] brings a version 1 file up.
pub const SCHEMA_VERSION: &str = "2";

/// Upgrades a version 1 database, in one transaction when it is opened.
/// Besides adding `cursors.latest_seq_id`: colonies before pulled and pushed
/// rows shared a cursor kept a `push` cursor of its own, which becomes the
/// agent's `telemetry` cursor (the further one when an agent has both in the
/// same session, else the newer one).
pub const MIGRATE_FROM_1: &str = "
ALTER TABLE cursors ADD COLUMN IF NOT EXISTS latest_seq_id UBIGINT DEFAULT 0;
UPDATE cursors AS t SET seq_id = greatest(t.seq_id, p.seq_id),
    rows_received = t.rows_received + p.rows_received,
    updated_at = greatest(t.updated_at, p.updated_at)
FROM cursors AS p
WHERE t.stream = 'telemetry' AND p.stream = 'push'
  AND p.agent_id = t.agent_id AND p.session_id = t.session_id;
UPDATE cursors AS t SET session_id = p.session_id, seq_id = p.seq_id,
    rows_received = p.rows_received, updated_at = p.updated_at
FROM cursors AS p
WHERE t.stream = 'telemetry' AND p.stream = 'push'
  AND p.agent_id = t.agent_id AND p.session_id <> t.session_id
  AND p.updated_at > t.updated_at;
DELETE FROM cursors WHERE stream = 'push' AND agent_id IN
  (SELECT agent_id FROM cursors WHERE stream = 'telemetry');
UPDATE cursors SET stream = 'telemetry' WHERE stream = 'push';
UPDATE coral_metadata SET value = '2' WHERE key = 'schema_version';
";

/// The metadata table (schema version).
const METADATA: &str = "
CREATE TABLE IF NOT EXISTS coral_metadata (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);
";

/// Idempotent DDL run at open: the metadata table and every table of the
/// catalogue.
pub fn ddl() -> String {
    format!("{METADATA}{}", crate::catalogue::duckdb::ddl())
}

/// Adds to each table of the catalogue the columns it declares that the
/// file lacks (a table written before they were declared); returns them as
/// `table.column`. Run at open, after the upgrade from version 1.
pub fn add_missing_columns(conn: &duckdb::Connection) -> Result<Vec<String>, duckdb::Error> {
    let mut added = Vec::new();
    for table in crate::catalogue::TABLES {
        let present: Vec<String> = conn
            .prepare_cached(
                "SELECT column_name FROM information_schema.columns WHERE table_name = ?",
            )?
            .query_map([table.name], |r| r.get(0))?
            .collect::<Result<_, _>>()?;
        let missing =
            coral_model::catalogue::duckdb_add_columns(table.name, table.columns, &present);
        for (column, statement) in missing {
            conn.execute_batch(&statement)?;
            added.push(format!("{}.{column}", table.name));
        }
    }
    Ok(added)
}
