//! The quick start as two processes sharing a channel layer taken from the
//! environment: `LIVEVIEW_NATS_URL` (a private `nats-server` with
//! JetStream) and `LIVEVIEW_REDIS_CLUSTER` (a private Redis Cluster of
//! three primaries). A `notify_all` called on a page of one process shows
//! exactly once on a page of the other.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use liveview::testing::{Closed, NatsServer, RedisCluster, WsClient};
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
