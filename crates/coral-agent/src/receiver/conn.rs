//! Connection limits for the OTLP listeners.
//!
//! A [`Connections`] table accepts at most `max_connections` at once per
//! listener. Every accepted connection is a [`ConnStream`] that notes when it
//! last moved a byte; one that moves nothing in either direction for
//! `idle_timeout` is closed, so half-sent request headers or an idle
//! keep-alive connection cannot hold a file descriptor for ever. When the
//! table is full, a new connection takes the place of the least recently
//! active one: a client in the middle of a request moves bytes and is among
//! the most recent, so a flood of idle or trickling connections makes room
//! for clients that talk instead of locking them out, and the process keeps
//! file descriptors for its store.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::{Instant, Sleep};
use tokio_util::sync::{CancellationToken, WaitForCancellationFutureOwned};

use crate::metrics::Counters;

/// The connections of one listener.
#[derive(Clone)]
pub(crate) struct Connections {
    shared: Arc<Shared>,
}

struct Shared {
    max: usize,
    idle_timeout: Duration,
    epoch: Instant,
    counters: Arc<Counters>,
    open: Mutex<Table>,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    by_id: HashMap<u64, Arc<Slot>>,
}

/// What the table knows of one open connection.
struct Slot {
    /// Milliseconds since `Shared::epoch` at the last byte moved.
    last_active_ms: AtomicU64,
    /// Cancelled when a newcomer takes this connection's place.
    evict: CancellationToken,
}

impl Connections {
    /// A table of at most `max` connections, each closed after
    /// `idle_timeout` without a byte moved.
    pub(crate) fn new(max: usize, idle_timeout: Duration, counters: Arc<Counters>) -> Self {
        Connections {
            shared: Arc::new(Shared {
                max: max.max(1),
                idle_timeout,
                epoch: Instant::now(),
                counters,
                open: Mutex::new(Table::default()),
            }),
        }
    }

    /// Accepts the next connection the table has room for. Errors from
    /// `accept` (out of file descriptors, a connection reset before it was
    /// taken) are counted, logged once a second at most, and waited out.
    pub(crate) async fn accept(&self, listener: &TcpListener) -> ConnStream {
        loop {
            let stream = match listener.accept().await {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "cannot accept a connection; retrying in 100 ms");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            return self.admit(stream);
        }
    }

    /// Registers `stream`, closing the least recently active connection
    /// when the table is full.
    fn admit(&self, stream: TcpStream) -> ConnStream {
        let shared = &self.shared;
        let now_ms = shared.now_ms();
        let mut table = shared.open.lock().expect("connection table");
        if table.by_id.len() >= shared.max {
            let quietest = table
                .by_id
                .iter()
                .min_by_key(|(id, slot)| (slot.last_active_ms.load(Ordering::Relaxed), **id))
                .map(|(id, _)| *id);
            if let Some(slot) = quietest.and_then(|id| table.by_id.remove(&id)) {
                slot.evict.cancel();
                Counters::add(&shared.counters.connections_evicted, 1);
            }
        }
        let id = table.next_id;
        table.next_id += 1;
        let slot = Arc::new(Slot {
            last_active_ms: AtomicU64::new(now_ms),
            evict: CancellationToken::new(),
        });
        table.by_id.insert(id, slot.clone());
        drop(table);
        ConnStream {
            inner: stream,
            id,
            evicted: Box::pin(slot.evict.clone().cancelled_owned()),
            idle: Box::pin(tokio::time::sleep(shared.idle_timeout)),
            slot,
            shared: shared.clone(),
        }
    }

    /// Connections open now.
    #[cfg(test)]
    pub(crate) fn open(&self) -> usize {
        self.shared
            .open
            .lock()
            .expect("connection table")
            .by_id
            .len()
    }
}

impl Shared {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }
}

/// An accepted connection that holds its place in the table until dropped,
/// and fails its next read once it is idle too long or evicted.
pub(crate) struct ConnStream {
    inner: TcpStream,
    id: u64,
    slot: Arc<Slot>,
    shared: Arc<Shared>,
    evicted: Pin<Box<WaitForCancellationFutureOwned>>,
    idle: Pin<Box<Sleep>>,
}

impl ConnStream {
    /// The underlying TCP connection.
    pub(crate) fn tcp(&self) -> &TcpStream {
        &self.inner
    }

