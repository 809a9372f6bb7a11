//! Serving an app: the accept loop with its limits before any request
//! (connections per address, a header-read timeout), and graceful shutdown
//! on ctrl-c and SIGTERM.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::app::{LiveView, Shared};
use crate::limits::Slot;

/// Serve `app` (which should include [`LiveView::router`]) until ctrl-c or
/// SIGTERM, then shut down gracefully: stop accepting, let running handlers
/// finish, close sockets with 1001 within the grace period.
///
/// Before any request, each TCP connection counts toward its address's
/// connection cap
/// ([`max_connections_per_address`](crate::LiveViewBuilder::max_connections_per_address);
/// over it, HTTP 429), and must send a complete request head within
/// [`request_header_timeout`](crate::LiveViewBuilder::request_header_timeout)
/// of connecting or of its previous response, or it is closed: a client
/// cannot hold sockets open by sending nothing or half a request.
///
/// Peer addresses reach [`Scope::peer_addr`](crate::Scope::peer_addr).
///
/// ```no_run
/// # async fn run(app: axum::Router, live: liveview::LiveView) -> std::io::Result<()> {
/// let listener = tokio::net::TcpListener::bind("127.0.0.1:8000").await?;
/// liveview::serve(listener, app, live).await
/// # }
/// ```
pub async fn serve(listener: TcpListener, app: Router, live: LiveView) -> io::Result<()> {
    serve_until(listener, app, live, shutdown_signal()).await
}

/// [`serve`] until `signal` completes instead of a process signal.
pub async fn serve_until(
    listener: TcpListener,
    app: Router,
    live: LiveView,
    signal: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let shared = live.shared.clone();
    // Handlers of the app's own pages can take the `LiveView` as an
    // argument (e.g. for `LiveView::position`).
    let app = app.layer(axum::Extension(live.clone()));
    if let Ok(addr) = listener.local_addr() {
        shared.serving_on(addr);
    }
    let stop = CancellationToken::new();
    let connections = TaskTracker::new();
    tokio::pin!(signal);
    loop {
        let (tcp, peer) = tokio::select! {
            () = &mut signal => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    accept_failed(err).await;
                    continue;
                }
            },
        };
        // LiveView frames are small and latency-bound: without TCP_NODELAY
        // a frame written while an earlier one is unacknowledged waits for
        // the peer's delayed ACK (up to 40 ms on Linux).
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(target: "liveview", error = %err, "could not set TCP_NODELAY");
        }
        match count(&shared, peer.ip()) {
            Ok(slot) => {
                let (app, stop) = (app.clone(), stop.clone());
                connections.spawn(serve_connection(tcp, peer, slot, app, &shared, stop));
            }
            Err(()) => {
                connections.spawn(refuse(tcp));
            }
        }
    }
    // Stop accepting, finish the HTTP requests under way, and close the
    // live connections, all at once: upgraded sockets are not requests the
    // HTTP side would wait for.
    drop(listener);
    tracing::info!(target: "liveview", "shutting down");
    stop.cancel();
    connections.close();
    let ((), finished) = tokio::join!(connections.wait(), live.shutdown());
    if !finished {
        tracing::warn!(target: "liveview", "some connections did not close within the grace period");
    }
    Ok(())
}

