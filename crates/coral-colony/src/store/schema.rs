//! The colony database schema (documented in ARCHITECTURE.md, "Colony storage").
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

/// Idempotent DDL run at open.
pub const DDL: &str = r#"
CREATE TABLE IF NOT EXISTS coral_metadata (
    key   VARCHAR PRIMARY KEY,
    value VARCHAR NOT NULL
);

CREATE TABLE IF NOT EXISTS agents (
    agent_id      VARCHAR   NOT NULL,
    endpoint      VARCHAR   NOT NULL,
    version       VARCHAR   NOT NULL,
    mode          VARCHAR   NOT NULL,
    capabilities  VARCHAR   NOT NULL,
    hostname      VARCHAR   NOT NULL,
    source        VARCHAR   NOT NULL,
    registered_at TIMESTAMP NOT NULL,
    last_seen     TIMESTAMP
);

CREATE TABLE IF NOT EXISTS cursors (
    agent_id      VARCHAR   NOT NULL,
    stream        VARCHAR   NOT NULL,
    session_id    VARCHAR   NOT NULL,
    seq_id        UBIGINT   NOT NULL,
    rows_received UBIGINT   NOT NULL,
    updated_at    TIMESTAMP NOT NULL,
    latest_seq_id UBIGINT   DEFAULT 0
);

CREATE TABLE IF NOT EXISTS gaps (
    agent_id    VARCHAR   NOT NULL,
    stream      VARCHAR   NOT NULL,
    session_id  VARCHAR   NOT NULL,
    from_seq_id UBIGINT   NOT NULL,
    to_seq_id   UBIGINT   NOT NULL,
    detected_at TIMESTAMP NOT NULL,
    reason      VARCHAR   NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_spans (
    bucket_time   TIMESTAMP NOT NULL,
    agent_id      VARCHAR   NOT NULL,
    service_name  VARCHAR   NOT NULL,
    span_kind     VARCHAR   NOT NULL,
    p50_ms        DOUBLE    NOT NULL,
    p95_ms        DOUBLE    NOT NULL,
    p99_ms        DOUBLE    NOT NULL,
    error_count   BIGINT    NOT NULL,
    total_spans   BIGINT    NOT NULL,
    sample_traces VARCHAR[] NOT NULL,
    min_ms        DOUBLE    NOT NULL,
    max_ms        DOUBLE    NOT NULL,
    sum_ms        DOUBLE    NOT NULL,
    samples       VARCHAR   NOT NULL,
    sketch        BLOB      NOT NULL,
    parts         INTEGER   NOT NULL,
    updated_at    TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS otel_operations (
    bucket_time  TIMESTAMP NOT NULL,
    agent_id     VARCHAR   NOT NULL,
    service_name VARCHAR   NOT NULL,
    span_kind    VARCHAR   NOT NULL,
    operation    VARCHAR   NOT NULL,
    total_spans  BIGINT    NOT NULL,
    error_count  BIGINT    NOT NULL,
    p50_ms       DOUBLE    NOT NULL,
    p95_ms       DOUBLE    NOT NULL,
    p99_ms       DOUBLE    NOT NULL,
    min_ms       DOUBLE    NOT NULL,
    max_ms       DOUBLE    NOT NULL,
    sum_ms       DOUBLE    NOT NULL,
    samples      VARCHAR   NOT NULL,
    sketch       BLOB      NOT NULL
);

CREATE TABLE IF NOT EXISTS trace_spans (
    agent_id         VARCHAR   NOT NULL,
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
    resource         VARCHAR   NOT NULL
);

CREATE TABLE IF NOT EXISTS host_metrics (
    agent_id             VARCHAR   NOT NULL,
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
"#;
