//! Merging 1-minute buckets into `otel_spans` and `otel_operations`.
//!
//! A bucket may reach the colony in several parts (an agent flushes a late
//! span's minute again; a push and a pull overlap in time). Parts with the
//! same (bucket_time, agent_id, service_name, span_kind) merge: counts add,
//! sketches merge, percentiles are recomputed from the merged sketch, sample
//! traces are re-ranked and capped at 5. The row is never overwritten by a
//! later part.

use std::collections::{BTreeMap, HashMap};

use coral_model::{Bucket, BucketKey, samples_from_json, samples_to_json};
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
    let mut bucket_app = tx.appender("otel_spans")?;
    let mut op_app = tx.appender("otel_operations")?;
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
        let time = ts_micros(p.bucket_time * 1_000_000);
        let traces = duckdb::types::Value::List(
            p.sample_traces
                .iter()
                .map(|t| duckdb::types::Value::Text(t.clone()))
                .collect(),
        );
        bucket_app.append_row(params![
            time.clone(),
            agent_id,
            p.service_name,
            p.span_kind,
            p.p50_ms,
            p.p95_ms,
            p.p99_ms,
            p.error_count,
            p.total_spans,
            traces,
            p.min_ms,
            p.max_ms,
            p.sum_ms,
            samples_to_json(&p.samples),
            sketch_bytes(p.sketch.as_ref()),
            parts,
            now.clone(),
        ])?;
        for op in &p.operations {
            op_app.append_row(params![
                time.clone(),
                agent_id,
                p.service_name,
                p.span_kind,
                op.operation,
                op.total_spans,
                op.error_count,
                op.p50_ms,
                op.p95_ms,
                op.p99_ms,
                op.min_ms,
                op.max_ms,
                op.sum_ms,
                samples_to_json(&op.samples),
                sketch_bytes(op.sketch.as_ref()),
            ])?;
        }
    }
    bucket_app.flush()?;
    op_app.flush()?;
    Ok(result)
}

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
    let mut stmt = conn.prepare_cached(
        "SELECT epoch(bucket_time)::BIGINT, service_name, span_kind, total_spans, error_count, \
         min_ms, max_ms, sum_ms, samples, sketch, parts FROM otel_spans \
         WHERE agent_id = ? AND bucket_time BETWEEN ? AND ?",
    )?;
    let mut protos: HashMap<(i64, String, String), (TelemetryBucket, i32)> = HashMap::new();
    let mut rows = stmt.query(params![agent_id, from, to])?;
    while let Some(row) = rows.next()? {
        let bytes: Vec<u8> = row.get(9)?;
        let bucket = TelemetryBucket {
            bucket_time: row.get(0)?,
            service_name: row.get(1)?,
            span_kind: row.get(2)?,
            total_spans: row.get(3)?,
            error_count: row.get(4)?,
            min_ms: row.get(5)?,
            max_ms: row.get(6)?,
            sum_ms: row.get(7)?,
            samples: samples_from_json(&row.get::<_, String>(8)?),
            sketch: Some(decode_sketch(&bytes)?),
            ..Default::default()
        };
        let key = (
            bucket.bucket_time,
            bucket.service_name.clone(),
            bucket.span_kind.clone(),
        );
        protos.insert(key, (bucket, row.get(10)?));
    }
    if protos.is_empty() {
        return Ok(HashMap::new());
    }
    let mut stmt = conn.prepare_cached(
        "SELECT epoch(bucket_time)::BIGINT, service_name, span_kind, operation, total_spans, \
         error_count, min_ms, max_ms, sum_ms, samples, sketch FROM otel_operations \
         WHERE agent_id = ? AND bucket_time BETWEEN ? AND ?",
    )?;
    let mut rows = stmt.query(params![agent_id, from, to])?;
    while let Some(row) = rows.next()? {
        let key = (row.get(0)?, row.get(1)?, row.get(2)?);
        let Some((bucket, _)) = protos.get_mut(&key) else {
            continue;
        };
        let bytes: Vec<u8> = row.get(10)?;
        bucket.operations.push(OperationSummary {
            operation: row.get(3)?,
            total_spans: row.get(4)?,
            error_count: row.get(5)?,
            min_ms: row.get(6)?,
            max_ms: row.get(7)?,
            sum_ms: row.get(8)?,
            samples: samples_from_json(&row.get::<_, String>(9)?),
            sketch: Some(decode_sketch(&bytes)?),
            ..Default::default()
        });
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
