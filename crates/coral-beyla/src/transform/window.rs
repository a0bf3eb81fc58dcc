//! [`MinuteWindow`]: merges rows of the same (minute, series) and hands back
//! closed minutes, so that each (minute, series) normally yields one row.
//!
//! A minute `m` (Unix seconds, a multiple of 60) is closed once
//! `now ≥ m + 60 + grace`. Rows that arrive for a minute already handed back
//! (a late export) open it again and come out at the next flush as a second
//! row: storage merges rows, it never overwrites them. Memory is bounded: when
//! more than `max_pending` series are open, the oldest minutes are handed back
//! early, never dropped.

use std::collections::{BTreeMap, HashMap};

use coral_model::Histogram;
use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, LatencyHistogram};

/// Rows of the three metric tables.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BeylaRows {
    /// HTTP server and client rows.
    pub http: Vec<BeylaHttpMetric>,
    /// RPC (gRPC, JSON-RPC, ONC RPC) rows.
    pub grpc: Vec<BeylaGrpcMetric>,
    /// Database and messaging rows.
    pub sql: Vec<BeylaSqlMetric>,
}

impl BeylaRows {
    /// Number of rows.
    pub fn len(&self) -> usize {
        self.http.len() + self.grpc.len() + self.sql.len()
    }

    /// No rows at all.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `other`'s rows.
    pub fn extend(&mut self, other: BeylaRows) {
        self.http.extend(other.http);
        self.grpc.extend(other.grpc);
        self.sql.extend(other.sql);
    }
}

/// The key of a series (without its minute).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum SeriesKey {
    Http {
        service: String,
        kind: String,
        method: String,
        route: String,
        status: u32,
    },
    Grpc {
        service: String,
        kind: String,
        method: String,
        status: u32,
        system: String,
    },
    Sql {
        service: String,
        system: String,
        operation: String,
        table: String,
    },
}

impl SeriesKey {
    /// Cuts every name in the key to `max` bytes, as stored names are.
    pub(crate) fn cut_names(&mut self, max: usize) {
        let names = match self {
            SeriesKey::Http {
                service,
                kind,
                method,
                route,
                ..
            } => [service, kind, method, route],
            SeriesKey::Grpc {
                service,
                kind,
                method,
                system,
                ..
            } => [service, kind, method, system],
            SeriesKey::Sql {
                service,
                system,
                operation,
                table,
            } => [service, system, operation, table],
        };
        for name in names {
            if name.len() > max {
                *name = super::attrs::truncate(std::mem::take(name), max);
            }
        }
    }
}

#[derive(Debug)]
struct Acc {
    latency: Histogram,
    attributes: BTreeMap<String, String>,
    error_count: u64,
}

/// Default bound on open (minute, series) entries.
pub const DEFAULT_MAX_PENDING: usize = 100_000;

/// Per-minute merge of metric rows.
#[derive(Debug)]
pub struct MinuteWindow {
    minutes: BTreeMap<i64, HashMap<SeriesKey, Acc>>,
    pending: usize,
    max_pending: usize,
}

impl Default for MinuteWindow {
    fn default() -> Self {
        MinuteWindow::new()
    }
}

impl MinuteWindow {
    /// An empty window holding at most [`DEFAULT_MAX_PENDING`] open entries.
    pub fn new() -> MinuteWindow {
        MinuteWindow::with_max_pending(DEFAULT_MAX_PENDING)
    }

    /// An empty window holding at most `max_pending` open entries.
    pub fn with_max_pending(max_pending: usize) -> MinuteWindow {
        MinuteWindow {
            minutes: BTreeMap::new(),
            pending: 0,
            max_pending: max_pending.max(1),
        }
    }

    /// Open (minute, series) entries.
    pub fn pending(&self) -> usize {
        self.pending
    }

    /// Merges `rows` in (histograms with `Histogram::merge`, error counts
    /// added, identity attributes kept where they agree).
    pub fn add(&mut self, rows: BeylaRows) {
        for r in rows.http {
            let key = SeriesKey::Http {
                service: r.service_name,
                kind: r.kind,
                method: r.http_method,
                route: r.http_route,
                status: r.http_status_code,
            };
            self.add_series(r.minute, key, histogram(r.latency), r.attributes, 0);
        }
        for r in rows.grpc {
            let key = SeriesKey::Grpc {
                service: r.service_name,
                kind: r.kind,
                method: r.grpc_method,
                status: r.grpc_status_code,
                system: r.rpc_system,
            };
            self.add_series(r.minute, key, histogram(r.latency), r.attributes, 0);
        }
        for r in rows.sql {
            let key = SeriesKey::Sql {
                service: r.service_name,
                system: r.db_system,
                operation: r.sql_operation,
                table: r.table_name,
            };
            self.add_series(
                r.minute,
                key,
                histogram(r.latency),
                r.attributes,
                r.error_count,
            );
        }
    }

    pub(crate) fn add_series<A>(
        &mut self,
        minute: i64,
        key: SeriesKey,
        latency: Histogram,
        attributes: A,
        error_count: u64,
    ) where
        A: IntoIterator<Item = (String, String)>,
    {
        let series = self.minutes.entry(minute).or_default();
        match series.get_mut(&key) {
            Some(acc) => {
                acc.latency.merge(&latency);
                acc.error_count += error_count;
                let other: BTreeMap<String, String> = attributes.into_iter().collect();
                acc.attributes.retain(|k, v| other.get(k) == Some(v));
            }
            None => {
                series.insert(
                    key,
                    Acc {
                        latency,
                        attributes: attributes.into_iter().collect(),
                        error_count,
                    },
                );
                self.pending += 1;
            }
        }
    }

