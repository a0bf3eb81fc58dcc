//! Upgrades agent databases written with an older schema version.
//!
//! Each step runs in one transaction with the version bump, so a crash
//! during an upgrade leaves the file as it was and the next start upgrades it
//! again. Data, `seq_id`s and the session id are kept: the colony's cursors
//! stay valid across an agent upgrade.

use coral_model::catalogue::{Column, TRACE_SPANS};
use duckdb::Connection;

use super::schema::local;

/// Version 1 → 2: kept spans refer to their resource by `resource_id`
/// instead of holding its JSON (`otel_resources_local`, created by the DDL
/// before this runs); the new table has the kept spans' columns as
/// [`super::schema`] renders them, of those the version-1 table has (rows
/// are copied by column name; columns declared since are added after the
/// upgrades, as for every file, by [`super::schema::add_missing_columns`]).
/// A resource's id is the `seq_id` of its first span, as the writer assigns
/// it ([`super::resources`]).
pub fn v1_to_v2(conn: &mut Connection) -> Result<(), duckdb::Error> {
    let tx = conn.transaction()?;
    let present: Vec<String> = tx
        .prepare(
            "SELECT column_name FROM information_schema.columns \
             WHERE table_name = 'otel_spans_local'",
        )?
        .query_map([], |r| r.get(0))?
        .collect::<Result<_, _>>()?;
    let columns: Vec<Column> = local(&TRACE_SPANS)
        .columns
        .iter()
        .filter(|c| c.name == "resource_id" || present.iter().any(|p| p == c.name))
        .copied()
        .collect();
    tx.execute_batch(&format!(
        "CREATE TABLE otel_spans_v2 (\n{}\n);
        INSERT INTO otel_resources_local
            SELECT MIN(seq_id), resource FROM otel_spans_local GROUP BY resource;
        INSERT INTO otel_spans_v2 BY NAME
            SELECT s.* EXCLUDE (resource), r.resource_id
            FROM otel_spans_local s JOIN otel_resources_local r ON r.resource = s.resource;
        DROP TABLE otel_spans_local;
        ALTER TABLE otel_spans_v2 RENAME TO otel_spans_local;
        UPDATE coral_metadata SET value = '2' WHERE key = 'schema_version';",
        coral_model::catalogue::duckdb_columns(&columns)
    ))?;
    tx.commit()
}
