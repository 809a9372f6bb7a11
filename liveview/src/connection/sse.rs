//! The HTTP transport, for browsers whose WebSocket cannot get through:
//! Server-Sent Events carry the server's frames down (one long response),
//! POST requests carry the calls up.
//!
//! A stream is a connection like a socket: it joins its groups (with the
//! replay of what it missed), has the same outbox and state, and its calls
//! go through the same read loop (rate limits, dispatch). Only the ends
//! differ: the writer writes each frame as a `data:` event, and the calls
//! come from an [`Inbox`] that puts the POSTs of the stream back in order
//! (each carries the stream's token and its number), runs each once, and
//! takes them from any process: a POST that lands on a process that does
//! not hold the stream is forwarded to the holder through the channel
//! layer, on a group of the stream's own.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::response::{IntoResponse, Response};
use futures_util::SinkExt;
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::{Deserialize, Serialize};
use tokio::sync::{Notify, mpsc, oneshot};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::Instrument;

use super::outbox::{Outbox, Receiver};
use super::{
    Admitted, Ended, Inbound, admit, check, count_closed, count_opened, join, read, write,
};
use crate::app::Shared;
use crate::call::protocol::close;
use crate::consumer::Consumer;
use crate::layer::{Frame, Resume};
use crate::limits::Slot;
use crate::metrics::Transport;
use crate::scope::Scope;

/// The path of the HTTP transport: `GET` opens a stream, `POST` sends a
/// call.
pub(crate) const EVENTS_PATH: &str = "/liveview/events/{room}/";

/// The header of a POST that names its stream.
pub(crate) const STREAM_HEADER: &str = "liveview-stream";
/// The header of a POST that numbers it in its stream (1, 2, 3...).
pub(crate) const SEQ_HEADER: &str = "liveview-seq";

/// How many calls of one stream may wait to be run, in order or not: a
/// POST numbered further ahead than this is refused.
const WINDOW: u64 = 64;

/// How long a process waits for the holder of a stream to take a
/// forwarded call before it answers that the stream is unknown.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Frames waiting in a stream's response body (the writer's queue is the
/// connection's outbox; this only decouples it from the socket).
const BODY_QUEUE: usize = 16;

/// The streams this process holds, by token, and the calls it forwarded to
/// other processes that are waiting for the holder's answer.
#[derive(Debug, Default)]
pub(crate) struct Streams {
    held: Mutex<HashMap<Box<str>, Arc<Inbox>>>,
    replies: OnceLock<Arc<Replies>>,
}

impl Streams {
    fn get(&self, token: &str) -> Option<Arc<Inbox>> {
        let held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.get(token).cloned()
    }

    fn insert(&self, token: &str, inbox: Arc<Inbox>) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.insert(token.into(), inbox);
    }

    fn remove(&self, token: &str) {
        let mut held = self.held.lock().unwrap_or_else(|e| e.into_inner());
        held.remove(token);
    }

    /// How many streams this process holds.
    #[cfg(feature = "testing")]
    pub(crate) fn len(&self) -> usize {
        self.held.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// The calls of one stream, put back in the order the client numbered
/// them: each number is run once, however often it is sent.
#[derive(Debug)]
pub(crate) struct Inbox {
    room: Box<str>,
    state: Mutex<Sequence>,
    wake: Notify,
}

#[derive(Debug)]
struct Sequence {
    /// The number of the next call to run.
    next: u64,
    /// Calls numbered after `next`, waiting for the ones before them.
    early: BTreeMap<u64, Inbound>,
    /// Calls in order, waiting for the read loop.
    ready: VecDeque<Inbound>,
}

/// What became of a POST's call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taken {
    /// Queued, to be run in its turn.
    Queued,
    /// Its number was taken already: it is not run again.
    Duplicate,
    /// Numbered too far ahead, or too many calls wait already.
    OutOfWindow,
    /// No stream has this token (in this room).
    Unknown,
}

impl Taken {
    fn status(self) -> u16 {
        match self {
            Taken::Queued | Taken::Duplicate => 204,
            Taken::OutOfWindow => 409,
            Taken::Unknown => 404,
        }
    }

    fn from_status(status: u16) -> Self {
        match status {
            204 => Taken::Queued,
            409 => Taken::OutOfWindow,
            _ => Taken::Unknown,
        }
    }
}

impl Inbox {
    fn new(room: &str) -> Self {
        Self {
            room: room.into(),
            state: Mutex::new(Sequence {
                next: 1,
                early: BTreeMap::new(),
                ready: VecDeque::new(),
            }),
            wake: Notify::new(),
        }
    }

