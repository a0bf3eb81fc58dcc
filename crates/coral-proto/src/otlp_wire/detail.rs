//! Full, borrowed reads of what the agent stores for a kept span: its
//! attributes (every value form, nested arrays and maps included), its
//! status message, and its resource's attributes.
//!
//! These replace a `prost` decode of the kept span: [`span_detail`] reads the
//! span's raw bytes into [`KeyValueView`]s that borrow their keys and strings
//! from the export, so a kept span costs no allocation beyond the attribute
//! list itself. The reads follow `prost`'s merge rules, so a field repeated on
//! the wire means what it means to `prost`: a scalar or string is replaced by
//! the last occurrence, a nested message (an attribute's value, an array, a
//! key-value list, the status) is merged into the earlier one.
//!
//! [`ValueView::from_any`] and [`KeyValueView::from_kv`] borrow decoded
//! `prost` values in the same form, so one JSON encoding serves both.

use super::{I64, LEN, Reader, VARINT, WireError, expect, utf8};
use crate::otlp::common::v1::{AnyValue, KeyValue, any_value::Value};

/// Deepest nesting of arrays and key-value lists read, as `prost`'s
/// recursion limit (counted here from the attribute, so never stricter).
const MAX_VALUE_DEPTH: u32 = 100;

/// An OTLP `AnyValue` with its value set, borrowed.
#[derive(Debug, Clone, PartialEq)]
pub enum ValueView<'a> {
    /// `string_value`.
    String(&'a str),
    /// `bool_value`.
    Bool(bool),
    /// `int_value`.
    Int(i64),
    /// `double_value`.
    Double(f64),
    /// `bytes_value`.
    Bytes(&'a [u8]),
    /// `array_value`: each element, `None` when it has no value set.
    Array(Vec<Option<ValueView<'a>>>),
    /// `kvlist_value`.
    KvList(Vec<KeyValueView<'a>>),
    /// `string_value_strindex` (profiles only; carries no text here).
    Strindex(i32),
}

/// An OTLP `KeyValue`, borrowed.
#[derive(Debug, Clone, PartialEq)]
pub struct KeyValueView<'a> {
    /// The key.
    pub key: &'a str,
    /// The value, `None` when absent or with no value set.
    pub value: Option<ValueView<'a>>,
}

/// What the agent stores of a span beyond [`super::SpanView`].
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SpanDetail<'a> {
    /// The span's attributes, in wire order.
    pub attributes: Vec<KeyValueView<'a>>,
    /// `Status.message` (empty when unset).
    pub status_message: &'a str,
}

impl<'a> ValueView<'a> {
    /// The value as an integer: an int, a decimal string (spaces trimmed) or
    /// a whole double, as HTTP and gRPC status attributes arrive.
    pub fn as_int(&self) -> Option<i64> {
        match self {
            ValueView::Int(i) => Some(*i),
            ValueView::String(s) => s.trim().parse().ok(),
            ValueView::Double(d) if d.fract() == 0.0 => Some(*d as i64),
            _ => None,
        }
    }

    /// Borrows a decoded `AnyValue`; `None` when it has no value set.
    pub fn from_any(value: &'a AnyValue) -> Option<Self> {
        Some(match value.value.as_ref()? {
            Value::StringValue(s) => ValueView::String(s),
            Value::BoolValue(b) => ValueView::Bool(*b),
            Value::IntValue(i) => ValueView::Int(*i),
            Value::DoubleValue(d) => ValueView::Double(*d),
            Value::BytesValue(b) => ValueView::Bytes(b),
            Value::ArrayValue(a) => ValueView::Array(a.values.iter().map(Self::from_any).collect()),
            Value::KvlistValue(l) => {
                ValueView::KvList(l.values.iter().map(KeyValueView::from_kv).collect())
            }
            Value::StringValueStrindex(i) => ValueView::Strindex(*i),
        })
    }
}

impl<'a> KeyValueView<'a> {
    /// Borrows a decoded `KeyValue`.
    pub fn from_kv(kv: &'a KeyValue) -> Self {
        KeyValueView {
            key: &kv.key,
            value: kv.value.as_ref().and_then(ValueView::from_any),
        }
    }
}

/// Reads the attributes and status message of an encoded `Span`.
pub fn span_detail(raw: &[u8]) -> Result<SpanDetail<'_>, WireError> {
    let mut detail = SpanDetail::default();
    let mut reader = Reader::new(raw);
    while let Some((field, wire)) = reader.key()? {
        match field {
            9 => {
                expect(wire, LEN)?;
                detail
                    .attributes
                    .push(key_value(reader.len_delimited()?, 0)?);
            }
            15 => {
                expect(wire, LEN)?;
                let mut status = Reader::new(reader.len_delimited()?);
                while let Some((field, wire)) = status.key()? {
                    if field == 2 {
                        expect(wire, LEN)?;
                        detail.status_message = utf8(status.len_delimited()?)?;
                    } else {
                        status.skip(field, wire)?;
                    }
                }
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Ok(detail)
}

/// The key of an encoded `KeyValue`, and why [`span_detail`] would refuse
/// it (a key or string that is not UTF-8, a value of the wrong wire type,
/// values nested too deeply), checked without building anything. Only a
/// `KeyValue` that is not a message at all is an error.
pub(super) fn checked_key(
    buf: &[u8],
    depth: u32,
) -> Result<(&[u8], Option<&'static str>), WireError> {
    let mut key: &[u8] = &[];
    let mut problem = None;
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => {
                key = reader.len_delimited()?;
                if problem.is_none() {
                    problem = utf8(key).err().map(|e| e.0);
                }
            }
            (2, LEN) => {
                let value = reader.len_delimited()?;
                if problem.is_none() {
                    problem = check_any_value(value, depth).err().map(|e| e.0);
                }
            }
            (1 | 2, _) => {
                problem.get_or_insert("field has the wrong wire type");
                reader.skip(field, wire)?;
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Ok((key, problem))
}

/// Checks an encoded `Resource`'s attributes as [`resource_attributes`]
/// reads them, without building anything.
pub fn check_resource(raw: &[u8]) -> Result<(), WireError> {
    check_repeated_key_values(raw, 1, 0)
}

fn check_repeated_key_values(buf: &[u8], field_number: u32, depth: u32) -> Result<(), WireError> {
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        if field == field_number {
            expect(wire, LEN)?;
            check_key_value(reader.len_delimited()?, depth)?;
        } else {
            reader.skip(field, wire)?;
        }
    }
    Ok(())
}

fn check_key_value(buf: &[u8], depth: u32) -> Result<(), WireError> {
    match checked_key(buf, depth)? {
        (_, Some(problem)) => Err(WireError(problem)),
        (_, None) => Ok(()),
    }
}

/// [`merge_any_value`]'s checks, without the value.
fn check_any_value(buf: &[u8], depth: u32) -> Result<(), WireError> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(WireError("attribute values nested too deeply"));
    }
    // The common values, a short string or an int alone, without a reader.
    match buf {
        [0x0a, len, text @ ..] if usize::from(*len) == text.len() && *len < 0x80 => {
            return utf8(text).map(drop);
        }
        [0x18, last] if *last < 0x80 => return Ok(()),
        _ => {}
    }
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        match (field, wire) {
            (1, LEN) => {
                utf8(reader.len_delimited()?)?;
            }
            (2 | 3 | 8, VARINT) => {
                reader.varint()?;
            }
            (4, I64) => {
                reader.fixed64()?;
            }
            (7, LEN) => {
                reader.len_delimited()?;
            }
            (5, LEN) => {
                let mut array = Reader::new(reader.len_delimited()?);
                while let Some((field, wire)) = array.key()? {
                    if field == 1 {
                        expect(wire, LEN)?;
                        check_any_value(array.len_delimited()?, depth + 1)?;
                    } else {
                        array.skip(field, wire)?;
                    }
                }
            }
            (6, LEN) => check_repeated_key_values(reader.len_delimited()?, 1, depth + 1)?,
            (1..=8, _) => return Err(WireError("field has the wrong wire type")),
            _ => reader.skip(field, wire)?,
        }
    }
    Ok(())
}

