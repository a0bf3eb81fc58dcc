//! DuckDB rows to ClickHouse rows, one conversion per table, with the keys
//! the [module docs](super) describe: session [`SESSION`], and a seq_id from
//! the row's own DuckDB identity ([`key`]).

use coral_model::{DurationSketch, Histogram};

use super::MigrateError;
use super::SESSION;
use super::columns::{Columns, opt};
use crate::store::clickhouse::beyla::{Family, GrpcRow, HttpRow, Part, SqlRow};
use crate::store::clickhouse::rows::{
    AgentRow, Bins, BucketRow, CursorRow, GapRow, HostRow, OperationRow, SpanRow,
};

/// A ClickHouse row built from a DuckDB row of its table.
pub(crate) trait FromDuckDb: Sized + Send + 'static {
    /// One row per row of `c`, in order.
    fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError>;
}

/// A stable 63-bit hash (FNV-1a) of `parts`: the same parts give the same
/// seq_id in every run and every build.
pub(crate) fn key(parts: &[&[u8]]) -> u64 {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in parts {
        for &byte in *part {
            hash = (hash ^ u64::from(byte)).wrapping_mul(PRIME);
        }
        // 0xff never occurs in UTF-8: parts cannot run into each other.
        hash = (hash ^ 0xff).wrapping_mul(PRIME);
    }
    hash >> 1
}

/// The session of a migrated span: [`SESSION`] and the span's id, so that
/// two spans of one trace and agent that share a seq_id (from two agent
/// store sessions) stay two rows.
fn span_session(span_id: &str) -> String {
    format!("{SESSION}/{span_id}")
}

/// The bins of a stored sketch (an empty value is an empty sketch).
fn bins(bytes: &[u8]) -> Result<Bins, coral_model::ModelError> {
    if bytes.is_empty() {
        return Ok(Bins::of(None));
    }
    Ok(Bins::of(Some(&DurationSketch::decode(bytes)?.to_proto())))
}

/// A bucket's and an operation's conversions, from their declarations
/// ([`coral_model::bucket_columns`], [`coral_model::operation_columns`]):
/// the seq_id keyed by the bucket's minute, service and kind (an
/// operation's, its bucket's), the declared columns, the sketch's bins.
macro_rules! bucket_from_duckdb {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {
        bucket_from_duckdb!(@ $message $row, [$($kc: $kk = $kf,)+ $($c: $k = $f,)+]);
    };
    (@ TelemetryBucket $row:ident, [$($c:ident: $k:ident = $f:ident,)+]) => {
        bucket_from_duckdb!(@ $row, [], [$($c: $k = $f,)+]);
    };
    (@ OperationSummary $row:ident, [$($c:ident: $k:ident = $f:ident,)+]) => {
        bucket_from_duckdb!(
            @ $row,
            [bucket_time: Secs = bucket_time, service_name: Text = service_name,
             span_kind: Text = span_kind,],
            [$($c: $k = $f,)+]
        );
    };
    (
        @ $row:ident,
        [$($bc:ident: $bk:ident = $bf:ident,)*],
        [$($c:ident: $k:ident = $f:ident,)+]
    ) => {
        impl FromDuckDb for $row {
            fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
                let agent = c.text("agent_id")?;
                let (time, service, kind) =
                    (c.i64("bucket_time")?, c.text("service_name")?, c.text("span_kind")?);
                let sketch = c.blob("sketch")?;
                $(let $bc = column!($bk, c, stringify!($bc))?;)*
                $(let $c = column!($k, c, stringify!($c))?;)+
                (0..c.len())
                    .map(|i| {
                        let bins =
                            bins(sketch.value(i)).map_err(|e| c.corrupt(i, &agent, "sketch", e))?;
                        let (t, s, k) = (time.value(i), service.value(i), kind.value(i));
                        Ok($row {
                            agent_id: agent.value(i).to_owned(),
                            session_id: SESSION.to_owned(),
                            // An operation's seq_id is its bucket's.
                            seq_id: key(&[&t.to_le_bytes(), s.as_bytes(), k.as_bytes()]),
                            $($bc: cell!($bk, $bc, i),)*
                            $($c: cell!($k, $c, i),)+
                            sketch_accuracy: bins.accuracy,
                            sketch_zero: bins.zero,
                            sketch_index: bins.index,
                            sketch_count: bins.count,
                        })
                    })
                    .collect()
            }
        }
    };
}