    /// Take call `seq`: queue it when it is the next one (with those that
    /// were waiting for it), keep it when it is early, drop it when it
    /// was taken before.
    fn take(&self, seq: u64, call: Inbound) -> Taken {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        if seq < state.next || state.early.contains_key(&seq) {
            return Taken::Duplicate;
        }
        let waiting = (state.early.len() + state.ready.len()) as u64;
        if seq >= state.next + WINDOW || waiting >= WINDOW {
            return Taken::OutOfWindow;
        }
        if seq > state.next {
            state.early.insert(seq, call);
            return Taken::Queued;
        }
        state.ready.push_back(call);
        state.next += 1;
        loop {
            let next = state.next;
            let Some(call) = state.early.remove(&next) else {
                break;
            };
            state.ready.push_back(call);
            state.next += 1;
        }
        drop(state);
        self.wake.notify_one();
        Taken::Queued
    }

    /// The next call in order, when there is one.
    async fn next(&self) -> Inbound {
        loop {
            {
                let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(call) = state.ready.pop_front() {
                    return call;
                }
            }
            // One reader: a wake-up sent before this wait is kept for it.
            self.wake.notified().await;
        }
    }
}

/// The routes of the HTTP transport. The event stream is compressed (gzip
/// or brotli) when the request accepts it, each event flushed as it is
/// written.
pub(crate) fn router<S>(shared: Arc<Shared>) -> axum::Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let compression = tower_http::compression::CompressionLayer::new().compress_when(
        |_: StatusCode, _: http::Version, headers: &HeaderMap, _: &http::Extensions| {
            headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"text/event-stream"))
        },
    );
    let endpoint = || axum::routing::get(events).post(call);
    axum::Router::new()
        .route(EVENTS_PATH, endpoint())
        .route(EVENTS_PATH.trim_end_matches('/'), endpoint())
        .layer(compression)
        .with_state(shared)
}

/// A new token: 128 random bits, as 32 lowercase hexadecimal digits.
fn new_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: two v4 UUIDs (122 random bits each).
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = a.as_bytes()[i] ^ b.as_bytes()[15 - i];
        }
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether `token` looks like one of ours (so that nothing else reaches
/// the channel layer's names).
fn is_token(token: &str) -> bool {
    token.len() == 32
        && token
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The group through which other processes hand the holder of a stream
/// its calls.
fn stream_group(token: &str) -> String {
    format!("liveview-stream-{token}")
}

/// `GET /liveview/events/{room}/`: open a stream.
pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    uri: Uri,
    extensions: http::Extensions,
) -> Response {
    if let Err(refused) = check(&shared, &room, &headers, "sse") {
        return refused.into_response();
    }
    let Admitted {
        scope,
        slot,
        expired,
    } = match admit(&shared, headers, uri, &extensions, "sse").await {
        Ok(admitted) => admitted,
        Err(refused) => return refused.into_response(),
    };
    let (body, rx) = mpsc::channel::<Bytes>(BODY_QUEUE);
    if expired {
        // As on a socket: opened, then closed at once with a code the
        // page can read.
        let _ = body.try_send(close_event(close::SESSION_EXPIRED));
        return event_stream(rx);
    }
    let span = tracing::info_span!(
        target: "liveview",
        "connection",
        transport = "sse",
        room = %room,
        client = ?scope.client_ip(),
        id = tracing::field::Empty,
    );
    shared
        .tracker
        .spawn(run(shared.clone(), room, scope, slot, body).instrument(span));
    event_stream(rx)
}

/// The response of a stream: its events as they come.
fn event_stream(rx: mpsc::Receiver<Bytes>) -> Response {
    let events = futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv()
            .await
            .map(|event| (Ok::<_, Infallible>(event), rx))
    });
    let mut response = Body::from_stream(events).into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // nginx: pass each event on at once.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// The event that ends a stream with the close code a socket would get.
fn close_event(code: u16) -> Bytes {
    Bytes::from(format!("event: close\ndata: {{\"code\":{code}}}\n\n"))
}

/// One frame as an event: a `data:` line per line of the frame (a JSON
/// frame has none but the one).
fn data_event(frame: &str) -> Bytes {
    let mut event = String::with_capacity(frame.len() + 8);
    for line in frame.split(['\n', '\r']) {
        event.push_str("data: ");
        event.push_str(line);
        event.push('\n');
    }
    event.push('\n');
    Bytes::from(event)
}

