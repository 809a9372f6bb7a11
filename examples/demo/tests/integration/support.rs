//! The demo served on a free port with a database of its own, and helpers
//! to talk to it.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use demo::{Config, Demo};
use liveview::testing::WsClient;
use liveview::{LiveView, LiveViewBuilder, User};
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

/// The token the tests' servers want on `/metrics`.
pub const METRICS_TOKEN: &str = "test-metrics-token";

/// The settings of a test: a fresh database file in `dir`, a small
/// catalogue, a fast snake unless a test says otherwise, `/metrics` behind
/// [`METRICS_TOKEN`].
pub fn config(dir: &TempDir) -> Config {
    Config::default()
        .with_metrics_token(METRICS_TOKEN)
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

    /// A WebSocket in `room`, as a page of that room opens it, for an
    /// anonymous visitor.
    pub async fn connect(&self, room: &str) -> WsClient {
        self.connect_with(room, &[]).await
    }

    /// A WebSocket in `room` for a visitor signed in as `name`.
    pub async fn connect_as(&self, room: &str, name: &str) -> WsClient {
        let cookie = self.session_cookie(name);
        self.connect_with(room, &[("cookie", &cookie)]).await
    }

    async fn connect_with(&self, room: &str, headers: &[(&str, &str)]) -> WsClient {
        WsClient::connect(&format!("ws://{}/ws/liveview/{room}/", self.addr), headers)
            .await
            .expect("the WebSocket opens")
    }

    /// The `name=value` of a session cookie signed in as `name`, as a
    /// browser sends it back.
    pub fn session_cookie(&self, name: &str) -> String {
        let user = User::new(format!("id-{name}"), name);
        cookie_pair(&self.demo.sessions().set_cookie(&user))
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

    /// `GET /metrics` with the token: status, headers and body.
    pub async fn metrics(&self) -> (u16, Vec<(String, String)>, String) {
        let bearer = format!("Bearer {METRICS_TOKEN}");
        self.request("GET", "/metrics", &[("authorization", &bearer)], "")
            .await
    }

    /// A request to this server: status, headers (lowercase names) and
    /// body.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &str,
    ) -> (u16, Vec<(String, String)>, String) {
        http(self.addr, method, path, headers, body).await
    }

    /// `POST path` with a form, from a page of this server (its own
    /// `Origin`), with the cookie if given.
    pub async fn post_form(
        &self,
        path: &str,
        form: &[(&str, &str)],
        cookie: Option<&str>,
    ) -> (u16, Vec<(String, String)>, String) {
        let origin = self.url("");
        let mut headers = vec![("origin", origin.as_str())];
        if let Some(cookie) = cookie {
            headers.push(("cookie", cookie));
        }
        self.request("POST", path, &headers, &encode(form)).await
    }
}

/// The `name=value` part of a `Set-Cookie` header value.
pub fn cookie_pair(set_cookie: &str) -> String {
    set_cookie
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The value of header `name` (lowercase) among `headers`.
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `application/x-www-form-urlencoded` of `form`.
pub fn encode(form: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(form)
        .finish()
}

/// `GET path` from the server at `addr`: status, headers (lowercase names)
/// and body.
pub async fn http_get(addr: SocketAddr, path: &str) -> (u16, Vec<(String, String)>, String) {
    http(addr, "GET", path, &[], "").await
}

/// A request to the server at `addr`, with a form body when `body` is
/// not empty: status, headers (lowercase names) and body.
pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() || method == "POST" {
        request.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
            body.len()
        ));
    }
    request.push_str("\r\n");
    request.push_str(body);
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
/// caller's room are among them; presence updates (`#viewers`) are not.
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

/// Whether `frame` is a presence update: who is watching, sent to a room
/// whenever someone joins or leaves it, so at any time.
pub fn is_presence(frame: &Value) -> bool {
    frame["target"] == "#viewers"
}

/// The next frame that is not a presence update, or a failure that says
/// what the connection did.
pub async fn next(client: &mut WsClient) -> Value {
    loop {
        match client.recv().await {
            Ok(frame) if is_presence(&frame) => continue,
            Ok(frame) => return frame,
            Err(closed) => panic!("expected a frame, the connection gave {closed:?}"),
        }
    }
}

/// The next frame that is not a presence update, if one comes within
/// `timeout`.
pub async fn recv_timeout(client: &mut WsClient, timeout: Duration) -> Option<Value> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.recv_timeout(left).await {
            Ok(frame) if is_presence(&frame) => continue,
            Ok(frame) => return Some(frame),
            Err(_) => return None,
        }
    }
}

/// Create alerts through `from` until one reaches `to`, a client of another
/// process whose subscription to the room may not be in place yet (pub/sub
/// drops what is published before it): returns the frame that carries the
/// alert. Fails after 20 alerts.
pub async fn create_alert_until_it_crosses(from: &mut WsClient, to: &mut WsClient) -> Value {
    let marker = uuid::Uuid::new_v4().simple().to_string();
    for attempt in 1..=20 {
        let message = format!("Across processes {marker} {attempt}");
        call(
            from,
            "alerts_create",
            json!({"kind": "info", "message": message}),
            json!({}),
        )
        .await;
        let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
        let left = || deadline.saturating_duration_since(tokio::time::Instant::now());
        while let Some(frame) = recv_timeout(to, left()).await {
            if frame["html"].as_str().is_some_and(|h| h.contains(&marker)) {
                return frame;
            }
        }
    }
    panic!("no alert reached the other process");
}

/// The text of the presence updates of `client` until one's text
/// contains `text` (HTML tags taken out); fails after ten seconds.
pub async fn viewers_until(client: &mut WsClient, text: &str) -> String {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let frame = client
            .recv_timeout(left)
            .await
            .unwrap_or_else(|closed| panic!("no viewers with {text:?}: {closed:?}"));
        if is_presence(&frame) {
            let shown = strip_tags(frame["html"].as_str().unwrap_or_default());
            if shown.contains(text) {
                return shown;
            }
        }
    }
}

/// `html` without its tags.
pub fn strip_tags(html: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in html.chars() {
        match c {
            '<' => in_tag = true,
            '>' => in_tag = false,
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text
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
