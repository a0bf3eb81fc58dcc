//! Merging 1-minute buckets into `otel_spans` and `otel_operations`.
//!
//! A bucket may reach the colony in several parts (an agent flushes a late
//! span's minute again; a push and a pull overlap in time). Parts with the
//! same (bucket_time, agent_id, service_name, span_kind) merge: counts add,
//! sketches merge, percentiles are recomputed from the merged sketch, sample
//! traces are re-ranked and capped at 5. The row is never overwritten by a
//! later part.

use std::collections::{BTreeMap, HashMap};

use coral_model::catalogue::{OTEL_OPERATIONS, OTEL_SPANS};
use coral_model::{Bucket, BucketKey};
use coral_proto::common::{DurationSketch, OperationSummary, TelemetryBucket};
use duckdb::{Connection, Transaction, params};
use prost::Message;

use super::{StoreError, now_micros, ts_micros};

/// What merging a page's buckets did.
#[derive(Debug, Default)]
pub struct MergeResult {
    /// Buckets stored (each one a new row or merged into an existing one).
    pub stored: usize,
    /// Buckets refused as invalid.
    pub rejected: usize,
    /// The first refusal's reason.
    pub reject_reason: Option<String>,
    /// Positions in the input of the buckets refused.
    pub refused: Vec<usize>,
}

/// Merges `buckets` of `agent_id` into the summary tables inside `tx`.
pub fn merge_buckets(
    tx: &Transaction<'_>,
    agent_id: &str,
    buckets: &[&TelemetryBucket],
) -> Result<MergeResult, StoreError> {
    let mut result = MergeResult::default();
    let mut incoming: BTreeMap<BucketKey, (Bucket, i32)> = BTreeMap::new();
    // Positions of the parts merged under each key.
    let mut positions: HashMap<BucketKey, Vec<usize>> = HashMap::new();
    for (position, &proto) in buckets.iter().enumerate() {
        let bucket = match Bucket::from_proto(proto) {
            Ok(b) => b,
            Err(error) => {
                reject(
                    &mut result,
                    format!("bucket seq_id {}: {error}", proto.seq_id),
                );
                result.refused.push(position);
                continue;
            }
        };
        let key = bucket.key.clone();
        match incoming.get_mut(&key) {
            Some((existing, parts)) => match existing.merge(&bucket) {
                Ok(()) => *parts += 1,
                Err(error) => {
                    reject(
                        &mut result,
                        format!("bucket seq_id {}: {error}", proto.seq_id),
                    );
                    result.refused.push(position);
                    continue;
                }
            },
            None => {
                incoming.insert(key.clone(), (bucket, 1));
            }
        }
        positions.entry(key).or_default().push(position);
        result.stored += 1;
    }
    if incoming.is_empty() {
        return Ok(result);
    }
    let first = incoming.keys().map(|k| k.minute).min().unwrap_or_default();
    let last = incoming.keys().map(|k| k.minute).max().unwrap_or_default();
    let mut existing = load_existing(tx, agent_id, first, last)?;
    existing.retain(|key, _| incoming.contains_key(key));

    {
        let mut delete_bucket = tx.prepare_cached(
            "DELETE FROM otel_spans WHERE agent_id = ? AND bucket_time = ? AND service_name = ? AND span_kind = ?",
        )?;
        let mut delete_ops = tx.prepare_cached(
            "DELETE FROM otel_operations WHERE agent_id = ? AND bucket_time = ? AND service_name = ? AND span_kind = ?",
        )?;
        for key in existing.keys() {
            let time = ts_micros(key.minute * 1_000_000);
            delete_bucket.execute(params![agent_id, time, key.service, key.kind.as_str()])?;
            delete_ops.execute(params![agent_id, time, key.service, key.kind.as_str()])?;
        }
    }
    let now = ts_micros(now_micros());
    let mut bucket_app = tx.appender_with_columns(OTEL_SPANS.name, BUCKET_COLUMNS)?;
    let mut op_app = tx.appender_with_columns(OTEL_OPERATIONS.name, OPERATION_COLUMNS)?;
    for (key, (bucket, parts)) in incoming {
        let (bucket, parts) = match existing.remove(&key) {
            Some((mut old, old_parts)) => match old.merge(&bucket) {
                Ok(()) => (old, old_parts + parts),
                Err(error) => {
                    // The stored row stays as it was (re-appended below);
                    // the incompatible part is refused.
                    reject(&mut result, format!("bucket {key}: {error}"));
                    result.stored -= parts as usize;
                    result
                        .refused
                        .extend(positions.remove(&key).unwrap_or_default());
                    (old, old_parts)
                }
            },
            None => (bucket, parts),
        };
        let p = bucket.to_proto(agent_id, 0);
        append_bucket(&mut bucket_app, agent_id, &p, parts, &now)?;
        for op in &p.operations {
            append_operation(&mut op_app, agent_id, &p, op)?;
        }
    }
    bucket_app.flush()?;
    op_app.flush()?;
    Ok(result)
}

