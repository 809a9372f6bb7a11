//! The Redis channel layer against real `redis-server` processes: several
//! app instances sharing one Redis, subscriptions following the rooms, an
//! outage in the middle of a test, authentication, Redis Sentinel, and the
//! shared log and presence across instances.
//!
//! The shared server is 127.0.0.1:6379 (started here when it is not running);
//! every test uses a prefix of its own, so they run in parallel. Tests that
//! kill or configure a server start a private one on a free port.

use std::future::Future;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use liveview::layer::{ChannelLayer, RedisLayer, ReplayConfig};
use liveview::testing::{RedisServer, TestServer, WsClient};

use crate::support::Gate;
use liveview::{LiveView, Scope, Update, User};
use serde_json::{Value, json};

use crate::support::{assert_nothing_pending, next, server};

const SHARED_URL: &str = "redis://127.0.0.1:6379";

// ---------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------

/// A prefix no other test uses.
fn unique_prefix() -> String {
    format!("lvtest:{}:", uuid::Uuid::new_v4().simple())
}

/// Wait until the async `condition` holds, for at most `limit`.
async fn eventually<F, Fut>(what: &str, limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
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

/// Starts the shared Redis once if nothing answers on 127.0.0.1:6379.
fn shared_redis() -> &'static str {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        if ping_blocking(6379, &[]) {
            return;
        }
        let status = Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
            ])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .status()
            .expect("redis-server is installed");
        assert!(status.success(), "redis-server did not start");
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while !ping_blocking(6379, &[]) {
            assert!(
                std::time::Instant::now() < deadline,
                "redis-server on 6379 never answered"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    SHARED_URL
}

/// Whether `redis-cli PING` (with extra options: password, TLS) gets PONG.
fn ping_blocking(port: u16, options: &[String]) -> bool {
    Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(options)
        .arg("ping")
        .stderr(Stdio::null())
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A temporary directory, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("liveview-redis-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&path).expect("a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A `redis-server` child process, killed on drop.
struct RedisProcess {
    port: u16,
    args: Vec<String>,
    child: Option<Child>,
    dir: TempDir,
}

impl RedisProcess {
    /// A server listening for TLS only, with a certificate for 127.0.0.1
    /// issued by a CA of its own (`ca.pem` in its directory).
    #[cfg(feature = "redis-tls")]
    async fn start_tls() -> Self {
        let dir = TempDir::new();
        let openssl = |args: &[&str]| {
            let status = Command::new("openssl")
                .args(args)
                .current_dir(&dir.0)
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .expect("openssl is installed");
            assert!(status.success(), "openssl {args:?} failed");
        };
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-keyout",
            "ca-key.pem",
            "-out",
            "ca.pem",
            "-subj",
            "/CN=test CA",
        ]);
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "key.pem",
            "-out",
            "req.pem",
            "-subj",
            "/CN=127.0.0.1",
        ]);
        std::fs::write(dir.0.join("ext.cnf"), "subjectAltName=IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "req.pem",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca-key.pem",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "ext.cnf",
            "-out",
            "cert.pem",
        ]);
        let port = free_port().to_string();
        let extra = [
            "--port",
            "0",
            "--tls-port",
            &port,
            "--tls-cert-file",
            "cert.pem",
            "--tls-key-file",
            "key.pem",
            "--tls-ca-cert-file",
            "ca.pem",
            "--tls-auth-clients",
            "no",
        ];
        Self::start_on(port.parse().unwrap(), dir, &extra).await
    }

    #[cfg(feature = "redis-tls")]
    async fn start_on(port: u16, dir: TempDir, extra: &[&str]) -> Self {
        let mut args: Vec<String> = vec![
            "--port".into(),
            port.to_string(),
            "--bind".into(),
            "127.0.0.1".into(),
            "--save".into(),
            String::new(),
            "--appendonly".into(),
            "no".into(),
            "--dir".into(),
            dir.0.display().to_string(),
        ];
        args.extend(extra.iter().map(|a| a.to_string()));
        let mut process = Self {
            port,
            args,
            child: None,
            dir,
        };
        process.restart().await;
        process
    }

    /// A Sentinel on a free port monitoring `master_port` as `mymaster`.
    async fn sentinel(master_port: u16) -> Self {
        let dir = TempDir::new();
        let port = free_port();
        let config = dir.0.join("sentinel.conf");
        std::fs::write(
            &config,
            format!(
                "port {port}\nbind 127.0.0.1\ndir {dir}\n\
                 sentinel monitor mymaster 127.0.0.1 {master_port} 1\n\
                 sentinel down-after-milliseconds mymaster 2000\n\
                 sentinel failover-timeout mymaster 10000\n",
                dir = dir.0.display()
            ),
        )
        .expect("the sentinel config is written");
        let mut process = Self {
            port,
            args: vec![config.display().to_string(), "--sentinel".into()],
            child: None,
            dir,
        };
        process.restart().await;
        process
    }

    /// (Re)start the process with its arguments, on the same port, and wait
    /// until it answers.
    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(&self.args)
            .current_dir(&self.dir.0)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let port = self.port;
        let mut options = Vec::new();
        if let Some(i) = self.args.iter().position(|a| a == "--requirepass") {
            options.extend([
                "--no-auth-warning".to_owned(),
                "-a".to_owned(),
                self.args[i + 1].clone(),
            ]);
        }
        if self.args.iter().any(|a| a == "--tls-port") {
            options.extend(["--tls".to_owned(), "--insecure".to_owned()]);
        }
        eventually("the redis-server answers", Duration::from_secs(10), || {
            let options = options.clone();
            async move {
                tokio::task::spawn_blocking(move || ping_blocking(port, &options))
                    .await
                    .unwrap_or(false)
            }
        })
        .await;
    }

    /// Kill the process outright (SIGKILL) and reap it.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

impl Drop for RedisProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A plain connection to a Redis server, to look at what the layer did.
async fn inspector(url: &str) -> ::redis::aio::MultiplexedConnection {
    ::redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the inspector connects")
}

/// Subscribers of `channel` on the server behind `conn`; 0 when it cannot
/// be asked.
async fn numsub(conn: &mut ::redis::aio::MultiplexedConnection, channel: &str) -> i64 {
    let reply: ::redis::RedisResult<Vec<(String, i64)>> = ::redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(conn)
        .await;
    reply
        .ok()
        .and_then(|r| r.first().map(|(_, n)| *n))
        .unwrap_or(0)
}

/// The group channels with subscribers that start with `prefix` (each
/// process's private sync channel, and the group through which it hears
/// back from the HTTP transport's streams, left out).
async fn channels(conn: &mut ::redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut channels: Vec<String> = ::redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap_or_default();
    channels.retain(|c| {
        !c.starts_with(&format!("{prefix}lv-sync:"))
            && !c.starts_with(&format!("{prefix}liveview-node-"))
    });
    channels.sort();
    channels
}

/// Wait until `count` processes are subscribed to each group.
async fn wait_subscribed(url: &str, prefix: &str, groups: &[&str], count: i64) {
    wait_subscribed_on(inspector(url).await, prefix, groups, count).await;
}

async fn wait_subscribed_on(
    conn: ::redis::aio::MultiplexedConnection,
    prefix: &str,
    groups: &[&str],
    count: i64,
) {
    for group in groups {
        let channel = format!("{prefix}{group}");
        eventually(
            &format!("{count} subscribers on {channel}"),
            Duration::from_secs(15),
            || {
                let mut conn = conn.clone();
                let channel = channel.clone();
                async move { numsub(&mut conn, &channel).await == count }
            },
        )
        .await;
    }
}

/// An app instance using `layer`; the layer handle stays with the test.
async fn node(layer: &RedisLayer) -> TestServer {
    server(LiveView::builder().channel_layer(layer.clone())).await
}

/// A layer on `url` with the test's `prefix` and default settings.
fn layer(url: &str, prefix: &str) -> RedisLayer {
    RedisLayer::builder(url).prefix(prefix).build().unwrap()
}

