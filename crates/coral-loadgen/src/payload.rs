//! Pre-encoded OTLP payloads with cheap per-send timestamp re-stamping.
//!
//! Design: every variant is generated once ([`crate::generate`]) and
//! protobuf-encoded once. `start_time_unix_nano` / `end_time_unix_nano` are
//! `fixed64` fields, so their bytes sit at fixed offsets in the encoding; we
//! record those offsets and, when sending, copy the template into the gRPC
//! buffer while writing `now - ago` into each timestamp slot. The target
//! therefore always sees spans that ended within the last ~2 s (it buckets by
//! span start minute), while the harness does no protobuf encoding on the hot
//! path — one memcpy of the request plus 200 eight-byte writes.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use bytes::{BufMut, Bytes};
use coral_proto::otlp::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::generate::{self, SENTINEL_MAGIC, SENTINEL_MASK};
use crate::rng::Rng;

/// Protobuf tag of `Span.start_time_unix_nano` (field 7, wire type fixed64).
const TAG_START: u8 = (7 << 3) | 1;
/// Protobuf tag of `Span.end_time_unix_nano` (field 8, wire type fixed64).
const TAG_END: u8 = (8 << 3) | 1;

/// One timestamp slot in an encoded template.
#[derive(Debug, Clone, Copy)]
struct TimePatch {
    /// Byte offset of the 8-byte little-endian value.
    offset: usize,
    /// The timestamp is written as `now - ago_ns`.
    ago_ns: u64,
}

/// One encoded `ExportTraceServiceRequest` with its timestamp slots.
#[derive(Debug)]
pub struct Template {
    bytes: Bytes,
    spans: usize,
    /// Sorted by offset.
    patches: Vec<TimePatch>,
}

impl Template {
    fn new(generated: generate::Generated) -> Result<Self> {
        let spans: usize = generated
            .request
            .resource_spans
            .iter()
            .flat_map(|rs| &rs.scope_spans)
            .map(|ss| ss.spans.len())
            .sum();
        let bytes = generated.request.encode_to_vec();
        let mut found: Vec<Option<usize>> = vec![None; generated.ago_ns.len()];
        for pos in 0..bytes.len().saturating_sub(8) {
            let tag = bytes[pos];
            if tag != TAG_START && tag != TAG_END {
                continue;
            }
            let value = u64::from_le_bytes(bytes[pos + 1..pos + 9].try_into()?);
            if value & SENTINEL_MASK != SENTINEL_MAGIC {
                continue;
            }
            let slot = (value & !SENTINEL_MASK) as usize;
            let is_end = slot & 1 == 1;
            ensure!(slot < found.len(), "sentinel slot {slot} out of range");
            ensure!(is_end == (tag == TAG_END), "sentinel tag mismatch");
            ensure!(found[slot].is_none(), "sentinel {slot} found twice");
            found[slot] = Some(pos + 1);
        }
        let mut patches = Vec::with_capacity(found.len());
        for (slot, offset) in found.into_iter().enumerate() {
            let Some(offset) = offset else {
                bail!("timestamp sentinel {slot} not found in encoding");
            };
            patches.push(TimePatch {
                offset,
                ago_ns: generated.ago_ns[slot],
            });
        }
        patches.sort_by_key(|p| p.offset);
        Ok(Self {
            bytes: Bytes::from(bytes),
            spans,
            patches,
        })
    }

    /// Number of spans in the request.
    pub fn spans(&self) -> usize {
        self.spans
    }

    /// Encoded size in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether the encoded request is empty (never, for a generated one).
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Writes the encoded request into `dst`, stamping times relative to
    /// `now_ns` (Unix nanoseconds).
    pub fn render_into(&self, now_ns: u64, dst: &mut impl BufMut) {
        let mut prev = 0;
        for p in &self.patches {
            dst.put_slice(&self.bytes[prev..p.offset]);
            dst.put_u64_le(now_ns.saturating_sub(p.ago_ns));
            prev = p.offset + 8;
        }
        dst.put_slice(&self.bytes[prev..]);
    }

