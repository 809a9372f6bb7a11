//! Half-open connections do not live forever: the server pings, and a
//! connection that sends nothing, not even a Pong, for the idle timeout is
//! closed and everything it held is freed.

use std::time::Duration;

use futures_util::StreamExt;
use liveview::LiveView;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{assert_nothing_pending, server, wait_until};

fn short_keepalive() -> liveview::LiveViewBuilder {
    LiveView::builder()
        .ping_interval(Duration::from_millis(100))
        .idle_timeout(Duration::from_millis(400))
}

#[tokio::test]
async fn a_client_that_stops_answering_is_closed_and_everything_it_held_is_freed() {
    let builder = short_keepalive()
        .max_connections_per_address(Some(1))
        .on_presence(|_| None);
    let server = server(builder).await;
    let live = server.live().clone();
    let broadcaster = live.broadcaster();
    // A client that answers the pings (reading answers them) until it
    // vanishes: then its socket stays open, but it never reads again (so
    // never answers a ping) and never sends. Were it silent from the
    // upgrade on, the idle timeout would close it before the test could
    // see it joined whenever the test runs late by an idle timeout.
    let (ws, _) = tokio_tungstenite::connect_async(server.ws_url("liveness-gone"))
        .await
        .unwrap();
    let (vanish, vanishes) = tokio::sync::oneshot::channel::<()>();
    let answering = tokio::spawn(async move {
        let mut ws = ws;
        let mut vanishes = vanishes;
        loop {
            tokio::select! {
                _ = &mut vanishes => return ws,
                message = ws.next() => match message {
                    Some(Ok(_)) => {}
                    other => panic!("closed while it answered: {other:?}"),
                },
            }
        }
    });
    wait_until("it joined", || {
        broadcaster.local_connections("liveness-gone") == 1
    })
    .await;
    present(&broadcaster, "liveness-gone", 1).await;

    vanish.send(()).unwrap();
    let vanished = answering.await.unwrap();
    wait_until("its memberships are freed", || {
        broadcaster.local_connections("liveness-gone") == 0
    })
    .await;
    present(&broadcaster, "liveness-gone", 0).await;
    wait_until("its connection is gone", || live.connections() == 0).await;
    // Its address's only slot is free again.
    let mut next = server.connect("liveness-gone").await.unwrap();
    assert_nothing_pending(&mut next, "a new connection from the address").await;
    // Free the slot again for the metrics request.
    next.close().await;
    wait_until("the new connection is gone", || live.connections() == 0).await;
    let metrics = crate::support::http_get(server.addr(), "/metrics", &[])
        .await
        .2;
    assert!(
        metrics.contains("liveview_idle_closes_total 1\n"),
        "{metrics}"
    );
    drop(vanished);
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_connected() {
    let server = server(short_keepalive()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("liveness-quiet"))
        .await
        .unwrap();
    // Reading answers each ping (tungstenite replies on the next read).
    // Ten pings span 2.5 idle timeouts with no application frame at all.
    let mut pings = 0;
    while pings < 10 {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    assert_eq!(
        server
            .live()
            .broadcaster()
            .local_connections("liveness-quiet"),
        1,
        "still in its room"
    );
}

/// A network namespace joined to this one by a veth pair, removed on drop.
struct Namespace {
    name: String,
    host: std::net::Ipv4Addr,
}

fn ip(args: &[&str]) {
    let status = std::process::Command::new("ip")
        .args(args)
        .status()
        .expect("iproute2 runs");
    assert!(status.success(), "ip {args:?} failed");
}

impl Namespace {
    fn new() -> Self {
        let id = std::process::id() % 250;
        let name = format!("lvlive{id}");
        let (host_if, peer_if) = (format!("lvh{id}"), format!("lvp{id}"));
        let host = std::net::Ipv4Addr::new(10, 213, id as u8, 1);
        let peer = std::net::Ipv4Addr::new(10, 213, id as u8, 2);
        // A pair of this id left by an earlier run (one killed before its
        // drop) would make the new one fail.
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &host_if])
            .stderr(std::process::Stdio::null())
            .status();
        ip(&["netns", "add", &name]);
        let ns = Self { name, host };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &peer_if,
        ]);
        ip(&["link", "set", &peer_if, "netns", &ns.name]);
        ip(&["addr", "add", &format!("{host}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "netns",
            "exec",
            &ns.name,
            "ip",
            "addr",
            "add",
            &format!("{peer}/30"),
            "dev",
            &peer_if,
        ]);
        ip(&[
            "netns", "exec", &ns.name, "ip", "link", "set", &peer_if, "up",
        ]);
        ns
    }

    /// Drop every packet both ways: both ends of the link go down, so the
    /// peer is gone without a FIN or a reset, as behind a dead Wi-Fi.
    /// (`tc netem loss 100%` does the same where the kernel has netem.)
    fn blackhole(&self) {
        let id = std::process::id() % 250;
        ip(&["link", "set", &format!("lvh{id}"), "down"]);
        ip(&[
            "netns",
            "exec",
            &self.name,
            "ip",
            "link",
            "set",
            &format!("lvp{id}"),
            "down",
        ]);
    }
}

