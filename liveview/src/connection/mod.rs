//! The connection: the checks before a connection opens, then a reader and
//! a writer per connection, whatever its transport (a WebSocket, whose
//! reader and writer are one poll of one task, see [`live`], or the HTTP
//! transport of [`sse`]), its outbox, and joining its groups (with the
//! replay of what it missed).

pub(crate) mod join;
mod live;
mod origin;
pub(crate) mod outbox;
mod socket;
pub(crate) mod sse;
mod upgrade;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::future::Either;
use futures_util::stream::SplitStream;
use futures_util::{SinkExt, StreamExt};
use http::{HeaderMap, StatusCode, Uri};
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, WebSocketConfig};
use tokio_tungstenite::tungstenite::{self, Message, Utf8Bytes};
use tracing::Instrument;

use crate::app::Shared;
use crate::auth::Identity;
use crate::call::dispatch;
use crate::call::protocol::close;
use crate::consumer::{Connection, Consumer};
use crate::layer::{Frame, Resume};
use crate::limits::{Bucket, Slot};
use crate::metrics::{Metrics, Transport};
use crate::scope::Scope;
use origin::Origin;
use outbox::{OutboxState, Receiver};
use socket::Socket;
use upgrade::{Open, Upgrade};

/// Whether `room` is 1 to 94 characters of `[A-Za-z0-9._-]`.
///
/// ```
/// assert!(liveview::is_valid_room("3f2a-lobby_1.b"));
/// assert!(!liveview::is_valid_room(""));
/// assert!(!liveview::is_valid_room("a/b"));
/// assert!(!liveview::is_valid_room(&"x".repeat(95)));
/// ```
pub fn is_valid_room(room: &str) -> bool {
    (1..=94).contains(&room.len())
        && room
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// A request for a connection that passed the checks of
/// [`admit`]: its scope (with the user) and its address's slot.
pub(crate) struct Admitted {
    pub scope: Scope,
    pub slot: Option<Slot>,
    /// The authenticator found the session expired: the connection is
    /// opened only to be closed with 4401.
    pub expired: bool,
}

/// Why a request is refused: the status and the text to answer with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Refused(StatusCode, &'static str);

impl IntoResponse for Refused {
    fn into_response(self) -> Response {
        (self.0, self.1).into_response()
    }
}

/// The checks every transport makes on a request before anything else:
/// the room (and its signature), the origin and shutdown. A refusal is the
/// response to send.
pub(crate) fn check(
    shared: &Shared,
    room: &str,
    headers: &HeaderMap,
    transport: &'static str,
) -> Result<(), Refused> {
    if !is_valid_room(room) {
        shared.metrics.connections_refused.add(1);
        return Err(Refused(StatusCode::BAD_REQUEST, "Invalid room"));
    }
    if let Some(signer) = &shared.config.room_signer
        && !signer.verify(room)
    {
        shared.metrics.connections_refused.add(1);
        tracing::warn!(target: "liveview", transport, "connection refused: room not signed by this server");
        return Err(Refused(StatusCode::FORBIDDEN, "Invalid room"));
    }
    if !origin_allowed(shared, headers) {
        shared.metrics.connections_refused.add(1);
        tracing::warn!(
            target: "liveview",
            transport,
            origin = headers.get(http::header::ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or(""),
            "connection refused: origin not allowed"
        );
        return Err(Refused(StatusCode::FORBIDDEN, "Origin not allowed"));
    }
    if shared.shutdown.is_cancelled() {
        return Err(Refused(StatusCode::SERVICE_UNAVAILABLE, "Shutting down"));
    }
    Ok(())
}

/// After [`check`], what every transport does before it opens a
/// connection: the scope, a slot of the client's address (refused past
/// the cap) and the authenticator's verdict.
pub(crate) async fn admit(
    shared: &Shared,
    headers: HeaderMap,
    uri: Uri,
    extensions: &http::Extensions,
    transport: &'static str,
) -> Result<Admitted, Refused> {
    let peer = extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|info| info.0);
    let mut scope = Scope::new(&headers, &uri, peer);
    scope.trust_proxies(&shared.config.trusted_proxies);
    let limits = &shared.config.limits;
    let slot = match scope.client_ip() {
        Some(ip) => {
            if shared
                .addresses
                .open(ip, limits.connections_per_address)
                .is_none()
            {
                shared.metrics.connections_refused.add(1);
                tracing::warn!(target: "liveview", transport, client = %ip, "connection refused: too many connections from one address");
                return Err(Refused(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many connections",
                ));
            }
            Some(shared.addresses.slot(ip, limits.per_address))
        }
        None => None,
    };
    let mut expired = false;
    if let Some(authenticator) = &shared.authenticator {
        match authenticator.authenticate(&scope).await {
            Identity::User(user) => scope.set_user(Some(user)),
            Identity::Anonymous => {}
            Identity::Expired => expired = true,
        }
    }
    Ok(Admitted {
        scope,
        // An expired session holds no slot: it is closed at once.
        slot: if expired { None } else { slot },
        expired,
    })
}

/// `GET /ws/liveview/{room}/`.
pub(crate) async fn upgrade(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    extensions: http::Extensions,
    upgrade: Result<Upgrade, WebSocketUpgradeRejection>,
) -> Response {
    if let Err(refused) = check(&shared, &room, &headers, "websocket") {
        return refused.into_response();
    }
    let upgrade = match upgrade {
        Ok(upgrade) => upgrade,
        Err(rejection) => return rejection.into_response(),
    };
    let Admitted {
        scope,
        slot,
        expired,
    } = match admit(&shared, headers, uri, &extensions, "websocket").await {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let config = &shared.config;
    let socket = WebSocketConfig::default()
        .read_buffer_size(config.read_buffer)
        .write_buffer_size(config.write_buffer)
        // Every frame the server accepts to send must fit, or tungstenite
        // fails the write and drops the connection.
        .max_write_buffer_size(crate::limits::max_write_buffer(
            config.write_buffer,
            config.max_outgoing_frame,
        ))
        .max_message_size(Some(config.max_frame))
        .max_frame_size(Some(config.max_frame));
    upgrade.accept(
        socket,
        Opening {
            shared,
            room,
            scope,
            slot,
            expired,
        },
    )
}

/// An accepted upgrade, waiting for its socket.
struct Opening {
    shared: Arc<Shared>,
    room: String,
    scope: Scope,
    slot: Option<Slot>,
    /// The authenticator found the session expired: a browser cannot read
    /// the status of a refused upgrade, so the socket opens and closes at
    /// once with a code it can read.
    expired: bool,
}

impl Open for Opening {
    fn open<S: upgrade::Stream>(
        self,
        socket: Socket<S>,
    ) -> impl Future<Output = ()> + Send + 'static {
        let Self {
            shared,
            room,
            scope,
            slot,
            expired: session_expired,
        } = self;
        let tracker = shared.tracker.clone();
        // One span per connection: every event of it, and of its calls,
        // carries the room, the client and the connection id.
        let span = tracing::info_span!(
            target: "liveview",
            "connection",
            room = %room,
            client = ?scope.client_ip(),
            id = tracing::field::Empty,
        );
        #[cfg(test)]
        tests::opened::<S>(&room);
        if session_expired {
            Either::Left(expired(socket))
        } else {
            Either::Right(
                tracker.track_future(run(shared, socket, room, scope, slot).instrument(span)),
            )
        }
    }
}

/// The close of a connection refused as [`Identity::Expired`]: the close
/// frame, then the client's, within the usual bound.
async fn expired<S: upgrade::Stream>(mut socket: Socket<S>) {
    let frame = CloseFrame {
        code: close::SESSION_EXPIRED.into(),
        reason: Utf8Bytes::from_static(""),
    };
    if socket.send(Message::Close(Some(frame))).await.is_ok() {
        let _ = tokio::time::timeout(CLOSE_GRACE, async {
            while let Some(Ok(_)) = socket.next().await {}
        })
        .await;
    }
}

/// The `Origin` check, the counterpart of `AllowedHostsOriginValidator`.
/// A request without `Origin` is not from a browser page and cannot be a
/// cross-site hijack. Otherwise scheme, host and port must be those of an
/// allowed origin or, when none is configured, of the address the server
/// listens on. The request's `Host` is never trusted: a DNS-rebinding page
/// at `http://evil.example` sends `Host: evil.example` too.
fn origin_allowed(shared: &Shared, headers: &HeaderMap) -> bool {
    if !shared.config.check_origin {
        return true;
    }
    let Some(origin) = headers.get(http::header::ORIGIN) else {
        return true;
    };
    let allowed = shared.config.allowed_origins.as_deref();
    if allowed.is_some_and(|allowed| allowed.iter().any(|a| a == "*")) {
        return true;
    }
    let Some(origin) = origin.to_str().ok().and_then(Origin::parse) else {
        return false;
    };
    if let Some(allowed) = allowed {
        return allowed
            .iter()
            .any(|a| Origin::parse(a).is_some_and(|a| a == origin));
    }
    let served = shared.served_at.lock().unwrap_or_else(|e| e.into_inner());
    served.iter().any(|addr| origin.is_served_at(*addr))
}

/// A WebSocket connection, from its upgrade to its end. Not an `async fn`:
/// the socket is used where it was moved in, not moved again into the
/// future's locals (which would hold it twice), and what joining needs is
/// in a boxed future of its own.
fn run<S: upgrade::Stream>(
    shared: Arc<Shared>,
    mut socket: Socket<S>,
    room: String,
    scope: Scope,
    slot: Option<Slot>,
) -> impl Future<Output = ()> + Send {
    let open = {
        let shared = shared.clone();
        Box::pin(async move {
            let resume = scope.query("resume").map(|r| Resume::parse(&r));
            join::open(&shared, &room, scope, resume).await
        })
    };
    async move {
        let (conn, rx) = open.await;
        count_opened(&shared, Transport::WebSocket);
        tracing::Span::current().record("id", conn.id);
        tracing::debug!(target: "liveview", connection = conn.id, room = %conn.room, "connected");
        let ip = slot.as_ref().and_then(|_| conn.scope.client_ip());
        // Lent to each call in turn: a call clones no handle of its own.
        let consumer = Consumer::lent(conn.clone());
        let mut live = live::Live::new(&shared, &consumer, rx, ip);
        let mut timer = std::pin::pin!(tokio::time::sleep_until(live.deadline()));
        let stop = std::future::poll_fn(|cx| live.poll(cx, &mut socket, timer.as_mut())).await;
        // Boxed: an open connection does not carry the state of its close.
        Box::pin(finish(&shared, &conn, socket, live, stop)).await;
        drop(slot);
        count_closed(&shared, &conn, Transport::WebSocket);
        tracing::debug!(target: "liveview", connection = conn.id, code = conn.outbox.state().code().unwrap_or(0), "disconnected");
    }
}

/// The end of a WebSocket connection told to close: the reader finishes
/// the call under way, leaves the groups and reads until the client's
/// close frame, while the writer sends what it must and the close frame,
/// each within [`CLOSE_GRACE`].
async fn finish<S: upgrade::Stream>(
    shared: &Shared,
    conn: &Connection,
    socket: Socket<S>,
    live: live::Live<'_>,
    stop: live::Stop,
) {
    let closer = conn.outbox.state();
    let (sink, mut stream) = socket.split();
    let unflushed = live.unflushed;
    let (rx, call) = (live.rx, live.call);
    let ((ended, deadline), ()) = futures_util::future::join(
        async {
            if let Some(call) = call {
                call.await;
            }
            let ended = stop.ended.unwrap_or(Ended::Readable);
            // Out of its groups at once; the socket itself lingers until
            // the closing handshake is done, within a bound.
            join::close(shared, conn);
            let deadline = tokio::time::Instant::now() + CLOSE_GRACE;
            if ended == Ended::Readable {
                drain(&mut stream, deadline).await;
            }
            (ended, deadline)
        },
        async {
            if !stop.write_failed {
                close_writer(sink, rx, closer, &shared.metrics, unflushed).await;
            }
        },
    )
    .await;
    if ended == Ended::Failed {
        // The stream can no longer be read: the socket stayed open (not
        // read) while the writer sent the close frame; it stays open for
        // the rest of the bound, so the client is not reset before it has
        // read the code.
        tokio::time::sleep_until(deadline).await;
    }
}

/// The writer of a connection told to close: a write under way gets
/// [`CLOSE_GRACE`] to finish (or the close frame is not sent: it would be
/// cut into a half-written frame), then [`close`] sends the rest.
async fn close_writer<S>(
    mut sink: S,
    rx: Receiver,
    closer: &OutboxState,
    metrics: &Metrics,
    unflushed: bool,
) where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    if unflushed {
        match tokio::time::timeout(CLOSE_GRACE, sink.flush()).await {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                metrics.write_failures.add(1);
                tracing::debug!(target: "liveview", error = %err, "write failed");
                return;
            }
            Err(_) => return,
        }
    }
    close(sink, rx, closer).await;
}

