//! One contract for every channel layer: a conformance suite that any
//! [`ChannelLayer`](crate::layer::ChannelLayer) runs, over real servers
//! and real WebSockets.
//!
//! A layer is described by a [`Backend`]: how to configure one more server
//! process ("node") that shares the backend with the others of the test,
//! and, if it can, how to cut the nodes off the backend and bring it back.
//! Each check starts its own nodes (two, or one for a layer of a single
//! process such as [`MemoryLayer`](crate::layer::MemoryLayer)), connects
//! real clients, and asserts what every layer promises:
//!
//! - [`exactly_once`]: a broadcast reaches every connection of every node
//!   once; a room send reaches the room's connections and no one else;
//! - [`per_group_order`]: with several publishers on several nodes at once,
//!   every connection of a group receives every frame once, each
//!   publisher's frames in the order it sent them, numbered without gap,
//!   and all connections in the same order;
//! - [`replay_and_resync`]: a client that reconnects, to any node, with the
//!   last sequence and epoch it applied gets what it missed, in the same
//!   epoch, then live frames; a position the log cannot serve, or one of
//!   another epoch, gets a resync;
//! - [`presence`]: joins and leaves on every node are counted everywhere,
//!   and the members of a node that dies stop counting;
//! - [`outage_and_recovery`]: while the backend is down, local delivery
//!   goes on; once it is back, frames cross nodes again, once and in order,
//!   with no restart.
//!
//! [`layer_conformance_tests!`](crate::layer_conformance_tests) writes one
//! test per check for a backend:
//!
//! ```no_run
//! use liveview::testing::conformance::Backend;
//! use liveview::LiveViewBuilder;
//!
//! /// Every node of a test uses one in-process layer: nodes do not share it.
//! struct Memory;
//!
//! impl Backend for Memory {
//!     fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder {
//!         builder.channel_layer(liveview::layer::MemoryLayer)
//!     }
//!     fn shared(&self) -> bool {
//!         false
//!     }
//! }
//!
//! liveview::layer_conformance_tests!(async { Memory });
//! # fn main() {}
//! ```

use std::collections::HashMap;
use std::time::Duration;

use futures_util::future::BoxFuture;
use serde_json::{Value, json};

use super::server::{Closed, TestServer, WsClient};
use crate::{LiveViewBuilder, Scope, Update, User};

/// Longest wait for something that must happen (a subscription, a
/// presence count, a recovery).
const LIMIT: Duration = Duration::from_secs(40);

