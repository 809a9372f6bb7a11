//! `/readyz` follows the channel layer: 503 while a private Redis is down,
//! 200 again once it is back, while `/healthz` stays 200 throughout.

use std::net::TcpListener;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use liveview::LiveView;
use liveview::layer::RedisLayer;
use liveview::testing::TestServer;

use crate::support::{http_get, server};

/// A private `redis-server` on a free port (this test kills it, so never
/// the shared one), killed on drop.
struct PrivateRedis {
    port: u16,
    child: Option<Child>,
}

impl PrivateRedis {
    async fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port");
        let mut redis = Self { port, child: None };
        redis.restart().await;
        redis
    }

    /// Start on the same port and wait until it accepts connections.
    async fn restart(&mut self) {
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        self.child = Some(child);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "redis-server never listened"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Status and body of `GET path`.
async fn probe(server: &TestServer, path: &str) -> (u16, String) {
    let (status, _, body) = http_get(server.addr(), path, &[]).await;
    (status, body)
}

/// Probe `path` every 20 ms until it answers `expected`, for at most 15 s.
async fn probe_until(server: &TestServer, path: &str, expected: (u16, &str)) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let (status, body) = probe(server, path).await;
        if (status, body.as_str()) == expected {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path} still answers {status} {body:?}, expected {expected:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn readiness_answers_503_while_the_channel_layer_is_down() {
    let mut redis = PrivateRedis::start().await;
    let prefix = format!("lvtest:{}:", uuid::Uuid::new_v4().simple());
    let layer = RedisLayer::builder(format!("redis://127.0.0.1:{}", redis.port))
        .prefix(&prefix)
        .build()
        .unwrap();
    let server = server(LiveView::builder().channel_layer(layer)).await;
    probe_until(&server, "/readyz", (200, "ready")).await;

    redis.kill();
    probe_until(&server, "/readyz", (503, "channel layer unavailable")).await;
    // Alive, only not ready: an orchestrator must not restart it for this.
    assert_eq!(probe(&server, "/healthz").await, (200, "ok".to_owned()));

    redis.restart().await;
    probe_until(&server, "/readyz", (200, "ready")).await;
}