/// Count a connection that joined its groups: counted once joined, so a
/// count that grew means the connection is in its groups (the test server
/// waits for that).
pub(crate) fn count_opened(shared: &Shared, transport: Transport) {
    let metrics = &shared.metrics;
    metrics.connections_open.add(1);
    metrics.connections_total.add(1);
    let stats = metrics.transport(transport);
    stats.open.add(1);
    stats.total.add(1);
    track_addresses(shared);
}

/// Count a connection that ended.
pub(crate) fn count_closed(shared: &Shared, conn: &Connection, transport: Transport) {
    let metrics = &shared.metrics;
    // Counted from the close code, whether or not the close frame could
    // still be written: a client too slow for its frames is often too
    // slow for the close frame too.
    if conn.outbox.state().code() == Some(close::TRY_AGAIN_LATER) {
        metrics.slow_client_closes.add(1);
    }
    metrics.connections_open.add(-1);
    metrics.transport(transport).open.add(-1);
    track_addresses(shared);
}

/// The gauge of tracked client addresses, as connections come and go.
fn track_addresses(shared: &Shared) {
    let tracked = shared.addresses.len();
    shared
        .metrics
        .addresses
        .set(tracked.try_into().unwrap_or(i64::MAX));
}

/// What a transport hands the read loop: a call's text, a sign of life,
/// or the end of the client's side with the close code it earns.
#[derive(Debug)]
pub(crate) enum Inbound {
    /// One text frame (a WebSocket frame, or a POST's body).
    Text(Utf8Bytes),
    /// Something that is no call but proves the client is there (a Pong).
    Alive,
    /// The client's side ended; the connection closes with this code.
    End(u16, Ended),
}