coral_model::bucket_columns!(bucket_from_duckdb);
coral_model::operation_columns!(bucket_from_duckdb);

/// A span family's conversion, from its declaration
/// ([`coral_model::kept_span_columns`], [`coral_model::beyla_span_columns`]);
/// its session is the span's ([`span_session`]).
macro_rules! span_from_duckdb {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl FromDuckDb for $row {
            fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
                let (agent, seq, span) =
                    (c.text("agent_id")?, c.u64("seq_id")?, c.text("span_id")?);
                $(let $c = column!($k, c, stringify!($c))?;)+
                $(let $cc = column!($ck, c, stringify!($cc))?;)*
                Ok((0..c.len())
                    .map(|i| $row {
                        agent_id: agent.value(i).to_owned(),
                        session_id: span_session(span.value(i)),
                        seq_id: seq.value(i),
                        $($c: cell!($k, $c, i),)+
                        $($cc: cell!($ck, $cc, i),)*
                    })
                    .collect())
            }
        }
    };
}

coral_model::kept_span_columns!(span_from_duckdb);

/// The host sample's conversion, from its declaration
/// ([`coral_model::host_sample_columns`]).
macro_rules! host_from_duckdb {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl FromDuckDb for $row {
            fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
                let agent = c.text("agent_id")?;
                $(let $c = column!($k, c, stringify!($c))?;)+
                $(let $cc = column!($ck, c, stringify!($cc))?;)*
                Ok((0..c.len())
                    .map(|i| $row {
                        agent_id: agent.value(i).to_owned(),
                        session_id: SESSION.to_owned(),
                        // One sample per agent and minute: seq_id 0 keys it,
                        // and any sample a colony on ClickHouse stores later
                        // for the minute is newer (a higher seq_id), as it
                        // would replace it here.
                        seq_id: 0,
                        $($c: cell!($k, $c, i),)+
                        $($cc: cell!($ck, $cc, i),)*
                    })
                    .collect())
            }
        }
    };
}

coral_model::host_sample_columns!(host_from_duckdb);

/// The columns every Beyla histogram row has.
struct Histograms {
    agent: duckdb::arrow::array::StringArray,
    minute: duckdb::arrow::array::Int64Array,
    service: duckdb::arrow::array::StringArray,
    latency: duckdb::arrow::array::BinaryArray,
    attributes: duckdb::arrow::array::StringArray,
}

impl Histograms {
    fn of(c: &Columns<'_>) -> Result<Histograms, MigrateError> {
        Ok(Histograms {
            agent: c.text("agent_id")?,
            minute: c.i64("minute")?,
            service: c.text("service_name")?,
            latency: c.blob("latency")?,
            attributes: c.text("attributes")?,
        })
    }

    /// The seq_id of row `i`: its minute, its service and its `series`.
    fn key(&self, i: usize, series: &[&[u8]]) -> u64 {
        let minute = self.minute.value(i).to_le_bytes();
        let mut parts: Vec<&[u8]> = vec![&minute, self.service.value(i).as_bytes()];
        parts.extend_from_slice(series);
        key(&parts)
    }

    /// The rows of family `F`: `own(i)` gives row `i`'s own columns and its
    /// seq_id ([`Histograms::key`]).
    fn rows<F: Family>(
        &self,
        c: &Columns<'_>,
        own: impl Fn(usize) -> (F::Own, u64),
    ) -> Result<Vec<F>, MigrateError> {
        (0..c.len())
            .map(|i| {
                let latency = Histogram::decode(self.latency.value(i))
                    .map_err(|e| c.corrupt(i, &self.agent, "latency histogram", e))?;
                let (own, seq_id) = own(i);
                let part = Part {
                    agent_id: self.agent.value(i).to_owned(),
                    session_id: SESSION.to_owned(),
                    seq_id,
                    minute: self.minute.value(i),
                    service_name: self.service.value(i).to_owned(),
                    latency,
                    attributes: self.attributes.value(i).to_owned(),
                };
                Ok(F::row(part, own))
            })
            .collect()
    }
}