/// Two app instances on `url` sharing a new prefix: (prefix, their
/// layers, the instances).
async fn two_nodes(url: &str) -> (String, [RedisLayer; 2], [TestServer; 2]) {
    let prefix = unique_prefix();
    let layers = [layer(url, &prefix), layer(url, &prefix)];
    let nodes = [node(&layers[0]).await, node(&layers[1]).await];
    (prefix, layers, nodes)
}

/// Broadcast `{"target": "#all", "html": html}` from `node`; the publish
/// must succeed.
async fn broadcast_from(node: &TestServer, html: &str) {
    node.live()
        .broadcaster()
        .broadcast(Update::new("#all").html(html))
        .await
        .unwrap();
}

fn update(html: &str) -> Value {
    json!({"target": "#all", "html": html})
}

/// Each client receives `expected` next, and nothing after it.
async fn each_gets_once(clients: &mut [&mut WsClient], expected: &Value, marker: &str) {
    for client in clients.iter_mut() {
        assert_eq!(&next(client).await, expected);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_nothing_pending(client, &format!("{marker}-{i}")).await;
    }
}

/// A client of `room` on `node` that tracks group sequences: `resume` is
/// what it last applied (`group:seq,...`), empty for a first visit.
async fn resume_client(node: &TestServer, room: &str, resume: &str) -> WsClient {
    let url = format!("{}?resume={resume}", node.ws_url(room));
    WsClient::connect(&url, &[])
        .await
        .expect("the client connects")
}

/// Send `text` to `room` from `node`.
async fn say(node: &TestServer, room: &str, text: &str) {
    node.live()
        .broadcaster()
        .send_to_room(room, Update::new("#log").html(text))
        .await
        .expect("published");
}

/// The next `count` frames of `client`, as (html, seq).
async fn numbered(client: &mut WsClient, count: usize) -> Vec<(String, u64)> {
    let mut frames = Vec::with_capacity(count);
    for _ in 0..count {
        let frame = next(client).await;
        let html = frame["html"].as_str().unwrap_or("?").to_owned();
        let seq = frame["seq"]
            .as_u64()
            .unwrap_or_else(|| panic!("an unnumbered frame: {frame}"));
        frames.push((html, seq));
    }
    frames
}

fn expected(frames: &[(&str, u64)]) -> Vec<(String, u64)> {
    frames.iter().map(|(h, s)| ((*h).to_owned(), *s)).collect()
}

/// Wait until `node` has `count` connections.
async fn wait_connections(node: &TestServer, count: usize) {
    let live = node.live().clone();
    crate::support::wait_until(&format!("{count} connections"), || {
        live.connections() == count
    })
    .await;
}

// ---------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------

#[tokio::test]
async fn two_instances_share_broadcasts_and_rooms_exactly_once() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer_a = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let layer_b = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;

    let mut a_red = node_a.connect("red").await.unwrap();
    let mut a_blue = node_a.connect("blue").await.unwrap();
    let mut b_red = node_b.connect("red").await.unwrap();
    let mut b_blue = node_b.connect("blue").await.unwrap();
    wait_subscribed(url, &prefix, &["broadcast", "room_red", "room_blue"], 2).await;

    // A broadcast through node A: every client of both nodes, once.
    node_a
        .live()
        .broadcaster()
        .broadcast(Update::new("#all").html("from A"))
        .await
        .expect("published");
    each_gets_once(
        &mut [&mut a_red, &mut a_blue, &mut b_red, &mut b_blue],
        &update("from A"),
        "after-broadcast",
    )
    .await;

    // A room send from a handler on node B: the red room on both nodes only.
    b_red
        .call("room_say", json!({"text": "red only"}), json!({}))
        .await
        .unwrap();
    let room_frame = json!({"target": "#room", "html": "red only"});
    assert_eq!(next(&mut b_red).await, room_frame);
    assert_eq!(next(&mut a_red).await, room_frame);
    for (i, client) in [&mut a_red, &mut a_blue, &mut b_red, &mut b_blue]
        .into_iter()
        .enumerate()
    {
        assert_nothing_pending(client, &format!("after-room-{i}")).await;
    }

    // A broadcast from a plain thread (no runtime) crosses nodes too.
    let broadcaster = node_b.live().broadcaster();
    tokio::task::spawn_blocking(move || {
        std::thread::spawn(move || {
            broadcaster.broadcast_blocking(Update::new("#all").html("from a thread"))
        })
        .join()
        .expect("the thread ran")
    })
    .await
    .unwrap()
    .expect("published from a thread");
    each_gets_once(
        &mut [&mut a_red, &mut a_blue, &mut b_red, &mut b_blue],
        &update("from a thread"),
        "after-thread",
    )
    .await;

    assert_eq!(layer_a.published(), 1);
    assert_eq!(layer_b.published(), 2);
    assert_eq!(
        layer_a.received(),
        2,
        "node A got B's room send and B's thread broadcast"
    );
    assert_eq!(layer_b.received(), 1, "node B got A's broadcast");
    for layer in [&layer_a, &layer_b] {
        assert_eq!(layer.publish_failures(), 0);
        assert_eq!(layer.expired(), 0);
        assert_eq!(layer.dropped(), 0);
    }
    assert!(node_a.live().layer_health().await.is_ok());
}

#[tokio::test]
async fn subscriptions_follow_the_local_members() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node = node(&layer).await;
    let mut conn = inspector(url).await;
    let room = format!("{prefix}room_lonely");
    let broadcast = format!("{prefix}broadcast");

    let first = node.connect("lonely").await.unwrap();
    let mut second = node.connect("lonely").await.unwrap();
    wait_subscribed(url, &prefix, &["broadcast", "room_lonely"], 1).await;
    assert_eq!(
        channels(&mut conn, &prefix).await,
        [broadcast.clone(), room.clone()]
    );

    // One member left: still subscribed, once.
    first.close().await;
    crate::support::wait_until("the first client is gone", || {
        node.live().connections() == 1
    })
    .await;
    assert_nothing_pending(&mut second, "still here").await;
    assert_eq!(numsub(&mut conn, &room).await, 1);

    // The last member left: no longer subscribed to anything.
    second.close().await;
    eventually("the process unsubscribed", Duration::from_secs(10), || {
        let mut conn = conn.clone();
        let prefix = prefix.clone();
        async move { channels(&mut conn, &prefix).await.is_empty() }
    })
    .await;

    // Members coming and going at the same time: the room ends subscribed
    // exactly while someone is in it.
    let stay = node.connect("lonely").await.unwrap();
    let churn = (0..20).map(|_| async {
        let client = node.connect("lonely").await.unwrap();
        client.close().await;
    });
    futures_util::future::join_all(churn).await;
    crate::support::wait_until("the churn is over", || node.live().connections() == 1).await;
    wait_subscribed(url, &prefix, &["broadcast", "room_lonely"], 1).await;
    stay.close().await;
    eventually(
        "the process unsubscribed again",
        Duration::from_secs(10),
        || {
            let mut conn = conn.clone();
            let prefix = prefix.clone();
            async move { channels(&mut conn, &prefix).await.is_empty() }
        },
    )
    .await;
}

/// Before the layer's first connection is made, a group's subscription is
/// on its way, not lost: `subscribed` waits for it (so a stream opened in a
/// server's first moments gives out its token only once other processes
/// can forward to it). The connection is held at a gate in front of Redis
/// until the wait has begun.
#[tokio::test]
async fn a_group_joined_before_the_first_connection_is_waited_for() {
    let prefix = unique_prefix();
    let to = shared_redis()
        .trim_start_matches("redis://")
        .trim_end_matches('/');
    let gate = Gate::start(to).await;
    let layer = layer(&format!("redis://{}", gate.addr()), &prefix);
    let node = node(&layer).await;
    let _client = node.connect("early").await.unwrap();
    crate::support::wait_until("the subscriber is at the gate", || gate.held() >= 1).await;
    assert!(!layer.is_connected());

    crate::support::assert_subscribed_waits_for_the_gate(&layer, &gate, "room_early").await;
    wait_subscribed(shared_redis(), &prefix, &["room_early"], 1).await;
}

