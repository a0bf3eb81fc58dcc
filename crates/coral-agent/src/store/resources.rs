//! Resources of kept spans, stored once each.
//!
//! A resource's attribute JSON (service, host, process, SDK: ~350 bytes in a
//! typical export) is the same for every span an application sends. Kept spans
//! refer to it by `resource_id`; `otel_resources_local` holds the JSON once.
//! This takes a third of the bytes out of every kept span row, and with them
//! a third of the writer's WAL, Appender and checkpoint work.
//!
//! A resource's id is the `seq_id` of the first kept span stored with it, so
//! ids are unique and never reused without a counter of their own, and a
//! restart needs nothing loaded. The writer keeps a [`Resources`] map from
//! JSON to id as a cache: it starts empty, and when it would pass
//! [`MAX_CACHED`] entries it starts again. A resource it does not know is
//! simply stored again under a new id, so a restart costs one row per
//! resource, and a client that sends a new resource with every request one
//! small row per request, never unbounded memory.

use std::collections::{HashMap, HashSet};

use coral_proto::common::TelemetrySpan;
use duckdb::{Connection, params};

/// Resources remembered by the writer at most.
pub const MAX_CACHED: usize = 4_096;

/// The writer's map from resource JSON to `resource_id`.
#[derive(Debug, Default)]
pub struct Resources {
    known: HashMap<String, u64>,
}

/// Resources first seen in a batch, to remember once the batch commits.
pub struct Fresh<'a>(HashMap<&'a str, u64>);