/// A WebSocket message as the read loop sees it: a text frame at once,
/// anything else apart.
#[inline]
fn inbound(connection: u64, message: Result<Message, tungstenite::Error>) -> Inbound {
    match message {
        Ok(Message::Text(text)) => Inbound::Text(text),
        other => inbound_other(connection, other),
    }
}

/// [`inbound`] of a message that is not a text frame.
#[cold]
#[inline(never)]
fn inbound_other(connection: u64, message: Result<Message, tungstenite::Error>) -> Inbound {
    match message {
        Ok(Message::Text(text)) => Inbound::Text(text),
        Ok(Message::Binary(_)) => {
            tracing::debug!(target: "liveview", connection, "binary frame refused");
            Inbound::End(close::UNSUPPORTED, Ended::Readable)
        }
        // A raw frame is never what a read returns.
        Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_)) => Inbound::Alive,
        Ok(Message::Close(_)) => Inbound::End(close::NORMAL, Ended::Readable),
        Err(err) => {
            let code = close_code_for(&err);
            tracing::debug!(target: "liveview", connection, error = %err, code, "read failed");
            let ended = if code == close::NORMAL {
                Ended::Gone
            } else {
                Ended::Failed
            };
            Inbound::End(code, ended)
        }
    }
}

/// How the read loop ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The server decided to close (or the client sent its close frame):
    /// the stream can still be read.
    Readable,
    /// The client broke the protocol (a frame over the limit, invalid
    /// UTF-8, reserved bits...): nothing more can be read from the stream.
    Failed,
    /// The connection is gone: there is nobody left to tell.
    Gone,
}