/// The writer's messages as events: a text frame is a `data:` event, a
/// Ping a comment (the heartbeat), a close the `close` event.
fn encode(message: Message) -> Bytes {
    match message {
        Message::Text(frame) => data_event(frame.as_str()),
        Message::Close(frame) => close_event(frame.map_or(close::NORMAL, |f| f.code.into())),
        Message::Ping(_) => Bytes::from_static(b":\n\n"),
        Message::Pong(_) | Message::Binary(_) | Message::Frame(_) => Bytes::new(),
    }
}

async fn run(
    shared: Arc<Shared>,
    room: String,
    scope: Scope,
    slot: Option<Slot>,
    body: mpsc::Sender<Bytes>,
) {
    let resume = scope.query("resume").map(|r| Resume::parse(&r));
    let (conn, rx) = Box::pin(join::open(&shared, &room, scope, resume)).await;
    count_opened(&shared, Transport::Sse);
    tracing::Span::current().record("id", conn.id);
    tracing::debug!(target: "liveview", connection = conn.id, room = %room, "stream opened");

    let token = new_token();
    let inbox = Arc::new(Inbox::new(&room));
    shared.streams.insert(&token, inbox.clone());
    // Calls POSTed to other processes come through the stream's group,
    // which is subscribed before the client knows the token: the first
    // call may be POSTed anywhere.
    let forwarded = if shared.hub.layer().is_local() {
        None
    } else {
        let group = stream_group(&token);
        let (outbox, calls) = Outbox::new(WINDOW as usize);
        shared.hub.join(&group, conn.id, outbox);
        if !shared.hub.layer().subscribed(&group).await {
            tracing::debug!(target: "liveview", connection = conn.id, "the stream's group is not subscribed yet; calls posted to other processes may be refused");
        }
        let task = tokio::spawn(take_forwarded(shared.clone(), inbox.clone(), calls));
        Some((group, task))
    };
    // The first event, before any frame: the token the POSTs carry.
    let _ = body.try_send(Bytes::from(format!(
        "event: stream\ndata: {{\"token\":\"{token}\"}}\n\n"
    )));

    let closer = conn.outbox.state().clone();
    let sink = tokio_util::sync::PollSender::new(body.clone())
        .sink_map_err(|_| axum::Error::new(std::io::Error::from(std::io::ErrorKind::BrokenPipe)))
        .with(|message: Message| std::future::ready(Ok::<_, axum::Error>(encode(message))));
    let writer = tokio::spawn(write(
        sink,
        rx,
        closer.clone(),
        shared.metrics.clone(),
        shared.config.sse_heartbeat,
    ));
    let ip = slot.as_ref().and_then(|_| conn.scope.client_ip());
    let calls = futures_util::stream::unfold((inbox, body), |(inbox, body)| async move {
        let next = tokio::select! {
            call = inbox.next() => call,
            // The client went away: its response was dropped.
            () = body.closed() => Inbound::End(close::NORMAL, Ended::Gone),
        };
        Some((next, (inbox, body)))
    });
    let mut calls = std::pin::pin!(calls);
    // Lent to each call in turn.
    let consumer = Consumer::lent(conn.clone());
    let ended = read(&shared, &consumer, &mut calls, &closer, ip).await;

    shared.streams.remove(&token);
    if let Some((group, task)) = forwarded {
        shared.hub.leave(&group, conn.id);
        task.abort();
    }
    join::close(&shared, &conn);
    // The writer sends what is queued and the close event, within its
    // bound; a client that is gone ends it at once.
    let _ = writer.await;
    drop(slot);
    count_closed(&shared, &conn, Transport::Sse);
    tracing::debug!(target: "liveview", connection = conn.id, code = closer.code().unwrap_or(0), ?ended, "stream closed");
}