/// A channel layer under test, and the backend its nodes share.
pub trait Backend: Send + Sync + 'static {
    /// Configure one more node: typically
    /// `builder.channel_layer(MyLayer::new(...))` with the backend's address
    /// and a namespace (prefix) of this test's own. Called once per node;
    /// nodes of one test share the backend.
    fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder;

    /// Whether frames and presence cross nodes (`false` for a layer of one
    /// process: the multi-node checks then run on one node).
    fn shared(&self) -> bool {
        true
    }

    /// Cut every node off the backend (kill its server); `false` when the
    /// backend cannot do that (the outage check is then skipped).
    fn outage(&mut self) -> BoxFuture<'_, bool> {
        Box::pin(async { false })
    }

    /// Bring the backend back after [`outage`](Self::outage), with what it
    /// had stored (a restarted server).
    fn recover(&mut self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

/// One test per check of the conformance suite, for the [`Backend`] that
/// the async expression `$backend` makes (once per test: each test gets a
/// fresh backend or namespace). Needs `tokio` with the `macros` and
/// `rt-multi-thread` features in the calling crate.
#[macro_export]
macro_rules! layer_conformance_tests {
    ($backend:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn exactly_once() {
            $crate::testing::conformance::exactly_once($backend.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn per_group_order() {
            $crate::testing::conformance::per_group_order($backend.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn replay_and_resync() {
            $crate::testing::conformance::replay_and_resync($backend.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn presence() {
            $crate::testing::conformance::presence($backend.await).await;
        }

        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn outage_and_recovery() {
            $crate::testing::conformance::outage_and_recovery($backend.await).await;
        }
    };
}

/// The nodes of one check: two when the backend is shared, else one
/// (then "node B" is node A).
struct Nodes {
    servers: Vec<TestServer>,
}

impl Nodes {
    async fn start(
        backend: &dyn Backend,
        configure: fn(LiveViewBuilder) -> LiveViewBuilder,
    ) -> Self {
        let count = if backend.shared() { 2 } else { 1 };
        let mut servers = Vec::new();
        for _ in 0..count {
            let builder = backend.node(configure(crate::LiveView::builder()));
            let server = TestServer::start(builder, axum::Router::new())
                .await
                .expect("a node starts");
            servers.push(server);
        }
        Self { servers }
    }

    fn a(&self) -> &TestServer {
        &self.servers[0]
    }

    fn b(&self) -> &TestServer {
        self.servers.last().expect("one node at least")
    }

    async fn shutdown(self) {
        for server in self.servers {
            server.shutdown().await;
        }
    }
}

fn plain(builder: LiveViewBuilder) -> LiveViewBuilder {
    builder
}

/// A client of `room` that tracks group sequences, resuming from `resume`
/// (`group:seq,...`; empty on a first visit).
async fn tracking(node: &TestServer, room: &str, resume: &str) -> WsClient {
    let url = format!("{}?resume={resume}", node.ws_url(room));
    let client = WsClient::connect(&url, &[])
        .await
        .expect("the client connects");
    wait_members(node, room).await;
    client
}

async fn wait_members(node: &TestServer, room: &str) {
    let broadcaster = node.live().broadcaster();
    wait_for(&format!("a member in room {room}"), || {
        let n = broadcaster.local_connections(room);
        async move { n > 0 }
    })
    .await;
}

async fn wait_for<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + LIMIT;
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out after {LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn html(text: &str) -> Update {
    Update::new("#log").html(text).append()
}

/// The next frame, or a panic naming what came instead.
async fn next(client: &mut WsClient) -> Value {
    match client.recv_timeout(LIMIT).await {
        Ok(frame) => frame,
        Err(closed) => panic!("expected a frame, the connection gave {closed:?}"),
    }
}

/// Publish `text` to `group` from `node`.
async fn send(node: &TestServer, group: &str, text: &str) -> Result<(), crate::BroadcastError> {
    node.live().broadcaster().publish(group, html(text)).await
}

/// Until `client` (on any node) receives frames sent to `group` from
/// `from`: probes are sent until one arrives (the layer's subscriptions
/// are in place). Follow with [`settle`].
async fn until_reached(from: &TestServer, group: &str, client: &mut WsClient) {
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let _ = send(from, group, "probe").await;
        match client.recv_timeout(Duration::from_millis(200)).await {
            Ok(_) => return,
            Err(Closed::TimedOut) => {}
            Err(other) => panic!("the client was closed: {other:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "frames of {group} never arrived from the other node"
        );
    }
}

/// Send a marker to `group` from `from`, and read every client up to it:
/// nothing sent to the group before is pending after.
async fn settle(from: &TestServer, group: &str, clients: &mut [&mut WsClient], tag: &str) {
    let marker = format!("marker-{tag}");
    send(from, group, &marker)
        .await
        .expect("the marker is published");
    for client in clients.iter_mut() {
        loop {
            let frame = next(client).await;
            if frame["html"] == marker.as_str() {
                break;
            }
        }
    }
}

/// Nothing else is pending for `clients` in `group`: a marker is the very
/// next frame.
async fn nothing_pending(from: &TestServer, group: &str, clients: &mut [&mut WsClient], tag: &str) {
    let marker = format!("marker-{tag}");
    send(from, group, &marker)
        .await
        .expect("the marker is published");
    for client in clients.iter_mut() {
        expect_html(client, &marker).await;
    }
}

/// The next frame's text must be `expected`.
async fn expect_html(client: &mut WsClient, expected: &str) {
    let frame = next(client).await;
    assert_eq!(frame["html"], expected, "unexpected frame {frame}");
}

/// Broadcasts reach every connection of every node once; a room send
/// reaches that room's connections only.
pub async fn exactly_once(backend: impl Backend) {
    let nodes = Nodes::start(&backend, plain).await;
    let (a, b) = (nodes.a(), nodes.b());
    let mut a1 = a.connect("once").await.expect("connects");
    let mut a2 = a.connect("once").await.expect("connects");
    let mut b1 = b.connect("once").await.expect("connects");
    let mut b2 = b.connect("elsewhere").await.expect("connects");
    until_reached(a, "room_once", &mut b1).await;
    until_reached(b, "room_once", &mut a1).await;
    until_reached(a, "broadcast", &mut b2).await;
    until_reached(b, "broadcast", &mut a1).await;
    settle(a, "room_once", &mut [&mut a1, &mut a2, &mut b1], "room").await;
    settle(
        a,
        "broadcast",
        &mut [&mut a1, &mut a2, &mut b1, &mut b2],
        "all",
    )
    .await;

    send(a, "broadcast", "everyone").await.expect("broadcast");
    for client in [&mut a1, &mut a2, &mut b1, &mut b2] {
        expect_html(client, "everyone").await;
    }
    send(b, "room_once", "room only").await.expect("room send");
    for client in [&mut a1, &mut a2, &mut b1] {
        expect_html(client, "room only").await;
    }
    // Not the room send: the next frame of the other room is this one.
    send(a, "broadcast", "end").await.expect("broadcast");
    for client in [&mut a1, &mut a2, &mut b1, &mut b2] {
        expect_html(client, "end").await;
    }
    nothing_pending(b, "room_once", &mut [&mut a1, &mut a2, &mut b1], "once").await;
    nothing_pending(
        a,
        "broadcast",
        &mut [&mut a1, &mut a2, &mut b1, &mut b2],
        "all-once",
    )
    .await;
    for client in [a1, a2, b1, b2] {
        client.close().await;
    }
    nodes.shutdown().await;
}

/// Several publishers on every node send to one group at once: every
/// connection gets every frame once, each publisher's in its order,
/// numbered 1 apart, and every connection in the same order.
pub async fn per_group_order(backend: impl Backend) {
    const PUBLISHERS_PER_NODE: usize = 2;
    const FRAMES: usize = 30;
    let nodes = Nodes::start(&backend, plain).await;
    let (a, b) = (nodes.a(), nodes.b());
    let mut clients = vec![
        tracking(a, "order", "").await,
        tracking(b, "order", "").await,
    ];
    until_reached(a, "room_order", &mut clients[1]).await;
    until_reached(b, "room_order", &mut clients[0]).await;
    {
        let (first, second) = clients.split_at_mut(1);
        settle(
            a,
            "room_order",
            &mut [&mut first[0], &mut second[0]],
            "start",
        )
        .await;
    }

    let mut tasks = Vec::new();
    for (n, node) in nodes.servers.iter().enumerate() {
        for p in 0..PUBLISHERS_PER_NODE {
            let broadcaster = node.live().broadcaster();
            tasks.push(tokio::spawn(async move {
                for i in 0..FRAMES {
                    broadcaster
                        .send_to_room("order", html(&format!("n{n}p{p}-{i}")))
                        .await
                        .expect("published");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("the publisher finished");
    }
    let total = nodes.servers.len() * PUBLISHERS_PER_NODE * FRAMES;
    let mut orders = Vec::new();
    for client in &mut clients {
        let mut seen = Vec::with_capacity(total);
        let mut last: HashMap<String, usize> = HashMap::new();
        let mut previous_seq: Option<u64> = None;
        for _ in 0..total {
            let frame = next(client).await;
            let text = frame["html"].as_str().expect("an update").to_owned();
            let (publisher, index) = text.split_once('-').expect("a test frame");
            let index: usize = index.parse().expect("an index");
            let expected = last.get(publisher).map_or(0, |i| i + 1);
            assert_eq!(index, expected, "{publisher}'s frames out of order: {text}");
            last.insert(publisher.to_owned(), index);
            let seq = frame["seq"].as_u64().expect("a numbered frame");
            if let Some(previous) = previous_seq {
                assert_eq!(seq, previous + 1, "a gap or a repeat in the numbering");
            }
            previous_seq = Some(seq);
            seen.push(text);
        }
        orders.push(seen);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "connections saw different orders"
    );
    // Nothing after: the next frame is a marker.
    let (first, second) = clients.split_at_mut(1);
    nothing_pending(a, "room_order", &mut [&mut first[0], &mut second[0]], "end").await;
    for client in clients {
        client.close().await;
    }
    nodes.shutdown().await;
}

/// A client that reconnects (to the other node) with the last sequence it
/// applied gets what it missed, in order, then live frames; a position the
/// log cannot serve is answered with a resync.
pub async fn replay_and_resync(backend: impl Backend) {
    let nodes = Nodes::start(&backend, plain).await;
    let (a, b) = (nodes.a(), nodes.b());
    let mut first = tracking(a, "replay", "").await;
    let mut watcher = tracking(b, "replay", "").await;
    until_reached(a, "room_replay", &mut watcher).await;
    until_reached(b, "room_replay", &mut first).await;
    settle(a, "room_replay", &mut [&mut first, &mut watcher], "start").await;
    let say = |node: &TestServer, text: &str| {
        let broadcaster = node.live().broadcaster();
        let text = text.to_owned();
        async move {
            broadcaster
                .send_to_room("replay", html(&text))
                .await
                .expect("published")
        }
    };
    say(b, "one").await;
    let frame = next(&mut first).await;
    assert_eq!(frame["html"], "one");
    let seen = frame["seq"].as_u64().expect("numbered");
    let epoch = frame["epoch"].as_str().expect("an epoch").to_owned();
    assert!(
        crate::layer::is_valid_epoch(&epoch),
        "a malformed epoch {epoch:?}"
    );
    let connected = a.live().connections();
    first.close().await;
    wait_for("the first client left", || {
        let n = a.live().connections();
        async move { n < connected }
    })
    .await;
    say(a, "two").await;
    say(b, "three").await;
    // The watcher got them live: it stays on node B throughout.
    expect_html(&mut watcher, "one").await;
    expect_html(&mut watcher, "two").await;
    expect_html(&mut watcher, "three").await;

    let mut back = tracking(b, "replay", &format!("room_replay:{seen}:{epoch}")).await;
    say(a, "four").await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let frame = next(&mut back).await;
        assert_eq!(frame["epoch"], epoch.as_str(), "the numbering restarted");
        got.push((
            frame["html"].as_str().unwrap_or("?").to_owned(),
            frame["seq"].as_u64().unwrap_or(0),
        ));
    }
    assert_eq!(
        got,
        [
            ("two".to_owned(), seen + 1),
            ("three".to_owned(), seen + 2),
            ("four".to_owned(), seen + 3)
        ]
    );

    // A position the log never reached: resync.
    let mut lost = tracking(a, "replay", &format!("room_replay:{}", seen + 1000)).await;
    assert_eq!(next(&mut lost).await, json!({"resync": true}));
    // A position in another numbering (the log restarted since): resync,
    // whatever the numbers say.
    let mut stale = tracking(b, "replay", &format!("room_replay:{seen}:stale0epoch")).await;
    assert_eq!(next(&mut stale).await, json!({"resync": true}));
    for client in [watcher, back, lost, stale] {
        client.close().await;
    }
    nodes.shutdown().await;
}

fn user_from_header(scope: &Scope) -> Option<User> {
    scope.header("x-user").map(|name| User::new(name, name))
}

fn with_presence(builder: LiveViewBuilder) -> LiveViewBuilder {
    builder
        .authenticator(user_from_header)
        .on_presence(|_| None)
}

async fn wait_count(node: &TestServer, room: &str, count: usize) {
    let broadcaster = node.live().broadcaster();
    wait_for(&format!("{count} in {room}"), || {
        let broadcaster = broadcaster.clone();
        let room = room.to_owned();
        async move { broadcaster.presence(&room).await.count == count }
    })
    .await;
}

/// Joins and leaves on every node are counted on every node; when a node
/// dies without a word, its members stop counting.
pub async fn presence(backend: impl Backend) {
    let nodes = Nodes::start(&backend, with_presence).await;
    let (a, b) = (nodes.a(), nodes.b());
    let ada = a
        .connect_with("hall", &[("x-user", "Ada")])
        .await
        .expect("connects");
    let bob = b
        .connect_with("hall", &[("x-user", "Bob")])
        .await
        .expect("connects");
    let guest = b.connect("hall").await.expect("connects");
    for node in &nodes.servers {
        wait_count(node, "hall", 3).await;
    }
    let seen = a.live().broadcaster().presence("hall").await;
    let names: Vec<&str> = seen.users.iter().map(|u| u.name.as_str()).collect();
    assert_eq!((names, seen.anonymous), (vec!["Ada", "Bob"], 1));

    bob.close().await;
    for node in &nodes.servers {
        wait_count(node, "hall", 2).await;
    }
    if backend.shared() {
        let mut nodes = nodes;
        let b = nodes.servers.pop().expect("node B");
        b.kill();
        wait_count(&nodes.servers[0], "hall", 1).await;
        drop(guest);
        ada.close().await;
        nodes.shutdown().await;
    } else {
        guest.close().await;
        wait_count(a, "hall", 1).await;
        ada.close().await;
        nodes.shutdown().await;
    }
}

/// While the backend is down, local delivery goes on; once it is back,
/// frames cross nodes again, once and in order, without restarting
/// anything.
pub async fn outage_and_recovery(mut backend: impl Backend) {
    let nodes = Nodes::start(&backend, plain).await;
    let (a, b) = (nodes.a(), nodes.b());
    let mut here = tracking(a, "outage", "").await;
    let mut there = tracking(b, "outage", "").await;
    until_reached(a, "room_outage", &mut there).await;
    settle(a, "room_outage", &mut [&mut here, &mut there], "before").await;

    if !backend.outage().await {
        here.close().await;
        there.close().await;
        nodes.shutdown().await;
        return;
    }
    // The publish may fail; the local connection gets the frame anyway.
    let _ = a
        .live()
        .broadcaster()
        .send_to_room("outage", html("during"))
        .await;
    expect_html(&mut here, "during").await;

    backend.recover().await;
    until_reached(a, "room_outage", &mut there).await;
    until_reached(b, "room_outage", &mut here).await;
    settle(a, "room_outage", &mut [&mut here, &mut there], "after").await;
    for text in ["x", "y", "z"] {
        b.live()
            .broadcaster()
            .send_to_room("outage", html(text))
            .await
            .expect("published after recovery");
    }
    for client in [&mut here, &mut there] {
        for text in ["x", "y", "z"] {
            expect_html(client, text).await;
        }
    }
    nothing_pending(a, "room_outage", &mut [&mut here, &mut there], "end").await;
    here.close().await;
    there.close().await;
    nodes.shutdown().await;
}