/// A family's conversion, generated from its declaration
/// ([`coral_model::beyla_histogram_families`]): its series and own counts
/// read by name, and its seq_id keyed by its minute, service and series.
macro_rules! from_duckdb {
    (
        $(#[$doc:meta])*
        table: $table:ident,
        tables: ($colony:literal, $agent:literal),
        metric: $metric:ident,
        row: $row:ident,
        what: $what:literal,
        series: [$($series:ident: $sk:ident = $sf:ident),+ $(,)?],
        counts: [$($count:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        impl FromDuckDb for $row {
            fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
                let h = Histograms::of(c)?;
                $(let $series = column!($sk, c, stringify!($series))?;)+
                $(let $count = column!($ck, c, stringify!($count))?;)*
                h.rows(c, |i| {
                    $(let $series = cell!($sk, $series, i);)+
                    $(let $count = cell!($ck, $count, i);)*
                    let seq_id = h.key(i, &[$(key_bytes!($sk, $series).as_slice()),+]);
                    (($($series,)+ $($count,)*), seq_id)
                })
            }
        }
    };
}

coral_model::beyla_histogram_families!(from_duckdb);

mod beyla_spans {
    //! The Beyla span's conversion: its row's name is the kept span's.
    use super::*;
    use crate::store::clickhouse::beyla::SpanRow;

    coral_model::beyla_span_columns!(span_from_duckdb);
}

impl FromDuckDb for GapRow {
    fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
        let (agent, stream, session) = (
            c.text("agent_id")?,
            c.text("stream")?,
            c.text("session_id")?,
        );
        let (from, to) = (c.u64("from_seq_id")?, c.u64("to_seq_id")?);
        let (detected, reason) = (c.i64("detected_at")?, c.text("reason")?);
        Ok((0..c.len())
            .map(|i| GapRow {
                agent_id: agent.value(i).to_owned(),
                stream: stream.value(i).to_owned(),
                session_id: session.value(i).to_owned(),
                from_seq_id: from.value(i),
                to_seq_id: to.value(i),
                detected_at: detected.value(i),
                reason: reason.value(i).to_owned(),
            })
            .collect())
    }
}

impl FromDuckDb for AgentRow {
    fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
        let (agent, endpoint, version) =
            (c.text("agent_id")?, c.text("endpoint")?, c.text("version")?);
        let (mode, capabilities, hostname) = (
            c.text("mode")?,
            c.text("capabilities")?,
            c.text("hostname")?,
        );
        let (source, registered, last_seen) = (
            c.text("source")?,
            c.i64("registered_at")?,
            c.i64("last_seen")?,
        );
        Ok((0..c.len())
            .map(|i| AgentRow {
                agent_id: agent.value(i).to_owned(),
                endpoint: endpoint.value(i).to_owned(),
                version: version.value(i).to_owned(),
                mode: mode.value(i).to_owned(),
                capabilities: capabilities.value(i).to_owned(),
                hostname: hostname.value(i).to_owned(),
                source: source.value(i).to_owned(),
                registered_at: registered.value(i),
                // The version column: a record never seen since it was
                // registered is as new as its registration.
                last_seen: opt(&last_seen, i).unwrap_or(registered.value(i)),
            })
            .collect())
    }
}

impl FromDuckDb for CursorRow {
    fn from_duckdb(c: &Columns<'_>) -> Result<Vec<Self>, MigrateError> {
        let (agent, stream, session) = (
            c.text("agent_id")?,
            c.text("stream")?,
            c.text("session_id")?,
        );
        let (seq, received) = (c.u64("seq_id")?, c.u64("rows_received")?);
        let (updated, latest) = (c.i64("updated_at")?, c.u64("latest_seq_id")?);
        Ok((0..c.len())
            .map(|i| CursorRow {
                agent_id: agent.value(i).to_owned(),
                stream: stream.value(i).to_owned(),
                session_id: session.value(i).to_owned(),
                seq_id: seq.value(i),
                rows_received: received.value(i),
                updated_at: updated.value(i),
                latest_seq_id: opt(&latest, i),
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::key;

    #[test]
    fn keys_are_stable_and_tell_parts_apart() {
        let minute = 1_765_000_020_000_000i64.to_le_bytes();
        let a = key(&[&minute, b"checkout", b"SERVER"]);
        assert_eq!(a, key(&[&minute, b"checkout", b"SERVER"]));
        // Pinned: a resumed migration depends on the same rows getting the
        // same keys across versions.
        assert_eq!(a, 0x2b61_7169_ddfa_f627, "{a:#x}");
        assert_ne!(a, key(&[&minute, b"checkout", b"CLIENT"]));
        assert_ne!(key(&[b"ab", b"c"]), key(&[b"a", b"bc"]));
        assert!(a < 1 << 63);
    }
}
