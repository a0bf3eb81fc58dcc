//! A store written before a column was declared gets the column when a
//! colony of this version opens it, on both engines: the column is added
//! at the table's end, rows already stored read its default, and new rows
//! are written to it (rows are appended by column name, so its position
//! does not matter). The test takes declared columns away from a fresh
//! store, as an older version would have written it, and opens it again.

mod common;

use coral_colony::store::clickhouse::ClickHouse;
use coral_colony::store::engine;
use coral_colony::store::writer::{Writer, WriterSender};
use coral_proto::colony::QueryBeylaRequest;

use common::clickhouse::server;
use common::pages::{beyla_page, pages};
use common::store_count;

/// The HTTP routes `QueryBeyla` returns, by agent.
async fn routes(store: &engine::Store) -> Vec<(String, String)> {
    let mut routes: Vec<(String, String)> = store
        .beyla(QueryBeylaRequest::default())
        .await
        .unwrap()
        .http_metrics
        .into_iter()
        .map(|m| (m.agent_id, m.http_route))
        .collect();
    routes.sort();
    routes.dedup();
    routes
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_embedded_store_adds_declared_columns_an_older_file_lacks() {
    let dir = tempfile::tempdir().unwrap();
    {
        let (db, conn) = coral_colony::store::Database::open(dir.path()).unwrap();
        let (writer, tx) = Writer::start(conn, db, Default::default()).unwrap();
        tx.store(beyla_page("before")).await.unwrap();
        drop(tx);
        writer.join();
    }
    {
        let conn = duckdb::Connection::open(dir.path().join("colony.duckdb")).unwrap();
        conn.execute_batch(
            "ALTER TABLE beyla_http_metrics DROP COLUMN http_route;
             ALTER TABLE trace_spans DROP COLUMN span_name;
             ALTER TABLE host_metrics DROP COLUMN hostname;",
        )
        .unwrap();
    }
    let (db, conn) = coral_colony::store::Database::open(dir.path()).unwrap();
    let (_writer, tx) = Writer::start(conn, db.clone(), Default::default()).unwrap();
    for page in pages("after", 1.0) {
        tx.store(page).await.unwrap();
    }
    tx.store(beyla_page("after")).await.unwrap();

    let store = engine::Store::DuckDb(db);
    assert_eq!(
        routes(&store).await,
        [
            ("after".into(), "/pay".into()),
            ("before".into(), "".into())
        ],
        "rows stored before read the default; new rows hold their route"
    );
    let spans = store_count(&store, "SELECT count(*) FROM trace_spans").await;
    assert!(spans > 0);
    let named = "SELECT count(*) FROM trace_spans WHERE span_name = 'POST /pay'";
    assert_eq!(
        store_count(&store, named).await,
        spans,
        "kept spans (an Arrow batch) are written to the added column"
    );
    let host = "SELECT count(*) FROM host_metrics WHERE hostname = 'after.example'";
    assert_eq!(store_count(&store, host).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clickhouse_tables_get_declared_columns_they_lack() {
    let Some(server) = server().await else {
        return;
    };
    let settings = server.settings("older");
    let first = ClickHouse::open(&settings).await.unwrap();
    let tx = WriterSender::clickhouse(first.clone(), Default::default(), Default::default());
    tx.store(beyla_page("before")).await.unwrap();
    first
        .client()
        .query("ALTER TABLE beyla_http_metrics DROP COLUMN http_route")
        .execute()
        .await
        .unwrap();

    let store = ClickHouse::open(&settings).await.unwrap();
    let tx = WriterSender::clickhouse(store.clone(), Default::default(), Default::default());
    tx.store(beyla_page("after")).await.unwrap();
    assert_eq!(
        routes(&engine::Store::ClickHouse(store)).await,
        [
            ("after".into(), "/pay".into()),
            ("before".into(), "".into())
        ],
        "rows stored before read the default; new rows hold their route"
    );
}
