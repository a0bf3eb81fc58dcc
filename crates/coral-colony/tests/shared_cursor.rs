//! Pulled and pushed rows of an agent number from one sequence and share one
//! cursor: an agent that moves between being polled and pushing, on the same
//! data directory, neither stores a row twice nor leaves false gaps.

mod common;

use std::path::Path;

use common::{count, kept_span};
use coral_colony::store::Database;
use coral_colony::store::ingest::{Page, Stream};
use coral_colony::store::writer::{Writer, WriterSender};

fn page(stream: Stream, start: u64, max: u64) -> Page {
    Page {
        agent_id: "web-01".into(),
        stream,
        session_id: "session-1".into(),
        start_seq: start,
        max_seq: max,
        buckets: Vec::new(),
        spans: (1..=max)
            .map(|seq_id| kept_span(seq_id, "checkout"))
            .collect(),
        hosts: Vec::new(),
        beyla: Default::default(),
        reported: Vec::new(),
    }
}

async fn with_writer<F, Fut>(dir: &Path, work: F)
where
    F: FnOnce(WriterSender) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (db, conn) = Database::open(dir).unwrap();
    let (writer, tx) = Writer::start(conn, db, Default::default()).unwrap();
    work(tx.clone()).await;
    tx.close();
    tokio::task::spawn_blocking(move || writer.join())
        .await
        .unwrap();
}

#[tokio::test]
async fn an_agent_that_moves_between_pull_and_push_is_stored_once() {
    let dir = tempfile::tempdir().unwrap();
    with_writer(dir.path(), |w| async move {
        let pulled = w.store(page(Stream::Pull, 0, 10)).await.unwrap();
        assert_eq!((pulled.stored, pulled.cursor), (10, 10));
        // Restarted as a forwarder: its outbox was never acknowledged, so it
        // pushes everything it holds, from the start.
        let pushed = w.store(page(Stream::Push, 0, 15)).await.unwrap();
        assert_eq!((pushed.stored, pushed.duplicates), (5, 10));
        assert!(pushed.gaps.is_empty(), "{:?}", pushed.gaps);
        // And polled again.
        let mut back = page(Stream::Pull, 15, 20);
        back.spans.retain(|s| s.seq_id > 15);
        let back = w.store(back).await.unwrap();
        assert_eq!((back.stored, back.cursor), (5, 20));
        assert!(back.gaps.is_empty(), "{:?}", back.gaps);
    })
    .await;
    assert_eq!(count(dir.path(), "SELECT count(*) FROM trace_spans"), 20);
    assert_eq!(
        count(dir.path(), "SELECT count(DISTINCT seq_id) FROM trace_spans"),
        20
    );
    assert_eq!(count(dir.path(), "SELECT count(*) FROM gaps"), 0);
}

#[tokio::test]
async fn a_push_cursor_from_an_older_colony_becomes_the_shared_one() {
    let dir = tempfile::tempdir().unwrap();
    drop(Database::open(dir.path()).unwrap());
    {
        // What a colony before the shared cursor (schema version 1) left for
        // a pushing agent.
        let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
        conn.execute_batch(
            "UPDATE coral_metadata SET value = '1' WHERE key = 'schema_version';
             INSERT INTO cursors (agent_id, stream, session_id, seq_id, rows_received, updated_at) \
             VALUES ('web-01', 'push', 'session-1', 12, 12, now()::TIMESTAMP)",
        )
        .unwrap();
    }
    with_writer(dir.path(), |w| async move {
        let polled = w.store(page(Stream::Pull, 0, 14)).await.unwrap();
        assert_eq!(
            (polled.stored, polled.duplicates, polled.cursor),
            (2, 12, 14)
        );
    })
    .await;
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM cursors WHERE stream = 'telemetry' AND seq_id = 14"
        ),
        1
    );
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM cursors WHERE stream = 'push'"
        ),
        0
    );
}

fn session_page(session: &str, max: u64, reported: &[(&str, u64)]) -> Page {
    Page {
        session_id: session.into(),
        reported: reported.iter().map(|&(s, n)| (s.into(), n)).collect(),
        ..page(Stream::Pull, 0, max)
    }
}

