//! Shared test helpers.

use std::time::Duration;

use liveview::LiveViewBuilder;
use liveview::testing::{TestServer, WsClient};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with the test handlers and no extra routes.
pub async fn server(builder: LiveViewBuilder) -> TestServer {
    TestServer::start(builder, axum::Router::new())
        .await
        .expect("the test server starts")
}

/// Wait until `condition` holds, checking every 10 ms, for at most 10 s.
pub async fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Prove that nothing else is queued for `client`: call `echo` with a
/// marker and check that the marker's reply is the very next frame.
pub async fn assert_nothing_pending(client: &mut WsClient, marker: &str) {
    client
        .call(
            "echo",
            serde_json::json!({"marker": marker}),
            serde_json::json!({}),
        )
        .await
        .unwrap();
    let next = client.recv().await.unwrap();
    assert_eq!(
        next["form"]["marker"], marker,
        "expected the marker reply, got another frame first: {next}"
    );
}

/// Receive the next frame or fail with a readable message.
pub async fn next(client: &mut WsClient) -> Value {
    match client.recv().await {
        Ok(frame) => frame,
        Err(closed) => panic!("expected a frame, the connection gave {closed:?}"),
    }
}

/// A minimal HTTP/1.1 GET over a raw socket: status, headers, body.
pub async fn http_get(
    addr: std::net::SocketAddr,
    path: &str,
    headers: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, String) {
    http_request(addr, "GET", path, headers, b"").await
}

/// One HTTP/1.1 request over a fresh socket, read to its end: status,
/// headers (names in lower case), body.
pub async fn http_request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if !body.is_empty() || method != "GET" {
        request.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The value of header `name` in a response from [`http_get`].
pub fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// `layer.subscribed(group)` asked while `gate` holds the layer's first
/// connection: it is pending, then, once the gate opens, `true`.
pub async fn assert_subscribed_waits_for_the_gate(
    layer: &dyn liveview::layer::ChannelLayer,
    gate: &Gate,
    group: &str,
) {
    let mut waiting = layer.subscribed(group);
    assert!(
        futures_util::FutureExt::now_or_never(&mut waiting).is_none(),
        "answered before the first connection was made"
    );
    gate.open();
    assert!(waiting.await, "the group was subscribed once connected");
}

/// The replay of `group` (after 0) asked of `layer` while `gate` holds the
/// layer's first connection: it is pending, then, once the gate opens,
/// answers the frames numbered `seqs`.
pub async fn assert_replay_waits_for_the_gate(
    layer: &dyn liveview::layer::ChannelLayer,
    gate: &Gate,
    group: &str,
    seqs: &[u64],
) {
    let mut replaying = layer.replay(group, 0, None);
    assert!(
        futures_util::FutureExt::now_or_never(&mut replaying).is_none(),
        "answered before the first connection was made"
    );
    gate.open();
    let missed = replaying
        .await
        .expect("the log is read once connected")
        .expect("the layer keeps a shared log");
    let liveview::layer::Replay::Frames(frames) = missed.replay else {
        panic!("a gap instead of the frames {seqs:?}");
    };
    let read: Vec<u64> = frames.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(read, seqs);
}

/// A TCP gate in front of a server: it accepts connections and holds them,
/// passing nothing on, until it is opened; then they (and later ones) go
/// through to the server.
pub struct Gate {
    addr: std::net::SocketAddr,
    held: std::sync::Arc<std::sync::Mutex<Vec<tokio::net::TcpStream>>>,
    opened: std::sync::Arc<tokio::sync::Notify>,
    open: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Gate {
    /// A gate in front of the server at `to` (`host:port`).
    pub async fn start(to: &str) -> Self {
        let to = to.to_owned();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let held: std::sync::Arc<std::sync::Mutex<Vec<tokio::net::TcpStream>>> =
            std::sync::Arc::default();
        let opened = std::sync::Arc::new(tokio::sync::Notify::new());
        let open = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (h, o, flag) = (held.clone(), opened.clone(), open.clone());
        tokio::spawn(async move {
            let pass = move |mut inbound: tokio::net::TcpStream, to: String| {
                tokio::spawn(async move {
                    if let Ok(mut outbound) = tokio::net::TcpStream::connect(&to).await {
                        let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                    }
                });
            };
            loop {
                tokio::select! {
                    accepted = listener.accept() => {
                        let Ok((inbound, _)) = accepted else { return };
                        if flag.load(std::sync::atomic::Ordering::SeqCst) {
                            pass(inbound, to.clone());
                        } else {
                            h.lock().unwrap().push(inbound);
                        }
                    }
                    () = o.notified() => {
                        for inbound in h.lock().unwrap().drain(..) {
                            pass(inbound, to.clone());
                        }
                    }
                }
            }
        });
        Self {
            addr,
            held,
            opened,
            open,
        }
    }

    /// The address clients connect to (`host:port`).
    pub fn addr(&self) -> std::net::SocketAddr {
        self.addr
    }

    /// Connections waiting at the gate.
    pub fn held(&self) -> usize {
        self.held.lock().unwrap().len()
    }

    /// Let every connection, held or to come, through.
    pub fn open(&self) {
        self.open.store(true, std::sync::atomic::Ordering::SeqCst);
        self.opened.notify_one();
    }
}
