//! OTLP/HTTP receiver: `POST /v1/traces`, `/v1/metrics`, `/v1/logs`.
//!
//! Bodies are `application/x-protobuf` or `application/json` (OTLP/JSON: hex
//! ids, lowerCamelCase keys, 64-bit integers as strings), optionally
//! `Content-Encoding: gzip`. Responses use the request's encoding. Failures
//! follow the OTLP specification, with a `google.rpc.Status` body:
//!
//! | condition | status |
//! |---|---|
//! | body cannot be decoded (or bad gzip) | 400 |
//! | body (or its decompressed form) over the limit | 413 |
//! | body stopped arriving ([`super::READ_IDLE_TIMEOUT`]) or took longer than [`super::REQUEST_TIMEOUT`] | 408 |
//! | wrong or missing content type, unknown content encoding | 415 |
//! | method other than POST | 405 |
//! | pipeline saturated, or the listener holds its budget of body bytes | 429 with `Retry-After` |
//! | shutting down | 503 with `Retry-After` |

use std::sync::Arc;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use coral_proto::otlp::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use coral_proto::otlp::collector::metrics::v1::{
    ExportMetricsPartialSuccess, ExportMetricsServiceRequest, ExportMetricsServiceResponse,
};
use coral_proto::otlp::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use coral_proto::rpc::Status as RpcStatus;
use prost::Message;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use super::ReceiverLimits;
use super::body::{self, BodyBudget, BodyError};
use super::conn::{Connections, LimitedListener};
use super::grpc::partial;
use crate::durable::{STORE_WAIT, Ticket};
use crate::metrics::Counters;
use crate::pipeline::{IngestError, OtlpSink, TraceExport};

/// Requests decoded concurrently, once their bodies are in; beyond this, 429.
pub const MAX_CONCURRENT_REQUESTS: usize = 16;

/// Bodies declared over the limit are still read (and dropped) up to this
/// size, or four limits, so that their 413 reaches the client.
const DRAIN_AT_LEAST: usize = 64 << 20;

#[derive(Clone)]
struct HttpState {
    sink: Arc<dyn OtlpSink>,
    limits: ReceiverLimits,
    inflight: Arc<Semaphore>,
    budget: BodyBudget,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Protobuf,
    Json,
}

/// A refused request: status, message and the encoding to answer in.
struct Refusal {
    status: StatusCode,
    message: String,
    encoding: Encoding,
    retry_after: Option<u64>,
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        let grpc_code = match self.status {
            StatusCode::BAD_REQUEST => 3,
            StatusCode::PAYLOAD_TOO_LARGE => 8,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE => 14,
            _ => 3,
        };
        let body = RpcStatus {
            code: grpc_code,
            message: self.message,
        };
        let mut response = encode(self.encoding, &body, self.status);
        if let Some(secs) = self.retry_after {
            response.headers_mut().insert(
                header::RETRY_AFTER,
                secs.to_string().parse().expect("digits"),
            );
        }
        response
    }
}

impl Serialize for RpcStatusJson<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut st = s.serialize_struct("Status", 2)?;
        st.serialize_field("code", &self.0.code)?;
        st.serialize_field("message", &self.0.message)?;
        st.end()
    }
}

struct RpcStatusJson<'a>(&'a RpcStatus);

trait Reply {
    fn to_json(&self) -> Vec<u8>;
}

impl Reply for RpcStatus {
    fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(&RpcStatusJson(self)).unwrap_or_default()
    }
}

/// The OTLP/JSON form of a response's `partial_success`: `{}` when nothing
/// was refused (OTLP/JSON leaves out unset fields), and the refused count as a
/// decimal string, as proto3 JSON writes 64-bit integers.
fn partial_json(count_field: &str, partial: Option<(i64, &str)>) -> Vec<u8> {
    let Some((rejected, message)) = partial else {
        return b"{}".to_vec();
    };
    let mut inner = serde_json::Map::new();
    if rejected != 0 {
        inner.insert(count_field.into(), rejected.to_string().into());
    }
    if !message.is_empty() {
        inner.insert("errorMessage".into(), message.into());
    }
    serde_json::to_vec(&serde_json::json!({ "partialSuccess": inner })).unwrap_or_default()
}

