//! Every column of Beyla's row families, on this run's engine: an HTTP, a
//! gRPC and an SQL row whose every field differs from the others' are
//! stored through the colony's writer and `QueryBeyla` returns each as its
//! agent sent it (its agent named, its seq_id dropped as merged rows have
//! none); so does a span. The families' columns are generated from one
//! declaration each (`coral_model::beyla_histogram_families`,
//! `coral_model::beyla_span_columns`) in every engine; this holds the
//! generated writes and reads to each other.

mod common;

use std::collections::HashMap;

use common::pages::{MINUTE, histogram, session_page};
use common::{EngineStore, engine_store};

use coral_colony::store::beyla::BeylaRows;
use coral_colony::store::ingest::Stream;
use coral_proto::colony::QueryBeylaRequest;
use coral_proto::common::{BeylaGrpcMetric, BeylaHttpMetric, BeylaSqlMetric, BeylaTraceSpan};

fn attributes(value: &str) -> HashMap<String, String> {
    HashMap::from([("server.address".to_owned(), value.to_owned())])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_every_histogram_family_reads_back_as_sent() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    let http = BeylaHttpMetric {
        minute: MINUTE,
        service_name: "storefront".into(),
        kind: "server".into(),
        http_method: "PATCH".into(),
        http_route: "/carts/{id}".into(),
        http_status_code: 418,
        latency: Some(histogram(&[3.0, 70.0, 120.0])),
        attributes: attributes("web-1"),
        seq_id: 1,
        agent_id: String::new(),
    };
    let grpc = BeylaGrpcMetric {
        minute: MINUTE + 60,
        service_name: "payments".into(),
        kind: "client".into(),
        rpc_system: "grpc".into(),
        grpc_method: "/bank.Pay/Refund".into(),
        grpc_status_code: 7,
        latency: Some(histogram(&[12.0])),
        attributes: attributes("pay-2"),
        seq_id: 2,
        agent_id: String::new(),
    };
    let sql = BeylaSqlMetric {
        minute: MINUTE + 120,
        service_name: "ledger".into(),
        db_system: "mysql".into(),
        sql_operation: "UPDATE".into(),
        table_name: "balances".into(),
        error_count: 3,
        latency: Some(histogram(&[600.0, 45.0])),
        attributes: attributes("db-3"),
        seq_id: 3,
        agent_id: String::new(),
    };
    let mut page = session_page("edge-7", Stream::Beyla, "edge-7-beyla", (0, 3));
    page.beyla = BeylaRows {
        http: vec![http.clone()],
        grpc: vec![grpc.clone()],
        sql: vec![sql.clone()],
        spans: Vec::new(),
    };
    let outcome = tx.store(page).await.unwrap();
    assert_eq!(outcome.cursor, 3);

    let read = reads.beyla(QueryBeylaRequest::default()).await.unwrap();
    let agent = "edge-7".to_owned();
    assert_eq!(
        read.http_metrics,
        vec![BeylaHttpMetric {
            agent_id: agent.clone(),
            seq_id: 0,
            ..http
        }]
    );
    assert_eq!(
        read.grpc_metrics,
        vec![BeylaGrpcMetric {
            agent_id: agent.clone(),
            seq_id: 0,
            ..grpc
        }]
    );
    assert_eq!(
        read.sql_metrics,
        vec![BeylaSqlMetric {
            agent_id: agent,
            seq_id: 0,
            ..sql
        }]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_field_of_a_beyla_span_reads_back_as_sent() {
    let EngineStore { reads, tx, .. } = &engine_store().await;
    let span = BeylaTraceSpan {
        trace_id: "0af7651916cd43dd8448eb211c80319c".into(),
        span_id: "b7ad6b7169203331".into(),
        parent_span_id: "00f067aa0ba902b7".into(),
        service_name: "storefront".into(),
        span_name: "PATCH /carts/{id}".into(),
        span_kind: "SPAN_KIND_SERVER".into(),
        start_time_unix_nano: (MINUTE * 1_000 + 1_234) * 1_000_000 + 567,
        duration_us: 89_012,
        status_code: 418,
        is_error: true,
        attributes_json: r#"{"http.request.method":"PATCH"}"#.into(),
        seq_id: 9,
        agent_id: String::new(),
    };
    let mut page = session_page("edge-8", Stream::Beyla, "edge-8-beyla", (0, 9));
    page.beyla.spans = vec![span.clone()];
    tx.store(page).await.unwrap();

    let read = reads
        .beyla(QueryBeylaRequest {
            trace_id: span.trace_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        read.trace_spans,
        vec![BeylaTraceSpan {
            agent_id: "edge-8".into(),
            ..span
        }]
    );
}