/// A client resuming in a process's first moments, before the layer's
/// first connection is made, gets what it missed once the connection is
/// made, not a resync at once (which would make its page reload what it
/// had).
#[tokio::test]
async fn a_replay_asked_before_the_first_connection_is_answered_once_connected() {
    let prefix = unique_prefix();
    let url = shared_redis();
    let first = layer(url, &prefix);
    let first_node = node(&first).await;
    say(&first_node, "early_replay", "1").await;
    say(&first_node, "early_replay", "2").await;

    let gate = Gate::start(url.trim_start_matches("redis://").trim_end_matches('/')).await;
    let late = layer(&format!("redis://{}", gate.addr()), &prefix);
    let late_node = node(&late).await;
    // A member in this process, so that the group is subscribed.
    let _member = late_node.connect("early_replay").await.unwrap();
    crate::support::wait_until("the subscriber is at the gate", || gate.held() >= 1).await;
    crate::support::assert_replay_waits_for_the_gate(&late, &gate, "room_early_replay", &[1, 2])
        .await;
}

#[tokio::test]
async fn stale_and_foreign_messages_are_dropped_and_counted() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = RedisLayer::builder(url)
        .prefix(&prefix)
        .expiry(Duration::from_secs(10))
        .build()
        .unwrap();
    let node = node(&layer).await;
    let mut client = node.connect("stale").await.unwrap();
    wait_subscribed(url, &prefix, &["broadcast"], 1).await;
    let mut conn = inspector(url).await;
    let channel = format!("{prefix}broadcast");
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let mut publish = async |payload: String| {
        let _: i64 = ::redis::cmd("PUBLISH")
            .arg(&channel)
            .arg(payload)
            .query_async(&mut conn)
            .await
            .unwrap();
    };

    // Published by another process a minute ago: too old to show.
    publish(format!(
        "lv1 other {}\n{}",
        now_ms - 60_000,
        update("stale")
    ))
    .await;
    // Not a message of the layer at all.
    publish(update("not ours").to_string()).await;
    // Published by another process just now, e.g. with redis-cli.
    publish(format!("lv1 ops {now_ms}\n{}", update("fresh"))).await;

    assert_eq!(next(&mut client).await, update("fresh"));
    assert_nothing_pending(&mut client, "nothing else").await;
    assert_eq!(
        (layer.expired(), layer.dropped(), layer.received()),
        (1, 1, 1)
    );
    // The application's metrics count them too.
    let text = node.live().metrics_text();
    for line in [
        "liveview_layer_expired_total 1\n",
        "liveview_layer_dropped_total 1\n",
        "liveview_layer_received_total 1\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
}

#[tokio::test]
async fn an_outage_keeps_local_delivery_and_recovers_without_restart() {
    let mut redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let (prefix, [layer_a, layer_b], [node_a, node_b]) = two_nodes(&url).await;
    let mut a1 = node_a.connect("outage").await.unwrap();
    let mut a2 = node_a.connect("outage").await.unwrap();
    let mut b1 = node_b.connect("outage").await.unwrap();
    wait_subscribed(&url, &prefix, &["broadcast", "room_outage"], 2).await;

    broadcast_from(&node_a, "before").await;
    each_gets_once(
        &mut [&mut a1, &mut a2, &mut b1],
        &update("before"),
        "before",
    )
    .await;

    // Redis dies.
    redis.kill();
    eventually("both layers noticed", Duration::from_secs(15), || async {
        !layer_a.is_connected() && !layer_b.is_connected()
    })
    .await;
    assert!(node_a.live().layer_health().await.is_err());

    // Local delivery goes on; the publish reports the failure.
    let result = node_a
        .live()
        .broadcaster()
        .broadcast(Update::new("#all").html("during"))
        .await;
    assert!(result.is_err(), "publishing without Redis must fail");
    assert!(layer_a.publish_failures() >= 1);
    each_gets_once(&mut [&mut a1, &mut a2], &update("during"), "during").await;
    // Node B missed it (at-most-once) but its client is still connected.
    assert_nothing_pending(&mut b1, "b still connected").await;
    // A client that comes back meanwhile cannot be replayed: it resyncs.
    let mut back = resume_client(&node_b, "outage", "room_outage:1").await;
    assert_eq!(next(&mut back).await, json!({"resync": true}));
    back.close().await;

    // Redis comes back on the same port, empty: the layers resubscribe.
    redis.restart().await.unwrap();
    wait_subscribed(&url, &prefix, &["broadcast", "room_outage"], 2).await;
    eventually(
        "both layers are healthy",
        Duration::from_secs(15),
        || async {
            node_a.live().layer_health().await.is_ok() && node_b.live().layer_health().await.is_ok()
        },
    )
    .await;

    broadcast_from(&node_a, "after A").await;
    each_gets_once(
        &mut [&mut a1, &mut a2, &mut b1],
        &update("after A"),
        "after-a",
    )
    .await;
    node_b
        .live()
        .broadcaster()
        .send_to_room("outage", Update::new("#all").html("after B"))
        .await
        .unwrap();
    each_gets_once(
        &mut [&mut a1, &mut a2, &mut b1],
        &update("after B"),
        "after-b",
    )
    .await;
    assert_eq!(layer_a.dropped() + layer_b.dropped(), 0);
}

#[tokio::test]
async fn password_and_database_come_from_the_url() {
    let redis = RedisServer::start_with(&["--requirepass", "s3cret"])
        .await
        .unwrap();
    let port = redis.port();
    let url = format!("redis://:s3cret@127.0.0.1:{port}/5");
    let prefix = unique_prefix();
    let layer_a = layer(url.as_str(), &prefix);
    // The same settings given to the builder instead of in the URL.
    let layer_b = RedisLayer::builder(format!("redis://127.0.0.1:{port}"))
        .password("s3cret")
        .db(5)
        .prefix(&prefix)
        .build()
        .unwrap();
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut a = node_a.connect("auth").await.unwrap();
    let mut b = node_b.connect("auth").await.unwrap();
    wait_subscribed(&url, &prefix, &["broadcast", "room_auth"], 2).await;

    broadcast_from(&node_b, "authenticated").await;
    each_gets_once(&mut [&mut a, &mut b], &update("authenticated"), "auth").await;

    // Both publishing connections selected database 5.
    broadcast_from(&node_a, "again").await;
    each_gets_once(&mut [&mut a, &mut b], &update("again"), "again").await;
    let mut conn = inspector(&url).await;
    let clients: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(&mut conn)
        .await
        .unwrap();
    // Broadcasts go through the shared log's script.
    let in_db5 = clients
        .lines()
        .filter(|l| l.contains(" db=5 ") && l.contains("cmd=evalsha"))
        .count();
    assert_eq!(in_db5, 2, "{clients}");

    // A wrong password never connects, and says so.
    let wrong = RedisLayer::builder(format!("redis://:wrong@127.0.0.1:{port}"))
        .prefix(&prefix)
        .build()
        .unwrap();
    let node_wrong = node(&wrong).await;
    let result = node_wrong
        .live()
        .broadcaster()
        .broadcast(Update::new("#all").html("x"))
        .await;
    assert!(result.is_err());
    assert!(node_wrong.live().layer_health().await.is_err());
    assert!(!wrong.is_connected());
}

