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

/// The hidden test hooks of a layer's subscription loop.
#[cfg(any(feature = "redis", feature = "nats"))]
pub trait SubscriptionHooks: liveview::layer::ChannelLayer {
    fn hold_subscriptions(&self, held: bool);
    fn hold_unsubscribes(&self, held: bool);
    fn paused_before_unsubscribing(&self) -> bool;
    fn waiting_for_subscriptions(&self) -> usize;
}

#[cfg(any(feature = "redis", feature = "nats"))]
macro_rules! subscription_hooks {
    ($layer:ty) => {
        impl SubscriptionHooks for $layer {
            fn hold_subscriptions(&self, held: bool) {
                <$layer>::hold_subscriptions(self, held);
            }
            fn hold_unsubscribes(&self, held: bool) {
                <$layer>::hold_unsubscribes(self, held);
            }
            fn paused_before_unsubscribing(&self) -> bool {
                <$layer>::paused_before_unsubscribing(self)
            }
            fn waiting_for_subscriptions(&self) -> usize {
                <$layer>::waiting_for_subscriptions(self)
            }
        }
    };
}

#[cfg(feature = "redis")]
subscription_hooks!(liveview::layer::RedisLayer);
#[cfg(feature = "redis-cluster")]
subscription_hooks!(liveview::layer::RedisClusterLayer);
#[cfg(feature = "nats")]
subscription_hooks!(liveview::layer::NatsLayer);

/// Receive frames of `client` into `got` until one has the html `text`,
/// for at most 10 s.
#[cfg(any(feature = "redis", feature = "nats"))]
async fn receive_until(client: &mut WsClient, got: &mut Vec<Value>, text: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while !got.iter().any(|f| f["html"] == text) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match client.recv_timeout(left).await {
            Ok(frame) => got.push(frame),
            Err(closed) => panic!("{text:?} never came ({closed:?}); the client got {got:?}"),
        }
    }
}

/// A client that resumes on process `a` into `room`'s group while `a` is
/// about to unsubscribe from it (its last member there just left) gets
/// every frame `b` publishes, in order, with no gap: a frame published
/// after that unsubscribe, before `a` subscribes again, included. The
/// client must not be answered from the log under the subscription that
/// is going away: the frames published between the unsubscribe and the
/// next subscription would be neither in that answer nor delivered.
///
/// `layer_a` (`a`'s layer) holds its unsubscribe until the client has
/// joined (and been answered, or waits for the subscription); it then
/// holds the group's next subscription until `subscribers` (the server's
/// count of subscribers of the group's channel) says the unsubscribe is
/// made, and `b` publishes in between.
#[cfg(any(feature = "redis", feature = "nats"))]
pub async fn assert_a_client_resuming_while_its_group_is_unsubscribed_misses_nothing<F>(
    layer_a: &impl SubscriptionHooks,
    a: &TestServer,
    b: &TestServer,
    room: &str,
    subscribers: impl Fn() -> F,
) where
    F: std::future::Future<Output = u64>,
{
    let group = format!("room_{room}");
    let say = async |text: &str| {
        b.live()
            .broadcaster()
            .send_to_room(room, liveview::Update::new("#log").html(text))
            .await
            .expect("published");
    };
    let mut first = WsClient::connect(&a.ws_url(room), &[])
        .await
        .expect("connects");
    wait_until("the first client joined", || {
        a.live().broadcaster().local_connections(room) == 1
    })
    .await;
    assert!(
        layer_a.subscribed(&group).await,
        "A subscribed to the group"
    );
    say("one").await;
    assert_eq!(next(&mut first).await["html"], "one");

    // The last member on A leaves: A is about to unsubscribe, and a
    // client resumes into the group then.
    layer_a.hold_unsubscribes(true);
    first.close().await;
    wait_until("A is about to unsubscribe", || {
        layer_a.paused_before_unsubscribing()
    })
    .await;
    let url = format!("{}?resume={group}:0", a.ws_url(room));
    let mut second = WsClient::connect(&url, &[]).await.expect("connects");
    // A has answered it from the log ("one"), or waits for the group's
    // subscription to read it.
    let mut got: Vec<Value> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while layer_a.waiting_for_subscriptions() == 0 && !got.iter().any(|f| f["html"] == "one") {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A neither answered nor waited"
        );
        if let Ok(frame) = second.recv_timeout(Duration::from_millis(10)).await {
            got.push(frame);
        }
    }

    // The unsubscribe goes out; a frame is published before A subscribes
    // again (within the 2 s a log read waits for a subscription).
    layer_a.hold_subscriptions(true);
    layer_a.hold_unsubscribes(false);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while subscribers().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A never unsubscribed"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    say("two").await;
    layer_a.hold_subscriptions(false);
    receive_until(&mut second, &mut got, "two").await;
    say("three").await;
    receive_until(&mut second, &mut got, "three").await;

    let frames: Vec<(Option<u64>, &str)> = got
        .iter()
        .map(|f| (f["seq"].as_u64(), f["html"].as_str().unwrap_or("")))
        .collect();
    assert_eq!(
        frames,
        [(Some(1), "one"), (Some(2), "two"), (Some(3), "three")],
        "what the client on A got: {got:?}"
    );
    assert_nothing_pending(&mut second, "after three").await;
    second.close().await;
}
