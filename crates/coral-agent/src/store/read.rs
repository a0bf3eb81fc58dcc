//! Reads for `QueryTelemetry`: rows after a cursor, oldest first.
//!
//! The page boundary is chosen over the union of bucket and span seq_ids, so a
//! page never splits a seq_id range: every row with `start < seq_id <=
//! max_seq_id` (matching the service filter) is in the response, and nothing
//! after it. Because the single writer commits seq_ids in order, a cursor
//! never skips a row that commits later.

use coral_proto::agent::{QueryTelemetryRequest, QueryTelemetryResponse};
use coral_proto::common::{HostMetrics, OperationSummary, TelemetryBucket, TelemetrySpan};
use duckdb::types::Value;
use duckdb::{Connection, Row, params_from_iter};
use prost::Message;

use super::schema::{BUCKETS, HOST_SAMPLES, KEPT_SPANS, OPERATIONS};
use super::{Database, StoreError};

/// Rows per response when the request asks for 0.
pub const DEFAULT_MAX_RECORDS: usize = 10_000;
/// Upper bound on rows per response.
pub const MAX_RECORDS: usize = 50_000;

/// Encoded bytes of rows one page carries at most (only a page of a single
/// row wider than this goes over).
/// Far below what a colony accepts in one message (256 MiB pulled, 64 MiB
/// pushed): a page of unusually wide rows ends early, with `has_more`, rather
/// than failing every read. A page always holds its first row, so the cursor
/// always moves.
pub const MAX_PAGE_BYTES: usize = 32 << 20;

/// Rows of a page read by one query of wide rows (see [`read_windows`]).
/// DuckDB materialises a result, and works on 2,048 rows at a time; kept
/// spans hold at most [`crate::normalize::KEPT_ATTRIBUTES`] of attributes, so
/// 512 of them stay well within the store's memory limit (1,024 at the limit,
/// sorted by DuckDB, did not).
const READ_WINDOW: usize = 512;

/// Splits the page `(start, max_seq]`, whose rows have the sorted seq_ids
/// `page_ids`, into consecutive `(lower, upper]` windows of at most
/// [`READ_WINDOW`] rows. DuckDB materialises a result whole, so reading wide
/// rows a window at a time keeps a full page within the store's memory limit.
pub(super) fn read_windows(
    page_ids: &[u64],
    start: u64,
    max_seq: u64,
) -> impl Iterator<Item = (u64, u64)> + '_ {
    let count = page_ids.len().div_ceil(READ_WINDOW);
    (0..count).map(move |i| {
        let lower = if i == 0 {
            start
        } else {
            page_ids[i * READ_WINDOW - 1]
        };
        let upper = if i + 1 == count {
            max_seq
        } else {
            page_ids[(i + 1) * READ_WINDOW - 1]
        };
        (lower, upper)
    })
}

/// Rows per response for a request's `max_records` (0 or less: the default).
pub(super) fn page_limit(max_records: i32) -> usize {
    match max_records {
        n if n <= 0 => DEFAULT_MAX_RECORDS,
        n => (n as usize).min(MAX_RECORDS),
    }
}

/// One cursor page, cut on a seq_id boundary across the tables it reads.
pub(super) struct Page {
    start: u64,
    /// The page's seq_ids, sorted.
    ids: Vec<u64>,
    /// The cursor to send next.
    pub max_seq: u64,
    /// More rows wait after `max_seq`.
    pub has_more: bool,
}

impl Page {
    /// The page after `start` from `found`, the sorted seq_ids after `start`
    /// (at most `limit + 1` of them), with `latest` the newest committed id.
    pub(super) fn new(mut found: Vec<u64>, start: u64, latest: u64, limit: usize) -> Page {
        let has_more = found.len() > limit;
        found.truncate(limit);
        let max_seq = if has_more {
            found[limit - 1]
        } else {
            // Everything up to the newest committed row has been examined.
            found
                .last()
                .copied()
                .unwrap_or(start)
                .max(latest.max(start))
        };
        Page {
            start,
            ids: found,
            max_seq,
            has_more,
        }
    }

    /// The page holds no row.
    pub(super) fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The page's [`read_windows`].
    pub(super) fn windows(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        read_windows(&self.ids, self.start, self.max_seq)
    }
}

