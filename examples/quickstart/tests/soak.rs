//! Soak and fault test of the quick start server, run as its own process:
//! thousands of connections calling and receiving broadcasts while others
//! reconnect, send garbage and read slowly. Afterwards the server's memory
//! is back to its baseline, no connection, group membership or task is
//! left over (read from `/metrics`), and every well-behaved client got
//! every broadcast sent while it was connected, exactly once.
//!
//! `LIVEVIEW_SOAK_SECS` (default 10; the full run is 60) and
//! `LIVEVIEW_SOAK_CONNECTIONS` (default 2000) size it.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::time::{Instant, sleep, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{WebSocketStream, client_async};

type Socket = WebSocketStream<TcpStream>;

/// Source addresses the clients spread over, so each stays under the
/// per-address connection cap and rate limit.
const SOURCES: u8 = 12;

struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    fn start() -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_quickstart"))
            .env("LIVEVIEW_ADDR", "127.0.0.1:0")
            .env("LIVEVIEW_METRICS", "1")
            .env("RUST_LOG", "error")
            .stdout(Stdio::piped())
            .spawn()
            .expect("the quick start binary starts");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // Keep draining, so the server never blocks on a full pipe.
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(url) = line.strip_prefix("LiveView quick start on http://") {
                    let _ = tx.send(url.parse::<SocketAddr>().unwrap());
                }
            }
        });
        let addr = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the server prints its address");
        Self { child, addr }
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    async fn metric(&self, name: &str) -> i64 {
        let mut stream = TcpStream::connect(self.addr).await.unwrap();
        let request = format!(
            "GET /metrics HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut body = String::new();
        stream.read_to_string(&mut body).await.unwrap();
        let prefix = format!("{name} ");
        body.lines()
            .find_map(|l| l.strip_prefix(&prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no metric {name}"))
    }

    async fn wait_for_metric(&self, name: &str, ok: impl Fn(i64) -> bool) -> i64 {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let value = self.metric(name).await;
            if ok(value) {
                return value;
            }
            assert!(Instant::now() < deadline, "{name} stayed at {value}");
            sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn source(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2 + (i % SOURCES as usize) as u8))
}

async fn connect(addr: SocketAddr, from: IpAddr, room: &str) -> Socket {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let attempt = async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from, 0))?;
            let stream = socket.connect(addr).await?;
            client_async(format!("ws://{addr}/ws/liveview/{room}/"), stream)
                .await
                .map(|(ws, _)| ws)
                .map_err(std::io::Error::other)
        };
        match timeout(Duration::from_secs(10), attempt).await {
            Ok(Ok(ws)) => return ws,
            _ if Instant::now() < deadline => sleep(Duration::from_millis(20)).await,
            other => panic!("could not connect: {other:?}"),
        }
    }
}

/// A small deterministic generator: no randomness crate needed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn call(function: &str, form: Value) -> Message {
    Message::text(json!({"function": function, "form": form, "data": {}}).to_string())
}