/// `POST /liveview/events/{room}/`: one call of a stream, with the
/// stream's token and the call's number in the headers. Answered once the
/// process that holds the stream has taken the call (not run it: the
/// answers come down the stream).
pub(crate) async fn call(
    State(shared): State<Arc<Shared>>,
    Path(room): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    if let Err(refused) = check(&shared, &room, &headers, "sse") {
        return refused.into_response();
    }
    let token = headers
        .get(STREAM_HEADER)
        .and_then(|v| v.to_str().ok())
        .filter(|t| is_token(t));
    let seq = headers
        .get(SEQ_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|seq| *seq > 0);
    let (Some(token), Some(seq)) = (token, seq) else {
        return refusal(StatusCode::BAD_REQUEST, "Invalid request");
    };
    // As a frame over the limit on a socket: refused, and the stream is
    // closed with the code a socket would get.
    let (call, refused) = match axum::body::to_bytes(body, shared.config.max_frame).await {
        Ok(bytes) => match String::from_utf8(bytes.to_vec()) {
            Ok(text) => (Inbound::Text(Utf8Bytes::from(text)), None),
            Err(_) => (
                Inbound::End(close::INVALID_DATA, Ended::Readable),
                Some((StatusCode::BAD_REQUEST, "Invalid message")),
            ),
        },
        Err(err) if is_length_limit(&err) => (
            Inbound::End(close::TOO_BIG, Ended::Readable),
            Some((StatusCode::PAYLOAD_TOO_LARGE, "Frame too large")),
        ),
        Err(_) => return refusal(StatusCode::BAD_REQUEST, "Invalid request"),
    };
    let taken = deliver(&shared, &room, token, seq, call).await;
    match (taken, refused) {
        (Taken::Queued | Taken::Duplicate, None) => StatusCode::NO_CONTENT.into_response(),
        (Taken::Queued | Taken::Duplicate, Some((status, error))) => refusal(status, error),
        (Taken::OutOfWindow, _) => refusal(StatusCode::CONFLICT, "Out of order"),
        (Taken::Unknown, _) => refusal(StatusCode::NOT_FOUND, "Unknown stream"),
    }
}

fn is_length_limit(err: &axum::Error) -> bool {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(current) = source {
        if current.is::<http_body_util::LengthLimitError>() {
            return true;
        }
        source = current.source();
    }
    false
}

/// An error answer: its status and the protocol's JSON error.
fn refusal(status: StatusCode, error: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        format!("{{\"error\":\"{error}\"}}"),
    )
        .into_response()
}

/// Hand call `seq` to the stream `token` of `room`, here or through the
/// channel layer to the process that holds it.
async fn deliver(shared: &Shared, room: &str, token: &str, seq: u64, call: Inbound) -> Taken {
    if let Some(inbox) = shared.streams.get(token) {
        if *inbox.room != *room {
            return Taken::Unknown;
        }
        return inbox.take(seq, call);
    }
    if shared.hub.layer().is_local() {
        return Taken::Unknown;
    }
    forward(shared, room, token, seq, call).await
}

/// Join the group through which other processes answer the calls this
/// one forwards them.
pub(crate) fn listen_for_replies(shared: &Shared) {
    Replies::of(shared);
}

/// A call on its way to the process that holds its stream.
#[derive(Serialize, Deserialize)]
struct Forwarded {
    room: String,
    seq: u64,
    /// The call's text, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    text: Option<String>,
    /// the close code of a body that was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<u16>,
    /// Where to answer, and the id to answer with.
    reply: String,
    id: u64,
}

/// The holder's answer to a forwarded call.
#[derive(Serialize, Deserialize)]
struct Reply {
    id: u64,
    status: u16,
}

/// The answers this process waits for, by id, and the group they come
/// through.
#[derive(Debug)]
struct Replies {
    group: String,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, oneshot::Sender<u16>>>,
}

impl Replies {
    /// This process's replies, joining their group the first time.
    fn of(shared: &Shared) -> Arc<Replies> {
        shared
            .streams
            .replies
            .get_or_init(|| {
                let replies = Arc::new(Replies {
                    group: format!("liveview-node-{}", uuid::Uuid::new_v4().simple()),
                    next: AtomicU64::new(1),
                    waiting: Mutex::default(),
                });
                let (outbox, mut rx) = Outbox::new(1024);
                shared.hub.join(&replies.group, 0, outbox);
                let answered = replies.clone();
                // Ends when the application (its group table) is dropped.
                tokio::spawn(async move {
                    while let Some(frame) = rx.recv().await {
                        let Ok(reply) = serde_json::from_str::<Reply>(frame.as_str()) else {
                            continue;
                        };
                        let waiting = answered
                            .waiting
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .remove(&reply.id);
                        if let Some(waiting) = waiting {
                            let _ = waiting.send(reply.status);
                        }
                    }
                });
                replies
            })
            .clone()
    }
}

