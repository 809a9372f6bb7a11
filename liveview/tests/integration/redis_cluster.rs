//! The Redis Cluster layer across a failover: a private cluster of three
//! primaries with a replica each, two server processes, publishers on both
//! while the primary of the room's slot is killed. The replica takes over,
//! the sharded subscriptions follow it, and delivery goes on: exactly once
//! and in one order, in a new epoch (the promoted replica may have missed
//! the last frames, so its numbering cannot continue the old one).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use liveview::layer::RedisClusterLayer;
use liveview::testing::{Closed, RedisCluster, TestServer, WsClient};
use liveview::{LiveView, Update};
use serde_json::{Value, json};
use tokio::sync::Notify;

/// Longest wait for anything that must happen.
const LIMIT: Duration = Duration::from_secs(40);
const ROOM: &str = "failover";
const GROUP: &str = "room_failover";
/// Frames each publisher starts once the cluster and the layer recovered.
const AFTER: usize = 40;

/// Phases of the run, as a publisher sees them when a publish starts and
/// when it returns.
const BEFORE_KILL: u8 = 0;
const FAILING_OVER: u8 = 1;
const RECOVERED: u8 = 2;

async fn node(cluster: &RedisCluster) -> TestServer {
    let layer = RedisClusterLayer::builder(cluster.seeds())
        .prefix("lvfailover:")
        .build()
        .expect("a layer");
    TestServer::start(
        LiveView::builder().channel_layer(layer),
        axum::Router::new(),
    )
    .await
    .expect("a node starts")
}

fn html(text: &str) -> Update {
    Update::new("#log").html(text).append()
}

/// Every frame a client receives, in order, read by a task of its own.
#[derive(Clone, Default)]
struct Recorded {
    frames: Arc<Mutex<Vec<Value>>>,
    arrived: Arc<Notify>,
}

impl Recorded {
    fn snapshot(&self) -> Vec<Value> {
        self.frames.lock().unwrap().clone()
    }

    /// Wait until a frame satisfies `found`.
    async fn until(&self, what: &str, found: impl Fn(&Value) -> bool) {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            let arrived = self.arrived.notified();
            if self.frames.lock().unwrap().iter().any(&found) {
                return;
            }
            assert!(
                tokio::time::timeout_at(deadline, arrived).await.is_ok(),
                "timed out waiting for {what}"
            );
        }
    }
}

struct Reader {
    recorded: Recorded,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<WsClient>,
}