/// The end of a connection whose stream can still be read, after the read
/// loop: while the writer sends what is queued and the close frame, every
/// frame read is discarded until the client's close frame ends the
/// handshake (its reply, when the client closed first, goes out on that
/// read) or `deadline` passes. Closing a socket with unread data would
/// make the kernel reset it, destroying the close frame and whatever was
/// still on its way to the client.
async fn drain<S: upgrade::Stream>(
    stream: &mut SplitStream<Socket<S>>,
    deadline: tokio::time::Instant,
) {
    let _ = tokio::time::timeout_at(deadline, async {
        while let Some(Ok(_)) = stream.next().await {}
    })
    .await;
}

/// The read loop of a connection, whatever its transport: each call is
/// rate limited and dispatched in turn, until the client's side ends, the
/// connection is told to close, the server shuts down or the client has
/// been silent for the idle timeout.
pub(crate) async fn read<S>(
    shared: &Shared,
    consumer: &Consumer,
    inbound: &mut S,
    closer: &OutboxState,
    ip: Option<IpAddr>,
) -> Ended
where
    S: futures_util::Stream<Item = Inbound> + Unpin,
{
    let conn = consumer.connection();
    let limits = &shared.config.limits;
    let mut bucket = limits.per_connection.as_ref().map(Bucket::new);
    let mut strikes = 0;
    // Made once, not per message: each new cancellation future registers
    // with its token (a lock), and the shutdown token is shared by every
    // connection.
    let closed = closer.closed();
    let shutdown = shared.shutdown.cancelled();
    // Anything from the client, a Pong included, proves it is there.
    let idle_timeout = shared.config.idle_timeout;
    let idle = tokio::time::sleep(idle_timeout);
    tokio::pin!(closed, shutdown, idle);
    loop {
        tokio::select! {
            biased;
            () = &mut closed => return Ended::Readable,
            () = &mut shutdown => {
                closer.close(close::GOING_AWAY);
                return Ended::Readable;
            }
            message = inbound.next() => {
                idle.as_mut().reset(tokio::time::Instant::now() + idle_timeout);
                match message {
                Some(Inbound::Text(text)) => {
                    shared.metrics.frames_in.add(1);
                    shared.metrics.bytes_in.add(text.len() as u64);
                    if allowed(shared, &mut bucket, ip) {
                        strikes = 0;
                        // Boxed: an idle connection does not carry the
                        // state of a call in its task.
                        Box::pin(dispatch::handle_text(shared, consumer, text.as_str())).await;
                    } else {
                        strikes += 1;
                        shared.metrics.rate_limited.add(1);
                        dispatch::refuse_rate_limited(conn, text.as_str());
                        if strikes >= limits.strikes {
                            tracing::warn!(target: "liveview", connection = conn.id, "closing a connection that kept exceeding its rate limit");
                            closer.close(close::POLICY);
                            return Ended::Readable;
                        }
                    }
                }
                Some(Inbound::Alive) => {}
                Some(Inbound::End(code, ended)) => {
                    closer.close(code);
                    return ended;
                }
                None => {
                    closer.close(close::NORMAL);
                    return Ended::Gone;
                }
                }
            }
            () = &mut idle => {
                tracing::debug!(target: "liveview", connection = conn.id, idle_ms = idle_timeout.as_millis() as u64, "closing a connection that sent nothing, not even a Pong");
                shared.metrics.idle_closes.add(1);
                closer.close(close::IDLE);
                return Ended::Readable;
            }
        }
    }
}

