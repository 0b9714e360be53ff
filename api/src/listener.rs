//! The node's listener: accepts TCP connections up to a cap, speaks TLS on them when
//! configured, and serves the router over HTTP/1.1 with time limits on every connection.
//!
//! - **Connection cap**: at most `connections_max` connections are served at once; the next
//!   ones wait in the kernel's accept backlog until one closes (clients see a slow connect, not
//!   a refusal).
//! - **Header-read timeout**: a request whose head is not complete within
//!   `header_read_timeout` of its first byte is dropped with its connection, and so is a TLS
//!   handshake that takes longer, so half-sent requests cannot pile up.
//! - **Idle timeout**: a connection with no request in flight is closed after `idle_timeout`.
//!   A request being served has no time limit here: claims long-poll and log streams follow
//!   for as long as they need.

mod tls;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tower::ServiceExt;

pub use tls::{TlsError, TlsFiles, TlsReloader};

/// Bounds on the connections one node serves.
#[derive(Debug, Clone, Copy)]
pub struct ListenerLimits {
    /// From a request's first byte to the end of its head (and for a whole TLS handshake).
    pub header_read_timeout: Duration,
    /// How long a connection with no request in flight stays open.
    pub idle_timeout: Duration,
    /// Connections served at once; more wait to be accepted.
    pub connections_max: usize,
}

impl Default for ListenerLimits {
    fn default() -> Self {
        ListenerLimits {
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            connections_max: 4096,
        }
    }
}

/// After an accept error that is not one connection's (too many open files, say), wait this
/// long before accepting again rather than spin.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_secs(1);

/// Serves `app` on `listener` until the task is dropped, over TLS when `tls` is given.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ListenerLimits,
    mut tls: Option<TlsReloader>,
) {
    let permits = Arc::new(Semaphore::new(limits.connections_max.max(1)));
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                tracing::error!("accepting a connection: {e}");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                continue;
            }
        };
        // Small answers (a heartbeat's) go out at once rather than wait for more to send.
        let _ = stream.set_nodelay(true);
        let tls_config = tls.as_mut().map(TlsReloader::current);
        let app = app.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let Some(config) = tls_config else {
                return serve_connection(stream, peer, app, limits).await;
            };
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            match tokio::time::timeout(limits.header_read_timeout, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => serve_connection(stream, peer, app, limits).await,
                // A client that does not trust our certificate says so here, as does a scanner:
                // not worth more than a debug line each.
                Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
            }
        });
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Serves HTTP/1.1 requests on one connection until the client closes it or a time limit
/// passes.
async fn serve_connection<S>(stream: S, peer: SocketAddr, app: Router, limits: ListenerLimits)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = Arc::new(Activity::new());
    let io = TokioIo::new(Watched {
        inner: stream,
        activity: activity.clone(),
    });
    let service_activity = activity.clone();
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        // Extractors that want the caller's address find it as with `axum::serve`.
        req.extensions_mut().insert(ConnectInfo(peer));
        let serving = Serving::start(service_activity.clone());
        let app = app.clone();
        async move {
            let Ok(response) = app.oneshot(req).await;
            Ok::<_, Infallible>(response.map(|body| Tracked {
                body,
                _serving: serving,
            }))
        }
    });
    let conn = hyper::server::conn::http1::Builder::new()
        // The limits below replace hyper's own header timer, which would also close a kept-alive
        // connection that waits longer than it for its next request.
        .header_read_timeout(None)
        .serve_connection(io, service);
    tokio::pin!(conn);
    loop {
        let deadline = activity.deadline(&limits);
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(e) = done {
                    tracing::debug!(%peer, "connection ended: {e}");
                }
                return;
            }
            () = sleep_until(deadline) => {
                if activity.deadline(&limits).is_some_and(|d| d <= Instant::now()) {
                    tracing::debug!(%peer, "connection closed: {}", activity.waiting_for());
                    return;
                }
            }
            () = activity.changed.notified() => {}
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy)]
enum Phase {
    /// No request in flight since this instant (accepted, or the last answer sent).
    Idle(Instant),
    /// A request's first bytes came at this instant; its head is not complete yet.
    Head(Instant),
    /// This many requests are being served (HTTP/1.1 pipelining may queue more than one).
    Serving(usize),
}

/// A connection's phase, shared by its reads, its requests and its watchdog.
struct Activity {
    phase: Mutex<Phase>,
    /// Woken on every change of phase, so the watchdog moves its deadline.
    changed: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            phase: Mutex::new(Phase::Idle(Instant::now())),
            changed: Notify::new(),
        }
    }

    fn update(&self, f: impl FnOnce(Phase) -> Phase) {
        let mut phase = self.phase.lock().unwrap_or_else(|p| p.into_inner());
        *phase = f(*phase);
        drop(phase);
        self.changed.notify_one();
    }

    fn phase(&self) -> Phase {
        *self.phase.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Bytes arrived: an idle connection has begun a request.
    fn read_some(&self) {
        if matches!(self.phase(), Phase::Idle(_)) {
            self.update(|p| match p {
                Phase::Idle(_) => Phase::Head(Instant::now()),
                other => other,
            });
        }
    }

    /// When the connection is closed unless its phase changes first.
    fn deadline(&self, limits: &ListenerLimits) -> Option<Instant> {
        match self.phase() {
            Phase::Idle(since) => Some(since + limits.idle_timeout),
            Phase::Head(since) => Some(since + limits.header_read_timeout),
            Phase::Serving(_) => None,
        }
    }

    fn waiting_for(&self) -> &'static str {
        match self.phase() {
            Phase::Idle(_) => "idle past the idle timeout",
            Phase::Head(_) => "request head not complete within the header-read timeout",
            Phase::Serving(_) => "serving",
        }
    }
}

/// A request in flight: from the router's call until its response body is sent or dropped.
struct Serving(Arc<Activity>);

impl Serving {
    fn start(activity: Arc<Activity>) -> Self {
        activity.update(|p| match p {
            Phase::Serving(n) => Phase::Serving(n + 1),
            Phase::Idle(_) | Phase::Head(_) => Phase::Serving(1),
        });
        Serving(activity)
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.update(|p| match p {
            Phase::Serving(n) if n > 1 => Phase::Serving(n - 1),
            _ => Phase::Idle(Instant::now()),
        });
    }
}

/// A response body that keeps its request counted as in flight until hyper is done with it.
struct Tracked {
    body: Body,
    /// Dropped with the body.
    _serving: Serving,
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's stream, telling its [`Activity`] when bytes arrive.
struct Watched<S> {
    inner: S,
    activity: Arc<Activity>,
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.activity.read_some();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