/// A failed `accept`: a connection that went away before it was accepted
/// is nothing; anything else (out of file descriptors) is retried after a
/// pause rather than in a busy loop.
async fn accept_failed(err: io::Error) {
    if matches!(
        err.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    ) {
        return;
    }
    tracing::error!(target: "liveview", error = %err, "accept failed");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Count a new TCP connection of `ip` toward its address's cap, unless it
/// is a trusted proxy (its clients are counted one by one at the upgrade,
/// by their forwarded address).
fn count(shared: &Arc<Shared>, ip: IpAddr) -> Result<Option<Slot>, ()> {
    if shared.config.trusted_proxies.contains(&ip) {
        return Ok(None);
    }
    let cap = shared.config.limits.connections_per_address;
    match shared.sockets.open(ip, cap) {
        Some(()) => Ok(Some(shared.sockets.slot(ip, None))),
        None => {
            shared.metrics.connections_refused.add(1);
            tracing::debug!(target: "liveview", client = %ip, "connection refused: too many from one address");
            Err(())
        }
    }
}

/// How long a refused connection is given to read its 429.
const REFUSAL_GRACE: Duration = Duration::from_secs(1);

/// Answer a connection over its address's cap with HTTP 429, then read
/// and discard its request briefly before closing, so the answer is not
/// destroyed by a reset.
async fn refuse(mut tcp: TcpStream) {
    let _ = tokio::time::timeout(REFUSAL_GRACE, async {
        tcp.write_all(
            b"HTTP/1.1 429 Too Many Requests\r\ncontent-type: text/plain; charset=utf-8\r\n\
              content-length: 20\r\nconnection: close\r\n\r\nToo many connections",
        )
        .await?;
        tcp.shutdown().await?;
        let mut sink = [0; 1024];
        while tcp.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Serve HTTP/1.1 on one connection, with upgrades, until it closes or
/// `stop` asks it to finish its request and close.
fn serve_connection(
    tcp: TcpStream,
    peer: SocketAddr,
    slot: Option<Slot>,
    app: Router,
    shared: &Arc<Shared>,
    stop: CancellationToken,
) -> impl Future<Output = ()> + Send + 'static {
    let header_timeout = shared.config.request_header_timeout;
    let body_timeout = shared.config.request_body_timeout;
    async move {
        let io = TokioIo::new(Counted { tcp, _slot: slot });
        let service =
            hyper::service::service_fn(move |mut request: http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                let request = request.map(|body| {
                    if hyper::body::Body::is_end_stream(&body) {
                        axum::body::Body::new(body)
                    } else {
                        axum::body::Body::new(Deadline::new(body, body_timeout))
                    }
                });
                tower_service::Service::call(&mut app.clone(), request)
            });
        let mut builder = hyper::server::conn::http1::Builder::new();
        // The timeout runs from the connection's start and after each
        // response until a full request head has arrived: it bounds an
        // idle connection as much as a half-sent request.
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(header_timeout);
        let conn = builder.serve_connection(io, service).with_upgrades();
        tokio::pin!(conn);
        let served = tokio::select! {
            served = conn.as_mut() => served,
            () = stop.cancelled() => {
                conn.as_mut().graceful_shutdown();
                conn.await
            }
        };
        if let Err(err) = served {
            tracing::debug!(target: "liveview", client = %peer, error = %err, "HTTP connection ended");
        }
    }
}

/// A request body that must have arrived by a deadline: past it, reading
/// it fails (a slow POST cannot hold its connection and handler forever).
struct Deadline {
    body: hyper::body::Incoming,
    deadline: Pin<Box<tokio::time::Sleep>>,
}

impl Deadline {
    fn new(body: hyper::body::Incoming, timeout: Duration) -> Self {
        Self {
            body,
            deadline: Box::pin(tokio::time::sleep(timeout)),
        }
    }
}

impl hyper::body::Body for Deadline {
    type Data = bytes::Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Self::Data>, Self::Error>>> {
        match Pin::new(&mut self.body).poll_frame(cx) {
            Poll::Ready(frame) => Poll::Ready(frame.map(|f| f.map_err(Into::into))),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the request body did not arrive in time",
                )
                .into()))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.body.size_hint()
    }
}

/// A TCP connection holding its address's slot: the slot is freed when
/// the socket is, also after the connection was upgraded to a WebSocket
/// (whose socket then runs on it directly, see
/// [`connection`](crate::connection)).
#[derive(Debug)]
pub(crate) struct Counted {
    // Declared first, so it is freed before the socket closes: a client
    // that saw the close can connect again at once.
    _slot: Option<Slot>,
    tcp: TcpStream,
}

impl AsyncRead for Counted {
    #[inline]
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_read(cx, buf)
    }
}

impl AsyncWrite for Counted {
    #[inline]
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write(cx, buf)
    }

    #[inline]
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().tcp).poll_write_vectored(cx, bufs)
    }

    #[inline]
    fn is_write_vectored(&self) -> bool {
        self.tcp.is_write_vectored()
    }

    #[inline]
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_flush(cx)
    }

    #[inline]
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().tcp).poll_shutdown(cx)
    }
}

/// Completes on ctrl-c, or on SIGTERM on Unix.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                term.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}