/// Whether a call may go through both the connection's and the address's
/// rate limits.
#[inline]
fn allowed(shared: &Shared, bucket: &mut Option<Bucket>, ip: Option<IpAddr>) -> bool {
    let limits = &shared.config.limits;
    if let (Some(bucket), Some(limit)) = (bucket.as_mut(), limits.per_connection.as_ref())
        && !bucket.take(limit, Instant::now())
    {
        return false;
    }
    match (ip, limits.per_address.as_ref()) {
        (Some(ip), Some(limit)) => shared.addresses.take(ip, limit),
        _ => true,
    }
}

/// The close code that tells a client why its input ended the
/// connection: 1009 for a frame over the limit, 1007 for a text frame that
/// is not UTF-8, 1002 for any other protocol violation, 1000 when the
/// connection is simply gone.
fn close_code_for(err: &tungstenite::Error) -> u16 {
    use tungstenite::error::ProtocolError;
    match err {
        tungstenite::Error::Capacity(_) => close::TOO_BIG,
        tungstenite::Error::Utf8(_) => close::INVALID_DATA,
        tungstenite::Error::Protocol(ProtocolError::ResetWithoutClosingHandshake) => close::NORMAL,
        tungstenite::Error::Protocol(_) => close::PROTOCOL_ERROR,
        _ => close::NORMAL,
    }
}

