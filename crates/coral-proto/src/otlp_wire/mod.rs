//! Zero-copy reading of OTLP trace exports straight from protobuf bytes.
//!
//! The agent aggregates **every** span but stores only the few that its
//! filters keep, so decoding each export into owned `prost` structs (a
//! `String` per attribute key and value, a `Vec` per id) spends most of the
//! receive path on allocations that are thrown away. This module reads an
//! `ExportTraceServiceRequest` in place instead: [`TraceExportView::parse`]
//! walks the wire format once and returns, for each span, borrowed views of
//! what aggregation and filtering need (ids, name, kind, times, status, the
//! HTTP status attribute) and the span's raw bytes. For the spans it keeps,
//! the caller reads the rest it stores with [`span_detail`] and
//! [`resource_attributes`] (module `detail`), still without decoding.
//!
//! Every field the view reads is checked as `prost` would check it (wire
//! type, length, UTF-8); fields it does not read are skipped by their wire
//! type. Field numbers follow `opentelemetry/proto/trace/v1/trace.proto`,
//! `resource/v1/resource.proto` and `common/v1/common.proto`.

use thiserror::Error;

mod detail;

pub use detail::{
    KeyValueView, SpanDetail, ValueView, check_resource, resource_attributes, span_detail,
};

/// Why an export could not be read.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid protobuf in trace export: {0}")]
pub struct WireError(pub &'static str);

const VARINT: u8 = 0;
const I64: u8 = 1;
const LEN: u8 = 2;
const START_GROUP: u8 = 3;
const END_GROUP: u8 = 4;
const I32: u8 = 5;

/// Deepest group nesting skipped, as `prost`'s recursion limit.
const MAX_GROUP_DEPTH: u32 = 100;

/// A cursor over one protobuf message.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    fn varint(&mut self) -> Result<u64, WireError> {
        let mut value = 0u64;
        for (i, &byte) in self.buf.iter().enumerate().take(10) {
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                if i == 9 && byte > 1 {
                    return Err(WireError("varint overflows 64 bits"));
                }
                self.buf = &self.buf[i + 1..];
                return Ok(value);
            }
        }
        Err(WireError(if self.buf.len() < 10 {
            "truncated varint"
        } else {
            "varint longer than 10 bytes"
        }))
    }

    /// The next field's number and wire type, or `None` at the end.
    fn key(&mut self) -> Result<Option<(u32, u8)>, WireError> {
        if self.buf.is_empty() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| WireError("field number too large"))?;
        if field == 0 {
            return Err(WireError("field number 0"));
        }
        Ok(Some((field, (key & 7) as u8)))
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if self.buf.len() < n {
            return Err(WireError("field runs past the end of its message"));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn len_delimited(&mut self) -> Result<&'a [u8], WireError> {
        let len = self.varint()?;
        let len = usize::try_from(len).map_err(|_| WireError("length too large"))?;
        self.take(len)
    }

    fn fixed64(&mut self) -> Result<u64, WireError> {
        let bytes = self.take(8)?;
        Ok(u64::from_le_bytes(bytes.try_into().expect("8 bytes")))
    }

    /// Skips a field this reader does not need (deprecated groups included,
    /// as `prost` skips them).
    fn skip(&mut self, field: u32, wire: u8) -> Result<(), WireError> {
        self.skip_nested(field, wire, 0)
    }

    fn skip_nested(&mut self, field: u32, wire: u8, depth: u32) -> Result<(), WireError> {
        match wire {
            VARINT => self.varint().map(drop),
            I64 => self.take(8).map(drop),
            LEN => self.len_delimited().map(drop),
            I32 => self.take(4).map(drop),
            START_GROUP if depth < MAX_GROUP_DEPTH => loop {
                let Some((inner, inner_wire)) = self.key()? else {
                    return Err(WireError("group without its end"));
                };
                if inner_wire == END_GROUP {
                    return if inner == field {
                        Ok(())
                    } else {
                        Err(WireError("group ends with another field's tag"))
                    };
                }
                self.skip_nested(inner, inner_wire, depth + 1)?;
            },
            START_GROUP => Err(WireError("groups nested too deeply")),
            END_GROUP => Err(WireError("group end without its start")),
            _ => Err(WireError("invalid wire type")),
        }
    }
}

fn expect(wire: u8, wanted: u8) -> Result<(), WireError> {
    if wire == wanted {
        Ok(())
    } else {
        Err(WireError("field has the wrong wire type"))
    }
}

