//! Recognising an export the agent has already taken: the client's retry.
//!
//! OTLP has no idempotency key. When an export is stored but its answer
//! never reaches the client (the client's timeout fired first, the
//! connection broke), the SDK sends the same batch again, and counting it
//! would count every span twice. A retry is the same batch: the same spans
//! with the same ids and times. So each accepted export leaves a *digest*
//! (a keyed hash of every span's trace id, span id, start and end), and an
//! export whose digest was taken recently is answered without being counted
//! or stored again.
//!
//! Under `agent.telemetry.ack: stored` a digest is tied to the generation
//! whose commit holds the export ([`crate::durable`]): a retry that arrives
//! while that commit is still open waits for it and gets its outcome; a retry
//! of an export whose commit failed (answered 503) is a new export, taken
//! again. Under `ack: received` an export is taken once it is counted.
//!
//! Bounded: the last [`WINDOW`] of exports, at most [`MAX_EXPORTS`] of them
//! (about 64 bytes each). Digests live in memory: an export committed just
//! before the agent was killed and retried after its restart is taken again.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry, HashMap, RandomState};
use std::hash::{BuildHasher, Hasher};
use std::time::{Duration, Instant};

use coral_proto::otlp_wire::SpanView;

/// How long an export is remembered. OpenTelemetry SDKs and the Collector
/// retry a batch for up to five minutes by default.
pub const WINDOW: Duration = Duration::from_secs(600);

/// The most exports remembered at once (memory stays under ~17 MB).
pub const MAX_EXPORTS: usize = 1 << 18;

/// One export's identity: a keyed hash of its spans.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Digest(u64);

/// The key of the hash behind [`Digest`], drawn once per process, so that a
/// sender cannot make two different exports look alike.
#[derive(Default)]
pub(crate) struct DigestKey(RandomState);

impl DigestKey {
    /// The digest of an export's spans, in order.
    pub(crate) fn digest<'a>(&self, spans: impl IntoIterator<Item = &'a SpanView<'a>>) -> Digest {
        let mut h = self.0.build_hasher();
        let mut n = 0u64;
        for span in spans {
            h.write(span.trace_id);
            h.write(span.span_id);
            h.write_u64(span.start_time_unix_nano);
            h.write_u64(span.end_time_unix_nano);
            n += 1;
        }
        h.write_u64(n);
        Digest(h.finish())
    }
}

/// What the agent already knows about an export.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Seen {
    /// Not taken recently (or its commit failed): count and store it.
    New,
    /// Taken before, in this generation (`None` under `ack: received`):
    /// answer as that export is answered, count nothing.
    Retry(Option<u64>),
}

#[derive(Debug, Clone, Copy)]
struct Taken {
    generation: Option<u64>,
    at: Instant,
}

/// Digests of recent exports, oldest first.
pub(crate) struct RecentExports {
    taken: HashMap<Digest, Taken>,
    order: VecDeque<(Instant, Digest)>,
    window: Duration,
    capacity: usize,
}

impl Default for RecentExports {
    fn default() -> Self {
        Self::new(WINDOW, MAX_EXPORTS)
    }
}

impl RecentExports {
    /// Remembers exports for `window`, at most `capacity` of them.
    pub(crate) fn new(window: Duration, capacity: usize) -> RecentExports {
        RecentExports {
            taken: HashMap::new(),
            order: VecDeque::new(),
            window,
            capacity: capacity.max(1),
        }
    }

    /// Whether `digest` was taken; if not (or if `failed` says its
    /// generation's commit failed), it is taken now, in `generation`.
    pub(crate) fn take(
        &mut self,
        digest: Digest,
        generation: Option<u64>,
        now: Instant,
        failed: impl Fn(u64) -> bool,
    ) -> Seen {
        self.expire(now);
        let taken = Taken {
            generation,
            at: now,
        };
        match self.taken.entry(digest) {
            Entry::Occupied(seen) if !seen.get().generation.is_some_and(&failed) => {
                return Seen::Retry(seen.get().generation);
            }
            Entry::Occupied(mut seen) => {
                seen.insert(taken);
            }
            Entry::Vacant(slot) => {
                slot.insert(taken);
            }
        }
        self.order.push_back((now, digest));
        Seen::New
    }

