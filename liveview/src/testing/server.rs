//! A real server on loopback, and a real WebSocket client for it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use crate::app::{LiveView, LiveViewBuilder};

/// How long [`TestServer::connect`] waits for the server to have the new
/// connection in its room.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);

/// The real router, served on `127.0.0.1` by a runtime of its own, so a
/// test can stop it gracefully or kill it outright.
///
/// ```
/// use liveview::{testing::TestServer, LiveView};
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let server = TestServer::start(LiveView::builder(), axum::Router::new()).await.unwrap();
/// let mut client = server.connect("lobby").await.unwrap();
/// client.send_text("not json").await.unwrap();
/// assert_eq!(client.recv().await.unwrap(), serde_json::json!({"error": "Invalid message"}));
/// server.shutdown().await;
/// # }
/// ```
#[derive(Debug)]
pub struct TestServer {
    addr: SocketAddr,
    live: LiveView,
    stop: Option<oneshot::Sender<()>>,
    stopped: Option<oneshot::Receiver<()>>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl TestServer {
    /// Build the app from `builder` and serve `routes` merged with its
    /// router, `/metrics`, `/healthz` and `/readyz` on a free port of
    /// 127.0.0.1.
    pub async fn start(builder: LiveViewBuilder, routes: Router) -> std::io::Result<Self> {
        Self::start_on(builder, routes, SocketAddr::from(([127, 0, 0, 1], 0))).await
    }

    /// [`start`](Self::start) on a given address (e.g. the port of a server
    /// that was killed, to restart it).
    pub async fn start_on(
        builder: LiveViewBuilder,
        routes: Router,
        addr: SocketAddr,
    ) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("liveview-test-server")
            .enable_all()
            .build()?;
        let (stop, stop_rx) = oneshot::channel::<()>();
        let (stopped_tx, stopped) = oneshot::channel::<()>();
        let started = runtime.spawn(async move {
            let live = builder.build().map_err(std::io::Error::other)?;
            let listener = bind(addr).await?;
            let addr = listener.local_addr()?;
            let app = routes
                .merge(live.router())
                .merge(live.metrics_router())
                .merge(live.health_router());
            let serving = live.clone();
            tokio::spawn(async move {
                let signal = async move {
                    let _ = stop_rx.await;
                };
                let _ = crate::serve_until(listener, app, serving, signal).await;
                let _ = stopped_tx.send(());
            });
            Ok::<_, std::io::Error>((live, addr))
        });
        let (live, addr) = started.await.map_err(std::io::Error::other)??;
        Ok(Self {
            addr,
            live,
            stop: Some(stop),
            stopped: Some(stopped),
            runtime: Some(runtime),
        })
    }

    /// The address served.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// `ws://127.0.0.1:PORT/ws/liveview/{room}/`.
    pub fn ws_url(&self, room: &str) -> String {
        format!("ws://{}/ws/liveview/{room}/", self.addr)
    }

    /// `GET path` over a real HTTP/1.1 connection: the response with its
    /// whole body.
    ///
    /// ```
    /// use liveview::{testing::TestServer, LiveView};
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let server = TestServer::start(LiveView::builder(), axum::Router::new()).await.unwrap();
    /// let response = server.get("/healthz").await.unwrap();
    /// assert_eq!(response.status(), 200);
    /// assert_eq!(response.body(), "ok");
    /// # }
    /// ```
    pub async fn get(&self, path: &str) -> std::io::Result<http::Response<String>> {
        self.get_with(path, &[]).await
    }