/// Answers `QueryTelemetry`. Blocking: call from a blocking context.
pub fn query_telemetry(
    db: &Database,
    agent_id: &str,
    req: &QueryTelemetryRequest,
) -> Result<QueryTelemetryResponse, StoreError> {
    let conn = db.reader()?;
    let latest = db.latest_seq();
    let limit = page_limit(req.max_records);
    let start = req.start_seq_id;
    let (filter, mut args) = service_filter(&req.service_names);
    args.insert(0, Value::UBigInt(start));
    let mut union_args: Vec<Value> = args.iter().cloned().chain(args.iter().cloned()).collect();
    // Host samples belong to no service: only unfiltered reads carry them.
    let with_hosts = req.service_names.is_empty();
    let hosts_union = if with_hosts {
        union_args.push(Value::UBigInt(start));
        "UNION ALL SELECT seq_id FROM host_metrics_local WHERE seq_id > ?"
    } else {
        ""
    };
    let sql = format!(
        "SELECT seq_id FROM (SELECT seq_id FROM otel_buckets_local WHERE seq_id > ? {filter} \
         UNION ALL SELECT seq_id FROM otel_spans_local WHERE seq_id > ? {filter} {hosts_union}) \
         ORDER BY seq_id LIMIT {}",
        limit + 1
    );
    let mut stmt = conn.prepare(&sql)?;
    let ids: Vec<u64> = stmt
        .query_map(params_from_iter(union_args.iter()), |row| row.get(0))?
        .collect::<Result<_, _>>()?;
    let page = Page::new(ids, start, latest, limit);
    let max_seq = page.max_seq;
    let mut response = QueryTelemetryResponse {
        buckets: Vec::new(),
        spans: Vec::new(),
        max_seq_id: max_seq,
        session_id: db.session_id().to_owned(),
        has_more: page.has_more,
        latest_seq_id: latest,
        host_metrics: Vec::new(),
    };
    if page.is_empty() {
        return Ok(response);
    }
    let mut range_args = args.clone();
    range_args.insert(1, Value::UBigInt(max_seq));
    response.buckets = read_buckets(&conn, agent_id, &filter, &range_args)?;
    if with_hosts {
        response.host_metrics = read_hosts(&conn, start, max_seq)?;
    }
    // Spans are wide (attribute and resource JSON): a window at a time, and
    // no further than the byte budget.
    let mut bytes = framed_bytes(&response.buckets) + framed_bytes(&response.host_metrics);
    for (lower, upper) in page.windows() {
        let mut window_args = args.clone();
        window_args[0] = Value::UBigInt(lower);
        window_args.insert(1, Value::UBigInt(upper));
        let spans = read_spans(&conn, &filter, &window_args)?;
        bytes += framed_bytes(&spans);
        response.spans.extend(spans);
        if bytes > MAX_PAGE_BYTES {
            end_within_budget(&mut response, upper);
            break;
        }
    }
    Ok(response)
}

/// A row's bytes in a response: its encoding and its field's tag and length.
pub(super) fn framed_len<M: Message>(row: &M) -> usize {
    let len = row.encoded_len();
    len + 1 + prost::encoding::encoded_len_varint(len as u64)
}

/// The [`framed_len`] of `rows` together.
pub(super) fn framed_bytes<M: Message>(rows: &[M]) -> usize {
    rows.iter().map(framed_len).sum()
}

/// Where a page whose rows (`(seq_id, framed_len)`, all read up to
/// `read_to`) are over [`MAX_PAGE_BYTES`] ends: at its last row within the
/// budget, or its first row when that alone is over. Rows after the end are
/// dropped from the page and read again from the new cursor.
pub(super) fn budget_end(mut rows: Vec<(u64, usize)>, read_to: u64) -> u64 {
    rows.retain(|(seq, _)| *seq <= read_to);
    rows.sort_unstable_by_key(|r| r.0);
    let mut total = 0;
    for (i, &(seq, len)) in rows.iter().enumerate() {
        total += len;
        if total > MAX_PAGE_BYTES {
            return if i == 0 { seq } else { rows[i - 1].0 };
        }
    }
    read_to
}