/// The write loop of a connection, whatever its transport: the queued
/// frames, a Ping (the HTTP transport: a heartbeat) every `ping_interval`,
/// and the close.
pub(crate) async fn write<S>(
    mut sink: S,
    mut rx: Receiver,
    closer: Arc<OutboxState>,
    metrics: Arc<Metrics>,
    ping_interval: Duration,
) where
    S: futures_util::Sink<Message> + Unpin,
    S::Error: std::fmt::Display,
{
    let closed = closer.closed();
    let mut ping =
        tokio::time::interval_at(tokio::time::Instant::now() + ping_interval, ping_interval);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(closed);
    loop {
        tokio::select! {
            biased;
            () = &mut closed => break,
            _ = ping.tick() => {
                // An empty Ping: the client's Pong resets its idle timer.
                if let Err(err) = sink.send(Message::Ping(Default::default())).await {
                    metrics.write_failures.add(1);
                    tracing::debug!(target: "liveview", error = %err, "ping failed");
                    closer.close(close::NORMAL);
                    return;
                }
            }
            frame = rx.recv() => {
                let Some(frame) = frame else { break };
                // A write under way when the connection is told to close
                // gets a grace period to finish, so the close frame that
                // follows is not cut into a half-written frame.
                metrics.frames_out.add(1);
                metrics.bytes_out.add(frame.len() as u64);
                // The write first: the grace timer is only set up (and the
                // closer registered with) when the write has to wait.
                let sent = tokio::select! {
                    biased;
                    sent = feed(&mut sink, frame, rx.is_empty()) => sent,
                    () = grace_after(&closer) => return,
                };
                if let Err(err) = sent {
                    metrics.write_failures.add(1);
                    tracing::debug!(target: "liveview", error = %err, "write failed");
                    closer.close(close::NORMAL);
                    return;
                }
            }
        }
    }
    // Boxed: an open connection does not carry the state of its close.
    Box::pin(close(sink, rx, &closer)).await;
}