    /// [`get`](Self::get) with extra request headers (`Cookie`,
    /// `X-Forwarded-For`, ...).
    pub async fn get_with(
        &self,
        path: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<http::Response<String>> {
        http_get(self.addr, path, headers).await
    }

    /// The app being served (its broadcaster, its connection count).
    pub fn live(&self) -> &LiveView {
        &self.live
    }

    /// Open a WebSocket to `room`.
    ///
    /// Returns once the server has the connection in its room, so a
    /// broadcast sent right after reaches it; an error of kind
    /// [`TimedOut`](std::io::ErrorKind::TimedOut) if that takes longer
    /// than 10 s.
    pub async fn connect(&self, room: &str) -> Result<WsClient, tungstenite::Error> {
        self.connect_with(room, &[]).await
    }

    /// Open a WebSocket to `room` with extra request headers (`Origin`,
    /// `Cookie`, ...), once the server has it in its room.
    pub async fn connect_with(
        &self,
        room: &str,
        headers: &[(&str, &str)],
    ) -> Result<WsClient, tungstenite::Error> {
        // Connections are counted once joined. Not the room's member
        // count: another connection of the room leaving meanwhile would
        // hide the join.
        let joined = || self.live.shared.metrics.connections_total.get();
        let before = joined();
        let client = WsClient::connect(&self.ws_url(room), headers).await?;
        // The upgrade answers before the server's side of the connection
        // has joined its groups: wait for that, or fail.
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        while joined() <= before {
            if tokio::time::Instant::now() >= deadline {
                return Err(tungstenite::Error::Io(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the server did not join the connection to room {room:?} within {JOIN_TIMEOUT:?}"
                    ),
                )));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(client)
    }

    /// Open a stream of the HTTP transport (Server-Sent Events) in `room`,
    /// with a `query` (`""`, or `"?resume=..."`) and extra request headers,
    /// once the server has it in its room.
    pub async fn events_with(
        &self,
        room: &str,
        query: &str,
        headers: &[(&str, &str)],
    ) -> std::io::Result<super::SseClient> {
        let joined = || self.live.shared.metrics.connections_total.get();
        let before = joined();
        let client = super::SseClient::open(self.addr, room, query, headers).await?;
        let deadline = tokio::time::Instant::now() + JOIN_TIMEOUT;
        while joined() <= before {
            if tokio::time::Instant::now() >= deadline {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!(
                        "the server did not join the stream to room {room:?} within {JOIN_TIMEOUT:?}"
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        Ok(client)
    }

    /// [`events_with`](Self::events_with) with no query or extra header.
    pub async fn events(&self, room: &str) -> std::io::Result<super::SseClient> {
        self.events_with(room, "", &[]).await
    }

    /// How many streams of the HTTP transport this server holds.
    pub fn streams(&self) -> usize {
        self.live.shared.streams.len()
    }

    /// Graceful shutdown, as on SIGTERM; returns when the server stopped.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(stopped) = self.stopped.take() {
            let _ = stopped.await;
        }
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }

    /// Kill the server outright: every task and socket is dropped with no
    /// close frame, as if the process died.
    pub fn kill(mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(runtime) = self.runtime.take() {
            runtime.shutdown_background();
        }
    }
}

/// One GET on a connection of its own (`Connection: close`), so the
/// response ends with the connection.
async fn http_get(
    addr: SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> std::io::Result<http::Response<String>> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let invalid = |what: String| std::io::Error::new(std::io::ErrorKind::InvalidData, what);
    let mut stream = TcpStream::connect(addr).await?;
    let mut request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await?;

    let mut parsed = [httparse::EMPTY_HEADER; 64];
    let mut head = httparse::Response::new(&mut parsed);
    let body_start = match head.parse(&raw) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => {
            return Err(invalid("the response ended in its head".into()));
        }
        Err(err) => return Err(invalid(format!("not an HTTP response: {err}"))),
    };
    let mut response = http::Response::builder().status(head.code.unwrap_or_default());
    let mut chunked = false;
    for header in head.headers.iter() {
        chunked |= header.name.eq_ignore_ascii_case("transfer-encoding")
            && header.value.eq_ignore_ascii_case(b"chunked");
        response = response.header(header.name, header.value);
    }
    let body = &raw[body_start..];
    let body = if chunked {
        dechunk(body).ok_or_else(|| invalid("a malformed chunked body".into()))?
    } else {
        body.to_vec()
    };
    let body =
        String::from_utf8(body).map_err(|err| invalid(format!("the body is not UTF-8: {err}")))?;
    response.body(body).map_err(|err| invalid(err.to_string()))
}

/// The body of a `Transfer-Encoding: chunked` response.
fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        raw = raw.get(size + 2..)?;
    }
}

