//! Merging RED rows: per-minute series and window totals of a service (or
//! a slice of it), from merged sketches or histograms.

use std::collections::BTreeMap;

use coral_model::{DurationSketch, Histogram, SpanKind};

use crate::data::{Latency, RedRow, Source};

/// Merged RED numbers over some rows.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedAcc {
    /// Requests.
    pub requests: u64,
    /// Failed requests.
    pub errors: u64,
    /// Sum of durations, ms.
    pub sum_ms: f64,
    /// Merged sketch (OTLP rows).
    sketch: Option<DurationSketch>,
    /// Merged histogram (Beyla rows).
    histogram: Option<Histogram>,
    /// Sample trace ids, first seen first.
    pub samples: Vec<String>,
}

impl RedAcc {
    /// Adds a row.
    pub(crate) fn add(&mut self, row: &RedRow) {
        self.requests += row.requests;
        self.errors += row.errors;
        self.sum_ms += row.sum_ms;
        match &row.latency {
            Latency::Sketch(s) => match &mut self.sketch {
                Some(mine) => {
                    // Sketches of one store share an accuracy; a mismatch
                    // keeps the first (counts still add).
                    let _ = mine.merge(s);
                }
                None => self.sketch = Some(s.clone()),
            },
            Latency::Histogram(h) => match &mut self.histogram {
                Some(mine) => mine.merge(h),
                None => self.histogram = Some(h.clone()),
            },
        }
        for id in &row.sample_trace_ids {
            if self.samples.len() < 8 && !self.samples.contains(id) {
                self.samples.push(id.clone());
            }
        }
    }

    /// The `q` quantile, ms (sketch first, else histogram), 0 when empty.
    pub(crate) fn quantile(&self, q: f64) -> f64 {
        if let Some(v) = self.sketch.as_ref().and_then(|s| s.quantile(q)) {
            return v;
        }
        self.histogram
            .as_ref()
            .and_then(|h| h.quantile(q))
            .map_or(0.0, |v| v.ms())
    }

    /// Mean duration, ms.
    pub(crate) fn mean_ms(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.sum_ms / self.requests as f64
        }
    }

    /// Error rate (0–1).
    pub(crate) fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }
}

/// The rows that count a service's requests: SERVER and CONSUMER spans of
/// the source with the most of them (OTLP or Beyla, never both, so a request
/// seen by both counts once); every kind when there are none.
pub(crate) fn request_rows<'a>(rows: &'a [RedRow], operation: Option<&str>) -> Vec<&'a RedRow> {
    let by_op = |r: &&RedRow| operation.is_none_or(|o| r.operation == o);
    let entry = |r: &&RedRow| matches!(r.span_kind, SpanKind::Server | SpanKind::Consumer);
    let mut chosen: Vec<&RedRow> = rows.iter().filter(by_op).filter(entry).collect();
    if chosen.is_empty() {
        chosen = rows.iter().filter(by_op).collect();
    }
    let count = |src: Source| -> u64 {
        chosen
            .iter()
            .filter(|r| r.source == src)
            .map(|r| r.requests)
            .sum()
    };
    let source = if count(Source::Beyla) > count(Source::Otlp) {
        Source::Beyla
    } else {
        Source::Otlp
    };
    chosen.retain(|r| r.source == source);
    chosen
}

/// Merges rows per minute.
pub(crate) fn per_minute(rows: &[&RedRow]) -> BTreeMap<i64, RedAcc> {
    let mut out: BTreeMap<i64, RedAcc> = BTreeMap::new();
    for r in rows {
        out.entry(r.minute).or_default().add(r);
    }
    out
}

/// Merges rows by a key.
pub(crate) fn by_key<K: Ord>(rows: &[&RedRow], key: impl Fn(&RedRow) -> K) -> BTreeMap<K, RedAcc> {
    let mut out: BTreeMap<K, RedAcc> = BTreeMap::new();
    for r in rows {
        out.entry(key(r)).or_default().add(r);
    }
    out
}

/// Merges all rows.
pub(crate) fn total(rows: &[&RedRow]) -> RedAcc {
    let mut acc = RedAcc::default();
    for r in rows {
        acc.add(r);
    }
    acc
}
