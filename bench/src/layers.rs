//! `layers`: the channel layers side by side, in one run on one machine.
//!
//! Each layer serves the bench server (the quick start's app) on two
//! processes, A and B, sharing its backend: a private `redis-server`, a
//! private Redis Cluster of three primaries, a private `nats-server` with
//! JetStream. The memory layer, on one process, is the reference.
//!
//! - **latency**: one subscriber on B; a `notify_all` on B (same node) and
//!   on A (cross node), in turns: the time until the subscriber has it;
//! - **fan-out**: subscribers split over A and B, a `notify_all` on A: the
//!   time until the last one has it;
//! - **rooms**: many rooms, one subscriber each on B; publishers on A send
//!   one frame to every room per round (`bench_to_rooms`, all rooms at
//!   once): frames delivered per second across nodes. On the cluster the
//!   rooms spread over the three shards; on Redis they all go through one.
//!
//! Writes `bench/results/layers-<time>.json` and prints Markdown tables.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use liveview::testing::{NatsServer, RedisCluster};
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::client;
use crate::procs::{self, ServerProc, Spawner};
use crate::report::{FanOut, Latency, Machine, Provenance};
use crate::scenarios::{self, Plan, Pool, Publisher, Tracker};

/// The results file of a `layers` run.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LayersRun {
    pub started: String,
    pub provenance: Provenance,
    pub machine: Machine,
    pub sizes: Sizes,
    /// Delivery on each layer.
    pub layers: Vec<LayerResult>,
    /// Many rooms, across nodes, on each layer.
    pub rooms: Vec<RoomsResult>,
    pub backends: Vec<String>,
    pub failures: Vec<String>,
}

/// How big the run is.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Sizes {
    pub latency_rounds: usize,
    pub fan_out_subscribers: usize,
    pub fan_out_rounds: usize,
    pub rooms: usize,
    pub room_rounds: usize,
    pub room_publishers: usize,
}

/// One layer's delivery figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct LayerResult {
    /// `memory`, `redis`, `redis-cluster` or `nats`.
    pub layer: String,
    /// A call on the subscriber's own process.
    pub same_node: Latency,
    /// A call on the other process (none for the memory layer).
    pub cross_node: Option<Latency>,
    /// Subscribers split over both processes (one for memory).
    pub fan_out: FanOut,
    pub missing: u64,
    pub duplicates: u64,
}

/// Frames to many rooms, across nodes.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct RoomsResult {
    pub layer: String,
    pub rooms: usize,
    pub frames: u64,
    pub seconds: f64,
    pub frames_per_second: f64,
    pub missing: u64,
    pub duplicates: u64,
}