/// A bucket's and an operation's appends and reads, from their
/// declarations ([`coral_model::bucket_columns`],
/// [`coral_model::operation_columns`]): a bucket after its agent, with its
/// sample trace ids and merge book-keeping; an operation after its agent
/// and its bucket's key. Reads take what merging needs (no percentiles:
/// they are recomputed from the merged sketch).
macro_rules! bucket_family {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {
        bucket_family!(
            @ $message,
            [$($kc: $kk = $kf,)+ $($c: $k = $f,)+],
            [$($dc: $dk = $df,)+]
        );
    };
    (
        @ TelemetryBucket,
        [$($c:ident: $k:ident = $f:ident,)+],
        [$($dc:ident: $dk:ident = $df:ident,)+]
    ) => {
        /// The columns [`append_bucket`] appends.
        const BUCKET_COLUMNS: &[&str] = &[
            "agent_id",
            $(stringify!($c),)+
            $(stringify!($dc),)+
            "sketch",
            "sample_traces",
            "parts",
            "updated_at",
        ];

        /// What [`stored_bucket`] reads.
        const BUCKET_READ: &str = concat!(
            "parts", $(", ", coral_model::duckdb_select!($k, stringify!($c)),)+ ", sketch"
        );

        fn append_bucket(
            app: &mut duckdb::Appender<'_>,
            agent_id: &str,
            p: &TelemetryBucket,
            parts: i32,
            now: &duckdb::types::Value,
        ) -> Result<(), duckdb::Error> {
            let traces = duckdb::types::Value::List(
                p.sample_traces
                    .iter()
                    .map(|t| duckdb::types::Value::Text(t.clone()))
                    .collect(),
            );
            app.append_row(params![
                agent_id,
                $(coral_model::duckdb_param!($k, p.$f),)+
                $(coral_model::duckdb_param!($dk, p.$df),)+
                sketch_bytes(p.sketch.as_ref()),
                traces,
                parts,
                now,
            ])
        }

        /// A stored bucket (its sketch decoded) and its parts.
        fn stored_bucket(row: &duckdb::Row<'_>) -> Result<(TelemetryBucket, i32), StoreError> {
            let mut b = TelemetryBucket::default();
            let mut column = 0;
            $(coral_model::duckdb_set!($k, b.$f, row, { column += 1; column });)+
            let bytes: Vec<u8> = row.get(column + 1)?;
            b.sketch = Some(decode_sketch(&bytes)?);
            Ok((b, row.get(0)?))
        }
    };
    (
        @ OperationSummary,
        [$($c:ident: $k:ident = $f:ident,)+],
        [$($dc:ident: $dk:ident = $df:ident,)+]
    ) => {
        /// The columns [`append_operation`] appends.
        const OPERATION_COLUMNS: &[&str] = &[
            "agent_id",
            "bucket_time",
            "service_name",
            "span_kind",
            $(stringify!($c),)+
            $(stringify!($dc),)+
            "sketch",
        ];

        /// What [`stored_operation`] reads.
        const OPERATION_READ: &str = concat!(
            "epoch(bucket_time)::BIGINT, service_name, span_kind",
            $(", ", coral_model::duckdb_select!($k, stringify!($c)),)+
            ", sketch"
        );

        fn append_operation(
            app: &mut duckdb::Appender<'_>,
            agent_id: &str,
            p: &TelemetryBucket,
            op: &OperationSummary,
        ) -> Result<(), duckdb::Error> {
            app.append_row(params![
                agent_id,
                coral_model::duckdb_param!(Secs, p.bucket_time),
                p.service_name,
                p.span_kind,
                $(coral_model::duckdb_param!($k, op.$f),)+
                $(coral_model::duckdb_param!($dk, op.$df),)+
                sketch_bytes(op.sketch.as_ref()),
            ])
        }

        /// A stored operation, its bucket's key and its encoded sketch
        /// (decoded once the bucket is known to be merged).
        fn stored_operation(
            row: &duckdb::Row<'_>,
        ) -> Result<((i64, String, String), OperationSummary, Vec<u8>), StoreError> {
            let mut op = OperationSummary::default();
            let mut column = 2;
            $(coral_model::duckdb_set!($k, op.$f, row, { column += 1; column });)+
            Ok(((row.get(0)?, row.get(1)?, row.get(2)?), op, row.get(column + 1)?))
        }
    };
}