    /// Renders and decodes back into a prost message (for inspection).
    pub fn decode(&self, now_ns: u64) -> Result<ExportTraceServiceRequest> {
        let mut buf = Vec::with_capacity(self.len());
        self.render_into(now_ns, &mut buf);
        ExportTraceServiceRequest::decode(buf.as_slice()).context("decoding rendered template")
    }
}

/// All payload variants.
#[derive(Debug)]
pub struct Payloads {
    /// The templates, sent round-robin.
    pub templates: Vec<Arc<Template>>,
}

impl Payloads {
    /// Generates `variants` requests of `spans_per_request` spans each.
    pub fn build(variants: usize, spans_per_request: usize, seed: u64) -> Result<Self> {
        ensure!(variants > 0 && spans_per_request > 0, "empty payload set");
        let mut rng = Rng::new(seed);
        let templates = (0..variants)
            .map(|v| Template::new(generate::request(&mut rng, v, spans_per_request)).map(Arc::new))
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { templates })
    }

    /// Average encoded request bytes per span (resource/scope overhead
    /// amortised over the request's spans).
    pub fn bytes_per_span(&self) -> f64 {
        let bytes: usize = self.templates.iter().map(|t| t.len()).sum();
        let spans: usize = self.templates.iter().map(|t| t.spans()).sum();
        bytes as f64 / spans as f64
    }

    /// Spans per request (of the first variant; all are equal).
    pub fn spans_per_request(&self) -> usize {
        self.templates[0].spans()
    }

    /// Prints one span's encoded size and its OTLP/JSON rendering, plus the
    /// request-level statistics.
    pub fn print_sample(&self) -> Result<()> {
        let template = &self.templates[0];
        let request = template.decode(now_unix_nanos())?;
        let rs = &request.resource_spans[0];
        let ss = &rs.scope_spans[0];
        // Pick a child span (has a parent) to show all fields.
        let span = ss.spans.get(1).unwrap_or(&ss.spans[0]);
        let span_len = span.encoded_len();
        let span_sizes: Vec<usize> = ss.spans.iter().map(|s| s.encoded_len()).collect();
        let avg_span = span_sizes.iter().sum::<usize>() as f64 / span_sizes.len() as f64;
        println!("# sample span: {span_len} bytes protobuf (+3 bytes framing in ScopeSpans)");
        println!(
            "# spans in this request: avg {avg_span:.0} bytes, min {}, max {}",
            span_sizes.iter().min().unwrap_or(&0),
            span_sizes.iter().max().unwrap_or(&0)
        );
        println!(
            "# request: {} spans, {} bytes; resource {} bytes",
            template.spans(),
            template.len(),
            rs.resource.as_ref().map_or(0, |r| r.encoded_len())
        );
        println!(
            "# all {} variants: {:.1} encoded bytes/span (incl. resource/scope overhead)",
            self.templates.len(),
            self.bytes_per_span()
        );
        println!("# resource:");
        println!("{}", serde_json::to_string_pretty(&rs.resource)?);
        println!("# span:");
        println!("{}", serde_json::to_string_pretty(span)?);
        Ok(())
    }
}

/// Current Unix time in nanoseconds.
pub fn now_unix_nanos() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_are_restamped_and_ordered() {
        let payloads = Payloads::build(4, 100, 7).unwrap();
        let now = 1_800_000_000_000_000_000;
        for t in &payloads.templates {
            let req = t.decode(now).unwrap();
            let spans = &req.resource_spans[0].scope_spans[0].spans;
            assert_eq!(spans.len(), 100);
            for s in spans {
                assert!(s.start_time_unix_nano <= s.end_time_unix_nano);
                assert!(s.end_time_unix_nano <= now);
                assert!(now - s.start_time_unix_nano < 10_000_000_000);
            }
        }
    }

    #[test]
    fn span_size_is_realistic() {
        let payloads = Payloads::build(16, 100, 1).unwrap();
        let bps = payloads.bytes_per_span();
        assert!((450.0..650.0).contains(&bps), "bytes/span = {bps}");
    }
}