impl Resources {
    /// The `resource_id` of each span, where the spans get the `seq_id`s
    /// from `first_seq` on, appending the resources not stored yet to
    /// `otel_resources_local` on `conn` (the batch's transaction). Call
    /// [`Resources::remember`] with the result once the transaction commits.
    pub fn assign<'a>(
        &self,
        conn: &Connection,
        spans: &'a [TelemetrySpan],
        first_seq: u64,
    ) -> Result<(Vec<u64>, Fresh<'a>), duckdb::Error> {
        let known = &self.known;
        let mut fresh: HashMap<&'a str, u64> = HashMap::new();
        let mut ids = Vec::with_capacity(spans.len());
        // Spans of one export share their resource: most lookups are this one.
        let mut last: Option<(&str, u64)> = None;
        for (seq, span) in (first_seq..).zip(spans) {
            let json = span.resource_json.as_str();
            let id = match last {
                Some((previous, id)) if previous == json => id,
                _ => {
                    let id = match known.get(json) {
                        Some(&id) => id,
                        None => *fresh.entry(json).or_insert(seq),
                    };
                    last = Some((json, id));
                    id
                }
            };
            ids.push(id);
        }
        if !fresh.is_empty() {
            let mut app = conn.appender("otel_resources_local")?;
            for (json, id) in &fresh {
                app.append_row(params![id, json])?;
            }
            app.flush()?;
        }
        Ok((ids, Fresh(fresh)))
    }

    /// Remembers the resources of a committed batch.
    pub fn remember(&mut self, fresh: Fresh<'_>) {
        if self.known.len() + fresh.0.len() > MAX_CACHED {
            self.known.clear();
        }
        for (json, id) in fresh.0.into_iter().take(MAX_CACHED) {
            self.known.insert(json.to_owned(), id);
        }
    }

    /// Deletes the resources no kept span refers to any more and forgets
    /// them; returns how many rows went. Retention calls it only after it
    /// deleted spans: nothing else makes a resource unused.
    pub fn delete_unused(&mut self, conn: &Connection) -> Result<u64, duckdb::Error> {
        let mut stmt = conn.prepare(
            "DELETE FROM otel_resources_local r WHERE NOT EXISTS \
             (SELECT 1 FROM otel_spans_local s WHERE s.resource_id = r.resource_id) \
             RETURNING resource_id",
        )?;
        let deleted: HashSet<u64> = stmt
            .query_map([], |row| row.get(0))?
            .collect::<Result<_, _>>()?;
        if !deleted.is_empty() {
            self.known.retain(|_, id| !deleted.contains(id));
        }
        Ok(deleted.len() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conn() -> Connection {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(&crate::store::schema::ddl()).unwrap();
        conn
    }

    fn span(resource: &str) -> TelemetrySpan {
        TelemetrySpan {
            resource_json: resource.into(),
            ..Default::default()
        }
    }

    fn stored(conn: &Connection) -> Vec<(u64, String)> {
        let mut stmt = conn
            .prepare("SELECT resource_id, resource FROM otel_resources_local ORDER BY resource_id")
            .unwrap();
        stmt.query_map([], |row| Ok((row.get(0)?, row.get(1)?)))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap()
    }

    #[test]
    fn each_resource_is_stored_once_under_the_seq_id_of_its_first_span() {
        let conn = conn();
        let mut resources = Resources::default();
        let batch = [span("{\"a\":1}"), span("{\"b\":2}"), span("{\"a\":1}")];
        let (ids, fresh) = resources.assign(&conn, &batch, 10).unwrap();
        assert_eq!(ids, vec![10, 11, 10]);
        resources.remember(fresh);
        let (again, fresh) = resources.assign(&conn, &batch[..2], 13).unwrap();
        assert_eq!(again, vec![10, 11]);
        assert!(fresh.0.is_empty());
        assert_eq!(
            stored(&conn),
            vec![(10, "{\"a\":1}".to_owned()), (11, "{\"b\":2}".to_owned())]
        );

        // After a restart the cache is empty: a resource is stored once more.
        let restarted = Resources::default();
        let (after, _) = restarted.assign(&conn, &[span("{\"b\":2}")], 15).unwrap();
        assert_eq!(after, vec![15]);
        assert_eq!(stored(&conn).len(), 3);
    }

    #[test]
    fn a_batch_that_does_not_commit_is_not_remembered() {
        let mut conn = conn();
        let resources = Resources::default();
        let batch = [span("{\"a\":1}")];
        {
            let tx = conn.transaction().unwrap();
            let _ = resources.assign(&tx, &batch, 1).unwrap();
            tx.rollback().unwrap();
        }
        // The writer retries the same seq_ids after a failed batch.
        let (ids, fresh) = resources.assign(&conn, &batch, 1).unwrap();
        assert_eq!(fresh.0.len(), 1, "the rolled-back resource is stored again");
        assert_eq!(stored(&conn), vec![(ids[0], "{\"a\":1}".to_owned())]);
    }

    #[test]
    fn unused_resources_are_deleted_and_forgotten() {
        let conn = conn();
        let mut resources = Resources::default();
        let batch = [span("{\"old\":1}"), span("{\"new\":1}")];
        let (ids, fresh) = resources.assign(&conn, &batch, 1).unwrap();
        resources.remember(fresh);
        conn.execute(
            "INSERT INTO otel_spans_local (seq_id, trace_id, span_id, parent_span_id, service_name, \
             span_name, span_kind, start_time, start_time_ns, duration_us, is_error, status_code, \
             status_message, http_method, http_route, rpc_system, rpc_service, rpc_method, db_system, \
             db_operation, db_collection, keep_reason, attributes, resource_id) \
             VALUES (2, '', '', '', '', '', '', now()::TIMESTAMP, 0, 0, false, '', '', '', '', '', '', '', '', '', '', '', '{}', ?)",
            [ids[1]],
        )
        .unwrap();
        assert_eq!(resources.delete_unused(&conn).unwrap(), 1);
        assert_eq!(stored(&conn), vec![(2, "{\"new\":1}".to_owned())]);
        // The deleted resource comes back under a new id; the kept one keeps its id.
        let (again, _) = resources.assign(&conn, &batch, 3).unwrap();
        assert_eq!(again, vec![3, 2]);
    }

    #[test]
    fn the_cache_stays_bounded() {
        let conn = conn();
        let mut resources = Resources::default();
        let batch: Vec<TelemetrySpan> = (0..MAX_CACHED + 10)
            .map(|i| span(&format!("{{\"pid\":{i}}}")))
            .collect();
        let (ids, fresh) = resources.assign(&conn, &batch, 1).unwrap();
        resources.remember(fresh);
        assert!(resources.known.len() <= MAX_CACHED);
        let distinct: HashSet<u64> = ids.iter().copied().collect();
        assert_eq!(distinct.len(), batch.len());
    }
}
