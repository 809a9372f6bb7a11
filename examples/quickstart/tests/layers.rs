//! The quick start as two processes sharing a channel layer taken from the
//! environment: `LIVEVIEW_NATS_URL` (a private `nats-server` with
//! JetStream) and `LIVEVIEW_REDIS_CLUSTER` (a private Redis Cluster of
//! three primaries). A `notify_all` called on a page of one process shows
//! exactly once on a page of the other. With `LIVEVIEW_REDIS_URL` (a
//! private `redis-server`) and with `LIVEVIEW_NATS_URL`, calls of one
//! HTTP-transport stream posted to either process run once each, in order,
//! on the process holding the stream.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use liveview::testing::{Closed, NatsServer, RedisCluster, RedisServer, SseClient, WsClient};
use serde_json::{Value, json};

/// Longest wait for a subscription or a frame.
const LIMIT: Duration = Duration::from_secs(30);

/// A running quick start process, killed when dropped.
struct Quickstart {
    child: Child,
    addr: SocketAddr,
}

impl Quickstart {
    /// The quick start binary on a free port, with one layer variable set
    /// (and the other two removed).
    fn start(variable: &str, value: &str) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_quickstart"));
        for name in [
            "LIVEVIEW_REDIS_URL",
            "LIVEVIEW_NATS_URL",
            "LIVEVIEW_REDIS_CLUSTER",
        ] {
            command.env_remove(name);
        }
        let mut child = command
            .env(variable, value)
            .env("LIVEVIEW_ADDR", "127.0.0.1:0")
            .env("RUST_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("the quick start binary starts");
        let stdout = child.stdout.take().expect("its output");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(addr) = line.strip_prefix("LiveView quick start on http://") {
                    let _ = tx.send(addr.to_owned());
                }
            }
        });
        let addr = rx
            .recv_timeout(LIMIT)
            .expect("the quick start says where it listens")
            .parse()
            .expect("an address");
        Self { child, addr }
    }

    /// A page's socket in `room`.
    async fn page(&self, room: &str) -> WsClient {
        WsClient::connect(&format!("ws://{}/ws/liveview/{room}/", self.addr), &[])
            .await
            .expect("the page connects")
    }
}

impl Drop for Quickstart {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn notification(message: &str) -> Value {
    json!({
        "target": "#notifications",
        "html": format!("<div class=\"notification\">{message}</div>"),
        "append": true
    })
}

async fn notify_all(caller: &mut WsClient, message: &str) {
    caller
        .call("notify_all", json!({"message": message}), json!({}))
        .await
        .expect("the call is sent");
}

/// A broadcast from a page of `one` shows exactly once on a page of
/// `other`.
async fn a_broadcast_crosses_once(one: &Quickstart, other: &Quickstart) {
    let mut caller = one.page("caller").await;
    let mut page = other.page("reader").await;
    // The other process subscribes once its page joined: until a probe
    // arrives.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        notify_all(&mut caller, "probe").await;
        match page.recv_timeout(Duration::from_millis(250)).await {
            Ok(frame) if frame == notification("probe") => break,
            Ok(frame) => panic!("unexpected frame {frame}"),
            Err(Closed::TimedOut) => {}
            Err(closed) => panic!("the page was closed: {closed:?}"),
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no broadcast crossed from one process to the other"
        );
    }
    // Every probe still on its way arrives before this marker.
    notify_all(&mut caller, "ready").await;
    loop {
        let frame = page.recv_timeout(LIMIT).await.expect("the marker");
        if frame == notification("ready") {
            break;
        }
        assert_eq!(frame, notification("probe"));
    }

