//! `/readyz` follows the channel layer: 503 while a private Redis is down,
//! 200 again once it is back, while `/healthz` stays 200 throughout.

use std::time::Duration;

use liveview::LiveView;
use liveview::layer::RedisLayer;
use liveview::testing::{RedisServer, TestServer};

use crate::support::{http_get, server};

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
    // A private server: this test kills it.
    let mut redis = RedisServer::start().await.unwrap();
    let prefix = format!("lvtest:{}:", uuid::Uuid::new_v4().simple());
    let layer = RedisLayer::builder(redis.url())
        .prefix(&prefix)
        .build()
        .unwrap();
    let server = server(LiveView::builder().channel_layer(layer)).await;
    probe_until(&server, "/readyz", (200, "ready")).await;

    redis.kill();
    probe_until(&server, "/readyz", (503, "channel layer unavailable")).await;
    // Alive, only not ready: an orchestrator must not restart it for this.
    assert_eq!(probe(&server, "/healthz").await, (200, "ok".to_owned()));

    redis.restart().await.unwrap();
    probe_until(&server, "/readyz", (200, "ready")).await;
}
