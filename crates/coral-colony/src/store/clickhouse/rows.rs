//! Rows as ClickHouse stores them (RowBinary), one struct per catalogue
//! table, built from an agent's page; field order is the catalogue's column
//! order for ClickHouse (checked by a test).

use clickhouse::Row;
use coral_model::DurationSketch;
use coral_proto::common::{HostMetrics, OperationSummary, TelemetryBucket, TelemetrySpan};
use serde::{Deserialize, Serialize};

use crate::store::writer::AgentRecord;

/// The bins of a sketch as ClickHouse stores them.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Bins {
    pub accuracy: f64,
    pub zero: u64,
    pub index: Vec<i32>,
    pub count: Vec<u64>,
}

impl Bins {
    /// The sparse bins of `sketch` (zero counts left out).
    pub(crate) fn of(sketch: Option<&coral_proto::common::DurationSketch>) -> Bins {
        let Some(s) = sketch else {
            return Bins {
                accuracy: DurationSketch::new().relative_accuracy(),
                ..Bins::default()
            };
        };
        let (index, count) = s
            .bin_counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c != 0)
            .map(|(k, &c)| (s.offset + k as i32, c))
            .unzip();
        Bins {
            accuracy: s.relative_accuracy,
            zero: s.zero_count,
            index,
            count,
        }
    }

    /// The sketch these bins (sorted by index, as `sumMap` returns them)
    /// describe. Bins spanning more than a sketch holds are merged in
    /// pieces, so the lowest collapse as they would in [`DurationSketch::merge`].
    pub(crate) fn sketch(&self) -> Result<DurationSketch, coral_model::ModelError> {
        let piece = |index: &[i32], count: &[u64], zero: u64| {
            let offset = index.first().copied().unwrap_or_default();
            let mut dense = Vec::new();
            for (&i, &c) in index.iter().zip(count) {
                dense.resize((i - offset) as usize, 0);
                dense.push(c);
            }
            DurationSketch::from_proto(&coral_proto::common::DurationSketch {
                relative_accuracy: self.accuracy,
                zero_count: zero,
                offset,
                bin_counts: dense,
                min_indexable_ms: 0.0,
            })
        };
        let max_bins = DurationSketch::with_relative_accuracy(self.accuracy)?.max_bins() as i64;
        let mut merged: Option<DurationSketch> = None;
        let mut start = 0;
        while start < self.index.len() || merged.is_none() {
            let first = self.index.get(start).copied().unwrap_or_default() as i64;
            let end = start
                + self.index[start..]
                    .iter()
                    .take_while(|&&i| (i as i64) - first < max_bins)
                    .count();
            let zero = if merged.is_none() { self.zero } else { 0 };
            let part = piece(&self.index[start..end], &self.count[start..end], zero)?;
            match &mut merged {
                Some(m) => m.merge(&part)?,
                None => merged = Some(part),
            }
            start = end;
        }
        Ok(merged.unwrap_or_default())
    }
}

/// A bucket's and an operation's rows, from their declarations
/// ([`coral_model::bucket_columns`], [`coral_model::operation_columns`]):
/// the agent, session and seq_id (an operation's bucket's), for an
/// operation its bucket's key, the declared columns (not the percentiles:
/// ClickHouse computes them from the merged sketch), then the sketch's
/// bins.
macro_rules! bucket_row {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {
        bucket_row!(@ $message $row, [$($kc: $kk = $kf,)+ $($c: $k = $f,)+]);
    };
    (@ TelemetryBucket $row:ident, [$($c:ident: $k:ident = $f:ident,)+]) => {
        /// `otel_spans`: one part of a 1-minute bucket.
        #[derive(Debug, Clone, Row, Serialize, Deserialize)]
        pub(crate) struct $row {
            pub agent_id: String,
            pub session_id: String,
            pub seq_id: u64,
            $(pub $c: ch_ty!($k),)+
            pub sketch_accuracy: f64,
            pub sketch_zero: u64,
            pub sketch_index: Vec<i32>,
            pub sketch_count: Vec<u64>,
        }

        impl $row {
            pub(crate) fn new(agent_id: &str, session_id: &str, b: &TelemetryBucket) -> $row {
                let bins = Bins::of(b.sketch.as_ref());
                $row {
                    agent_id: agent_id.to_owned(),
                    session_id: session_id.to_owned(),
                    seq_id: b.seq_id,
                    $($c: ch!($k, b.$f),)+
                    sketch_accuracy: bins.accuracy,
                    sketch_zero: bins.zero,
                    sketch_index: bins.index,
                    sketch_count: bins.count,
                }
            }
        }
    };
    (@ OperationSummary $row:ident, [$($c:ident: $k:ident = $f:ident,)+]) => {
        /// `otel_operations`: one operation of one bucket part.
        #[derive(Debug, Clone, Row, Serialize, Deserialize)]
        pub(crate) struct $row {
            pub agent_id: String,
            pub session_id: String,
            pub seq_id: u64,
            pub bucket_time: i64,
            pub service_name: String,
            pub span_kind: String,
            $(pub $c: ch_ty!($k),)+
            pub sketch_accuracy: f64,
            pub sketch_zero: u64,
            pub sketch_index: Vec<i32>,
            pub sketch_count: Vec<u64>,
        }

        impl $row {
            pub(crate) fn new(
                agent_id: &str,
                session_id: &str,
                b: &TelemetryBucket,
                op: &OperationSummary,
            ) -> $row {
                let bins = Bins::of(op.sketch.as_ref());
                $row {
                    agent_id: agent_id.to_owned(),
                    session_id: session_id.to_owned(),
                    seq_id: b.seq_id,
                    bucket_time: ch!(Secs, b.bucket_time),
                    service_name: b.service_name.clone(),
                    span_kind: b.span_kind.clone(),
                    $($c: ch!($k, op.$f),)+
                    sketch_accuracy: bins.accuracy,
                    sketch_zero: bins.zero,
                    sketch_index: bins.index,
                    sketch_count: bins.count,
                }
            }
        }
    };
}