/// `liveview-bench layers [--quick] [--out FILE]`.
pub(crate) fn main(args: &[String]) -> Result<bool, String> {
    let mut quick = false;
    let mut out: Option<PathBuf> = None;
    let mut only: Option<Vec<String>> = None;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let mut value = || args.next().cloned().ok_or(format!("{arg} needs a value"));
        match arg.as_str() {
            "--quick" => quick = true,
            "--out" => out = Some(PathBuf::from(value()?)),
            "--layers" => only = Some(value()?.split(',').map(str::to_owned).collect()),
            other => return Err(format!("unknown option {other}")),
        }
    }
    let sizes = if quick {
        Sizes {
            latency_rounds: 20,
            fan_out_subscribers: 40,
            fan_out_rounds: 5,
            rooms: 30,
            room_rounds: 3,
            room_publishers: 2,
        }
    } else {
        Sizes {
            latency_rounds: 300,
            fan_out_subscribers: 1_000,
            fan_out_rounds: 30,
            rooms: 1_000,
            room_rounds: 20,
            room_publishers: 4,
        }
    };
    let wanted = |layer: &str| only.as_ref().is_none_or(|o| o.iter().any(|l| l == layer));
    let started = SystemTime::now();
    let nofile = crate::raise_fd_limit();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let mut plan = if quick { Plan::smoke() } else { Plan::full() };
    plan.cross_node_rounds = sizes.latency_rounds;
    plan.fan_out_rounds = sizes.fan_out_rounds;

    // The backends, each private to this run.
    let redis = SingleRedis::start()?;
    let (cluster, nats) = runtime.block_on(async {
        let cluster = RedisCluster::start(3, 0)
            .await
            .map_err(|e| format!("redis cluster: {e}"))?;
        let nats = NatsServer::start()
            .await
            .map_err(|e| format!("nats-server: {e}"))?;
        Ok::<_, String>((cluster, nats))
    })?;
    let mut run = LayersRun {
        started: crate::harness::utc(started),
        provenance: procs::provenance(),
        machine: procs::machine(false, false, nofile, redis.addr),
        sizes: sizes.clone(),
        layers: Vec::new(),
        rooms: Vec::new(),
        backends: vec![
            format!("redis: one redis-server on {}, no persistence", redis.addr),
            format!(
                "redis-cluster: three primaries (redis-server) on {}, no replicas, no persistence",
                cluster.seed_list()
            ),
            format!("nats: one nats-server -js on {}", nats.url()),
        ],
        failures: Vec::new(),
    };
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let spawner = Spawner {
        pin: false,
        raise_priority: false,
    };
    let unix = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let seeds = cluster.seed_list();
    let start = |layer: &str, name: &str| -> Result<ServerProc, String> {
        let port = procs::free_port()?;
        let mut command = spawner.command(&exe);
        command.args([
            "server",
            "--layer",
            layer,
            "--addr",
            &format!("127.0.0.1:{port}"),
        ]);
        match layer {
            "redis" => {
                command.args(["--redis-url", &format!("redis://{}", redis.addr)]);
            }
            "redis-cluster" => {
                command.args(["--seeds", &seeds]);
            }
            "nats" => {
                command.args(["--nats-url", &nats.url()]);
            }
            _ => {}
        }
        command.args(["--prefix", &format!("lvlayers{unix}")]);
        spawner.start(
            &format!("layers-{layer}-{name}"),
            command,
            port,
            Duration::from_secs(60),
        )
    };

    for layer in ["memory", "redis", "redis-cluster", "nats"] {
        if !wanted(layer) {
            continue;
        }
        eprintln!("== {layer}: latency and fan-out");
        let shared = layer != "memory";
        let nodes = |scenario: &str| -> Result<(ServerProc, Option<ServerProc>), String> {
            let a = start(layer, &format!("{scenario}-a"))?;
            let b = if shared {
                Some(start(layer, &format!("{scenario}-b"))?)
            } else {
                None
            };
            Ok((a, b))
        };
        let outcome = nodes("delivery")
            .and_then(|(a, b)| runtime.block_on(delivery(layer, &a, b.as_ref(), &plan, &sizes)));
        if let Some(result) = checked(&mut run.failures, layer, outcome, |r| {
            (r.missing, r.duplicates)
        }) {
            run.layers.push(result);
        }
        eprintln!("== {layer}: many rooms");
        let outcome = nodes("rooms")
            .and_then(|(a, b)| runtime.block_on(rooms(layer, &a, b.as_ref(), &plan, &sizes)));
        if let Some(result) = checked(&mut run.failures, &format!("{layer} rooms"), outcome, |r| {
            (r.missing, r.duplicates)
        }) {
            run.rooms.push(result);
        }
    }
    run.machine.load_average_after = procs::load_average();
    drop((cluster, nats, redis));

    let path = out.unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!(
            "results/layers-{}.json",
            crate::harness::compact(&run.started)
        ))
    });
    let json = serde_json::to_string_pretty(&run).map_err(|e| e.to_string())?;
    std::fs::write(&path, json + "\n").map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("wrote {}", path.display());
    print!("{}", markdown(&run));
    for failure in &run.failures {
        eprintln!("FAILURE: {failure}");
    }
    Ok(run.failures.is_empty())
}