async fn forward(shared: &Shared, room: &str, token: &str, seq: u64, call: Inbound) -> Taken {
    let replies = Replies::of(shared);
    let id = replies.next.fetch_add(1, Relaxed);
    let (text, end) = match call {
        Inbound::Text(text) => (Some(text.as_str().to_owned()), None),
        Inbound::End(code, _) => (None, Some(code)),
        Inbound::Alive => return Taken::Queued,
    };
    let message = Forwarded {
        room: room.to_owned(),
        seq,
        text,
        end,
        reply: replies.group.clone(),
        id,
    };
    let Ok(frame) = serde_json::to_string(&message) else {
        return Taken::Unknown;
    };
    // The holder's answer comes through this process's group: subscribed
    // since the application started, unless the layer is not back yet.
    let _ = shared.hub.layer().subscribed(&replies.group).await;
    let (tx, answer) = oneshot::channel();
    replies
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(id, tx);
    let published = shared
        .hub
        .layer()
        .publish(&stream_group(token), &Frame::from(frame))
        .await;
    let taken = match published {
        Ok(()) => match tokio::time::timeout(FORWARD_TIMEOUT, answer).await {
            Ok(Ok(status)) => Taken::from_status(status),
            _ => Taken::Unknown,
        },
        Err(err) => {
            tracing::warn!(target: "liveview", error = %err, "a call could not be forwarded to its stream");
            Taken::Unknown
        }
    };
    replies
        .waiting
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&id);
    taken
}

/// The holder's side: take the calls other processes forward to a stream,
/// and answer each.
async fn take_forwarded(shared: Arc<Shared>, inbox: Arc<Inbox>, mut calls: Receiver) {
    while let Some(frame) = calls.recv().await {
        let Ok(call) = serde_json::from_str::<Forwarded>(frame.as_str()) else {
            continue;
        };
        let taken = if *inbox.room != *call.room {
            Taken::Unknown
        } else {
            match (call.text, call.end) {
                (Some(text), _) => inbox.take(call.seq, Inbound::Text(Utf8Bytes::from(text))),
                (None, Some(code)) => inbox.take(call.seq, Inbound::End(code, Ended::Readable)),
                (None, None) => continue,
            }
        };
        let reply = Reply {
            id: call.id,
            status: taken.status(),
        };
        if let Ok(reply) = serde_json::to_string(&reply) {
            let _ = shared
                .hub
                .layer()
                .publish(&call.reply, &Frame::from(reply))
                .await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::strategy::Strategy;

    fn text(s: &str) -> Inbound {
        Inbound::Text(Utf8Bytes::from(s.to_owned()))
    }

    fn texts(inbox: &Inbox) -> Vec<String> {
        let mut state = inbox.state.lock().unwrap();
        state
            .ready
            .drain(..)
            .map(|call| match call {
                Inbound::Text(t) => t.as_str().to_owned(),
                other => format!("{other:?}"),
            })
            .collect()
    }

    #[test]
    fn calls_run_in_their_order_once_each() {
        let inbox = Inbox::new("r");
        assert_eq!(inbox.take(2, text("b")), Taken::Queued);
        assert_eq!(inbox.take(3, text("c")), Taken::Queued);
        assert!(texts(&inbox).is_empty(), "2 and 3 wait for 1");
        assert_eq!(inbox.take(3, text("c again")), Taken::Duplicate);
        assert_eq!(inbox.take(1, text("a")), Taken::Queued);
        assert_eq!(texts(&inbox), ["a", "b", "c"]);
        assert_eq!(inbox.take(1, text("a again")), Taken::Duplicate);
        assert_eq!(inbox.take(4 + WINDOW, text("far")), Taken::OutOfWindow);
        assert_eq!(inbox.take(4, text("d")), Taken::Queued);
        assert_eq!(texts(&inbox), ["d"]);
    }

    proptest::proptest! {
        #[test]
        fn whatever_the_arrival_order_each_call_runs_once_in_order(
            arrivals in proptest::collection::vec(1..=20u64, 0..20)
                .prop_flat_map(|mut again| {
                    again.extend(1..=20);
                    proptest::strategy::Just(again).prop_shuffle()
                })
        ) {
            let inbox = Inbox::new("r");
            for seq in arrivals {
                let taken = inbox.take(seq, text(&seq.to_string()));
                proptest::prop_assert!(matches!(taken, Taken::Queued | Taken::Duplicate));
            }
            let expected: Vec<String> = (1..=20).map(|n: u64| n.to_string()).collect();
            proptest::prop_assert_eq!(texts(&inbox), expected);
        }
    }

    #[test]
    fn tokens_are_random_and_checked() {
        let (a, b) = (new_token(), new_token());
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert!(!is_token("room_lobby"));
        assert!(!is_token(&a.to_uppercase()));
    }

    #[test]
    fn frames_are_data_events() {
        assert_eq!(data_event(r#"{"html":"x"}"#), "data: {\"html\":\"x\"}\n\n");
        assert_eq!(data_event("a\nb"), "data: a\ndata: b\n\n");
        assert_eq!(close_event(4401), "event: close\ndata: {\"code\":4401}\n\n");
    }
}