/// Ends `page`, whose rows up to `read_to` are all read and over
/// [`MAX_PAGE_BYTES`], at [`budget_end`].
fn end_within_budget(page: &mut QueryTelemetryResponse, read_to: u64) {
    let rows: Vec<(u64, usize)> = page
        .buckets
        .iter()
        .map(|b| (b.seq_id, framed_len(b)))
        .chain(page.spans.iter().map(|s| (s.seq_id, framed_len(s))))
        .chain(page.host_metrics.iter().map(|h| (h.seq_id, framed_len(h))))
        .collect();
    let end = budget_end(rows, read_to);
    page.buckets.retain(|b| b.seq_id <= end);
    page.spans.retain(|s| s.seq_id <= end);
    page.host_metrics.retain(|h| h.seq_id <= end);
    page.max_seq_id = end;
    page.has_more = true;
}

fn service_filter(services: &[String]) -> (String, Vec<Value>) {
    if services.is_empty() {
        return (String::new(), Vec::new());
    }
    let marks = vec!["?"; services.len()].join(", ");
    (
        format!("AND service_name IN ({marks})"),
        services.iter().map(|s| Value::Text(s.clone())).collect(),
    )
}

fn read_buckets(
    conn: &Connection,
    agent_id: &str,
    filter: &str,
    args: &[Value],
) -> Result<Vec<TelemetryBucket>, StoreError> {
    let sql = format!(
        "SELECT {BUCKET_COLUMNS} FROM {BUCKETS} WHERE seq_id > ? AND seq_id <= ? {filter} \
         ORDER BY seq_id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut buckets: Vec<TelemetryBucket> = stmt
        .query_map(params_from_iter(args.iter()), |row| {
            let mut bucket = bucket_row(row)?;
            bucket.agent_id = agent_id.to_owned();
            bucket.sample_traces = bucket.samples.iter().map(|s| s.trace_id.clone()).collect();
            Ok(bucket)
        })?
        .collect::<Result<_, _>>()?;
    if buckets.is_empty() {
        return Ok(buckets);
    }
    let first = buckets[0].seq_id;
    let last = buckets[buckets.len() - 1].seq_id;
    let mut stmt = conn.prepare(&format!(
        "SELECT {OPERATION_COLUMNS} FROM {OPERATIONS} \
         WHERE bucket_seq_id BETWEEN ? AND ? ORDER BY bucket_seq_id, operation"
    ))?;
    let ops = stmt.query_map([first, last], operation_row)?;
    let mut index = 0;
    for op in ops {
        let (seq, summary) = op?;
        while index < buckets.len() && buckets[index].seq_id < seq {
            index += 1;
        }
        if index < buckets.len() && buckets[index].seq_id == seq {
            buckets[index].operations.push(summary);
        }
    }
    Ok(buckets)
}

fn read_spans(
    conn: &Connection,
    filter: &str,
    args: &[Value],
) -> Result<Vec<TelemetrySpan>, StoreError> {
    let sql = format!(
        "SELECT {SPAN_COLUMNS}, COALESCE(r.resource, '{{}}') \
         FROM {KEPT_SPANS} LEFT JOIN otel_resources_local r USING (resource_id) \
         WHERE seq_id > ? AND seq_id <= ? {filter}"
    );
    let mut stmt = conn.prepare(&sql)?;
    let mut spans = stmt
        .query_map(params_from_iter(args.iter()), span_row)?
        .collect::<Result<Vec<_>, _>>()?;
    // Sorted here: a sort in DuckDB holds the whole window's text in its
    // memory budget a second time.
    spans.sort_unstable_by_key(|s| s.seq_id);
    Ok(spans)
}

/// A kept span's columns and its row read back, from its declaration
/// ([`coral_model::kept_span_columns`]): `seq_id`, the columns both sides
/// hold in order, then its resource (the agent keeps resources apart, by
/// id, and the read joins them).
macro_rules! read_kept_span {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        colony: [$($cc:ident: $ck:ident = $cf:ident),* $(,)?] $(,)?
    ) => {
        const SPAN_COLUMNS: &str = concat!(
            "seq_id", $(", ", coral_model::duckdb_select!($k, stringify!($c))),+
        );

        fn span_row(row: &Row<'_>) -> Result<TelemetrySpan, duckdb::Error> {
            let mut s = TelemetrySpan {
                seq_id: row.get(0)?,
                ..Default::default()
            };
            let mut column = 0;
            $(coral_model::duckdb_set!($k, s.$f, row, { column += 1; column });)+
            // The agent keeps a span's resource apart: the query joins it.
            s.resource_json = row.get(column + 1)?;
            Ok(s)
        }
    };
}