#[tokio::test]
async fn sentinel_names_the_master() {
    let master = RedisServer::start().await.unwrap();
    let sentinel = RedisProcess::sentinel(master.port()).await;
    let prefix = unique_prefix();
    let make = || {
        RedisLayer::sentinel([format!("127.0.0.1:{}", sentinel.port)], "mymaster")
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    let (layer_a, layer_b) = (make(), make());
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut a = node_a.connect("sentinel").await.unwrap();
    let mut b = node_b.connect("sentinel").await.unwrap();
    wait_subscribed(&master.url(), &prefix, &["broadcast", "room_sentinel"], 2).await;

    broadcast_from(&node_a, "via sentinel").await;
    each_gets_once(&mut [&mut a, &mut b], &update("via sentinel"), "sentinel").await;
    assert!(node_b.live().layer_health().await.is_ok());
}

/// The trap of redis-rs's own reconnection: after a failover the old master
/// is still up (now a replica), so a connection to it never breaks. The
/// layer asks Sentinel again and moves to the new master.
#[tokio::test]
async fn a_sentinel_failover_is_followed() {
    let master = RedisServer::start().await.unwrap();
    let master_port = master.port().to_string();
    let replica = RedisServer::start_with(&["--replicaof", "127.0.0.1", &master_port])
        .await
        .unwrap();
    let sentinel = RedisProcess::sentinel(master.port()).await;
    let prefix = unique_prefix();
    let make = || {
        RedisLayer::sentinel([format!("127.0.0.1:{}", sentinel.port)], "mymaster")
            .prefix(&prefix)
            .build()
            .unwrap()
    };
    let (layer_a, layer_b) = (make(), make());
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut a = node_a.connect("failover").await.unwrap();
    let mut b = node_b.connect("failover").await.unwrap();
    wait_subscribed(&master.url(), &prefix, &["broadcast", "room_failover"], 2).await;
    broadcast_from(&node_a, "before").await;
    each_gets_once(&mut [&mut a, &mut b], &update("before"), "before").await;

    // Promote the replica. Sentinel learns about replicas from the master's
    // INFO, which it reads every few seconds: retry until it accepts.
    let sentinel_conn = inspector(&sentinel.url()).await;
    eventually(
        "Sentinel starts the failover",
        Duration::from_secs(30),
        || {
            let mut conn = sentinel_conn.clone();
            async move {
                let reply: ::redis::RedisResult<String> = ::redis::cmd("SENTINEL")
                    .arg("FAILOVER")
                    .arg("mymaster")
                    .query_async(&mut conn)
                    .await;
                reply.is_ok()
            }
        },
    )
    .await;
    let replica_port = replica.port();
    eventually(
        "Sentinel names the new master",
        Duration::from_secs(30),
        || {
            let mut conn = sentinel_conn.clone();
            async move {
                let reply: ::redis::RedisResult<(String, String)> = ::redis::cmd("SENTINEL")
                    .arg("GET-MASTER-ADDR-BY-NAME")
                    .arg("mymaster")
                    .query_async(&mut conn)
                    .await;
                reply.is_ok_and(|(_, port)| port == replica_port.to_string())
            }
        },
    )
    .await;

    // Both layers move to the new master and carry frames again.
    wait_subscribed(&replica.url(), &prefix, &["broadcast", "room_failover"], 2).await;
    eventually(
        "both layers are healthy",
        Duration::from_secs(15),
        || async {
            node_a.live().layer_health().await.is_ok() && node_b.live().layer_health().await.is_ok()
        },
    )
    .await;
    broadcast_from(&node_b, "after").await;
    each_gets_once(&mut [&mut a, &mut b], &update("after"), "after").await;
    let old = inspector(&master.url()).await;
    let channel = format!("{prefix}broadcast");
    eventually(
        "nothing is left on the old master",
        Duration::from_secs(10),
        || {
            let mut old = old.clone();
            let channel = channel.clone();
            async move { numsub(&mut old, &channel).await == 0 }
        },
    )
    .await;
}

#[cfg(feature = "redis-tls")]
#[tokio::test]
async fn a_rediss_url_connects_over_tls() {
    let redis = RedisProcess::start_tls().await;
    let url = format!("rediss://127.0.0.1:{}", redis.port);
    let ca = std::fs::read(redis.dir.0.join("ca.pem")).unwrap();
    // Turning certificate checks off is not possible.
    let insecure = RedisLayer::from_url(&format!("{url}/#insecure")).unwrap_err();
    assert!(
        insecure.to_string().contains("certificate checks stay on"),
        "{insecure}"
    );
    // Without its CA, the server's certificate is not trusted.
    let untrusted = layer(url.as_str(), &unique_prefix());
    let _untrusted_node = node(&untrusted).await;
    // The trusted layers below connect; this one must not have by then.
    let layer = |prefix: &str| {
        RedisLayer::builder(url.as_str())
            .prefix(prefix)
            .tls_root_certificates(ca.clone())
            .build()
            .unwrap()
    };
    let prefix = unique_prefix();
    let layer_a = layer(&prefix);
    let layer_b = layer(&prefix);
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut a = node_a.connect("tls").await.unwrap();
    let mut b = node_b.connect("tls").await.unwrap();
    let certificates = ::redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(ca.clone()),
    };
    let inspector = ::redis::Client::build_with_tls(url.as_str(), certificates)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .expect("the inspector connects over TLS");
    wait_subscribed_on(inspector, &prefix, &["broadcast", "room_tls"], 2).await;
    assert!(
        !untrusted.is_connected(),
        "a certificate from an unknown CA was accepted"
    );
    assert!(untrusted.health().await.is_err());
    node_a
        .live()
        .broadcaster()
        .send_to_room("tls", Update::new("#all").html("encrypted"))
        .await
        .unwrap();
    each_gets_once(&mut [&mut a, &mut b], &update("encrypted"), "tls").await;
}

// ---------------------------------------------------------------------------
// The shared log
// ---------------------------------------------------------------------------

#[tokio::test]
async fn a_client_resumes_on_either_node_from_the_shared_log() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer_a = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let layer_b = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;

    // A first visit on node A: frames from both nodes, numbered alike.
    let mut first = resume_client(&node_a, "resume", "").await;
    wait_subscribed(url, &prefix, &["room_resume"], 1).await;
    say(&node_a, "resume", "1").await;
    say(&node_b, "resume", "2").await;
    assert_eq!(
        numbered(&mut first, 2).await,
        expected(&[("1", 1), ("2", 2)])
    );
    first.close().await;
    wait_connections(&node_a, 0).await;

    // Missed while away, published on both nodes.
    say(&node_b, "resume", "3").await;
    say(&node_a, "resume", "4").await;
    say(&node_b, "resume", "5").await;

    // Back on the other node: the missed frames in order, then live ones.
    let mut on_b = resume_client(&node_b, "resume", "room_resume:2").await;
    assert_eq!(
        numbered(&mut on_b, 3).await,
        expected(&[("3", 3), ("4", 4), ("5", 5)])
    );
    say(&node_a, "resume", "6").await;
    assert_eq!(numbered(&mut on_b, 1).await, expected(&[("6", 6)]));
    assert_nothing_pending(&mut on_b, "on b").await;
    on_b.close().await;
    wait_connections(&node_b, 0).await;

    // And back on the first node.
    say(&node_a, "resume", "7").await;
    let mut on_a = resume_client(&node_a, "resume", "room_resume:6").await;
    assert_eq!(numbered(&mut on_a, 1).await, expected(&[("7", 7)]));
    say(&node_b, "resume", "8").await;
    assert_eq!(numbered(&mut on_a, 1).await, expected(&[("8", 8)]));
    assert_nothing_pending(&mut on_a, "on a").await;

    // Up to date: nothing to replay.
    let mut current = resume_client(&node_b, "resume", "room_resume:8").await;
    assert_nothing_pending(&mut current, "current").await;

    // The log is a capped stream with explicit ids, and both keys expire.
    let mut conn = inspector(url).await;
    let ids: Vec<(String, Vec<String>)> = ::redis::cmd("XRANGE")
        .arg(format!("{prefix}log:room_resume"))
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await
        .unwrap();
    let ids: Vec<&str> = ids.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(
        ids,
        ["1-0", "2-0", "3-0", "4-0", "5-0", "6-0", "7-0", "8-0"]
    );
    for key in ["seq", "log"] {
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(format!("{prefix}{key}:room_resume"))
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 0, "{key} key without expiry: {ttl}");
    }
}