/// Bind, retrying briefly while a killed server's port is released.
async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    let mut attempts = 0;
    loop {
        match tokio::net::TcpListener::bind(addr).await {
            Ok(listener) => return Ok(listener),
            Err(err) if err.kind() == std::io::ErrorKind::AddrInUse && attempts < 50 => {
                attempts += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// A WebSocket client speaking the LiveView protocol, for integration tests.
#[derive(Debug)]
pub struct WsClient {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    timeout: Duration,
    /// A close frame read by [`WsClient::received`], for the next read.
    close_frame: Option<Closed>,
}

/// What a [`WsClient`] read instead of a JSON frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Closed {
    /// A close frame with this code.
    Code(u16),
    /// The connection ended without a close frame.
    Abruptly,
    /// Nothing arrived in time.
    TimedOut,
}

impl WsClient {
    /// Connect to a `ws://` URL with extra request headers.
    pub async fn connect(url: &str, headers: &[(&str, &str)]) -> Result<Self, tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name = http::HeaderName::try_from(*name)
                .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
            let value = http::HeaderValue::try_from(*value)
                .map_err(|e| tungstenite::Error::HttpFormat(e.into()))?;
            request.headers_mut().insert(name, value);
        }
        let config = WebSocketConfig::default().max_message_size(Some(16 << 20));
        let (stream, _) =
            tokio_tungstenite::connect_async_with_config(request, Some(config), false).await?;
        Ok(Self {
            stream,
            timeout: Duration::from_secs(30),
            close_frame: None,
        })
    }

    /// Call `function` with `form` and `data` (JSON objects), as
    /// [`TestClient::call`](super::TestClient::call) does in process: sends
    /// `{"function", "form", "data", "lang": "en"}`. The answers arrive
    /// over the socket: read them with [`recv`](Self::recv).
    pub async fn call(
        &mut self,
        function: &str,
        form: Value,
        data: Value,
    ) -> Result<(), tungstenite::Error> {
        self.send_json(&json!({"function": function, "form": form, "data": data, "lang": "en"}))
            .await
    }

    /// Send a JSON value as a text frame.
    pub async fn send_json(&mut self, value: &Value) -> Result<(), tungstenite::Error> {
        self.send_text(&value.to_string()).await
    }

    /// Send a raw text frame.
    pub async fn send_text(&mut self, text: &str) -> Result<(), tungstenite::Error> {
        self.stream.send(Message::text(text)).await
    }

    /// Send a binary frame.
    pub async fn send_binary(&mut self, bytes: Vec<u8>) -> Result<(), tungstenite::Error> {
        self.stream.send(Message::binary(bytes)).await
    }

    /// The next JSON frame, waiting up to the client's timeout (30 s).
    pub async fn recv(&mut self) -> Result<Value, Closed> {
        self.recv_timeout(self.timeout).await
    }

    /// The JSON frames that have arrived and were not read yet, without
    /// waiting for more (the same as
    /// [`TestClient::received`](super::TestClient::received)). A close
    /// frame ends the list; read it with [`closed`](Self::closed).
    ///
    /// Frames still on their way are not in it: to wait for a frame, use
    /// [`recv`](Self::recv).
    pub fn received(&mut self) -> Vec<Value> {
        let mut frames = Vec::new();
        while let Some(Some(Ok(message))) = self.stream.next().now_or_never() {
            match message {
                Message::Text(text) => frames
                    .push(serde_json::from_str(text.as_str()).expect("the server only sends JSON")),
                Message::Close(frame) => {
                    self.close_frame = Some(self.close_received(frame));
                    break;
                }
                _ => {}
            }
        }
        frames
    }

    /// The next JSON frame, waiting up to `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Value, Closed> {
        if let Some(closed) = self.close_frame.take() {
            return Err(closed);
        }
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let next = tokio::time::timeout_at(deadline, self.stream.next()).await;
            match next {
                Err(_) => return Err(Closed::TimedOut),
                Ok(None) | Ok(Some(Err(_))) => return Err(Closed::Abruptly),
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Ok(
                        serde_json::from_str(text.as_str()).expect("the server only sends JSON")
                    );
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    // Send the reply tungstenite queued, completing the
                    // closing handshake as a browser does at once.
                    let _ = self.stream.flush().await;
                    return Err(frame.map_or(Closed::Abruptly, |f| Closed::Code(f.code.into())));
                }
                Ok(Some(Ok(_))) => {}
            }
        }
    }

    fn close_received(&mut self, frame: Option<tungstenite::protocol::CloseFrame>) -> Closed {
        // The reply tungstenite queued goes out with the next flush (now,
        // for `recv`; at the next read or drop, for `received`).
        let _ = self.stream.flush().now_or_never();
        frame.map_or(Closed::Abruptly, |f| Closed::Code(f.code.into()))
    }

    /// Read until the server closes; the close code, skipping any frames
    /// before it.
    pub async fn closed(&mut self) -> Closed {
        loop {
            match self.recv().await {
                Ok(_) => {}
                Err(closed) => return closed,
            }
        }
    }

    /// Close the connection from the client side.
    pub async fn close(mut self) {
        let _ = self.stream.close(None).await;
    }
}