#[tokio::test]
async fn rows_a_replaced_agent_database_took_with_it_are_recorded_as_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    with_writer(dir.path(), |w| async move {
        // Read up to 10 while the agent said it held 15.
        let first = w
            .store(session_page("session-1", 10, &[("session-1", 15)]))
            .await
            .unwrap();
        assert_eq!((first.cursor, first.replaced_gap), (10, None));
    })
    .await;
    // The colony restarts in between: what the agent reported is in the file.
    with_writer(dir.path(), |w| async move {
        let replaced = w.store(session_page("session-2", 5, &[])).await.unwrap();
        assert!(replaced.session_reset);
        assert_eq!(replaced.replaced_gap, Some((11, 15)));
        assert_eq!((replaced.stored, replaced.cursor), (5, 5));
        assert!(replaced.gaps.is_empty(), "{:?}", replaced.gaps);
        // A heartbeat said session 2 reached 8 before it was replaced too.
        let again = w
            .store(session_page(
                "session-3",
                3,
                &[("session-2", 8), ("session-3", 3)],
            ))
            .await
            .unwrap();
        assert_eq!(again.replaced_gap, Some((6, 8)));
        // Replaced with nothing unread: no gap.
        let clean = w
            .store(session_page("session-4", 2, &[("session-3", 3)]))
            .await
            .unwrap();
        assert!(clean.session_reset);
        assert_eq!(clean.replaced_gap, None);
    })
    .await;
    let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
    let gaps: Vec<(String, String, u64, u64, String)> = conn
        .prepare(
            "SELECT session_id, stream, from_seq_id, to_seq_id, reason FROM gaps \
             ORDER BY from_seq_id DESC",
        )
        .unwrap()
        .query_map([], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(gaps.len(), 2, "{gaps:?}");
    assert_eq!(
        (&gaps[0].0[..], &gaps[0].1[..], gaps[0].2, gaps[0].3),
        ("session-1", "telemetry", 11, 15)
    );
    assert!(gaps[0].4.contains("replaced database"), "{}", gaps[0].4);
    assert_eq!((&gaps[1].0[..], gaps[1].2, gaps[1].3), ("session-2", 6, 8));
}

#[tokio::test]
async fn a_version_1_colony_database_is_upgraded_in_place() {
    let dir = tempfile::tempdir().unwrap();
    drop(Database::open(dir.path()).unwrap());
    {
        // What a colony before `cursors.latest_seq_id` left behind.
        let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
        conn.execute_batch(
            "ALTER TABLE cursors DROP COLUMN latest_seq_id;
             UPDATE coral_metadata SET value = '1' WHERE key = 'schema_version';
             INSERT INTO cursors VALUES ('web-01', 'telemetry', 'session-1', 12, 12, now()::TIMESTAMP);",
        )
        .unwrap();
    }
    with_writer(dir.path(), |w| async move {
        // The old cursor holds: only 13 and 14 are new, and no false gap
        // appears although the old row never recorded a latest seq_id.
        let next = w.store(page(Stream::Pull, 12, 14)).await.unwrap();
        assert_eq!((next.stored, next.duplicates, next.cursor), (2, 12, 14));
        let replaced = w.store(session_page("session-2", 1, &[])).await.unwrap();
        assert_eq!(replaced.replaced_gap, None);
    })
    .await;
    assert_eq!(
        count(
            dir.path(),
            "SELECT count(*) FROM coral_metadata WHERE key = 'schema_version' AND value = '2'"
        ),
        1
    );
    assert_eq!(count(dir.path(), "SELECT count(*) FROM gaps"), 0);
}

/// Two processes with one agent id (a rolling update whose old pod still
/// pushes): a session that sends rows again was not replaced, so the gap
/// recorded for it is taken back; once it stops for good, what it reported
/// but never sent is recorded.
#[tokio::test]
async fn a_session_that_sends_again_was_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    with_writer(dir.path(), |w| async move {
        let push = |session: &str, start: u64, max: u64, reported: &[(&str, u64)]| {
            let mut p = session_page(session, max, reported);
            p.stream = Stream::Push;
            p.start_seq = start;
            p.spans.retain(|s| s.seq_id > start);
            p
        };
        w.store(push("old", 0, 120, &[("old", 200)])).await.unwrap();
        let new = w.store(push("new", 0, 5, &[])).await.unwrap();
        assert_eq!(new.replaced_gap, Some((121, 200)));
        // The old pod pushes again: it was not replaced.
        let old = w
            .store(push("old", 120, 140, &[("old", 200)]))
            .await
            .unwrap();
        assert_eq!((old.stored, old.cursor), (20, 140));
        // Then it stops; the new one goes on and records what is missing now.
        let again = w.store(push("new", 5, 8, &[])).await.unwrap();
        assert_eq!(again.replaced_gap, Some((141, 200)));
    })
    .await;
    let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
    let gaps: Vec<(String, u64, u64)> = conn
        .prepare("SELECT session_id, from_seq_id, to_seq_id FROM gaps")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(gaps, [("old".to_string(), 141, 200)]);
}