#[tokio::test]
async fn a_gap_beyond_the_redis_log_asks_the_page_to_resync() {
    let url = shared_redis();
    let prefix = unique_prefix();
    // The log keeps 2 frames of each group: the application's replay
    // setting is the layer's too.
    let node = |layer: RedisLayer| {
        server(
            LiveView::builder()
                .channel_layer(layer)
                .replay(Some(ReplayConfig::default().with_frames(2))),
        )
    };
    let node_a = node(layer(url, &prefix)).await;
    let node_b = node(layer(url, &prefix)).await;
    for text in ["1", "2", "3", "4", "5"] {
        say(&node_b, "gap", text).await;
    }

    // 2 to 5 missed, the log keeps 2: the page must reload.
    let mut far = resume_client(&node_a, "gap", "room_gap:1").await;
    assert_eq!(next(&mut far).await, json!({"resync": true}));
    // A resync can also come from a subscriber still connecting (the log
    // cannot be read yet): frame 6 must be published once node A follows
    // the group.
    wait_subscribed(url, &prefix, &["room_gap"], 1).await;
    say(&node_b, "gap", "6").await;
    assert_eq!(numbered(&mut far, 1).await, expected(&[("6", 6)]));

    // Within the log: replayed.
    let mut near = resume_client(&node_a, "gap", "room_gap:4").await;
    assert_eq!(
        numbered(&mut near, 2).await,
        expected(&[("5", 5), ("6", 6)])
    );

    // Numbered by a log Redis no longer has.
    let mut from_before = resume_client(&node_b, "gap", "room_gap:99").await;
    assert_eq!(next(&mut from_before).await, json!({"resync": true}));

    // Gone from Redis altogether: the numbering starts again, and the old
    // numbers are refused.
    let mut conn = inspector(url).await;
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{prefix}seq:room_other"))
        .arg(format!("{prefix}log:room_other"))
        .query_async(&mut conn)
        .await
        .unwrap();
    let mut lost = resume_client(&node_a, "other", "room_other:3").await;
    assert_eq!(next(&mut lost).await, json!({"resync": true}));
    for client in [&mut far, &mut near, &mut from_before, &mut lost] {
        assert_nothing_pending(client, "nothing more").await;
    }
}

/// A counter lost while its log was not: the numbering goes on after the
/// log instead of reusing numbers clients have seen.
#[tokio::test]
async fn numbering_continues_after_the_log_when_the_counter_is_lost() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node = node(&layer).await;
    let mut client = resume_client(&node, "lost", "").await;
    wait_subscribed(url, &prefix, &["room_lost"], 1).await;
    say(&node, "lost", "1").await;
    say(&node, "lost", "2").await;
    assert_eq!(
        numbered(&mut client, 2).await,
        expected(&[("1", 1), ("2", 2)])
    );
    let mut conn = inspector(url).await;
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{prefix}seq:room_lost"))
        .query_async(&mut conn)
        .await
        .unwrap();
    say(&node, "lost", "3").await;
    assert_eq!(numbered(&mut client, 1).await, expected(&[("3", 3)]));
}

/// Two nodes publishing to one group at once, from several tasks each:
/// every client, on either node, gets every frame once, in sequence order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn numbering_holds_when_both_nodes_publish_to_one_group() {
    const PER_TASK: usize = 25;
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer_a = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let layer_b = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node_a = Arc::new(node(&layer_a).await);
    let node_b = Arc::new(node(&layer_b).await);
    let mut clients = Vec::new();
    for node in [&node_a, &node_b, &node_a, &node_b] {
        clients.push(resume_client(node, "busy", "").await);
    }
    wait_subscribed(url, &prefix, &["room_busy"], 2).await;

    let mut tasks = Vec::new();
    for (i, node) in [&node_a, &node_b, &node_a, &node_b].into_iter().enumerate() {
        let node = node.clone();
        tasks.push(tokio::spawn(async move {
            for n in 0..PER_TASK {
                say(&node, "busy", &format!("{i}-{n}")).await;
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let total = 4 * PER_TASK as u64;
    for (i, client) in clients.iter_mut().enumerate() {
        let seqs: Vec<u64> = numbered(client, 4 * PER_TASK)
            .await
            .into_iter()
            .map(|(_, seq)| seq)
            .collect();
        assert_eq!(seqs, (1..=total).collect::<Vec<_>>(), "client {i}");
        assert_nothing_pending(client, &format!("client {i}")).await;
    }
}

/// A client hopping between nodes while frames keep flowing: what it is
/// sent, over all its connections, is every frame once, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn resuming_while_frames_flow_repeats_and_loses_nothing() {
    const FRAMES: u64 = 120;
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer_a = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let layer_b = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node_a = Arc::new(node(&layer_a).await);
    let node_b = Arc::new(node(&layer_b).await);
    let mut client = resume_client(&node_a, "flow", "").await;
    wait_subscribed(url, &prefix, &["room_flow"], 1).await;

    let publisher = {
        let (node_a, node_b) = (node_a.clone(), node_b.clone());
        tokio::spawn(async move {
            for n in 1..=FRAMES {
                let node = if n % 3 == 0 { &node_a } else { &node_b };
                say(node, "flow", &n.to_string()).await;
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        })
    };
    let mut seen = Vec::new();
    let mut hops = 0;
    while seen.last().copied() != Some(FRAMES) {
        let (_, seq) = numbered(&mut client, 1).await.remove(0);
        seen.push(seq);
        if seq % 17 == 0 && seq < FRAMES {
            // Leave, and come back on the other node.
            client.close().await;
            hops += 1;
            let node = if hops % 2 == 1 { &node_b } else { &node_a };
            client = resume_client(node, "flow", &format!("room_flow:{seq}")).await;
        }
    }
    publisher.await.unwrap();
    assert_eq!(seen, (1..=FRAMES).collect::<Vec<_>>());
    assert!(hops >= 5);
    assert_nothing_pending(&mut client, "done").await;
}

// ---------------------------------------------------------------------------
// Presence
// ---------------------------------------------------------------------------

fn user_from_header(scope: &Scope) -> Option<User> {
    scope.header("x-user").map(|name| User::new(name, name))
}

fn watching(presence: &liveview::Presence) -> Option<Update> {
    Some(Update::new("#viewers").html(format!("{} watching", presence.count)))
}

async fn presence_node(layer: &RedisLayer) -> TestServer {
    server(
        LiveView::builder()
            .channel_layer(layer.clone())
            .authenticator(user_from_header)
            .on_presence(watching),
    )
    .await
}

#[tokio::test]
async fn presence_is_counted_across_nodes() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer_a = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let layer_b = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let node_a = presence_node(&layer_a).await;
    let node_b = presence_node(&layer_b).await;

    let mut ada = node_a
        .connect_with("hall", &[("x-user", "Ada")])
        .await
        .unwrap();
    assert_eq!(next(&mut ada).await["html"], "1 watching");
    wait_subscribed(url, &prefix, &["room_hall"], 1).await;
    let mut bob = node_b
        .connect_with("hall", &[("x-user", "Bob")])
        .await
        .unwrap();
    assert_eq!(next(&mut bob).await["html"], "2 watching");
    assert_eq!(next(&mut ada).await["html"], "2 watching");
    let mut guest = node_b.connect("hall").await.unwrap();
    assert_eq!(next(&mut guest).await["html"], "3 watching");
    assert_eq!(next(&mut ada).await["html"], "3 watching");
    assert_eq!(next(&mut bob).await["html"], "3 watching");

    // A handler on either node sees everyone.
    ada.call("who_is_here", json!({}), json!({})).await.unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({"count": 3, "anonymous": 1, "users": ["Ada", "Bob"]})
    );

    // A tab closes on node B: both nodes hear of it.
    bob.close().await;
    assert_eq!(next(&mut ada).await["html"], "2 watching");
    assert_eq!(next(&mut guest).await["html"], "2 watching");
    ada.call("who_is_here", json!({}), json!({})).await.unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({"count": 2, "anonymous": 1, "users": ["Ada"]})
    );

    // Node B dies without a word; once its heartbeat is gone, its
    // connections no longer count, and its entries are removed.
    node_b.kill();
    let mut conn = inspector(url).await;
    let _: i64 = ::redis::cmd("DEL")
        .arg(format!("{prefix}node:{}", layer_b.node_id()))
        .query_async(&mut conn)
        .await
        .unwrap();
    ada.call("who_is_here", json!({}), json!({})).await.unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({"count": 1, "anonymous": 0, "users": ["Ada"]})
    );
    let left: i64 = ::redis::cmd("HLEN")
        .arg(format!("{prefix}presence:hall"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(left, 1);
}

#[tokio::test]
async fn a_graceful_shutdown_removes_the_nodes_presence() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = RedisLayer::builder(url).prefix(&prefix).build().unwrap();
    let live = LiveView::builder()
        .channel_layer(layer.clone())
        .on_presence(|_| None)
        .build()
        .unwrap();
    layer
        .presence_join("hall", 1, Some(&User::new("1", "Ada")))
        .await
        .unwrap();
    layer.presence_join("hall", 2, None).await.unwrap();
    layer.presence_join("porch", 3, None).await.unwrap();
    let members = layer.presence("hall").await.unwrap().unwrap();
    assert_eq!(members.len(), 2);
    assert!(members.contains(&Some(User::new("1", "Ada"))));
    assert!(members.contains(&None));

    let conn = inspector(url).await;
    let keys = move || {
        let mut conn = conn.clone();
        let pattern = format!("{prefix}*");
        async move {
            let mut keys: Vec<String> = ::redis::cmd("KEYS")
                .arg(pattern)
                .query_async(&mut conn)
                .await
                .unwrap();
            keys.sort();
            keys
        }
    };
    assert_eq!(keys().await.len(), 3, "two rooms and the heartbeat");
    live.shutdown().await;
    eventually(
        "the entries are removed",
        Duration::from_secs(10),
        || async { keys().await.is_empty() },
    )
    .await;
}

#[tokio::test]
async fn presence_is_written_again_after_redis_lost_it() {
    let mut redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let prefix = unique_prefix();
    let layer_a = layer(url.as_str(), &prefix);
    let layer_b = layer(url.as_str(), &prefix);
    let node_a = presence_node(&layer_a).await;
    let node_b = presence_node(&layer_b).await;
    let mut ada = node_a
        .connect_with("hall", &[("x-user", "Ada")])
        .await
        .unwrap();
    assert_eq!(next(&mut ada).await["html"], "1 watching");
    let mut bob = node_b
        .connect_with("hall", &[("x-user", "Bob")])
        .await
        .unwrap();
    assert_eq!(next(&mut bob).await["html"], "2 watching");
    assert_eq!(layer_a.presence("hall").await.unwrap().unwrap().len(), 2);

    // Redis dies; Bob leaves meanwhile; Redis comes back empty.
    redis.kill();
    eventually("both layers noticed", Duration::from_secs(15), || async {
        !layer_a.is_connected() && !layer_b.is_connected()
    })
    .await;
    bob.close().await;
    wait_connections(&node_b, 0).await;
    redis.restart().await.unwrap();

    // The heartbeats write what each node knows: Ada only.
    eventually(
        "presence is written again",
        Duration::from_secs(20),
        || async {
            matches!(
                layer_b.presence("hall").await,
                Ok(Some(members)) if members == [Some(User::new("Ada", "Ada"))]
            )
        },
    )
    .await;
}

// ---------------------------------------------------------------------------
// Blocking sends
// ---------------------------------------------------------------------------

/// A `*_blocking` send called from async code (a sync helper called by a
/// handler) on a multi-threaded runtime waits for Redis instead of
/// panicking with "a runtime within a runtime".
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocking_sends_from_async_code_reach_redis() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = layer(url, &prefix);
    let node = node(&layer).await;
    let mut client = node.connect("blocking").await.unwrap();
    wait_subscribed(url, &prefix, &["broadcast", "room_blocking"], 1).await;
    let broadcaster = node.live().broadcaster();
    broadcaster
        .broadcast_blocking(Update::new("#all").html("from a sync call"))
        .expect("published");
    assert_eq!(next(&mut client).await, update("from a sync call"));
    broadcaster
        .send_to_room_blocking("blocking", Update::new("#all").html("to the room"))
        .expect("published");
    assert_eq!(next(&mut client).await, update("to the room"));
    assert_eq!(layer.published(), 2);
}