macro_rules! partial_reply {
    ($($t:ty => $json_name:literal, $count:ident);* $(;)?) => {$(
        impl Reply for $t {
            fn to_json(&self) -> Vec<u8> {
                let partial = self.partial_success.as_ref();
                partial_json($json_name, partial.map(|p| (p.$count, p.error_message.as_str())))
            }
        }
    )*};
}
partial_reply!(
    ExportTraceServiceResponse => "rejectedSpans", rejected_spans;
    ExportMetricsServiceResponse => "rejectedDataPoints", rejected_data_points;
    ExportLogsServiceResponse => "rejectedLogRecords", rejected_log_records;
);

fn encode<M: Message + Reply>(encoding: Encoding, message: &M, status: StatusCode) -> Response {
    let (content_type, body) = match encoding {
        Encoding::Protobuf => ("application/x-protobuf", message.encode_to_vec()),
        Encoding::Json => ("application/json", message.to_json()),
    };
    (
        status,
        [(header::CONTENT_TYPE, content_type)],
        Body::from(body),
    )
        .into_response()
}

/// The router, for tests and for [`serve`]: bodies within `limits`.
pub fn router(sink: Arc<dyn OtlpSink>, limits: ReceiverLimits) -> Router {
    let state = HttpState {
        sink,
        limits,
        inflight: Arc::new(Semaphore::new(MAX_CONCURRENT_REQUESTS)),
        budget: BodyBudget::new(limits.buffered_bytes),
    };
    Router::new()
        .route("/v1/traces", post(traces))
        .route("/v1/metrics", post(metrics))
        .route("/v1/logs", post(logs))
        // Bodies are bounded by `read_body`; axum's own limit must not cut in first.
        .layer(DefaultBodyLimit::disable())
        .with_state(state)
}

/// Serves OTLP/HTTP on `listener` until `shutdown` is cancelled, with at
/// most `limits.max_connections` connections open.
pub async fn serve(
    listener: TcpListener,
    sink: Arc<dyn OtlpSink>,
    limits: ReceiverLimits,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let connections = Connections::new(
        limits.max_connections,
        limits.connection_idle_timeout,
        sink.counters().clone(),
    );
    let listener = LimitedListener {
        listener,
        connections,
    };
    axum::serve(listener, router(sink, limits))
        .with_graceful_shutdown(shutdown.cancelled_owned())
        .await
}

async fn traces(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    handle::<TraceBody, _, _>(state, headers, body, "traces", |p, req| {
        p.export_traces(req.export()).map(|outcome| {
            let stored = outcome.stored;
            let response = ExportTraceServiceResponse {
                partial_success: partial(outcome, |rejected, message| ExportTracePartialSuccess {
                    rejected_spans: rejected,
                    error_message: message,
                }),
            };
            (response, stored)
        })
    })
    .await
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportMetricsServiceRequest, _, _>(state, headers, body, "metrics", |p, req| {
        p.export_metrics(req).map(|outcome| {
            let response = ExportMetricsServiceResponse {
                partial_success: partial(outcome, |rejected, message| {
                    ExportMetricsPartialSuccess {
                        rejected_data_points: rejected,
                        error_message: message,
                    }
                }),
            };
            (response, None)
        })
    })
    .await
}

async fn logs(State(state): State<HttpState>, headers: HeaderMap, body: Body) -> Response {
    handle::<ExportLogsServiceRequest, _, _>(state, headers, body, "logs", |p, req| {
        let response = ExportLogsServiceResponse {
            partial_success: partial(p.export_logs(req), |rejected, message| {
                ExportLogsPartialSuccess {
                    rejected_log_records: rejected,
                    error_message: message,
                }
            }),
        };
        Ok((response, None))
    })
    .await
}

