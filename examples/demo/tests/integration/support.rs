//! The demo served on a free port with a database of its own, and helpers
//! to talk to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use demo::{Config, Demo};
use liveview::testing::WsClient;
use liveview::{LiveView, LiveViewBuilder};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::oneshot;

/// A directory removed when dropped.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new() -> Self {
        let dir = std::env::temp_dir().join(format!("demo-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).expect("a temporary directory");
        Self(dir)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The settings of a test: a fresh database file in `dir`, a small
/// catalogue, a fast snake unless a test says otherwise.
pub fn config(dir: &TempDir) -> Config {
    Config::default()
        .with_database(dir.path().join("demo.sqlite3"))
        .with_products(3_000)
        .with_snake_tick(Duration::from_millis(40))
}

/// The demo, served on 127.0.0.1 until dropped.
#[derive(Debug)]
pub struct TestDemo {
    pub demo: Demo,
    pub live: LiveView,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    // Last: the database file outlives the server.
    _dir: Option<TempDir>,
}

impl TestDemo {
    /// The demo with a fresh database.
    pub async fn start() -> Self {
        let dir = TempDir::new();
        let mut server = Self::start_with(config(&dir), LiveView::builder()).await;
        server._dir = Some(dir);
        server
    }

    /// The demo with these settings and this LiveView builder (a Redis
    /// layer, say). The caller keeps the database directory.
    pub async fn start_with(config: Config, builder: LiveViewBuilder) -> Self {
        let demo = Demo::open(config)
            .await
            .expect("the demo opens its database");
        let live = demo.liveview(builder).expect("the LiveView app builds");
        let router = demo.router(&live);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(liveview::serve_until(
            listener,
            router,
            live.clone(),
            async move {
                let _ = stopped.await;
            },
        ));
        Self {
            demo,
            live,
            addr,
            stop: Some(stop),
            _dir: None,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// A WebSocket in `room`, as a page of that room opens it.
    pub async fn connect(&self, room: &str) -> WsClient {
        WsClient::connect(&format!("ws://{}/ws/liveview/{room}/", self.addr), &[])
            .await
            .expect("the WebSocket opens")
    }

    /// `GET path`: the status and the body.
    pub async fn get(&self, path: &str) -> (u16, String) {
        let (status, _, body) = self.get_with_headers(path).await;
        (status, body)
    }

    /// `GET path`: status, headers (lowercase names) and body.
    pub async fn get_with_headers(&self, path: &str) -> (u16, Vec<(String, String)>, String) {
        http_get(self.addr, path).await
    }
}

/// `GET path` from the server at `addr`: status, headers (lowercase names)
/// and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let raw = String::from_utf8(raw).expect("UTF-8 responses");
    let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let chunked = head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked");
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_owned()
    };
    (status, headers, body)
}

impl Drop for TestDemo {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

static NEXT_REF: AtomicU64 = AtomicU64::new(1);

/// Call `function` over the socket with a `ref`, and return every frame
/// received until the server said the call was done: the done frame left
/// out, and the `ref` taken off the others. Frames the handler sent to the
/// caller's room are among them.
pub async fn call(client: &mut WsClient, function: &str, form: Value, data: Value) -> Vec<Value> {
    let reference = NEXT_REF.fetch_add(1, Ordering::Relaxed);
    client
        .send_json(&json!({
            "function": function, "form": form, "data": data, "lang": "en", "ref": reference,
        }))
        .await
        .expect("the call is sent");
    let mut frames = Vec::new();
    loop {
        let frame = next(client).await;
        if frame["ref"] == reference && frame["done"] == true {
            return frames;
        }
        let mut frame = frame;
        if let Some(map) = frame.as_object_mut() {
            map.remove("ref");
        }
        frames.push(frame);
    }
}

/// The next frame, or a failure that says what the connection did.
pub async fn next(client: &mut WsClient) -> Value {
    match client.recv().await {
        Ok(frame) => frame,
        Err(closed) => panic!("expected a frame, the connection gave {closed:?}"),
    }
}

/// Prove that nothing is waiting for `client`: a call that answers nothing
/// must be answered by its done frame alone.
pub async fn assert_quiet(client: &mut WsClient) {
    let frames = call(
        client,
        "alerts_validate",
        json!({}),
        json!({"field": "none"}),
    )
    .await;
    assert!(frames.is_empty(), "expected no frames, got {frames:?}");
}

/// The frame of `frames` whose target is `target`.
pub fn frame_for<'a>(frames: &'a [Value], target: &str) -> &'a Value {
    frames
        .iter()
        .find(|f| f["target"] == target)
        .unwrap_or_else(|| panic!("no frame for {target} in {frames:#?}"))
}

/// The HTML of the frame for `target`.
pub fn html_for<'a>(frames: &'a [Value], target: &str) -> &'a str {
    frame_for(frames, target)["html"]
        .as_str()
        .unwrap_or_else(|| panic!("the frame for {target} has no html"))
}

/// Wait until `condition` holds, checking every 20 ms, for at most
/// `limit`.
pub async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + limit;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {limit:?} waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