/// On a current-thread runtime the thread cannot wait for its own I/O: the
/// send fails with an error instead of a panic or a deadlock.
#[tokio::test(flavor = "current_thread")]
async fn blocking_sends_on_a_current_thread_runtime_fail_cleanly() {
    let url = shared_redis();
    let layer = layer(url, &unique_prefix());
    let node = node(&layer).await;
    let err = node
        .live()
        .broadcaster()
        .broadcast_blocking(Update::new("#all").html("x"))
        .unwrap_err();
    let cause = std::error::Error::source(&err).map(ToString::to_string);
    assert!(
        cause
            .as_deref()
            .is_some_and(|c| c.contains("current-thread")),
        "{cause:?}"
    );
}

// ---------------------------------------------------------------------------
// Replay larger than the send queue
// ---------------------------------------------------------------------------

/// A client that missed far more frames than its send queue holds (but no
/// more than the log keeps) gets every one of them, in order, then the live
/// ones, and stays connected.
#[tokio::test]
async fn a_replay_larger_than_the_send_queue_arrives_whole() {
    const MISSED: u64 = 120;
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = layer(url, &prefix);
    let node = server(
        LiveView::builder()
            .channel_layer(layer.clone())
            .replay(Some(ReplayConfig::default().with_frames(200)))
            .queue_capacity(8),
    )
    .await;
    let mut first = resume_client(&node, "big", "").await;
    wait_subscribed(url, &prefix, &["room_big"], 1).await;
    say(&node, "big", "1").await;
    assert_eq!(numbered(&mut first, 1).await, expected(&[("1", 1)]));
    first.close().await;
    wait_connections(&node, 0).await;
    for n in 2..=MISSED + 1 {
        say(&node, "big", &n.to_string()).await;
    }

    let mut back = resume_client(&node, "big", "room_big:1").await;
    let seqs: Vec<u64> = numbered(&mut back, MISSED as usize)
        .await
        .into_iter()
        .map(|(html, seq)| {
            assert_eq!(html, seq.to_string());
            seq
        })
        .collect();
    assert_eq!(seqs, (2..=MISSED + 1).collect::<Vec<_>>());
    say(&node, "big", "live").await;
    assert_eq!(
        numbered(&mut back, 1).await,
        expected(&[("live", MISSED + 2)])
    );
    assert_nothing_pending(&mut back, "after the replay").await;
    assert_eq!(node.live().connections(), 1, "the client stayed connected");
}

// ---------------------------------------------------------------------------
// Epochs: numbering that starts again
// ---------------------------------------------------------------------------

/// The `epoch` of a numbered frame.
fn epoch_of(frame: &Value) -> String {
    let epoch = frame["epoch"]
        .as_str()
        .unwrap_or_else(|| panic!("a frame without epoch: {frame}"))
        .to_owned();
    assert!(liveview::layer::is_valid_epoch(&epoch), "{epoch:?}");
    epoch
}

/// The next frame, as (html, seq, epoch).
async fn numbered_in_epoch(client: &mut WsClient) -> (String, u64, String) {
    let frame = next(client).await;
    let html = frame["html"].as_str().unwrap_or("?").to_owned();
    let seq = frame["seq"]
        .as_u64()
        .unwrap_or_else(|| panic!("an unnumbered frame: {frame}"));
    (html, seq, epoch_of(&frame))
}

/// The shared log's scripts run with `EVALSHA`: a server that forgot them
/// (restarted, failed over, `SCRIPT FLUSH`) is given them again, for
/// publishing and for reading the log back.
#[tokio::test]
async fn the_log_scripts_are_loaded_again_when_the_server_forgot_them() {
    let redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let prefix = unique_prefix();
    let layer = layer(&url, &prefix);
    let node = node(&layer).await;
    let mut conn = inspector(&url).await;
    let mut forget = async || {
        let _: String = ::redis::cmd("SCRIPT")
            .arg("FLUSH")
            .query_async(&mut conn)
            .await
            .unwrap();
    };
    say(&node, "noscript", "1").await;
    forget().await;
    say(&node, "noscript", "2").await;
    forget().await;
    let mut client = resume_client(&node, "noscript", "room_noscript:0").await;
    assert_eq!(
        numbered(&mut client, 2).await,
        expected(&[("1", 1), ("2", 2)])
    );
}