async fn handle<Req, Resp, F>(
    state: HttpState,
    headers: HeaderMap,
    body: Body,
    signal: &str,
    ingest: F,
) -> Response
where
    Req: FromBody,
    Resp: Message + Reply,
    F: FnOnce(&dyn OtlpSink, &Req) -> Result<(Resp, Option<Ticket>), IngestError>,
{
    let counters = state.sink.counters().clone();
    let result = async {
        let encoding = content_type(&headers)?;
        let limits = state.limits;
        let reading = read_body(body, &headers, &state, encoding);
        let (raw, _held) = tokio::time::timeout(limits.request_timeout, reading)
            .await
            .map_err(|_| timed_out(encoding, limits))??;
        let Ok(_permit) = state.inflight.try_acquire() else {
            Counters::add(&counters.requests_throttled, 1);
            return Err(throttled(encoding, 1));
        };
        let bytes = decompress(raw, &headers, limits.max_message_bytes, encoding)?;
        let request = Req::from_body(encoding, bytes, signal)?;
        let (response, ticket) = ingest(state.sink.as_ref(), &request)
            .map_err(|error| ingest_refusal(error, encoding, signal))?;
        // Waiting for the commit holds neither a decoding slot nor the body.
        drop((_permit, _held, request));
        if let (Some(ticket), Some(durability)) = (ticket, state.sink.durability()) {
            durability.wait(ticket, STORE_WAIT).await.map_err(|error| {
                Counters::add(&counters.requests_not_stored, 1);
                ingest_refusal(error, encoding, signal)
            })?;
        }
        Ok(encode(encoding, &response, StatusCode::OK))
    }
    .await;
    match result {
        Ok(response) => response,
        Err(refusal) => {
            match refusal.status {
                StatusCode::BAD_REQUEST | StatusCode::REQUEST_TIMEOUT => {
                    Counters::add(&counters.requests_rejected_invalid, 1)
                }
                StatusCode::PAYLOAD_TOO_LARGE => {
                    Counters::add(&counters.requests_rejected_too_large, 1)
                }
                _ => {}
            }
            refusal.into_response()
        }
    }
}

/// How a request body becomes what the sink takes.
trait FromBody: Sized {
    fn from_body(encoding: Encoding, bytes: Bytes, signal: &str) -> Result<Self, Refusal>;
}

/// Metrics and logs requests are decoded from either encoding.
impl<T: Message + DeserializeOwned + Default> FromBody for T {
    fn from_body(encoding: Encoding, bytes: Bytes, signal: &str) -> Result<Self, Refusal> {
        match encoding {
            Encoding::Protobuf => T::decode(bytes).map_err(|e| {
                bad_request(
                    encoding,
                    format!("cannot decode OTLP/protobuf {signal} request: {e}"),
                )
            }),
            Encoding::Json => coral_proto::otlp_json::decode(&bytes).map_err(|e| {
                bad_request(
                    encoding,
                    format!("cannot decode OTLP/JSON {signal} request: {e}"),
                )
            }),
        }
    }
}

/// A trace body: protobuf stays encoded for the pipeline's in-place reading;
/// OTLP/JSON is decoded.
enum TraceBody {
    Protobuf(Bytes),
    Json(ExportTraceServiceRequest),
}

impl TraceBody {
    fn export(&self) -> TraceExport<'_> {
        match self {
            TraceBody::Protobuf(bytes) => TraceExport::Encoded(bytes),
            TraceBody::Json(request) => TraceExport::Decoded(request),
        }
    }
}

impl FromBody for TraceBody {
    fn from_body(encoding: Encoding, bytes: Bytes, signal: &str) -> Result<Self, Refusal> {
        match encoding {
            Encoding::Protobuf => Ok(TraceBody::Protobuf(bytes)),
            Encoding::Json => {
                ExportTraceServiceRequest::from_body(encoding, bytes, signal).map(TraceBody::Json)
            }
        }
    }
}

/// The answer to a request the pipeline did not take (or did not store).
fn ingest_refusal(error: IngestError, encoding: Encoding, signal: &str) -> Refusal {
    match error {
        IngestError::Throttled { retry_after_secs } => throttled(encoding, retry_after_secs),
        IngestError::ShuttingDown => Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: "coral agent is shutting down; retry later".into(),
            encoding,
            retry_after: Some(5),
        },
        IngestError::NotStored(reason) => Refusal {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message: format!(
                "coral agent could not store the request ({reason}); it was not kept, retry later"
            ),
            encoding,
            retry_after: Some(1),
        },
        IngestError::Malformed(reason) => bad_request(
            encoding,
            format!("cannot decode OTLP/protobuf {signal} request: {reason}"),
        ),
    }
}