/// A scenario's result, with its error or its lost and repeated frames
/// written down as failures.
fn checked<T>(
    failures: &mut Vec<String>,
    name: &str,
    outcome: Result<T, String>,
    lost: impl Fn(&T) -> (u64, u64),
) -> Option<T> {
    match outcome {
        Ok(result) => {
            let (missing, duplicates) = lost(&result);
            if missing > 0 || duplicates > 0 {
                failures.push(format!(
                    "{name}: {missing} frames missing, {duplicates} duplicated"
                ));
            }
            Some(result)
        }
        Err(e) => {
            failures.push(format!("{name}: {e}"));
            None
        }
    }
}

/// Latency on one node and across, then fan-out over both.
async fn delivery(
    layer: &str,
    a: &ServerProc,
    b: Option<&ServerProc>,
    plan: &Plan,
    sizes: &Sizes,
) -> Result<LayerResult, String> {
    let b_endpoint = b.map_or(a.endpoint, |b| b.endpoint);
    scenarios::warm_up(a.endpoint, plan).await?;
    if let Some(b) = b {
        scenarios::warm_up(b.endpoint, plan).await?;
    }
    let tracker = Tracker::new();
    let mut on_a = Publisher::connect(a.endpoint, 3, plan).await?;
    let mut on_b = Publisher::connect(b_endpoint, 4, plan).await?;
    let mut pool_b = Pool::new(b_endpoint, tracker.clone(), 100);
    pool_b.grow(1, plan).await?;
    if !on_a
        .until_delivered(&tracker, 1, Duration::from_secs(20))
        .await
    {
        return Err("a broadcast on node A never reached node B".to_owned());
    }
    let duplicates_before = tracker.duplicates();
    let (same, cross, mut missing) = if b.is_some() {
        let (latencies, missing) =
            scenarios::cross_node_latency(&mut [&mut on_b, &mut on_a], &tracker, plan).await?;
        let [same, cross] =
            <[Latency; 2]>::try_from(latencies).map_err(|_| "two latencies expected".to_owned())?;
        (same, Some(cross), missing)
    } else {
        let (latencies, missing) =
            scenarios::cross_node_latency(&mut [&mut on_b], &tracker, plan).await?;
        let [same] =
            <[Latency; 1]>::try_from(latencies).map_err(|_| "one latency expected".to_owned())?;
        (same, None, missing)
    };
    let n = sizes.fan_out_subscribers;
    let mut pool_a = Pool::new(a.endpoint, tracker.clone(), 1_000_000);
    if b.is_some() {
        pool_b.grow(n / 2, plan).await?;
        pool_a.grow(n - n / 2, plan).await?;
    } else {
        pool_b.grow(n, plan).await?;
    }
    // The other node subscribes in the background: until a round reaches
    // every subscriber.
    if !on_a
        .until_delivered(
            &tracker,
            pool_a.len() + pool_b.len(),
            Duration::from_secs(30),
        )
        .await
    {
        return Err("the fan-out's subscribers were never all reached".to_owned());
    }
    let fan_out =
        scenarios::fan_out(&mut on_a, &tracker, pool_a.len() + pool_b.len(), plan).await?;
    missing += fan_out.missing;
    let duplicates = tracker.duplicates() - duplicates_before;
    drop((pool_a, pool_b, on_a, on_b));
    Ok(LayerResult {
        layer: layer.to_owned(),
        same_node: same,
        cross_node: cross,
        fan_out,
        missing,
        duplicates,
    })
}

/// Room indices of the rooms scenario, clear of the other scenarios'.
const ROOMS_FROM: usize = 2_000_000;