impl Reader {
    async fn start(node: &TestServer, resume: &str) -> Self {
        let url = format!("{}?resume={resume}", node.ws_url(ROOM));
        let mut client = WsClient::connect(&url, &[]).await.expect("connects");
        let broadcaster = node.live().broadcaster();
        let deadline = tokio::time::Instant::now() + LIMIT;
        while broadcaster.local_connections(ROOM) == 0 {
            assert!(tokio::time::Instant::now() < deadline, "never joined");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let recorded = Recorded::default();
        let stop = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn({
            let recorded = recorded.clone();
            let stop = stop.clone();
            async move {
                while !stop.load(Ordering::Acquire) {
                    match client.recv_timeout(Duration::from_millis(50)).await {
                        Ok(frame) => {
                            recorded.frames.lock().unwrap().push(frame);
                            recorded.arrived.notify_waiters();
                        }
                        Err(Closed::TimedOut) => {}
                        Err(other) => panic!("the client was closed: {other:?}"),
                    }
                }
                client
            }
        });
        Self {
            recorded,
            stop,
            task,
        }
    }

    async fn finish(self) -> Vec<Value> {
        self.stop.store(true, Ordering::Release);
        let client = self.task.await.expect("the reader ran");
        client.close().await;
        self.recorded.snapshot()
    }
}

/// What a publisher sent: each frame's text, whether its publish
/// succeeded, and the phases when it started and when it returned.
type Sent = Vec<(String, bool, u8, u8)>;

fn publisher(
    node: &TestServer,
    name: &'static str,
    phase: Arc<AtomicU8>,
) -> tokio::task::JoinHandle<Sent> {
    let broadcaster = node.live().broadcaster();
    tokio::spawn(async move {
        let mut sent = Sent::new();
        let mut after = 0;
        for i in 0.. {
            let text = format!("{name}-{i}");
            let started = phase.load(Ordering::Acquire);
            let ok = broadcaster.send_to_room(ROOM, html(&text)).await.is_ok();
            sent.push((text, ok, started, phase.load(Ordering::Acquire)));
            if started == RECOVERED {
                after += 1;
                if after == AFTER {
                    break;
                }
            }
            // A steady flow rather than a flood: the failover happens
            // between frames of both publishers.
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        sent
    })
}

fn text(frame: &Value) -> &str {
    frame["html"].as_str().unwrap_or("")
}

fn numbered(frame: &Value) -> Option<(String, u64)> {
    Some((frame["epoch"].as_str()?.to_owned(), frame["seq"].as_u64()?))
}

/// What every connection must have seen, whatever the failover did.
fn check_client(name: &str, frames: &[Value], sent: &[&Sent], old_epoch: &str) -> String {
    // At most once, every frame.
    let mut seen = HashSet::new();
    for frame in frames {
        let t = text(frame);
        if t.starts_with("a-") || t.starts_with("b-") {
            assert!(seen.insert(t.to_owned()), "{name} got {t} twice");
        }
    }
    // Each publisher's numbered frames in the order it sent them; the
    // numbering only goes forward, within an epoch and from the old epoch
    // to one new epoch.
    let mut last_index: HashMap<String, u64> = HashMap::new();
    let mut epochs: Vec<String> = vec![old_epoch.to_owned()];
    let mut last_seq: Option<u64> = None;
    for frame in frames {
        let Some((epoch, seq)) = numbered(frame) else {
            continue;
        };
        if epochs.last() != Some(&epoch) {
            assert!(
                !epochs.contains(&epoch),
                "{name}: the numbering went back to epoch {epoch}"
            );
            epochs.push(epoch);
            last_seq = None;
        }
        if let Some(previous) = last_seq {
            assert!(seq > previous, "{name}: {seq} after {previous}: {frame}");
        }
        last_seq = Some(seq);
        let t = text(frame);
        if let Some((publisher, index)) = t.split_once('-')
            && let Ok(index) = index.parse::<u64>()
            && (publisher == "a" || publisher == "b")
        {
            if let Some(before) = last_index.get(publisher) {
                assert!(index > *before, "{name}: {t} after {publisher}-{before}");
            }
            last_index.insert(publisher.to_owned(), index);
        }
    }
    assert_eq!(
        epochs.len(),
        2,
        "{name}: one new epoch after the failover, saw {epochs:?}"
    );
    // Exactly once: what was published before the kill, and everything
    // after the recovery. A publish started during the failover may fail
    // and be seen returning after the recovery: its retry (redis-rs waits
    // at least 1.28 s between two) may have come before the promotion and
    // the next one after the layer's 2 s bound, or its task may have looked
    // at the phase late. Every publish started after the recovery
    // succeeds; every one that succeeded after it is delivered.
    let got: HashSet<&str> = frames.iter().map(text).collect();
    for (t, ok, started, returned) in sent.iter().flat_map(|s| s.iter()) {
        if *returned == BEFORE_KILL && *ok {
            assert!(
                got.contains(t.as_str()),
                "{name} missed {t}, sent before the kill"
            );
        }
        if *started == RECOVERED {
            assert!(*ok, "publishing {t} failed, started after the recovery");
        }
        if *returned == RECOVERED && *ok {
            assert!(
                got.contains(t.as_str()),
                "{name} missed {t}, sent after the recovery"
            );
        }
    }
    epochs.pop().expect("the new epoch")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failover_keeps_delivery_exactly_once_and_in_order_in_a_new_epoch() {
    let mut cluster = RedisCluster::start(3, 1).await.expect("the cluster starts");
    let a = node(&cluster).await;
    let b = node(&cluster).await;
    let on_a = Reader::start(&a, "").await;
    let on_b = Reader::start(&b, "").await;

    // Both nodes are subscribed: a probe from each reaches the other.
    for (from, reader, tag) in [(&a, &on_b, "probe-ab"), (&b, &on_a, "probe-ba")] {
        let deadline = tokio::time::Instant::now() + LIMIT;
        loop {
            from.live()
                .broadcaster()
                .send_to_room(ROOM, html(tag))
                .await
                .expect("published");
            if tokio::time::timeout(
                Duration::from_millis(200),
                reader.recorded.until(tag, |f| text(f) == tag),
            )
            .await
            .is_ok()
            {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{tag} never arrived"
            );
        }
    }
    let first = on_a
        .recorded
        .snapshot()
        .iter()
        .find_map(numbered)
        .expect("a numbered frame");
    let old_epoch = first.0;

    let phase = Arc::new(AtomicU8::new(BEFORE_KILL));
    let pa = publisher(&a, "a", phase.clone());
    let pb = publisher(&b, "b", phase.clone());
    // Traffic flows on both sides before the kill.
    on_a.recorded.until("b-5", |f| text(f) == "b-5").await;
    on_b.recorded.until("a-5", |f| text(f) == "a-5").await;

    let victim = cluster
        .primary_of(&format!("{{{GROUP}}}"))
        .await
        .expect("the room's primary");
    phase.store(FAILING_OVER, Ordering::Release);
    cluster.kill(victim);
    let primaries = cluster.wait_healthy().await.expect("a replica takes over");
    assert!(
        !primaries.contains(&victim),
        "the killed node serves no slot"
    );
    let promoted = cluster
        .primary_of(&format!("{{{GROUP}}}"))
        .await
        .expect("the room's new primary");
    assert_ne!(promoted, victim);

    // Both nodes deliver the new primary's frames from either side.
    let fresh = |reader: &Reader, old: &str| {
        let old = old.to_owned();
        let recorded = reader.recorded.clone();
        async move {
            recorded
                .until("a frame in a new epoch", move |f| {
                    numbered(f).is_some_and(|(e, _)| e != old)
                })
                .await;
        }
    };
    fresh(&on_a, &old_epoch).await;
    fresh(&on_b, &old_epoch).await;
    phase.store(RECOVERED, Ordering::Release);
    let sent_a = pa.await.expect("publisher a");
    let sent_b = pb.await.expect("publisher b");

    // The end: a marker behind everything, on both connections.
    a.live()
        .broadcaster()
        .send_to_room(ROOM, html("end"))
        .await
        .expect("published");
    on_a.recorded.until("end", |f| text(f) == "end").await;
    on_b.recorded.until("end", |f| text(f) == "end").await;
    let frames_a = on_a.finish().await;
    let frames_b = on_b.finish().await;

    let sent = [&sent_a, &sent_b];
    let epoch_a = check_client("the client on A", &frames_a, &sent, &old_epoch);
    let epoch_b = check_client("the client on B", &frames_b, &sent, &old_epoch);
    assert_eq!(epoch_a, epoch_b, "both nodes deliver one numbering");

    // After the recovery, both connections saw the new epoch's frames in
    // one order, numbered without a gap.
    let tail = |frames: &[Value]| -> Vec<(u64, String)> {
        frames
            .iter()
            .filter_map(|f| {
                let (epoch, seq) = numbered(f)?;
                (epoch == epoch_a).then(|| (seq, text(f).to_owned()))
            })
            .collect()
    };
    let (tail_a, tail_b) = (tail(&frames_a), tail(&frames_b));
    let start = tail_a.len().saturating_sub(2 * AFTER + 1);
    let recent_a = &tail_a[start..];
    let position = tail_b
        .iter()
        .position(|f| f == &recent_a[0])
        .expect("B saw the new epoch's frames A saw");
    assert_eq!(recent_a, &tail_b[position..], "one order on both nodes");
    assert!(
        recent_a.windows(2).all(|w| w[1].0 == w[0].0 + 1),
        "a gap in the new numbering"
    );

    // Replay follows the documented rules: a position in the old epoch is
    // answered with a resync; one in the new epoch with what came after.
    let last_old = frames_a
        .iter()
        .filter_map(numbered)
        .filter(|(e, _)| *e == old_epoch)
        .map(|(_, s)| s)
        .max()
        .expect("frames of the old epoch");
    let mut stale = WsClient::connect(
        &format!("{}?resume={GROUP}:{last_old}:{old_epoch}", b.ws_url(ROOM)),
        &[],
    )
    .await
    .expect("connects");
    assert_eq!(
        stale.recv_timeout(LIMIT).await.expect("a frame"),
        json!({"resync": true})
    );
    stale.close().await;
    let (from_seq, _) = recent_a[recent_a.len() - 4].clone();
    let mut back = WsClient::connect(
        &format!("{}?resume={GROUP}:{from_seq}:{epoch_a}", a.ws_url(ROOM)),
        &[],
    )
    .await
    .expect("connects");
    for expected in &recent_a[recent_a.len() - 3..] {
        let frame = back.recv_timeout(LIMIT).await.expect("a replayed frame");
        assert_eq!(
            (frame["seq"].as_u64().unwrap_or(0), text(&frame).to_owned()),
            expected.clone()
        );
        assert_eq!(frame["epoch"], epoch_a.as_str());
    }
    back.close().await;
    a.shutdown().await;
    b.shutdown().await;
}

/// `replay(None)` turns replay off on this layer as on the others: asked
/// for what a group's log holds, or where its numbering stands, the layer
/// answers that it keeps no log for the application (its log is written
/// all the same, it orders the frames, but never read for a client).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_replay_off_the_layer_answers_that_it_keeps_no_log() {
    use liveview::layer::ChannelLayer;

    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let layer = RedisClusterLayer::builder(cluster.seeds())
        .prefix("lvnoreplay:")
        .build()
        .expect("a layer");
    let live = LiveView::builder()
        .channel_layer(layer.clone())
        .replay(None)
        .build()
        .expect("an app");
    live.broadcaster()
        .send_to_room(ROOM, html("logged"))
        .await
        .expect("published");
    assert!(
        layer
            .replay(GROUP, 0, None)
            .await
            .expect("answered")
            .is_none()
    );
    assert!(layer.position(GROUP).await.expect("answered").is_none());
}

/// A connection to each node on `ports` that answers (a node killed by the
/// test is left out).
async fn node_connections(ports: &[u16]) -> Vec<::redis::aio::MultiplexedConnection> {
    let mut connections = Vec::with_capacity(ports.len());
    for port in ports {
        let Ok(client) = ::redis::Client::open(format!("redis://127.0.0.1:{port}")) else {
            continue;
        };
        if let Ok(conn) = client.get_multiplexed_async_connection().await {
            connections.push(conn);
        }
    }
    connections
}

/// Calls of `command` (e.g. `evalsha`) the nodes on `ports` have served.
async fn served(ports: &[u16], command: &str) -> u64 {
    let mut total = 0;
    for mut conn in node_connections(ports).await {
        let stats: String = ::redis::cmd("INFO")
            .arg("commandstats")
            .query_async(&mut conn)
            .await
            .expect("INFO commandstats");
        let prefix = format!("cmdstat_{command}:calls=");
        total += stats
            .lines()
            .filter_map(|line| line.strip_prefix(&prefix))
            .filter_map(|rest| rest.split(',').next()?.parse::<u64>().ok())
            .sum::<u64>();
    }
    total
}

/// Subscribers of the shard channel `channel`, on whichever of the nodes
/// on `ports` serves its slot.
async fn shard_subscribers(ports: &[u16], channel: &str) -> u64 {
    let mut total = 0;
    for mut conn in node_connections(ports).await {
        // A node that does not serve the slot answers with a redirection.
        let counts: Result<Vec<(String, u64)>, _> = ::redis::cmd("PUBSUB")
            .arg("SHARDNUMSUB")
            .arg(channel)
            .query_async(&mut conn)
            .await;
        total += counts.map_or(0, |counts| counts.iter().map(|(_, n)| n).sum());
    }
    total
}

/// Reads of the groups' logs (the layer's scripts) the nodes served.
async fn log_reads(ports: &[u16]) -> u64 {
    served(ports, "evalsha").await + served(ports, "eval").await
}

/// Wait until the layer has run `checks` more of its checks: each one
/// PINGs every primary once, and runs to its end before the next. Only
/// once the layer's connection is made: making it PINGs the nodes too.
async fn checks_pass(ports: &[u16], checks: u64) {
    let start = served(ports, "ping").await;
    let deadline = tokio::time::Instant::now() + LIMIT;
    // One PING per primary per check, and one check more: the first may
    // have been under way.
    let primaries = ports.len() as u64;
    while served(ports, "ping").await < start + (checks + 1) * primaries {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the layer checks no more"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The once-a-second check reads the log only of groups whose
/// subscription no node confirmed since a connection was lost: a process
/// following many quiet groups reads nothing while its subscriptions
/// stand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quiet_groups_with_standing_subscriptions_cost_no_reads() {
    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let ports = cluster.ports();
    let layer = RedisClusterLayer::builder(cluster.seeds())
        .prefix("lvquiet:")
        .build()
        .expect("a layer");
    let server = TestServer::start(
        LiveView::builder().channel_layer(layer),
        axum::Router::new(),
    )
    .await
    .expect("a node starts");
    let mut clients = Vec::new();
    for room in 0..8 {
        let url = server.ws_url(&format!("quiet-{room}"));
        clients.push(WsClient::connect(&url, &[]).await.expect("connects"));
    }
    let broadcaster = server.live().broadcaster();
    let deadline = tokio::time::Instant::now() + LIMIT;
    while (0..8).any(|room| broadcaster.local_connections(&format!("quiet-{room}")) == 0) {
        assert!(tokio::time::Instant::now() < deadline, "never joined");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Making the layer's connection PINGs every node too (each new
    // connection is checked with one): until the rooms' subscriptions
    // stand, a PING the nodes count may not be a check, and a window of
    // such PINGs with no read would pass for a quiet check.
    let deadline = tokio::time::Instant::now() + LIMIT;
    for room in 0..8 {
        let channel = format!("lvquiet:{{room_quiet-{room}}}");
        while shard_subscribers(&ports, &channel).await == 0 {
            assert!(
                tokio::time::Instant::now() < deadline,
                "{channel} never subscribed"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // Once every subscription is confirmed, a check reads nothing more.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let before = log_reads(&ports).await;
        checks_pass(&ports, 1).await;
        if log_reads(&ports).await == before {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "every check reads the logs of quiet groups"
        );
    }
    let before = log_reads(&ports).await;
    checks_pass(&ports, 3).await;
    assert_eq!(log_reads(&ports).await, before, "quiet groups were read");
    for client in clients {
        client.close().await;
    }
    server.shutdown().await;
}

/// A group joined before the layer could reach the cluster is waited for:
/// `subscribed` answers only once a node confirmed the group's sharded
/// subscription.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_group_joined_before_the_first_connection_is_waited_for() {
    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let ports = cluster.ports();
    let gate = crate::support::Gate::start(&cluster.seeds()[0]).await;
    let layer = RedisClusterLayer::builder([gate.addr().to_string()])
        .prefix("lvearly:")
        .build()
        .expect("a layer");
    let server = crate::support::server(LiveView::builder().channel_layer(layer.clone())).await;
    let _client = server.connect("early").await.expect("connects");
    crate::support::wait_until("the layer is at the gate", || gate.held() >= 1).await;

    crate::support::assert_subscribed_waits_for_the_gate(&layer, &gate, "room_early").await;
    assert_eq!(shard_subscribers(&ports, "lvearly:{room_early}").await, 1);
}

/// Two processes A and B on `cluster`, each with a layer of its own under
/// `prefix`.
async fn two_processes(
    cluster: &RedisCluster,
    prefix: &str,
) -> (
    (RedisClusterLayer, TestServer),
    (RedisClusterLayer, TestServer),
) {
    let mut processes = Vec::new();
    for name in ["A", "B"] {
        let layer = RedisClusterLayer::builder(cluster.seeds())
            .prefix(prefix)
            .build()
            .expect("a layer");
        let server = TestServer::start(
            LiveView::builder().channel_layer(layer.clone()),
            axum::Router::new(),
        )
        .await
        .unwrap_or_else(|err| panic!("{name} starts: {err}"));
        processes.push((layer, server));
    }
    let b = processes.pop().expect("B");
    let a = processes.pop().expect("A");
    (a, b)
}

/// A client that resumes on a process not yet subscribed to its group
/// misses nothing another process publishes meanwhile: the process answers
/// from the group's log once the subscription is confirmed, so every frame
/// numbered after that read reaches it live. The subscription is held
/// until the test lets it go, with a frame published by the other process
/// in between: read before the subscription, the log would not hold that
/// frame, and the subscription, which starts the group's delivery at the
/// newest frame then, would never bring it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_before_its_group_is_subscribed_misses_nothing() {
    use liveview::layer::ChannelLayer;

    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let ((layer_a, a), (layer_b, b)) = two_processes(&cluster, "lvresume:").await;
    let send = async |text: &str| {
        b.live()
            .broadcaster()
            .send_to_room(ROOM, html(text))
            .await
            .expect("published");
    };
    send("one").await;
    let position = layer_b
        .position(GROUP)
        .await
        .expect("the log is read")
        .expect("the layer keeps a log");
    assert_eq!(position.seq, 1);
    let epoch = position.epoch.expect("a numbering");
    layer_a.health().await.expect("A reaches the cluster");

    layer_a.hold_subscriptions(true);
    let reader = Reader::start(&a, &format!("{GROUP}:0:{epoch}")).await;
    // A has answered the client from the log (then "one" arrives), or it
    // waits for the group's subscription to read it.
    let deadline = tokio::time::Instant::now() + LIMIT;
    while layer_a.waiting_for_subscriptions() == 0
        && !reader.recorded.snapshot().iter().any(|f| text(f) == "one")
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A neither answered nor waited"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Within the 2 s the layer waits for a subscription before it answers
    // with a resync: one publish.
    send("two").await;
    layer_a.hold_subscriptions(false);
    assert!(layer_a.subscribed(GROUP).await, "A subscribed to the group");
    send("three").await;
    reader.recorded.until("three", |f| text(f) == "three").await;

    let frames = reader.finish().await;
    let got: Vec<(Option<u64>, &str)> = frames
        .iter()
        .map(|f| (f["seq"].as_u64(), text(f)))
        .collect();
    assert_eq!(
        got,
        [(Some(1), "one"), (Some(2), "two"), (Some(3), "three")],
        "what the client on A got: {frames:?}"
    );
    a.shutdown().await;
    b.shutdown().await;
}

/// A client that resumes on a process whose last member of the group just
/// left, while the process is about to unsubscribe from it, misses no
/// frame published between that unsubscribe and the next subscription
/// (see the helper).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_while_its_group_is_unsubscribed_misses_nothing() {
    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let ports = cluster.ports();
    let ((layer_a, a), (_, b)) = two_processes(&cluster, "lvleaving:").await;
    crate::support::assert_a_client_resuming_while_its_group_is_unsubscribed_misses_nothing(
        &layer_a,
        &a,
        &b,
        "leaving",
        || shard_subscribers(&ports, "lvleaving:{room_leaving}"),
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}