impl Drop for Namespace {
    fn drop(&mut self) {
        // The pair goes first, with its address: a namespace outlives its
        // name while anything in it is left (a socket still sending into
        // the dead link), and its veth pair with it, which a later run
        // given the same id could then not create.
        let id = std::process::id() % 250;
        let _ = std::process::Command::new("ip")
            .args(["link", "del", &format!("lvh{id}")])
            .status();
        let _ = std::process::Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A half-open TCP connection for real: a client in another network
/// namespace upgrades, then every packet between it and the server is
/// dropped. Needs root (`ip netns add`), as the test command runs on CI.
#[tokio::test]
async fn a_client_behind_a_blackholed_link_is_closed_and_freed() {
    let ns = Namespace::new();
    let server = liveview::testing::TestServer::start_on(
        short_keepalive().on_presence(|_| None),
        axum::Router::new(),
        std::net::SocketAddr::from((ns.host, 0)),
    )
    .await
    .unwrap();
    let live = server.live().clone();
    let broadcaster = live.broadcaster();
    let addr = server.addr();
    // The client: a raw upgrade from inside the namespace, then it answers
    // every ping until the link goes dark. (Silent from the upgrade on, it
    // would be closed by the idle timeout whether or not the link is cut,
    // and before the test could see it joined if the test ran late.)
    let host = ns.host.to_string();
    let port = addr.port().to_string();
    let mut client = Killed(
        std::process::Command::new("ip")
            .args([
                "netns",
                "exec",
                &ns.name,
                "python3",
                "-c",
                ANSWERING_CLIENT,
                &host,
                &port,
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let mut stdout = client.0.stdout.take().unwrap();
    // The pipe stays open (`_stdout`): the client's print must not fail.
    let (first, _stdout) = tokio::task::spawn_blocking(move || {
        let mut first = [0; 12];
        std::io::Read::read_exact(&mut stdout, &mut first).map(|()| (first, stdout))
    })
    .await
    .unwrap()
    .unwrap();
    assert_eq!(&first, b"HTTP/1.1 101");
    wait_until("it joined", || {
        broadcaster.local_connections("liveness-netns") == 1
    })
    .await;
    present(&broadcaster, "liveness-netns", 1).await;

    ns.blackhole();
    wait_until("its memberships are freed", || {
        broadcaster.local_connections("liveness-netns") == 0
    })
    .await;
    present(&broadcaster, "liveness-netns", 0).await;
    wait_until("its connection is gone", || live.connections() == 0).await;
}

/// A WebSocket client in Python (argv: host, port): it upgrades, prints
/// the status line, then answers every Ping with a masked Pong, until its
/// socket ends.
const ANSWERING_CLIENT: &str = r"
import os, socket, struct, sys, time
host, port = sys.argv[1], int(sys.argv[2])
s = socket.create_connection((host, port))
s.sendall((
    'GET /ws/liveview/liveness-netns/ HTTP/1.1\r\nHost: %s:%d\r\n'
    'Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n'
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n' % (host, port)
).encode())
def exactly(n):
    data = b''
    while len(data) < n:
        more = s.recv(n - len(data))
        if not more:
            sys.exit(0)
        data += more
    return data
head = b''
while not head.endswith(b'\r\n\r\n'):
    head += exactly(1)
print(head[:12].decode(), flush=True)
while True:
    first, second = exactly(2)
    size = second & 127
    if size == 126:
        size = struct.unpack('!H', exactly(2))[0]
    elif size == 127:
        size = struct.unpack('!Q', exactly(8))[0]
    if second & 128:
        exactly(4)
    payload = exactly(size)
    if first & 15 == 9:
        key = os.urandom(4)
        masked = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
        s.sendall(bytes([0x8A, 0x80 | size]) + key + masked)
    elif first & 15 == 8:
        time.sleep(600)
";

/// A child process killed when dropped, also when the test fails.
struct Killed(std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Wait until `room` counts `count` present connections: presence is
/// written through the channel layer by a background task, after the
/// connection joined or left its groups.
async fn present(broadcaster: &liveview::Broadcaster, room: &str, count: usize) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let now = broadcaster.presence(room).await.count;
        if now == count {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {count} present in {room} (now {now})"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