    fn touch(&mut self) {
        let now = self.shared.now_ms();
        self.slot.last_active_ms.store(now, Ordering::Relaxed);
        let deadline = tokio::time::Instant::now() + self.shared.idle_timeout;
        self.idle.as_mut().reset(deadline);
    }

    /// Whether the connection must close: evicted, or idle too long.
    fn expired(&mut self, cx: &mut Context<'_>) -> Option<io::Error> {
        if self.evicted.as_mut().poll(cx).is_ready() {
            return Some(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "closed to make room for a new connection",
            ));
        }
        if self.idle.as_mut().poll(cx).is_ready() {
            Counters::add(&self.shared.counters.connections_timed_out, 1);
            return Some(io::Error::new(
                io::ErrorKind::TimedOut,
                "no bytes moved within the idle timeout",
            ));
        }
        None
    }
}

impl Drop for ConnStream {
    fn drop(&mut self) {
        let mut table = self.shared.open.lock().expect("connection table");
        if table
            .by_id
            .get(&self.id)
            .is_some_and(|slot| Arc::ptr_eq(slot, &self.slot))
        {
            table.by_id.remove(&self.id);
        }
    }
}

impl AsyncRead for ConnStream {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(Ok(())) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => match self.expired(cx) {
                Some(error) => Poll::Ready(Err(error)),
                None => Poll::Pending,
            },
        }
    }
}

impl AsyncWrite for ConnStream {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.expired(cx) {
            return Poll::Ready(Err(error));
        }
        let written = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if written > 0 {
            self.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        if let Some(error) = self.expired(cx) {
            return Poll::Ready(Err(error));
        }
        let written = ready!(Pin::new(&mut self.inner).poll_write_vectored(cx, bufs))?;
        if written > 0 {
            self.touch();
        }
        Poll::Ready(Ok(written))
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// An OTLP/HTTP listener under [`Connections`], for `axum::serve`.
pub(crate) struct LimitedListener {
    pub(crate) listener: TcpListener,
    pub(crate) connections: Connections,
}

impl axum::serve::Listener for LimitedListener {
    type Io = ConnStream;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        let conn = self.connections.accept(&self.listener).await;
        let peer = conn
            .tcp()
            .peer_addr()
            .unwrap_or_else(|_| std::net::SocketAddr::from(([0, 0, 0, 0], 0)));
        (conn, peer)
    }

    fn local_addr(&self) -> io::Result<Self::Addr> {
        self.listener.local_addr()
    }
}

impl tonic::transport::server::Connected for ConnStream {
    type ConnectInfo = tonic::transport::server::TcpConnectInfo;

    fn connect_info(&self) -> Self::ConnectInfo {
        self.inner.connect_info()
    }
}

/// The accepted connections of `listener` as the stream tonic serves from.
pub(crate) fn incoming(
    listener: TcpListener,
    connections: Connections,
) -> impl futures::Stream<Item = io::Result<ConnStream>> {
    futures::stream::unfold(
        (listener, connections),
        |(listener, connections)| async move {
            let conn = connections.accept(&listener).await;
            Some((Ok(conn), (listener, connections)))
        },
    )
}

#[cfg(test)]
mod tests {
    use tokio::io::AsyncReadExt;

    use super::*;

    async fn pair(listener: &TcpListener, connections: &Connections) -> (TcpStream, ConnStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap());
        let (client, conn) = tokio::join!(client, connections.accept(listener));
        (client.unwrap(), conn)
    }

    #[tokio::test]
    async fn a_full_table_closes_its_quietest_connection_for_a_new_one() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let counters = Arc::new(Counters::default());
        let table = Connections::new(1, Duration::from_secs(600), counters.clone());
        let (_client, mut first) = pair(&listener, &table).await;
        let (_client2, _second) = pair(&listener, &table).await;
        let error = first.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::ConnectionAborted);
        assert_eq!(table.open(), 1);
        assert_eq!(counters.connections_evicted.load(Ordering::Relaxed), 1);
        drop(first);
        assert_eq!(
            table.open(),
            1,
            "the evicted connection's drop frees no one else's place"
        );
    }

    #[tokio::test]
    async fn an_idle_connection_fails_its_read_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let counters = Arc::new(Counters::default());
        let table = Connections::new(4, Duration::from_millis(50), counters.clone());
        let (_client, mut conn) = pair(&listener, &table).await;
        let error = conn.read(&mut [0; 8]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert_eq!(counters.connections_timed_out.load(Ordering::Relaxed), 1);
        drop(conn);
        assert_eq!(table.open(), 0);
    }
}