    /// Exports remembered now.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.taken.len()
    }

    /// Forgets exports older than the window, and the oldest beyond capacity.
    fn expire(&mut self, now: Instant) {
        while let Some(&(at, digest)) = self.order.front() {
            let old = now.saturating_duration_since(at) >= self.window;
            if !old && self.taken.len() < self.capacity {
                break;
            }
            self.order.pop_front();
            // A digest taken again after a failed commit is queued twice:
            // only its newest entry removes it.
            if self.taken.get(&digest).is_some_and(|t| t.at == at) {
                self.taken.remove(&digest);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(key: &DigestKey, n: u8) -> Digest {
        let span = SpanView {
            trace_id: &[n; 16],
            span_id: &[n; 8],
            start_time_unix_nano: 1,
            end_time_unix_nano: 2,
            ..SpanView::default()
        };
        key.digest([&span])
    }

    #[test]
    fn the_same_spans_are_the_same_export_and_other_times_are_not() {
        let key = DigestKey::default();
        let a = SpanView {
            trace_id: &[1; 16],
            span_id: &[2; 8],
            start_time_unix_nano: 10,
            end_time_unix_nano: 20,
            ..SpanView::default()
        };
        let later = SpanView {
            start_time_unix_nano: 11,
            ..a
        };
        let again = SpanView { ..a };
        assert_eq!(key.digest([&a]), key.digest([&again]));
        assert_ne!(key.digest([&a]), key.digest([&later]));
        assert_ne!(key.digest([&a]), key.digest([&a, &a]));
        assert_ne!(key.digest([&a]), DigestKey::default().digest([&a]));
    }

    #[test]
    fn a_retry_is_told_the_generation_of_the_first_copy() {
        let mut recent = RecentExports::default();
        let now = Instant::now();
        let key = DigestKey::default();
        let d = digest(&key, 1);
        assert_eq!(recent.take(d, Some(4), now, |_| false), Seen::New);
        assert_eq!(
            recent.take(d, Some(5), now, |_| false),
            Seen::Retry(Some(4))
        );
        assert_eq!(
            recent.take(digest(&key, 2), None, now, |_| false),
            Seen::New
        );
    }

    #[test]
    fn a_retry_of_a_failed_commit_is_taken_again() {
        let mut recent = RecentExports::default();
        let now = Instant::now();
        let d = digest(&DigestKey::default(), 1);
        assert_eq!(recent.take(d, Some(4), now, |_| false), Seen::New);
        assert_eq!(recent.take(d, Some(6), now, |g| g == 4), Seen::New);
        assert_eq!(
            recent.take(d, Some(7), now, |g| g == 4),
            Seen::Retry(Some(6))
        );
    }

    #[test]
    fn exports_are_forgotten_after_the_window_and_beyond_capacity() {
        let mut recent = RecentExports::new(Duration::from_secs(60), 2);
        let start = Instant::now();
        let key = DigestKey::default();
        let (a, b, c) = (digest(&key, 1), digest(&key, 2), digest(&key, 3));
        recent.take(a, None, start, |_| false);
        recent.take(b, None, start, |_| false);
        // A third export pushes out the oldest.
        assert_eq!(recent.take(c, None, start, |_| false), Seen::New);
        assert_eq!(recent.len(), 2);
        assert_eq!(recent.take(a, None, start, |_| false), Seen::New);
        // After the window every one is new again.
        let later = start + Duration::from_secs(61);
        assert_eq!(recent.take(c, None, later, |_| false), Seen::New);
        assert_eq!(recent.len(), 1);
    }
}