fn utf8(bytes: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(bytes).map_err(|_| WireError("string field is not valid UTF-8"))
}

/// One resource of an export: its raw `Resource` message and its service name.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResourceView<'a> {
    /// The `Resource` message, if present (see [`resource_attributes`]).
    pub raw: Option<&'a [u8]>,
    /// The `service.name` string attribute, if present and non-empty.
    pub service_name: Option<&'a str>,
}

/// One span, read in place.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SpanView<'a> {
    /// Index of the span's resource in [`TraceExportView::resources`].
    pub resource: usize,
    /// The whole `Span` message (see [`span_detail`]).
    pub raw: &'a [u8],
    /// `trace_id` as sent (valid spans have 16 bytes).
    pub trace_id: &'a [u8],
    /// `span_id` as sent (valid spans have 8 bytes).
    pub span_id: &'a [u8],
    /// `parent_span_id` as sent (empty for a root span).
    pub parent_span_id: &'a [u8],
    /// The span name.
    pub name: &'a str,
    /// `SpanKind` as its enum number.
    pub kind: i32,
    /// Start, Unix nanoseconds.
    pub start_time_unix_nano: u64,
    /// End, Unix nanoseconds.
    pub end_time_unix_nano: u64,
    /// `Status.code` as its enum number (0 = unset).
    pub status_code: i32,
    /// The HTTP status: `http.response.status_code`, else `http.status_code`,
    /// as an int, a decimal string or a whole double.
    pub http_status_code: Option<i64>,
    /// Why the span cannot be stored, when an attribute or the status message
    /// breaks what [`span_detail`] requires (a string that is not UTF-8, a
    /// value of the wrong wire type, values nested too deeply): checked for
    /// every span in the same pass, so a span is refused whether or not it
    /// is kept. The export itself stays readable.
    pub malformed: Option<&'static str>,
}

/// An `ExportTraceServiceRequest`, read in place.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TraceExportView<'a> {
    /// Resources, in order.
    pub resources: Vec<ResourceView<'a>>,
    /// Every span, in order, each pointing at its resource, except those
    /// counted in [`TraceExportView::skipped_bad_ids`].
    pub spans: Vec<SpanView<'a>>,
    /// Spans left out of `spans` because their trace or span id has the wrong
    /// length, which makes them invalid whatever else they hold. The first
    /// such span stays in `spans`, so that a caller can say why. A view is
    /// ~60 times the size of the smallest encoded span, so without this a
    /// 16 MiB export of empty spans would take a gigabyte to read.
    pub skipped_bad_ids: usize,
    /// Whether `spans` holds the first span with ids of the wrong length.
    kept_bad_ids: bool,
}

impl<'a> TraceExportView<'a> {
    /// Reads an encoded `ExportTraceServiceRequest`.
    pub fn parse(buf: &'a [u8]) -> Result<Self, WireError> {
        let mut view = TraceExportView::default();
        let mut request = Reader::new(buf);
        while let Some((field, wire)) = request.key()? {
            if field != 1 {
                request.skip(field, wire)?;
                continue;
            }
            expect(wire, LEN)?;
            view.read_resource_spans(request.len_delimited()?)?;
        }
        Ok(view)
    }

    fn read_resource_spans(&mut self, buf: &'a [u8]) -> Result<(), WireError> {
        let index = self.resources.len();
        let mut resource = ResourceView::default();
        let mut reader = Reader::new(buf);
        while let Some((field, wire)) = reader.key()? {
            match field {
                1 => {
                    expect(wire, LEN)?;
                    let raw = reader.len_delimited()?;
                    resource = ResourceView {
                        raw: Some(raw),
                        service_name: service_name(raw)?,
                    };
                }
                2 => {
                    expect(wire, LEN)?;
                    self.read_scope_spans(index, reader.len_delimited()?)?;
                }
                _ => reader.skip(field, wire)?,
            }
        }
        self.resources.push(resource);
        Ok(())
    }

    fn read_scope_spans(&mut self, resource: usize, buf: &'a [u8]) -> Result<(), WireError> {
        let mut reader = Reader::new(buf);
        while let Some((field, wire)) = reader.key()? {
            if field == 2 {
                expect(wire, LEN)?;
                let raw = reader.len_delimited()?;
                let span = read_span(resource, raw)?;
                if span.trace_id.len() == 16 && span.span_id.len() == 8 {
                    self.spans.push(span);
                } else if !self.kept_bad_ids {
                    // The first one stays, for whoever validates it to count.
                    self.kept_bad_ids = true;
                    self.spans.push(span);
                } else {
                    self.skipped_bad_ids += 1;
                }
            } else {
                reader.skip(field, wire)?;
            }
        }
        Ok(())
    }
}

