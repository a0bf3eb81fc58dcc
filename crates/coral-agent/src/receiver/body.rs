//! Reading request bodies before they take a decoding slot.
//!
//! A body is admitted by the bytes it has sent, not by its connection: each
//! frame takes its size from a [`BodyBudget`] shared by one listener (four
//! `max_message_bytes` by default), and the decoding slots are taken only
//! once the whole body is in. A client that promises a large body and
//! stalls holds only the bytes it sent; fast clients keep their usual
//! latency. A body that stops arriving for the read-idle timeout is refused
//! (per read, not per request), and every body is bounded by the message
//! limit. The bytes stay counted until the request is decoded and handed on.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use http_body_util::BodyExt;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of request bodies one listener holds at once, across requests.
#[derive(Clone)]
pub(crate) struct BodyBudget {
    bytes: Arc<Semaphore>,
}

impl BodyBudget {
    pub(crate) fn new(bytes: usize) -> Self {
        BodyBudget {
            bytes: Arc::new(Semaphore::new(bytes.min(Semaphore::MAX_PERMITS))),
        }
    }

    /// Bytes not held by any body now.
    #[cfg(test)]
    pub(crate) fn available(&self) -> usize {
        self.bytes.available_permits()
    }
}

/// The bytes a read body holds in the budget; given back on drop.
pub(crate) struct Held {
    _permit: Option<OwnedSemaphorePermit>,
}

/// Why a body was not read.
#[derive(Debug)]
pub(crate) enum BodyError {
    /// Larger than the message limit.
    TooLarge,
    /// No bytes for the read-idle timeout.
    Stalled(Duration),
    /// The listener holds its whole budget of body bytes.
    Saturated,
    /// The connection failed mid-body.
    Read(String),
}

impl fmt::Display for BodyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BodyError::TooLarge => write!(f, "request body exceeds the message limit"),
            BodyError::Stalled(idle) => write!(
                f,
                "the request body stopped arriving: no bytes for {}s; send it again",
                idle.as_secs_f64()
            ),
            BodyError::Saturated => write!(f, "coral agent is saturated; retry in 1s"),
            BodyError::Read(reason) => write!(f, "cannot read request body: {reason}"),
        }
    }
}

/// Reads `body` whole: at most `limit` bytes, each frame within `idle` of
/// the previous one, each taking its size from `budget`.
pub(crate) async fn read<B>(
    body: B,
    limit: usize,
    idle: Duration,
    budget: &BodyBudget,
) -> Result<(Bytes, Held), BodyError>
where
    B: Body<Data = Bytes>,
    B::Error: fmt::Display,
{
    let mut body = std::pin::pin!(body);
    let mut held: Option<OwnedSemaphorePermit> = None;
    let mut first: Option<Bytes> = None;
    let mut rest = BytesMut::new();
    let mut len = 0usize;
    loop {
        let frame = match tokio::time::timeout(idle, body.frame()).await {
            Err(_) => return Err(BodyError::Stalled(idle)),
            Ok(None) => break,
            Ok(Some(Err(e))) => return Err(BodyError::Read(e.to_string())),
            Ok(Some(Ok(frame))) => frame,
        };
        let Ok(data) = frame.into_data() else {
            continue;
        };
        if data.is_empty() {
            continue;
        }
        len += data.len();
        if len > limit {
            return Err(BodyError::TooLarge);
        }
        let n = u32::try_from(data.len()).map_err(|_| BodyError::TooLarge)?;
        let permit = budget
            .bytes
            .clone()
            .try_acquire_many_owned(n)
            .map_err(|_| BodyError::Saturated)?;
        match held.as_mut() {
            Some(h) => h.merge(permit),
            None => held = Some(permit),
        }
        // One frame (the usual case) is kept without a copy.
        match first.take() {
            None if rest.is_empty() => first = Some(data),
            None => rest.extend_from_slice(&data),
            Some(f) => {
                rest.reserve(f.len() + data.len());
                rest.extend_from_slice(&f);
                rest.extend_from_slice(&data);
            }
        }
    }
    let bytes = first.unwrap_or_else(|| rest.freeze());
    Ok((bytes, Held { _permit: held }))
}

/// Reads and drops up to `max` bytes of `body`, stopping at its end, an
/// error, or a pause of `idle`.
pub(crate) async fn discard<B>(body: B, max: usize, idle: Duration)
where
    B: Body<Data = Bytes>,
{
    let mut body = std::pin::pin!(body);
    let mut seen = 0usize;
    while seen <= max {
        match tokio::time::timeout(idle, body.frame()).await {
            Ok(Some(Ok(frame))) => seen += frame.data_ref().map_or(0, |d| d.len()),
            _ => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use http_body_util::{Full, StreamBody};

    use super::*;

    #[tokio::test]
    async fn a_body_holds_its_bytes_until_it_is_dropped() {
        let budget = BodyBudget::new(100);
        let (bytes, held) = read(
            Full::new(Bytes::from_static(b"0123456789")),
            50,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .unwrap();
        assert_eq!(&bytes[..], b"0123456789");
        assert_eq!(budget.available(), 90);
        drop(held);
        assert_eq!(budget.available(), 100);
    }

    #[tokio::test]
    async fn frames_are_joined_and_bounded() {
        let budget = BodyBudget::new(100);
        let frames = futures::stream::iter(
            [&b"abc"[..], b"", b"def"]
                .map(|d| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(d)))),
        );
        let (bytes, held) = read(StreamBody::new(frames), 6, Duration::from_secs(1), &budget)
            .await
            .unwrap();
        assert_eq!(&bytes[..], b"abcdef");
        drop(held);
        let frames = futures::stream::iter(
            [&b"abc"[..], b"defg"]
                .map(|d| Ok::<_, std::io::Error>(http_body::Frame::data(Bytes::from_static(d)))),
        );
        let error = read(StreamBody::new(frames), 6, Duration::from_secs(1), &budget)
            .await
            .err();
        assert!(matches!(error, Some(BodyError::TooLarge)), "{error:?}");
        assert_eq!(
            budget.available(),
            100,
            "a refused body gives its bytes back"
        );
    }

    #[tokio::test]
    async fn a_body_past_the_budget_is_refused() {
        let budget = BodyBudget::new(8);
        let error = read(
            Full::new(Bytes::from_static(b"0123456789")),
            50,
            Duration::from_secs(1),
            &budget,
        )
        .await
        .err();
        assert!(matches!(error, Some(BodyError::Saturated)), "{error:?}");
    }

    #[tokio::test]
    async fn a_stalled_body_is_refused_after_the_idle_timeout() {
        let budget = BodyBudget::new(100);
        let frames = futures::stream::iter([Ok::<_, std::io::Error>(http_body::Frame::data(
            Bytes::from_static(b"01"),
        ))])
        .chain(futures::stream::pending());
        let error = read(
            StreamBody::new(frames),
            50,
            Duration::from_millis(20),
            &budget,
        )
        .await
        .err();
        assert!(matches!(error, Some(BodyError::Stalled(_))), "{error:?}");
        assert_eq!(budget.available(), 100);
    }
}
