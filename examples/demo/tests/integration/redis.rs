//! Two demo processes on one database and one Redis: an alert published
//! on one reaches the pages of the other.

use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::Duration;

use demo::pages::alerts::ROOM;
use liveview::LiveView;
use liveview::layer::RedisLayer;
use serde_json::json;

use crate::support::{TempDir, TestDemo, call, config, create_alert_until_it_crosses, next};

const REDIS: &str = "redis://127.0.0.1:6379";

/// A Redis on 6379: the one running, or one started here.
pub fn redis() -> &'static str {
    static READY: OnceLock<()> = OnceLock::new();
    READY.get_or_init(|| {
        if std::net::TcpStream::connect("127.0.0.1:6379").is_ok() {
            return;
        }
        let started = Command::new("redis-server")
            .args([
                "--daemonize",
                "yes",
                "--bind",
                "127.0.0.1",
                "--port",
                "6379",
                "--save",
                "",
            ])
            .stdout(Stdio::null())
            .status()
            .expect("redis-server is installed (scripts/ensure-redis.sh)");
        assert!(started.success());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect("127.0.0.1:6379").is_err() {
            assert!(std::time::Instant::now() < deadline, "Redis did not start");
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    REDIS
}

fn layer(prefix: &str) -> RedisLayer {
    RedisLayer::builder(redis())
        .prefix(prefix)
        .build()
        .expect("the Redis layer")
}

#[tokio::test]
async fn alerts_reach_the_pages_of_another_process_through_redis() {
    let dir = TempDir::new();
    let prefix = format!("demo-test:{}:", uuid::Uuid::new_v4().simple());
    let one = TestDemo::start_with(
        config(&dir),
        LiveView::builder().channel_layer(layer(&prefix)),
    )
    .await;
    let two = TestDemo::start_with(
        config(&dir),
        LiveView::builder().channel_layer(layer(&prefix)),
    )
    .await;
    let mut ada = one.connect(ROOM).await;
    let mut bob = two.connect_as(ROOM, "Bob").await;
    crate::support::eventually(
        "both processes are subscribed",
        Duration::from_secs(10),
        || {
            let (a, b) = (one.live.clone(), two.live.clone());
            async move { a.layer_health().await.is_ok() && b.layer_health().await.is_ok() }
        },
    )
    .await;

    let frame = create_alert_until_it_crosses(&mut ada, &mut bob).await;
    assert_eq!(frame["target"], "#alerts-live");
    assert!(frame["html"].as_str().unwrap().contains("Across processes"));

    // Deleting on the second process removes it on the first.
    let id = two.demo.db().alerts(None, 1, 0).await.unwrap()[0].id;
    call(&mut bob, "alerts_delete", json!({}), json!({"alertId": id})).await;
    let remove = json!({"target": format!("#alert-{id}"), "remove": true});
    loop {
        if next(&mut ada).await == remove {
            break;
        }
    }
}