fn throttled(encoding: Encoding, secs: u64) -> Refusal {
    Refusal {
        status: StatusCode::TOO_MANY_REQUESTS,
        message: format!("coral agent is saturated; retry in {secs}s"),
        encoding,
        retry_after: Some(secs),
    }
}

fn bad_request(encoding: Encoding, message: String) -> Refusal {
    Refusal {
        status: StatusCode::BAD_REQUEST,
        message,
        encoding,
        retry_after: None,
    }
}

fn timed_out(encoding: Encoding, limits: ReceiverLimits) -> Refusal {
    Refusal {
        status: StatusCode::REQUEST_TIMEOUT,
        message: format!(
            "the request body did not arrive within {}s; send it again",
            limits.request_timeout.as_secs_f64()
        ),
        encoding,
        retry_after: None,
    }
}

fn too_large(encoding: Encoding, limit: usize) -> Refusal {
    Refusal {
        status: StatusCode::PAYLOAD_TOO_LARGE,
        message: format!(
            "request body exceeds the limit of {limit} bytes (agent.telemetry.max_message_bytes); send smaller batches"
        ),
        encoding,
        retry_after: None,
    }
}

fn content_type(headers: &HeaderMap) -> Result<Encoding, Refusal> {
    let value = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let mime = value
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "application/x-protobuf" | "application/protobuf" => Ok(Encoding::Protobuf),
        "application/json" => Ok(Encoding::Json),
        _ => Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!(
                "unsupported content type {value:?}; use application/x-protobuf or application/json"
            ),
            encoding: Encoding::Protobuf,
            retry_after: None,
        }),
    }
}

async fn read_body(
    body: Body,
    headers: &HeaderMap,
    state: &HttpState,
    encoding: Encoding,
) -> Result<(Bytes, body::Held), Refusal> {
    let limit = state.limits.max_message_bytes;
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let idle = state.limits.read_idle_timeout;
    if let Some(declared) = declared.filter(|n| *n > limit) {
        // A client that writes its whole body before reading the answer
        // would see a broken pipe instead of the 413: read and discard a
        // body up to four limits (at least 64 MiB) long first.
        if declared <= limit.saturating_mul(4).max(DRAIN_AT_LEAST) {
            body::discard(body, declared, idle).await;
        }
        return Err(too_large(encoding, limit));
    }
    body::read(body, limit, idle, &state.budget)
        .await
        .map_err(|error| match error {
            BodyError::TooLarge => too_large(encoding, limit),
            BodyError::Saturated => {
                Counters::add(&state.sink.counters().requests_throttled, 1);
                throttled(encoding, 1)
            }
            BodyError::Stalled(_) => Refusal {
                status: StatusCode::REQUEST_TIMEOUT,
                message: error.to_string(),
                encoding,
                retry_after: None,
            },
            BodyError::Read(_) => bad_request(encoding, error.to_string()),
        })
}

fn decompress(
    raw: Bytes,
    headers: &HeaderMap,
    limit: usize,
    encoding: Encoding,
) -> Result<Bytes, Refusal> {
    let content_encoding = headers
        .get(header::CONTENT_ENCODING)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("identity")
        .trim()
        .to_ascii_lowercase();
    match content_encoding.as_str() {
        "" | "identity" => Ok(raw),
        "gzip" => match coral_proto::gzip::decompress(&raw, limit) {
            Ok(out) => Ok(Bytes::from(out)),
            Err(coral_proto::gzip::GzipError::TooLarge { .. }) => Err(too_large(encoding, limit)),
            Err(error) => Err(bad_request(encoding, error.to_string())),
        },
        other => Err(Refusal {
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
            message: format!("unsupported content encoding {other:?}; use gzip or none"),
            encoding,
            retry_after: None,
        }),
    }
}