coral_model::bucket_columns!(bucket_family);
coral_model::operation_columns!(bucket_family);

fn reject(result: &mut MergeResult, reason: String) {
    result.rejected += 1;
    result.reject_reason.get_or_insert(reason);
}

fn sketch_bytes(sketch: Option<&DurationSketch>) -> Vec<u8> {
    sketch.map(Message::encode_to_vec).unwrap_or_default()
}

fn decode_sketch(bytes: &[u8]) -> Result<DurationSketch, StoreError> {
    DurationSketch::decode(bytes).map_err(|e| StoreError::Corrupt {
        what: "sketch",
        detail: e.to_string(),
    })
}

/// Stored buckets of `agent_id` with minutes in `[first, last]`, with parts.
fn load_existing(
    conn: &Connection,
    agent_id: &str,
    first: i64,
    last: i64,
) -> Result<HashMap<BucketKey, (Bucket, i32)>, StoreError> {
    let (from, to) = (ts_micros(first * 1_000_000), ts_micros(last * 1_000_000));
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {BUCKET_READ} FROM {} WHERE agent_id = ? AND bucket_time BETWEEN ? AND ?",
        OTEL_SPANS.name
    ))?;
    let mut protos: HashMap<(i64, String, String), (TelemetryBucket, i32)> = HashMap::new();
    let mut rows = stmt.query(params![agent_id, from, to])?;
    while let Some(row) = rows.next()? {
        let (bucket, parts) = stored_bucket(row)?;
        let key = (
            bucket.bucket_time,
            bucket.service_name.clone(),
            bucket.span_kind.clone(),
        );
        protos.insert(key, (bucket, parts));
    }
    if protos.is_empty() {
        return Ok(HashMap::new());
    }
    let mut stmt = conn.prepare_cached(&format!(
        "SELECT {OPERATION_READ} FROM {} WHERE agent_id = ? AND bucket_time BETWEEN ? AND ?",
        OTEL_OPERATIONS.name
    ))?;
    let mut rows = stmt.query(params![agent_id, from, to])?;
    while let Some(row) = rows.next()? {
        let (key, mut op, sketch) = stored_operation(row)?;
        if let Some((bucket, _)) = protos.get_mut(&key) {
            op.sketch = Some(decode_sketch(&sketch)?);
            bucket.operations.push(op);
        }
    }
    protos
        .into_values()
        .map(|(proto, parts)| {
            let bucket = Bucket::from_proto(&proto).map_err(|e| StoreError::Corrupt {
                what: "bucket",
                detail: e.to_string(),
            })?;
            Ok((bucket.key.clone(), (bucket, parts)))
        })
        .collect()
}