/// One subscriber per room on B, publishers on A sending one frame to
/// each of their rooms per round.
async fn rooms(
    layer: &str,
    a: &ServerProc,
    b: Option<&ServerProc>,
    plan: &Plan,
    sizes: &Sizes,
) -> Result<RoomsResult, String> {
    let b_endpoint = b.map_or(a.endpoint, |b| b.endpoint);
    let counts = Arc::new(RoomCounts::default());
    let mut readers = Vec::new();
    let mut opening = FuturesUnordered::new();
    for i in 0..sizes.rooms {
        let timeout = plan.connect_timeout();
        opening.push(async move {
            let ws = b_endpoint
                .connect(
                    &client::room(ROOMS_FROM + i),
                    Some(client::source_address(i)),
                    timeout,
                )
                .await?;
            Ok::<_, String>((i, ws))
        });
        if opening.len() >= plan.connect_concurrency {
            let (i, ws) = opening.next().await.ok_or("no connection")??;
            readers.push(counts.reader(i, ws));
        }
    }
    while let Some(opened) = opening.next().await {
        let (i, ws) = opened?;
        readers.push(counts.reader(i, ws));
    }
    let publishers = sizes.room_publishers.max(1);
    let per = sizes.rooms.div_ceil(publishers);
    let mut callers = Vec::new();
    for p in 0..publishers {
        let ws = a
            .endpoint
            .connect(&client::room(3_000_000 + p), None, plan.connect_timeout())
            .await?;
        callers.push(ws);
    }
    // Round 0 until every room has it: B subscribed to every room.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        send_round(&mut callers, per, sizes.rooms, 0).await?;
        let all = tokio::time::timeout(Duration::from_millis(500), async {
            while counts.rooms_with_round_zero() < sizes.rooms {
                counts.arrived.notified().await;
            }
        })
        .await;
        if all.is_ok() {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!(
                "only {} of {} rooms reached after 60 s",
                counts.rooms_with_round_zero(),
                sizes.rooms
            ));
        }
    }
    let expected = (sizes.rooms * sizes.room_rounds) as u64;
    let before = counts.frames.load(Ordering::Acquire);
    let started = Instant::now();
    // Every publisher sends its rounds, one call at a time.
    let sending = futures_util::future::try_join_all(callers.iter_mut().enumerate().map(
        |(p, ws)| async move {
            for round in 1..=sizes.room_rounds {
                let first = ROOMS_FROM + p * per;
                let count = per.min(sizes.rooms.saturating_sub(p * per));
                client::call(ws, &to_rooms(first, count, round), Duration::from_secs(60)).await?;
            }
            Ok::<_, String>(())
        },
    ));
    sending.await?;
    let complete = tokio::time::timeout(plan.round_timeout(), async {
        while counts.frames.load(Ordering::Acquire) - before < expected {
            counts.arrived.notified().await;
        }
    })
    .await;
    let seconds = started.elapsed().as_secs_f64();
    let _ = complete;
    // A moment for late or repeated frames.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let frames = counts.frames.load(Ordering::Acquire) - before;
    let duplicates = counts.duplicates.load(Ordering::Acquire);
    drop(readers);
    Ok(RoomsResult {
        layer: layer.to_owned(),
        rooms: sizes.rooms,
        frames,
        seconds,
        frames_per_second: frames as f64 / seconds,
        missing: expected.saturating_sub(frames),
        duplicates,
    })
}

fn to_rooms(first: usize, count: usize, round: usize) -> String {
    format!(
        r#"{{"function":"bench_to_rooms","form":{{"first":{first},"count":{count},"round":{round}}},"data":{{}},"lang":"en"}}"#
    )
}

async fn send_round(
    callers: &mut [client::Ws],
    per: usize,
    rooms: usize,
    round: usize,
) -> Result<(), String> {
    for (p, ws) in callers.iter_mut().enumerate() {
        let count = per.min(rooms.saturating_sub(p * per));
        client::call(
            ws,
            &to_rooms(ROOMS_FROM + p * per, count, round),
            Duration::from_secs(60),
        )
        .await?;
    }
    Ok(())
}