/// Reads the attributes of an encoded `Resource`.
pub fn resource_attributes(raw: &[u8]) -> Result<Vec<KeyValueView<'_>>, WireError> {
    repeated_key_values(raw, 1, 0)
}

/// The `KeyValue`s in field `field` of a message (`Resource.attributes`,
/// `KeyValueList.values`).
fn repeated_key_values(
    buf: &[u8],
    field_number: u32,
    depth: u32,
) -> Result<Vec<KeyValueView<'_>>, WireError> {
    let mut out = Vec::new();
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        if field == field_number {
            expect(wire, LEN)?;
            out.push(key_value(reader.len_delimited()?, depth)?);
        } else {
            reader.skip(field, wire)?;
        }
    }
    Ok(out)
}

/// Reads an encoded `KeyValue` (nested `depth` values deep).
pub(super) fn key_value(buf: &[u8], depth: u32) -> Result<KeyValueView<'_>, WireError> {
    let mut kv = KeyValueView {
        key: "",
        value: None,
    };
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        match field {
            1 => {
                expect(wire, LEN)?;
                kv.key = utf8(reader.len_delimited()?)?;
            }
            2 => {
                expect(wire, LEN)?;
                merge_any_value(&mut kv.value, reader.len_delimited()?, depth)?;
            }
            _ => reader.skip(field, wire)?,
        }
    }
    Ok(kv)
}

