//! The gRPC receiver's body reader: a tower layer, outside the decoding
//! slots, that reads each request's body whole ([`super::body`]) before the
//! request may wait for a slot. A stalled stream therefore holds only the
//! bytes it sent, never a slot another export needs.

use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::Full;
use tonic::Status;
use tonic::body::Body;
use tower::{Layer, Service, ServiceExt};

use super::ReceiverLimits;
use super::body::{self, BodyBudget, BodyError};
use crate::metrics::Counters;

/// Reads bodies whole before the inner service sees them.
#[derive(Clone)]
pub(crate) struct ReadWholeLayer {
    shared: Arc<Shared>,
}

struct Shared {
    /// gRPC frames a message with 5 bytes of header.
    limit: usize,
    idle: Duration,
    budget: BodyBudget,
    counters: Arc<Counters>,
}

impl ReadWholeLayer {
    pub(crate) fn new(limits: ReceiverLimits, counters: Arc<Counters>) -> Self {
        ReadWholeLayer {
            shared: Arc::new(Shared {
                limit: limits.max_message_bytes.saturating_add(5),
                idle: limits.read_idle_timeout,
                budget: BodyBudget::new(limits.buffered_bytes),
                counters,
            }),
        }
    }
}

impl<S> Layer<S> for ReadWholeLayer {
    type Service = ReadWhole<S>;

    fn layer(&self, inner: S) -> Self::Service {
        ReadWhole {
            inner,
            shared: self.shared.clone(),
        }
    }
}

/// See [`ReadWholeLayer`].
#[derive(Clone)]
pub(crate) struct ReadWhole<S> {
    inner: S,
    shared: Arc<Shared>,
}

impl<S> Service<http::Request<Body>> for ReadWhole<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        // The inner service's readiness (a decoding slot) is awaited once
        // the body is in.
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let inner = self.inner.clone();
        let shared = self.shared.clone();
        Box::pin(async move {
            let (parts, body) = request.into_parts();
            let read = body::read(body, shared.limit, shared.idle, &shared.budget).await;
            let (bytes, held) = match read {
                Ok(read) => read,
                Err(error) => return Ok(refusal(&error, &shared.counters)),
            };
            let request = http::Request::from_parts(parts, Body::new(Full::new(bytes)));
            let response = inner.oneshot(request).await;
            drop(held);
            response
        })
    }
}

fn refusal(error: &BodyError, counters: &Counters) -> http::Response<Body> {
    let status = match error {
        BodyError::TooLarge => Status::resource_exhausted(format!(
            "{error} (agent.telemetry.max_message_bytes); send smaller batches"
        )),
        BodyError::Saturated => {
            Counters::add(&counters.requests_throttled, 1);
            super::grpc::refused(crate::pipeline::IngestError::Throttled {
                retry_after_secs: 1,
            })
        }
        BodyError::Stalled(_) | BodyError::Read(_) => {
            Counters::add(&counters.requests_rejected_invalid, 1);
            Status::cancelled(error.to_string())
        }
    };
    status.into_http()
}