    /// Hands back every closed minute (`minute + 60 + grace_secs ≤
    /// now_unix_secs`), or every open minute when `force`, plus the oldest
    /// minutes while more than `max_pending` entries are open. Rows come out
    /// ordered by minute, then by series.
    pub fn flush(&mut self, now_unix_secs: i64, grace_secs: i64, force: bool) -> BeylaRows {
        let mut out = BeylaRows::default();
        while let Some((&minute, _)) = self.minutes.first_key_value() {
            let closed =
                minute.saturating_add(60).saturating_add(grace_secs.max(0)) <= now_unix_secs;
            if !(force || closed || self.pending > self.max_pending) {
                break;
            }
            let Some(series) = self.minutes.remove(&minute) else {
                break;
            };
            self.pending -= series.len();
            let mut series: Vec<_> = series.into_iter().collect();
            series.sort_unstable_by(|a, b| a.0.cmp(&b.0));
            for (key, acc) in series {
                push_row(&mut out, minute, key, acc);
            }
        }
        out
    }
}

fn histogram(p: Option<LatencyHistogram>) -> Histogram {
    let p = p.unwrap_or_default();
    Histogram::from_proto(&p).unwrap_or(Histogram {
        bounds_ms: p.bounds_ms,
        counts: p.counts,
        count: p.count,
        sum_ms: p.sum_ms,
        min_ms: p.min_ms,
        max_ms: p.max_ms,
    })
}

fn push_row(out: &mut BeylaRows, minute: i64, key: SeriesKey, acc: Acc) {
    let latency = Some(acc.latency.to_proto());
    let attributes = acc.attributes.into_iter().collect();
    match key {
        SeriesKey::Http {
            service,
            kind,
            method,
            route,
            status,
        } => out.http.push(BeylaHttpMetric {
            minute,
            service_name: service,
            kind,
            http_method: method,
            http_route: route,
            http_status_code: status,
            latency,
            attributes,
            ..Default::default()
        }),
        SeriesKey::Grpc {
            service,
            kind,
            method,
            status,
            system,
        } => out.grpc.push(BeylaGrpcMetric {
            minute,
            service_name: service,
            kind,
            grpc_method: method,
            grpc_status_code: status,
            latency,
            attributes,
            rpc_system: system,
            ..Default::default()
        }),
        SeriesKey::Sql {
            service,
            system,
            operation,
            table,
        } => out.sql.push(BeylaSqlMetric {
            minute,
            service_name: service,
            sql_operation: operation,
            table_name: table,
            db_system: system,
            latency,
            attributes,
            error_count: acc.error_count,
            ..Default::default()
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn http_row(minute: i64, route: &str, n: u64, host: &str) -> BeylaHttpMetric {
        let h = Histogram::new(
            vec![10.0, 100.0],
            vec![n, 0, 0],
            n as f64,
            Some(1.0),
            Some(9.0),
        )
        .unwrap();
        BeylaHttpMetric {
            minute,
            service_name: "shop".into(),
            kind: "server".into(),
            http_method: "GET".into(),
            http_route: route.into(),
            http_status_code: 200,
            latency: Some(h.to_proto()),
            attributes: [("host.name".to_string(), host.to_string())].into(),
            ..Default::default()
        }
    }

    #[test]
    fn merges_the_same_minute_and_series_once() {
        let mut w = MinuteWindow::new();
        w.add(BeylaRows {
            http: vec![
                http_row(60, "/a", 2, "n1"),
                http_row(60, "/a", 3, "n1"),
                http_row(60, "/b", 1, "n1"),
            ],
            ..Default::default()
        });
        w.add(BeylaRows {
            http: vec![http_row(120, "/a", 4, "n2"), http_row(60, "/a", 1, "n2")],
            ..Default::default()
        });
        assert_eq!(w.pending(), 3);
        // Minute 60 closes at 60 + 60 + 10 = 130.
        assert!(w.flush(129, 10, false).is_empty());
        let out = w.flush(130, 10, false);
        assert_eq!(out.http.len(), 2);
        assert_eq!(out.http[0].http_route, "/a");
        assert_eq!(out.http[0].latency.as_ref().unwrap().count, 6);
        // The hosts disagree: the attribute is dropped rather than guessed.
        assert!(out.http[0].attributes.is_empty());
        assert_eq!(
            out.http[1].attributes.get("host.name").map(String::as_str),
            Some("n1")
        );
        let out = w.flush(0, 0, true);
        assert_eq!(out.http.len(), 1);
        assert_eq!(out.http[0].minute, 120);
        assert_eq!(w.pending(), 0);
    }

    #[test]
    fn bounded_by_handing_back_the_oldest_minutes() {
        let mut w = MinuteWindow::with_max_pending(2);
        let rows = (0..3).map(|i| http_row(60 * i, "/a", 1, "n")).collect();
        w.add(BeylaRows {
            http: rows,
            ..Default::default()
        });
        let out = w.flush(0, 0, false);
        assert_eq!(out.http.len(), 1);
        assert_eq!(out.http[0].minute, 0);
        assert_eq!(w.pending(), 2);
    }
}
