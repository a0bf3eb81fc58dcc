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
    }
}

async fn with_writer<F, Fut>(dir: &Path, work: F)
where
    F: FnOnce(WriterSender) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (_db, conn) = Database::open(dir).unwrap();
    let (writer, tx) = Writer::start(conn, Default::default()).unwrap();
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
        // What a colony before the shared cursor left for a pushing agent.
        let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
        conn.execute_batch(
            "INSERT INTO cursors VALUES ('web-01', 'push', 'session-1', 12, 12, now()::TIMESTAMP)",
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
