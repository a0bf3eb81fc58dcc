//! The agent database schema (documented in ARCHITECTURE.md, "Agent storage").
//!
//! Every bucket and kept span carries a `seq_id` from one sequence that the
//! single writer assigns and persists (`coral_metadata.next_seq_id`) in the same
//! transaction as the rows, so the sequence continues across restarts and a
//! reader never sees a later id committed before an earlier one.

/// Bumped when the schema changes; [`super::migrate`] upgrades older files.
///
/// - `1`: each kept span held its resource's JSON (`otel_spans_local.resource`).
/// - `2`: resources are stored once in `otel_resources_local` and kept spans
///   refer to them by `resource_id`.
pub const SCHEMA_VERSION: &str = "2";

/// The columns of `otel_spans_local`, shared by [`DDL`] and the migration
/// from version 1 ([`super::migrate`]).
macro_rules! spans_columns {
    () => {
        "
    seq_id           UBIGINT   NOT NULL,
    trace_id         VARCHAR   NOT NULL,
    span_id          VARCHAR   NOT NULL,
    parent_span_id   VARCHAR   NOT NULL,
    service_name     VARCHAR   NOT NULL,
    span_name        VARCHAR   NOT NULL,
    span_kind        VARCHAR   NOT NULL,
    start_time       TIMESTAMP NOT NULL,
    start_time_ns    BIGINT    NOT NULL,
    duration_us      BIGINT    NOT NULL,
    is_error         BOOLEAN   NOT NULL,
    status_code      VARCHAR   NOT NULL,
    status_message   VARCHAR   NOT NULL,
    http_status_code INTEGER,
    http_method      VARCHAR   NOT NULL,
    http_route       VARCHAR   NOT NULL,
    rpc_system       VARCHAR   NOT NULL,
    rpc_service      VARCHAR   NOT NULL,
    rpc_method       VARCHAR   NOT NULL,
    grpc_status_code INTEGER,
    db_system        VARCHAR   NOT NULL,
    db_operation     VARCHAR   NOT NULL,
    db_collection    VARCHAR   NOT NULL,
    keep_reason      VARCHAR   NOT NULL,
    attributes       VARCHAR   NOT NULL,
    resource_id      UBIGINT   NOT NULL
"
    };
}
pub(super) use spans_columns;

/// Idempotent DDL run at open.
pub const DDL: &str = concat!(
    r#"
CREATE TABLE IF NOT EXISTS coral_metadata (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_buckets_local (
    seq_id        UBIGINT   NOT NULL,
    bucket_time   TIMESTAMP NOT NULL,
    service_name  VARCHAR   NOT NULL,
    span_kind     VARCHAR   NOT NULL,
    total_spans   BIGINT    NOT NULL,
    error_count   BIGINT    NOT NULL,
    p50_ms        DOUBLE    NOT NULL,
    p95_ms        DOUBLE    NOT NULL,
    p99_ms        DOUBLE    NOT NULL,
    min_ms        DOUBLE    NOT NULL,
    max_ms        DOUBLE    NOT NULL,
    sum_ms        DOUBLE    NOT NULL,
    samples       VARCHAR   NOT NULL,
    sketch        BLOB      NOT NULL,
    flushed_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_operations_local (
    bucket_seq_id UBIGINT   NOT NULL,
    operation     VARCHAR   NOT NULL,
    total_spans   BIGINT    NOT NULL,
    error_count   BIGINT    NOT NULL,
    p50_ms        DOUBLE    NOT NULL,
    p95_ms        DOUBLE    NOT NULL,
    p99_ms        DOUBLE    NOT NULL,
    min_ms        DOUBLE    NOT NULL,
    max_ms        DOUBLE    NOT NULL,
    sum_ms        DOUBLE    NOT NULL,
    samples       VARCHAR   NOT NULL,
    sketch        BLOB      NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_spans_local (
"#,
    spans_columns!(),
    r#");

CREATE TABLE IF NOT EXISTS otel_resources_local (
    resource_id UBIGINT NOT NULL,
    resource    VARCHAR NOT NULL
);

-- With `agent.telemetry.ack: stored`, each commit appends the RED of the
-- requests it acknowledges here (an encoded TelemetryBucket per minute,
-- service and kind); when the minute is flushed, its bucket is written and
-- its rows here deleted in one transaction. Read back at start.
CREATE TABLE IF NOT EXISTS pending_red_local (
    minute BIGINT NOT NULL,
    bucket BLOB   NOT NULL
);

CREATE TABLE IF NOT EXISTS host_metrics_local (
    seq_id               UBIGINT   NOT NULL,
    bucket_time          TIMESTAMP NOT NULL,
    hostname             VARCHAR   NOT NULL,
    cpu_percent          DOUBLE    NOT NULL,
    memory_used_bytes    UBIGINT   NOT NULL,
    memory_total_bytes   UBIGINT   NOT NULL,
    net_rx_bytes_per_sec DOUBLE    NOT NULL,
    net_tx_bytes_per_sec DOUBLE    NOT NULL,
    load1                DOUBLE    NOT NULL,
    load5                DOUBLE    NOT NULL,
    load15               DOUBLE    NOT NULL,
    interval_seconds     DOUBLE    NOT NULL
);
"#
);