/// The sequence number of a notification frame, if it is one.
fn sequence(frame: &Value) -> Option<u64> {
    let html = frame.get("html")?.as_str()?;
    let start = html.find("seq-")? + 4;
    let digits: String = html[start..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

/// Connect, call, receive every broadcast; after `stop`, read on until the
/// last broadcast (`last`) arrived. Returns the sequence numbers received.
async fn steady(
    addr: SocketAddr,
    i: usize,
    stop: Arc<AtomicBool>,
    last: Arc<AtomicU64>,
    ready: Arc<tokio::sync::Barrier>,
) -> Vec<u64> {
    let mut ws = connect(addr, source(i), &format!("soak-{}", i % 50)).await;
    ready.wait().await;
    let mut rng = Rng(i as u64 + 1);
    let mut seqs = Vec::new();
    let mut next_call = Instant::now() + Duration::from_millis(500 + rng.below(2000));
    let mut greetings_pending = 0u32;
    let hard_stop = Instant::now() + Duration::from_secs(600);
    loop {
        assert!(
            Instant::now() < hard_stop,
            "steady client {i} never finished"
        );
        if stop.load(Ordering::Acquire) {
            let last = last.load(Ordering::Acquire);
            if seqs.last().is_some_and(|s| *s >= last) && greetings_pending == 0 {
                break;
            }
        } else if Instant::now() >= next_call {
            ws.send(call("say_hello", json!({"name": format!("client {i}")})))
                .await
                .unwrap();
            greetings_pending += 1;
            next_call = Instant::now() + Duration::from_millis(1000 + rng.below(2000));
        }
        match timeout(Duration::from_millis(100), ws.next()).await {
            Err(_) => {}
            Ok(Some(Ok(Message::Text(text)))) => {
                let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                if let Some(seq) = sequence(&frame) {
                    seqs.push(seq);
                } else {
                    assert_eq!(frame["target"], "#greeting", "client {i} got {frame}");
                    assert_eq!(frame["html"], format!("<h1>Hello, client {i}!</h1>"));
                    greetings_pending -= 1;
                }
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("steady client {i} lost its connection: {other:?}"),
        }
    }
    let _ = ws.close(None).await;
    seqs
}

/// Connect, stay a moment, leave (politely or not), again, until `stop`.
async fn churner(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>) -> u32 {
    let mut rng = Rng(i as u64 * 7 + 3);
    let mut rounds = 0;
    while !stop.load(Ordering::Acquire) {
        let mut ws = connect(addr, source(i), &format!("churn-{}", rng.below(20))).await;
        let stay = Instant::now() + Duration::from_millis(100 + rng.below(1200));
        while Instant::now() < stay {
            if timeout(stay - Instant::now(), ws.next())
                .await
                .is_ok_and(|m| m.is_none())
            {
                break;
            }
        }
        if rng.below(2) == 0 {
            let _ = ws.close(None).await;
        }
        drop(ws);
        rounds += 1;
    }
    rounds
}

/// Send garbage; expect the fixed answers; reconnect after a binary frame
/// gets the connection closed.
async fn garbage(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>) -> u32 {
    let mut rng = Rng(i as u64 * 13 + 5);
    let mut answered = 0;
    let mut ws = connect(addr, source(i), "garbage").await;
    while !stop.load(Ordering::Acquire) {
        let junk = match rng.below(5) {
            0 => Message::text("{not json"),
            1 => Message::text("[\"say_hello\"]"),
            2 => Message::text(json!({"function": 42}).to_string()),
            3 => Message::text(json!({"function": "no_such_handler"}).to_string()),
            _ => Message::binary(vec![0u8, 159, 146, 150]),
        };
        let binary = junk.is_binary();
        if ws.send(junk).await.is_err() {
            ws = connect(addr, source(i), "garbage").await;
            continue;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match timeout(deadline - Instant::now(), ws.next()).await {
                Ok(Some(Ok(Message::Text(text)))) => {
                    let frame: Value = serde_json::from_str(text.as_str()).unwrap();
                    if sequence(&frame).is_some() {
                        continue;
                    }
                    let error = frame["error"].as_str().unwrap_or_default();
                    assert!(
                        ["Invalid message", "Unknown function", "Rate limited"].contains(&error),
                        "garbage client {i} got {frame}"
                    );
                    answered += 1;
                    break;
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    assert!(binary, "closed without a binary frame: {frame:?}");
                    assert_eq!(frame.map(|f| u16::from(f.code)), Some(1003));
                    ws = connect(addr, source(i), "garbage").await;
                    break;
                }
                Ok(Some(Ok(_))) => {}
                other => panic!("garbage client {i}: {other:?}"),
            }
        }
        sleep(Duration::from_millis(200 + rng.below(400))).await;
    }
    answered
}

/// Read one frame at a time, slowly, until `stop`.
async fn slow_reader(addr: SocketAddr, i: usize, stop: Arc<AtomicBool>) {
    let mut ws = connect(addr, source(i), "slow").await;
    while !stop.load(Ordering::Acquire) {
        match timeout(Duration::from_millis(200), ws.next()).await {
            Ok(Some(Ok(_))) | Err(_) => sleep(Duration::from_millis(40)).await,
            Ok(other) => panic!("slow reader {i} lost its connection: {other:?}"),
        }
    }
}

/// One round: `connections` clients (70% steady, 10% each churning,
/// sending garbage and reading slowly) for `seconds`, with a numbered
/// broadcast every 100 ms. Checks every steady client got every broadcast
/// exactly once, then waits until the server holds no connection, group
/// or task more than before. Returns the number of broadcasts.
async fn round(server: &Server, connections: usize, seconds: u64, baseline_tasks: i64) -> u64 {
    let stop = Arc::new(AtomicBool::new(false));
    let last = Arc::new(AtomicU64::new(0));
    let steady_count = (0..connections).filter(|i| i % 10 <= 6).count();
    let ready = Arc::new(tokio::sync::Barrier::new(steady_count + 1));
    let mut steady_tasks = Vec::new();
    let mut other_tasks = Vec::new();
    for i in 0..connections {
        let (addr, stop) = (server.addr, stop.clone());
        match i % 10 {
            0..=6 => {
                let (last, ready) = (last.clone(), ready.clone());
                steady_tasks.push(tokio::spawn(steady(addr, i, stop, last, ready)));
            }
            7 => other_tasks.push(tokio::spawn(async move {
                churner(addr, i, stop).await;
            })),
            8 => other_tasks.push(tokio::spawn(async move {
                garbage(addr, i, stop).await;
            })),
            _ => other_tasks.push(tokio::spawn(slow_reader(addr, i, stop))),
        }
    }
    ready.wait().await;

    // The announcer: one notification every 100 ms, numbered.
    let mut announcer = connect(server.addr, IpAddr::V4(Ipv4Addr::LOCALHOST), "announcer").await;
    let end = Instant::now() + Duration::from_secs(seconds);
    let mut seq = 0u64;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    while Instant::now() < end {
        tick.tick().await;
        announcer
            .send(call("notify_all", json!({"message": format!("seq-{seq}")})))
            .await
            .unwrap();
        seq += 1;
        // Drain the announcer's own copies so it is not a slow reader.
        while let Ok(Some(Ok(_))) = timeout(Duration::from_millis(1), announcer.next()).await {}
    }
    let last_seq = seq - 1;
    last.store(last_seq, Ordering::Release);
    stop.store(true, Ordering::Release);

    for (n, task) in steady_tasks.into_iter().enumerate() {
        let seqs = task.await.unwrap();
        let unique: BTreeSet<u64> = seqs.iter().copied().collect();
        assert_eq!(
            unique.len(),
            seqs.len(),
            "steady client {n} got a broadcast twice"
        );
        assert_eq!(
            unique,
            (0..=last_seq).collect(),
            "steady client {n} missed broadcasts"
        );
    }
    for task in other_tasks {
        task.await.unwrap();
    }
    let _ = announcer.close(None).await;
    drop(announcer);

    server
        .wait_for_metric("liveview_connections", |v| v == 0)
        .await;
    assert_eq!(server.metric("liveview_group_memberships").await, 0);
    assert_eq!(server.metric("liveview_groups").await, 0);
    server
        .wait_for_metric("liveview_runtime_alive_tasks", |v| v <= baseline_tasks)
        .await;
    last_seq + 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousands_of_clients_churning_leave_nothing_behind() {
    let seconds: u64 = std::env::var("LIVEVIEW_SOAK_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let connections: usize = std::env::var("LIVEVIEW_SOAK_CONNECTIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let server = Server::start();
    server
        .wait_for_metric("liveview_connections", |v| v == 0)
        .await;
    let idle_tasks = server.metric("liveview_runtime_alive_tasks").await;

    // Two warm-up rounds of the same shape set the baseline: the
    // allocator's arenas and the runtime's pools grow to their working size
    // over the first rounds (measured: +30% after one, +3% after a third,
    // then flat), so what a later round leaves on top of that is a leak.
    let mut warm = 0;
    for _ in 0..2 {
        warm += round(&server, connections, seconds.min(5), idle_tasks).await;
    }
    let baseline_rss = server.rss_kib();
    let broadcasts = round(&server, connections, seconds, idle_tasks).await;
    let after_rss = server.rss_kib();
    eprintln!(
        "soak: {connections} connections, {seconds} s and {broadcasts} broadcasts after warm-up rounds with {warm}; \
         server RSS {baseline_rss} KiB before, {after_rss} KiB after"
    );
    assert!(
        after_rss <= baseline_rss + baseline_rss / 10 + 4 * 1024,
        "memory did not return to its baseline: {baseline_rss} KiB before, {after_rss} KiB after"
    );
}