coral_model::bucket_columns!(bucket_row);
coral_model::operation_columns!(bucket_row);

// `trace_spans`: a kept span, from its declaration.
coral_model::kept_span_columns!(agent_row);

// `host_metrics`: a host sample, from its declaration.
coral_model::host_sample_columns!(agent_row);

/// `cursors`: one version of an (agent, stream) cursor.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct CursorRow {
    pub agent_id: String,
    pub stream: String,
    pub session_id: String,
    pub seq_id: u64,
    pub rows_received: u64,
    pub updated_at: i64,
    pub latest_seq_id: Option<u64>,
}

/// `gaps`: seq_ids an agent's store never delivered.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct GapRow {
    pub agent_id: String,
    pub stream: String,
    pub session_id: String,
    pub from_seq_id: u64,
    pub to_seq_id: u64,
    pub detected_at: i64,
    pub reason: String,
}

/// `agents`: one version of an agent's record.
#[derive(Debug, Clone, Row, Serialize, Deserialize)]
pub(crate) struct AgentRow {
    pub agent_id: String,
    pub endpoint: String,
    pub version: String,
    pub mode: String,
    pub capabilities: String,
    pub hostname: String,
    pub source: String,
    pub registered_at: i64,
    pub last_seen: i64,
}

impl AgentRow {
    pub(crate) fn new(r: &AgentRecord, now: i64) -> AgentRow {
        AgentRow {
            agent_id: r.agent_id.clone(),
            endpoint: r.endpoint.clone(),
            version: r.version.clone(),
            mode: r.mode.clone(),
            capabilities: r.capabilities.join(","),
            hostname: r.hostname.clone(),
            source: r.source.clone(),
            registered_at: r.registered_at_us,
            last_seen: now,
        }
    }

    pub(crate) fn into_record(self) -> AgentRecord {
        AgentRecord {
            agent_id: self.agent_id,
            endpoint: self.endpoint,
            version: self.version,
            mode: self.mode,
            capabilities: self
                .capabilities
                .split(',')
                .filter(|c| !c.is_empty())
                .map(str::to_owned)
                .collect(),
            hostname: self.hostname,
            source: self.source,
            registered_at_us: self.registered_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use clickhouse::Row;

    use super::*;
    use crate::catalogue::{self, clickhouse::column_names};

    fn names<T: Row>() -> Vec<String> {
        T::COLUMN_NAMES.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn each_row_is_its_tables_columns_in_order() {
        assert_eq!(names::<BucketRow>(), column_names(&catalogue::OTEL_SPANS));
        assert_eq!(
            names::<OperationRow>(),
            column_names(&catalogue::OTEL_OPERATIONS)
        );
        assert_eq!(names::<SpanRow>(), column_names(&catalogue::TRACE_SPANS));
        assert_eq!(names::<HostRow>(), column_names(&catalogue::HOST_METRICS));
        assert_eq!(names::<CursorRow>(), column_names(&catalogue::CURSORS));
        assert_eq!(names::<GapRow>(), column_names(&catalogue::GAPS));
        assert_eq!(names::<AgentRow>(), column_names(&catalogue::AGENTS));
    }

    #[test]
    fn bins_read_back_as_the_sketch_they_came_from() {
        let mut sketch = DurationSketch::new();
        for v in [0.0, 0.5, 3.0, 3.1, 250.0, 9_000.0] {
            sketch.add(v);
        }
        let bins = Bins::of(Some(&sketch.to_proto()));
        assert_eq!(bins.zero, 1);
        assert_eq!(bins.sketch().unwrap(), sketch);
        let empty = Bins::of(None).sketch().unwrap();
        assert!(empty.is_empty());
    }
}