/// Merges an encoded `AnyValue` into `value` as `prost` does: each oneof
/// field replaces the value, except an array or key-value list that meets
/// one of its own kind, which it extends.
fn merge_any_value<'a>(
    value: &mut Option<ValueView<'a>>,
    buf: &'a [u8],
    depth: u32,
) -> Result<(), WireError> {
    if depth >= MAX_VALUE_DEPTH {
        return Err(WireError("attribute values nested too deeply"));
    }
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        let new = match (field, wire) {
            (1, LEN) => ValueView::String(utf8(reader.len_delimited()?)?),
            (2, VARINT) => ValueView::Bool(reader.varint()? != 0),
            (3, VARINT) => ValueView::Int(reader.varint()? as i64),
            (4, I64) => ValueView::Double(f64::from_bits(reader.fixed64()?)),
            (7, LEN) => ValueView::Bytes(reader.len_delimited()?),
            (8, VARINT) => ValueView::Strindex(reader.varint()? as i32),
            (5, LEN) => {
                let values = array_values(reader.len_delimited()?, depth + 1)?;
                match value {
                    Some(ValueView::Array(existing)) => {
                        existing.extend(values);
                        continue;
                    }
                    _ => ValueView::Array(values),
                }
            }
            (6, LEN) => {
                let values = repeated_key_values(reader.len_delimited()?, 1, depth + 1)?;
                match value {
                    Some(ValueView::KvList(existing)) => {
                        existing.extend(values);
                        continue;
                    }
                    _ => ValueView::KvList(values),
                }
            }
            (1..=8, _) => return Err(WireError("field has the wrong wire type")),
            _ => {
                reader.skip(field, wire)?;
                continue;
            }
        };
        *value = Some(new);
    }
    Ok(())
}

/// The elements of an encoded `ArrayValue`.
fn array_values(buf: &[u8], depth: u32) -> Result<Vec<Option<ValueView<'_>>>, WireError> {
    let mut out = Vec::new();
    let mut reader = Reader::new(buf);
    while let Some((field, wire)) = reader.key()? {
        if field == 1 {
            expect(wire, LEN)?;
            let mut element = None;
            merge_any_value(&mut element, reader.len_delimited()?, depth)?;
            out.push(element);
        } else {
            reader.skip(field, wire)?;
        }
    }
    Ok(out)
}