    notify_all(&mut caller, "deploy at noon").await;
    notify_all(&mut caller, "end").await;
    assert_eq!(
        page.recv_timeout(LIMIT).await.expect("the broadcast"),
        notification("deploy at noon")
    );
    // Not twice: the next frame is the one sent after it.
    assert_eq!(
        page.recv_timeout(LIMIT).await.expect("the end marker"),
        notification("end")
    );
    caller.close().await;
    page.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_broadcasts_through_nats() {
    let nats = NatsServer::start().await.expect("nats-server starts");
    let one = Quickstart::start("LIVEVIEW_NATS_URL", &nats.url());
    let other = Quickstart::start("LIVEVIEW_NATS_URL", &nats.url());
    a_broadcast_crosses_once(&one, &other).await;
    a_broadcast_crosses_once(&other, &one).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_processes_share_broadcasts_through_a_redis_cluster() {
    let cluster = RedisCluster::start(3, 0).await.expect("the cluster starts");
    let seeds = cluster.seed_list();
    let one = Quickstart::start("LIVEVIEW_REDIS_CLUSTER", &seeds);
    let other = Quickstart::start("LIVEVIEW_REDIS_CLUSTER", &seeds);
    a_broadcast_crosses_once(&one, &other).await;
    a_broadcast_crosses_once(&other, &one).await;
}

/// No sticky sessions on Redis: see [`calls_run_once_in_order`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_one_stream_posted_to_either_process_run_once_in_order() {
    let redis = RedisServer::start().await.expect("redis-server starts");
    let holder = Quickstart::start("LIVEVIEW_REDIS_URL", &redis.url());
    let other = Quickstart::start("LIVEVIEW_REDIS_URL", &redis.url());
    calls_run_once_in_order(&holder, &other).await;
}

/// No sticky sessions on NATS: see [`calls_run_once_in_order`].
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_of_one_stream_posted_to_either_process_run_once_in_order_on_nats() {
    let nats = NatsServer::start().await.expect("nats-server starts");
    let holder = Quickstart::start("LIVEVIEW_NATS_URL", &nats.url());
    let other = Quickstart::start("LIVEVIEW_NATS_URL", &nats.url());
    calls_run_once_in_order(&holder, &other).await;
}

/// No sticky sessions: `holder` holds the stream, the calls are posted to
/// it and to `other` in turn, and each runs once, in order, its reply on
/// the stream.
async fn calls_run_once_in_order(holder: &Quickstart, other: &Quickstart) {
    let mut stream = SseClient::open(holder.addr, "alternating", "", &[])
        .await
        .expect("the stream opens");

    // The holder subscribes to its stream's group in the background: a
    // call forwarded before that is answered 404 and sent again with the
    // same number, as the client does.
    let deadline = tokio::time::Instant::now() + LIMIT;
    loop {
        let answer = stream
            .post_to(other.addr, 1, r#"{"ping": 1}"#, &[])
            .await
            .expect("the POST is answered");
        if answer.status == 204 {
            break;
        }
        assert_eq!(answer.status, 404, "{answer:?}");
        assert!(
            tokio::time::Instant::now() < deadline,
            "no forwarded call was taken"
        );
    }
    assert_eq!(stream.recv().await.expect("the pong"), json!({"pong": 1}));

    let names = ["Ada", "Grace", "Edsger", "Barbara", "Donald", "Frances"];
    let hello = |seq: u64, name: &str| {
        json!({"function": "say_hello", "form": {"name": name}, "ref": seq}).to_string()
    };
    for (seq, name) in (2u64..).zip(names) {
        let node = if seq % 2 == 0 {
            other.addr
        } else {
            holder.addr
        };
        let answer = stream
            .post_to(node, seq, &hello(seq, name), &[])
            .await
            .expect("the POST is answered");
        assert_eq!(answer.status, 204, "call {seq} through {node}: {answer:?}");
    }
    // A retransmission of call 2 through the holder is taken, not run.
    let again = stream
        .post_to(holder.addr, 2, &hello(2, "Again"), &[])
        .await
        .expect("the POST is answered");
    assert_eq!(again.status, 204, "{again:?}");
    let last = stream
        .post_to(other.addr, 8, &hello(8, "End"), &[])
        .await
        .expect("the POST is answered");
    assert_eq!(last.status, 204, "{last:?}");

    let mut greeted = Vec::new();
    let mut done = Vec::new();
    while done.len() < names.len() + 1 {
        let frame = stream.recv().await.expect("a frame of the stream");
        if frame["done"] == true {
            done.push(frame["ref"].as_u64().expect("a ref"));
        } else {
            assert_eq!(frame["target"], "#greeting", "{frame}");
            greeted.push(frame["html"].as_str().expect("html").to_owned());
        }
    }
    let expected: Vec<String> = names
        .iter()
        .chain(&["End"])
        .map(|name| format!("<h1>Hello, {name}!</h1>"))
        .collect();
    assert_eq!(greeted, expected);
    assert_eq!(done, (2..=8).collect::<Vec<u64>>());
}
