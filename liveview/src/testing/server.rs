//! A real server on loopback, and a real WebSocket client for it.

use std::net::SocketAddr;
use std::time::Duration;

use axum::Router;
use futures_util::{SinkExt, StreamExt};
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
        let joined = || {
            self.live
                .shared
                .metrics
                .connections_total
                .load(std::sync::atomic::Ordering::Acquire)
        };
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
        })
    }

    /// Send `{"function": function, "form": form}` (data `{}`, lang `en`).
    pub async fn call(&mut self, function: &str, form: Value) -> Result<(), tungstenite::Error> {
        self.send_json(&json!({"function": function, "form": form, "data": {}, "lang": "en"}))
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

    /// The next JSON frame, waiting up to `timeout`.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Value, Closed> {
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