/// What the room subscribers received.
#[derive(Debug, Default)]
struct RoomCounts {
    /// Frames of rounds 1 and up.
    frames: AtomicU64,
    duplicates: AtomicU64,
    /// Rooms that got round 0.
    warm: std::sync::Mutex<HashSet<usize>>,
    arrived: Notify,
}

impl RoomCounts {
    fn rooms_with_round_zero(&self) -> usize {
        self.warm.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    fn reader(self: &Arc<Self>, room: usize, ws: client::Ws) -> Reader {
        let counts = self.clone();
        Reader(tokio::spawn(async move {
            let (_sink, mut stream) = ws.split();
            let mut last = 0;
            while let Some(Ok(message)) = stream.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let Some(round) = client::round_of(&text) else {
                    continue;
                };
                if round == 0 {
                    counts
                        .warm
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .insert(room);
                } else if round <= last {
                    counts.duplicates.fetch_add(1, Ordering::AcqRel);
                } else {
                    last = round;
                    counts.frames.fetch_add(1, Ordering::AcqRel);
                }
                counts.arrived.notify_waiters();
            }
        }))
    }
}

/// A subscriber's reading task, stopped on drop.
struct Reader(tokio::task::JoinHandle<()>);

impl Drop for Reader {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// A `redis-server` of this run: a free port, no persistence.
struct SingleRedis {
    addr: SocketAddr,
    child: Child,
}

impl SingleRedis {
    fn start() -> Result<Self, String> {
        let port = procs::free_port()?;
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .map_err(|e| format!("redis-server: {e}"))?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        while !procs::redis_up(addr) {
            if Instant::now() > deadline {
                return Err("redis-server did not answer".to_owned());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self { addr, child })
    }
}

impl Drop for SingleRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The run's tables.
pub(crate) fn markdown(run: &LayersRun) -> String {
    let mut out = String::new();
    let memory_p50 = run
        .layers
        .iter()
        .find(|l| l.layer == "memory")
        .map(|l| l.same_node.p50_us);
    out.push_str(
        "| layer | same node p50 / p99 (µs) | cross node p50 / p99 (µs) | cross-node p50 ÷ memory p50 | fan-out to N: last delivery p50 / p99 (ms) |\n|---|---|---|---|---|\n",
    );
    for l in &run.layers {
        let cross = l.cross_node.as_ref().map_or("—".to_owned(), |c| {
            format!("{:.0} / {:.0}", c.p50_us, c.p99_us)
        });
        let ratio = match (&l.cross_node, memory_p50) {
            (Some(c), Some(m)) if m > 0.0 => format!("{:.1}×", c.p50_us / m),
            _ => "—".to_owned(),
        };
        out.push_str(&format!(
            "| {} | {:.0} / {:.0} | {} | {} | N={}: {:.1} / {:.1} |\n",
            l.layer,
            l.same_node.p50_us,
            l.same_node.p99_us,
            cross,
            ratio,
            l.fan_out.subscribers,
            l.fan_out.last_delivery.p50_us / 1000.0,
            l.fan_out.last_delivery.p99_us / 1000.0,
        ));
    }
    let redis = run
        .rooms
        .iter()
        .find(|r| r.layer == "redis")
        .map(|r| r.frames_per_second);
    out.push_str(
        "\n| layer | rooms | frames | frames/s | ÷ one Redis | missing | duplicates |\n|---|---|---|---|---|---|---|\n",
    );
    for r in &run.rooms {
        let ratio = redis.map_or("—".to_owned(), |x| {
            format!("{:.2}×", r.frames_per_second / x)
        });
        out.push_str(&format!(
            "| {} | {} | {} | {:.0} | {} | {} | {} |\n",
            r.layer, r.rooms, r.frames, r.frames_per_second, ratio, r.missing, r.duplicates
        ));
    }
    out
}