fn read_span<'a>(resource: usize, raw: &'a [u8]) -> Result<SpanView<'a>, WireError> {
    let mut span = SpanView {
        resource,
        raw,
        ..SpanView::default()
    };
    // `http.response.status_code` wins over `http.status_code`; the first
    // attribute with a key counts, as in a linear search.
    let mut new_status: Option<Option<i64>> = None;
    let mut old_status: Option<Option<i64>> = None;
    let mut reader = Reader::new(raw);
    while let Some((field, wire)) = reader.key()? {
        match field {
            1 | 2 | 4 | 5 => {
                expect(wire, LEN)?;
                let bytes = reader.len_delimited()?;
                match field {
                    1 => span.trace_id = bytes,
                    2 => span.span_id = bytes,
                    4 => span.parent_span_id = bytes,
                    _ => span.name = utf8(bytes)?,
                }
            }
            6 => {
                expect(wire, VARINT)?;
                span.kind = reader.varint()? as i32;
            }
            7 | 8 => {
                expect(wire, I64)?;
                let value = reader.fixed64()?;
                if field == 7 {
                    span.start_time_unix_nano = value;
                } else {
                    span.end_time_unix_nano = value;
                }
            }
            9 => {
                expect(wire, LEN)?;
                let kv = reader.len_delimited()?;
                let key = if span.malformed.is_none() {
                    let (key, problem) = detail::checked_key(kv, 0)?;
                    span.malformed = problem;
                    key
                } else {
                    key_of(kv)?
                };
                let slot = match key {
                    b"http.response.status_code" => &mut new_status,
                    b"http.status_code" => &mut old_status,
                    _ => continue,
                };
                if slot.is_none() {
                    let value = detail::key_value(kv, 0)?.value;
                    *slot = Some(value.as_ref().and_then(ValueView::as_int));
                }
            }
            15 => {
                expect(wire, LEN)?;
                // A repeated status merges: a code that is absent keeps the earlier one.
                status_code(
                    reader.len_delimited()?,
                    &mut span.status_code,
                    &mut span.malformed,
                )?;
            }
            _ => reader.skip(field, wire)?,
        }
    }
    span.http_status_code = match (new_status, old_status) {
        (Some(Some(code)), _) => Some(code),
        (_, Some(code)) => code,
        _ => None,
    };
    Ok(span)
}

/// Reads `Status.code`; a message that is not a UTF-8 string makes the span
/// `malformed` (as [`span_detail`] would refuse it).
fn status_code(
    buf: &[u8],
    code: &mut i32,
    malformed: &mut Option<&'static str>,
) -> Result<(), WireError> {
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        match field {
            3 => {
                expect(wire, VARINT)?;
                *code = reader.varint()? as i32;
            }
            2 if malformed.is_none() => {
                if wire == LEN {
                    if let Err(e) = utf8(reader.len_delimited()?) {
                        *malformed = Some(e.0);
                    }
                } else {
                    *malformed = expect(wire, LEN).err().map(|e| e.0);
                    reader.skip(field, wire)?;
                }
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Ok(())
}

/// The key of an encoded `KeyValue`, as bytes (the value is skipped: callers
/// read it with [`detail::key_value`] only for the keys they want).
fn key_of(buf: &[u8]) -> Result<&[u8], WireError> {
    let mut key: &[u8] = &[];
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        if field == 1 {
            expect(wire, LEN)?;
            key = reader.len_delimited()?;
        } else {
            reader.skip(field, wire)?;
        }
    }
    Ok(key)
}

/// `service.name` of a `Resource`, when it is a non-empty string.
fn service_name(resource: &[u8]) -> Result<Option<&str>, WireError> {
    let mut reader = Reader::new(resource);
    while let Some((field, wire)) = reader.key()? {
        if field != 1 {
            reader.skip(field, wire)?;
            continue;
        }
        expect(wire, LEN)?;
        let kv = reader.len_delimited()?;
        if key_of(kv)? == b"service.name" {
            return Ok(match detail::key_value(kv, 0)?.value {
                Some(ValueView::String(s)) if !s.is_empty() => Some(s),
                _ => None,
            });
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests;