coral_model::kept_span_columns!(read_kept_span);

/// A protobuf BLOB column (a sketch, a latency histogram) decoded.
pub(super) fn proto_column<M: Message + Default>(
    row: &Row<'_>,
    index: usize,
) -> Result<Option<M>, duckdb::Error> {
    let bytes: Vec<u8> = row.get(index)?;
    M::decode(bytes.as_slice()).map(Some).map_err(|e| {
        duckdb::Error::FromSqlConversionFailure(index, duckdb::types::Type::Blob, Box::new(e))
    })
}

fn read_hosts(conn: &Connection, start: u64, end: u64) -> Result<Vec<HostMetrics>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {HOST_COLUMNS} FROM {} WHERE seq_id > ? AND seq_id <= ? ORDER BY seq_id",
        HOST_SAMPLES
    ))?;
    let rows = stmt.query_map([start, end], host_row)?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// A bucket's and an operation's columns and rows read back, from their
/// declarations ([`coral_model::bucket_columns`],
/// [`coral_model::operation_columns`]): the seq_id (an operation's
/// bucket's), the declared columns, then the sketch.
macro_rules! read_bucket_family {
    (
        table: $table:ident,
        message: $message:ident,
        row: $row:ident,
        key: [$($kc:ident: $kk:ident = $kf:ident),+ $(,)?],
        columns: [$($c:ident: $k:ident = $f:ident),+ $(,)?],
        derived: [$($dc:ident: $dk:ident = $df:ident),+ $(,)?] $(,)?
    ) => {
        read_bucket_family!(@ $message, $($kc: $kk = $kf,)+ $($c: $k = $f,)+ $($dc: $dk = $df,)+);
    };
    (@ TelemetryBucket, $($c:ident: $k:ident = $f:ident,)+) => {
        const BUCKET_COLUMNS: &str = concat!(
            "seq_id", $(", ", coral_model::duckdb_select!($k, stringify!($c)),)+ ", sketch"
        );

        fn bucket_row(row: &Row<'_>) -> Result<TelemetryBucket, duckdb::Error> {
            let mut b = TelemetryBucket {
                seq_id: row.get(0)?,
                ..Default::default()
            };
            let mut column = 0;
            $(coral_model::duckdb_set!($k, b.$f, row, { column += 1; column });)+
            b.sketch = proto_column(row, column + 1)?;
            Ok(b)
        }
    };
    (@ OperationSummary, $($c:ident: $k:ident = $f:ident,)+) => {
        const OPERATION_COLUMNS: &str = concat!(
            "bucket_seq_id", $(", ", coral_model::duckdb_select!($k, stringify!($c)),)+ ", sketch"
        );

        /// An operation and its bucket's seq_id.
        fn operation_row(row: &Row<'_>) -> Result<(u64, OperationSummary), duckdb::Error> {
            let mut op = OperationSummary::default();
            let mut column = 0;
            $(coral_model::duckdb_set!($k, op.$f, row, { column += 1; column });)+
            op.sketch = proto_column(row, column + 1)?;
            Ok((row.get(0)?, op))
        }
    };
}

coral_model::bucket_columns!(read_bucket_family);
coral_model::operation_columns!(read_bucket_family);

// `HOST_COLUMNS` and `host_row`, from the host sample's declaration.
coral_model::host_sample_columns!(read_numbered_row, HOST_COLUMNS, host_row);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_cover_the_page_without_gaps_or_overlap() {
        let ids: Vec<u64> = (1..=(2 * READ_WINDOW as u64 + 500))
            .map(|i| i * 3)
            .collect();
        let last = *ids.last().unwrap() + 2;
        let windows: Vec<_> = read_windows(&ids, 0, last).collect();
        let (w1, w2) = (ids[READ_WINDOW - 1], ids[2 * READ_WINDOW - 1]);
        assert_eq!(windows, vec![(0, w1), (w1, w2), (w2, last)]);
        for id in &ids {
            let holding = windows.iter().filter(|(lo, hi)| lo < id && id <= hi);
            assert_eq!(holding.count(), 1, "seq_id {id}");
        }
        assert_eq!(read_windows(&[], 5, 9).count(), 0);
        assert_eq!(read_windows(&[7], 5, 9).collect::<Vec<_>>(), vec![(5, 9)]);
    }
}