/// The close of a connection's writer: the frames queued before the close
/// (unless the client was too slow for them) and the close frame, within
/// [`CLOSE_GRACE`].
async fn close<S>(mut sink: S, mut rx: Receiver, closer: &OutboxState)
where
    S: futures_util::Sink<Message> + Unpin,
{
    let code = closer.code().unwrap_or(close::NORMAL);
    let _ = tokio::time::timeout(CLOSE_GRACE, async {
        if code != close::TRY_AGAIN_LATER {
            // Frames queued before the close (a handler's last replies
            // before shutdown) still go out.
            while let Ok(frame) = rx.try_recv() {
                if sink.feed(outgoing(frame)).await.is_err() {
                    return;
                }
            }
        }
        let frame = CloseFrame {
            code: code.into(),
            reason: Utf8Bytes::from_static(""),
        };
        let _ = sink.send(Message::Close(Some(frame))).await;
    })
    .await;
}

/// How long a closing connection may take to write what it must.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

async fn grace_after(closer: &OutboxState) {
    closer.closed().await;
    tokio::time::sleep(CLOSE_GRACE).await;
}

/// Write one frame; flush only when nothing else is waiting, so a burst
/// goes out in few syscalls.
async fn feed<S>(sink: &mut S, frame: Frame, flush: bool) -> Result<(), S::Error>
where
    S: futures_util::Sink<Message> + Unpin,
{
    sink.feed(outgoing(frame)).await?;
    if flush {
        sink.flush().await?;
    }
    Ok(())
}

/// A frame as a socket sends it.
pub(crate) fn outgoing(frame: Frame) -> Message {
    Message::Text(frame.into_text())
}

#[cfg(test)]
mod tests {
    use std::any::TypeId;
    use std::collections::HashMap;
    use std::sync::Mutex;

    use serde_json::json;

    use super::upgrade;
    use crate::LiveView;
    use crate::testing::{Closed, TestServer, WsClient};

    /// The stream each room's last socket ran on: whether it was the TCP
    /// stream itself.
    static OPENED: Mutex<Option<HashMap<String, bool>>> = Mutex::new(None);

    pub(super) fn opened<S: upgrade::Stream>(room: &str) {
        let raw = TypeId::of::<S>() == TypeId::of::<upgrade::Raw>();
        let mut opened = OPENED.lock().unwrap();
        opened.get_or_insert_default().insert(room.to_owned(), raw);
    }

    fn raw(room: &str) -> Option<bool> {
        OPENED.lock().unwrap().as_ref()?.get(room).copied()
    }

    /// A call answered, then a frame that closes the connection with its
    /// code: reads, writes and the close, end to end.
    async fn round_trip(mut client: WsClient) {
        client.send_text("not json").await.unwrap();
        assert_eq!(
            client.recv().await.unwrap(),
            json!({"error": "Invalid message"})
        );
        client.send_binary(vec![1, 2, 3]).await.unwrap();
        assert_eq!(client.closed().await, Closed::Code(1003));
    }

    #[tokio::test]
    async fn served_sockets_run_on_the_tcp_stream_others_on_the_upgrade() {
        // Through `serve`: the socket runs on the TCP stream.
        let server = TestServer::start(LiveView::builder(), axum::Router::new())
            .await
            .unwrap();
        let client = server.connect("transport-served").await.unwrap();
        assert_eq!(raw("transport-served"), Some(true));
        round_trip(client).await;
        server.shutdown().await;

        // Through `axum::serve`: the socket runs on hyper's `Upgraded`.
        let live = LiveView::builder().build().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let served = tokio::spawn(axum::serve(listener, live.router()).into_future());
        let url = format!("ws://{addr}/ws/liveview/transport-axum/");
        let client = WsClient::connect(&url, &[]).await.unwrap();
        round_trip(client).await;
        assert_eq!(raw("transport-axum"), Some(false));
        served.abort();
    }
}