/// A Redis restarted empty, or flushed, starts every group's numbering
/// again: the new frames carry a new epoch (open pages apply them instead
/// of dropping them as old numbers), and a client resuming in the old epoch
/// is asked to resync.
#[tokio::test]
async fn a_numbering_that_starts_again_changes_the_epoch() {
    let mut redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let prefix = unique_prefix();
    let (layer_a, layer_b) = (layer(&url, &prefix), layer(&url, &prefix));
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut open = resume_client(&node_a, "ep", "").await;
    wait_subscribed(&url, &prefix, &["room_ep"], 1).await;
    say(&node_b, "ep", "1").await;
    say(&node_a, "ep", "2").await;
    let (_, _, first) = numbered_in_epoch(&mut open).await;
    assert_eq!(
        numbered_in_epoch(&mut open).await,
        ("2".to_owned(), 2, first.clone())
    );

    // Redis restarts empty: the numbering starts again, in a new epoch.
    redis.kill();
    eventually("the layers noticed", Duration::from_secs(15), || async {
        !layer_a.is_connected() && !layer_b.is_connected()
    })
    .await;
    redis.restart().await.unwrap();
    wait_subscribed(&url, &prefix, &["room_ep"], 1).await;
    eventually(
        "both layers are healthy",
        Duration::from_secs(15),
        || async {
            node_a.live().layer_health().await.is_ok() && node_b.live().layer_health().await.is_ok()
        },
    )
    .await;
    say(&node_b, "ep", "after restart").await;
    let (html, seq, second) = numbered_in_epoch(&mut open).await;
    assert_eq!((html.as_str(), seq), ("after restart", 1));
    assert_ne!(second, first, "a restarted numbering keeps its epoch");

    // Resuming in the old epoch: resync, whatever the number; in the new
    // one: replayed as usual.
    let mut old = resume_client(&node_b, "ep", &format!("room_ep:1:{first}")).await;
    assert_eq!(next(&mut old).await, json!({"resync": true}));
    let mut current = resume_client(&node_b, "ep", &format!("room_ep:0:{second}")).await;
    assert_eq!(
        numbered_in_epoch(&mut current).await,
        ("after restart".to_owned(), 1, second.clone())
    );
    // Seq 0 without an epoch: from the start of the numbering, which the
    // log still holds.
    let mut from_start = resume_client(&node_a, "ep", "room_ep:0").await;
    assert_eq!(
        numbered_in_epoch(&mut from_start).await,
        ("after restart".to_owned(), 1, second.clone())
    );

    // A flush does the same.
    let mut conn = inspector(&url).await;
    let () = ::redis::cmd("FLUSHALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    say(&node_a, "ep", "after flush").await;
    let (html, seq, third) = numbered_in_epoch(&mut open).await;
    assert_eq!((html.as_str(), seq), ("after flush", 1));
    assert!(third != second && third != first);
    for (i, client) in [&mut old, &mut current, &mut from_start]
        .into_iter()
        .enumerate()
    {
        let frame = next(client).await;
        assert_eq!(
            (frame["html"].as_str(), frame["seq"].as_u64()),
            (Some("after flush"), Some(1)),
            "client {i}: {frame}"
        );
        assert_eq!(epoch_of(&frame), third);
    }
    for client in [&mut open, &mut old, &mut current, &mut from_start] {
        assert_nothing_pending(client, "after the flush").await;
    }
}

/// While a process has members in a group, it keeps the group's numbering
/// keys from expiring (a quiet group would otherwise start again).
#[tokio::test]
async fn followed_groups_keep_their_numbering_keys() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = layer(url, &prefix);
    let node = node(&layer).await;
    let _member = node.connect("kept").await.unwrap();
    wait_subscribed(url, &prefix, &["room_kept"], 1).await;
    say(&node, "kept", "1").await;
    let keys = ["seq", "log", "epoch"].map(|kind| format!("{prefix}{kind}:room_kept"));
    let mut conn = inspector(url).await;
    for key in &keys {
        // About to expire, as after a long quiet period.
        let set: i64 = ::redis::cmd("PEXPIRE")
            .arg(key)
            .arg(5_000)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert_eq!(set, 1, "{key} exists");
    }
    layer.refresh_keys_now().await.unwrap();
    for key in &keys {
        let ttl: i64 = ::redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!(ttl > 30_000, "{key} was not refreshed: {ttl} ms left");
    }
}

// ---------------------------------------------------------------------------
// The page's position: nothing lost between render and connect
// ---------------------------------------------------------------------------

/// The `data-liveview-resume` attribute of a rendered page.
fn resume_attribute(html: &str) -> String {
    let start = html
        .find("data-liveview-resume=\"")
        .unwrap_or_else(|| panic!("no position in {html}"))
        + "data-liveview-resume=\"".len();
    let end = html[start..].find('"').unwrap() + start;
    html[start..end].to_owned()
}

/// A page rendered with its position, a frame published before its socket
/// connects, then the connection (resuming from the position, as the client
/// does): the frame is delivered.
#[tokio::test]
async fn a_frame_published_between_render_and_connect_is_delivered() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let layer = layer(url, &prefix);
    let node = node(&layer).await;
    // The room has history: the position is not the start.
    let _other = node.connect("page").await.unwrap();
    wait_subscribed(url, &prefix, &["room_page"], 1).await;
    say(&node, "page", "before render").await;

    let mut env = minijinja::Environment::new();
    liveview::template::register(&mut env);
    env.add_template("page.html", "<body>{{ liveview_script(position) }}</body>")
        .unwrap();
    let position = node.live().position("page").await;
    let html = env
        .get_template("page.html")
        .unwrap()
        .render(minijinja::context! { position })
        .unwrap();
    let resume = resume_attribute(&html);
    assert!(resume.starts_with("room_page:1:"), "{resume}");

    say(&node, "page", "between").await;
    node.live()
        .broadcaster()
        .broadcast(Update::new("#log").html("broadcast between"))
        .await
        .unwrap();

    let mut page = resume_client(&node, "page", &resume).await;
    let (html, seq, _) = numbered_in_epoch(&mut page).await;
    assert_eq!((html.as_str(), seq), ("between", 2));
    let (html, seq, _) = numbered_in_epoch(&mut page).await;
    assert_eq!((html.as_str(), seq), ("broadcast between", 1));
    assert_nothing_pending(&mut page, "after the gap").await;
}

// ---------------------------------------------------------------------------
// Order: one delivery path, per group
// ---------------------------------------------------------------------------

/// With the subscriber lagging for as long as it takes, the frames of a
/// group still reach a connection in the group's order, this process's own
/// included: none overtakes an earlier one from another process.
#[tokio::test]
async fn frames_keep_their_order_while_the_subscriber_lags() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let (layer_a, layer_b) = (layer(url, &prefix), layer(url, &prefix));
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut client = resume_client(&node_a, "lag", "").await;
    let mut plain = node_a.connect("lag").await.unwrap();
    wait_subscribed(url, &prefix, &["room_lag"], 1).await;

    layer_a.inject_subscriber_lag(true);
    say(&node_b, "lag", "1 from B").await;
    say(&node_a, "lag", "2 from A").await;
    say(&node_b, "lag", "3 from B").await;
    // Nothing was delivered around the lagging subscriber.
    assert_nothing_pending(&mut client, "lagging").await;
    assert_nothing_pending(&mut plain, "lagging").await;
    layer_a.inject_subscriber_lag(false);

    assert_eq!(
        numbered(&mut client, 3).await,
        expected(&[("1 from B", 1), ("2 from A", 2), ("3 from B", 3)])
    );
    for html in ["1 from B", "2 from A", "3 from B"] {
        assert_eq!(next(&mut plain).await["html"], html);
    }
    assert_nothing_pending(&mut client, "done").await;
}

/// A group whose delivery is stalled does not hold up another group.
#[tokio::test]
async fn one_groups_stall_does_not_delay_another() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let (layer_a, layer_b) = (layer(url, &prefix), layer(url, &prefix));
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut slow = resume_client(&node_a, "slow", "").await;
    let mut fast = resume_client(&node_a, "fast", "").await;
    wait_subscribed(url, &prefix, &["room_slow", "room_fast"], 1).await;

    layer_a.inject_group_stall("room_slow", true);
    say(&node_b, "slow", "s1").await;
    say(&node_b, "fast", "f1").await;
    say(&node_a, "fast", "f2").await;
    assert_eq!(
        numbered(&mut fast, 2).await,
        expected(&[("f1", 1), ("f2", 2)])
    );
    assert_nothing_pending(&mut slow, "stalled").await;
    layer_a.inject_group_stall("room_slow", false);
    assert_eq!(numbered(&mut slow, 1).await, expected(&[("s1", 1)]));
}

/// Messages lost between Redis and delivery (a full queue, a reconnection)
/// are read back from the log when the next frame shows the gap.
#[tokio::test]
async fn frames_the_subscription_lost_are_read_back_from_the_log() {
    let url = shared_redis();
    let prefix = unique_prefix();
    let (layer_a, layer_b) = (layer(url, &prefix), layer(url, &prefix));
    let node_a = node(&layer_a).await;
    let node_b = node(&layer_b).await;
    let mut client = resume_client(&node_a, "lossy", "").await;
    let mut plain = node_a.connect("lossy").await.unwrap();
    wait_subscribed(url, &prefix, &["room_lossy"], 1).await;
    say(&node_b, "lossy", "1").await;
    assert_eq!(numbered(&mut client, 1).await, expected(&[("1", 1)]));
    assert_eq!(next(&mut plain).await["html"], "1");

    layer_a.inject_message_loss("room_lossy", 2);
    for text in ["2", "3", "4"] {
        say(&node_b, "lossy", text).await;
    }
    assert_eq!(
        numbered(&mut client, 3).await,
        expected(&[("2", 2), ("3", 3), ("4", 4)])
    );
    for html in ["2", "3", "4"] {
        assert_eq!(next(&mut plain).await["html"], html);
    }
    assert_eq!(layer_a.recovered(), 2);
    assert_nothing_pending(&mut client, "done").await;
}

// ---------------------------------------------------------------------------
// The application owns its tasks
// ---------------------------------------------------------------------------

/// Connections a Redis server has, besides `conn`'s own.
async fn other_clients(conn: &mut ::redis::aio::MultiplexedConnection) -> usize {
    let list: String = ::redis::cmd("CLIENT")
        .arg("LIST")
        .query_async(conn)
        .await
        .unwrap();
    list.lines().count().saturating_sub(1)
}

/// Dropping the last handle of the application stops the Redis layer's
/// tasks and closes its connections, even while a handle of the layer
/// itself is kept (to read its counters).
#[tokio::test]
async fn dropping_the_app_stops_its_redis_tasks() {
    let redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let prefix = unique_prefix();
    let layer = layer(&url, &prefix);
    let live = LiveView::builder()
        .channel_layer(layer.clone())
        .build()
        .unwrap();
    let app = liveview::testing::TestApp::new(live.clone());
    let mut member = app.connect("owned");
    wait_subscribed(&url, &prefix, &["room_owned"], 1).await;
    live.broadcaster()
        .send_to_room("owned", Update::new("#all").html("x"))
        .await
        .unwrap();
    let mut conn = inspector(&url).await;
    assert!(
        other_clients(&mut conn).await >= 2,
        "subscriber and publisher"
    );
    assert_eq!(member.received().len(), 1);

    drop((member, app, live));
    eventually(
        "the layer's connections are closed",
        Duration::from_secs(10),
        || {
            let mut conn = conn.clone();
            async move { other_clients(&mut conn).await == 0 }
        },
    )
    .await;
    assert!(!layer.is_connected());
}

/// Joins and leaves are written through the layer and announced off the
/// connection's path, once per room for all the changes queued meanwhile.
#[tokio::test]
async fn presence_changes_are_coalesced_per_room_off_the_connect_path() {
    let url = shared_redis();
    let layer = RedisLayer::builder(url)
        .prefix(unique_prefix())
        .build()
        .unwrap();
    let node = presence_node(&layer).await;
    node.live().hold_presence_updates(true);
    let mut clients = Vec::new();
    for _ in 0..5 {
        clients.push(node.connect("crowd").await.unwrap());
    }
    // Connected, and answering calls, while presence waits.
    for client in &mut clients {
        assert_nothing_pending(client, "presence held").await;
    }
    node.live().hold_presence_updates(false);
    // One announcement for the five joins.
    for client in &mut clients {
        assert_eq!(next(client).await["html"], "5 watching");
    }
    for client in &mut clients {
        assert_nothing_pending(client, "announced once").await;
    }
    node.live().hold_presence_updates(true);
    for client in clients.drain(3..) {
        client.close().await;
    }
    wait_connections(&node, 3).await;
    node.live().hold_presence_updates(false);
    for client in &mut clients {
        assert_eq!(next(client).await["html"], "3 watching");
        assert_nothing_pending(client, "left once").await;
    }
}

/// Frames published while a process's subscriber was disconnected reach
/// its pages once it has subscribed again, even when no frame follows
/// them to reveal the gap.
#[tokio::test]
async fn frames_missed_while_resubscribing_arrive_without_a_later_frame() {
    let redis = RedisServer::start().await.unwrap();
    let url = redis.url();
    let (prefix, [layer_a, _], [node_a, node_b]) = two_nodes(&url).await;
    let mut client = resume_client(&node_a, "gap", "").await;
    wait_subscribed(&url, &prefix, &["room_gap"], 1).await;
    say(&node_b, "gap", "1").await;
    assert_eq!(numbered(&mut client, 1).await, expected(&[("1", 1)]));

    // The subscribers are cut off, and cannot come back while the server
    // asks for a password (the connections already open stay signed in).
    let mut admin = inspector(&url).await;
    require_password(&mut admin, "closed-for-the-test").await;
    let _: i64 = ::redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut admin)
        .await
        .unwrap();
    assert_eq!(numsub(&mut admin, &format!("{prefix}room_gap")).await, 0);

    // Published to nobody: only the log has them. Nothing follows.
    say(&node_b, "gap", "2").await;
    say(&node_b, "gap", "3").await;
    require_password(&mut admin, "").await;

    // Once subscribed again, the page gets them, once and in order.
    assert_eq!(
        numbered(&mut client, 2).await,
        expected(&[("2", 2), ("3", 3)])
    );
    assert_nothing_pending(&mut client, "after the catch-up").await;
    assert!(layer_a.recovered() >= 2);
}

/// Make the server ask new connections for `password` (none when empty).
async fn require_password(conn: &mut ::redis::aio::MultiplexedConnection, password: &str) {
    let () = ::redis::cmd("CONFIG")
        .arg("SET")
        .arg("requirepass")
        .arg(password)
        .query_async(conn)
        .await
        .unwrap();
}

/// A client that resumes on a process whose last member of the group just
/// left, while the process is about to unsubscribe from it, misses no
/// frame published between that unsubscribe and the next subscription
/// (see the helper). A private server: the test counts the group's
/// subscribers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_while_its_group_is_unsubscribed_misses_nothing() {
    let redis = RedisServer::start().await.expect("redis starts");
    let prefix = unique_prefix();
    let layer_a = layer(&redis.url(), &prefix);
    let layer_b = layer(&redis.url(), &prefix);
    let a = node(&layer_a).await;
    let b = node(&layer_b).await;
    let conn = inspector(&redis.url()).await;
    let channel = format!("{prefix}room_leaving");
    crate::support::assert_a_client_resuming_while_its_group_is_unsubscribed_misses_nothing(
        &layer_a,
        &a,
        &b,
        "leaving",
        || {
            let mut conn = conn.clone();
            let channel = channel.clone();
            async move { u64::try_from(numsub(&mut conn, &channel).await).unwrap_or(0) }
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
