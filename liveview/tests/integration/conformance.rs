//! The channel layer conformance suite (`liveview::testing::conformance`),
//! run by every layer of the library: memory, Redis, NATS.

use futures_util::future::BoxFuture;
use liveview::LiveViewBuilder;
use liveview::testing::conformance::Backend;

/// The in-process layer: one node is the whole world.
mod memory {
    use super::*;

    struct Memory;

    impl Backend for Memory {
        fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder {
            builder.channel_layer(liveview::layer::MemoryLayer)
        }

        fn shared(&self) -> bool {
            false
        }
    }

    liveview::layer_conformance_tests!(async { Memory });
}

/// Redis: a private `redis-server` per test, killed for the outage and
/// started again on its port.
#[cfg(feature = "redis")]
mod redis {
    use std::process::{Child, Command, Stdio};
    use std::time::Duration;

    use super::*;

    struct Redis {
        port: u16,
        child: Option<Child>,
    }

    fn ping(port: u16) -> bool {
        Command::new("redis-cli")
            .args(["-p", &port.to_string(), "ping"])
            .output()
            .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "PONG")
    }

    impl Redis {
        async fn start() -> Self {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let mut redis = Self { port, child: None };
            redis.spawn().await;
            redis
        }

        async fn spawn(&mut self) {
            let child = Command::new("redis-server")
                .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
                .args(["--save", "", "--appendonly", "no"])
                .stdout(Stdio::null())
                .spawn()
                .expect("redis-server is installed");
            self.child = Some(child);
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while !ping(self.port) {
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "redis never answered"
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

    impl Drop for Redis {
        fn drop(&mut self) {
            self.kill();
        }
    }

    impl Backend for Redis {
        fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder {
            let url = format!("redis://127.0.0.1:{}", self.port);
            builder.channel_layer(liveview::layer::RedisLayer::from_url(&url).unwrap())
        }

        fn outage(&mut self) -> BoxFuture<'_, bool> {
            self.kill();
            Box::pin(async { true })
        }

        fn recover(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(self.spawn())
        }
    }

    liveview::layer_conformance_tests!(Redis::start());
}

/// NATS: the shared server with a prefix of the test's own, or a private
/// server for the outage (killed and restarted with its store).
#[cfg(feature = "nats")]
mod nats {
    use liveview::layer::NatsLayer;
    use liveview::testing::NatsServer;

    use super::*;

    struct Nats {
        url: String,
        prefix: String,
        private: Option<NatsServer>,
    }

    impl Nats {
        async fn shared() -> Self {
            Self {
                url: "nats://127.0.0.1:4222".to_owned(),
                prefix: format!("lvtest_{}", uuid::Uuid::new_v4().simple()),
                private: None,
            }
        }

        async fn private() -> Self {
            let server = NatsServer::start().await.expect("nats-server starts");
            Self {
                url: server.url(),
                prefix: "lvtest".to_owned(),
                private: Some(server),
            }
        }
    }

    impl Backend for Nats {
        fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder {
            let layer = NatsLayer::builder(&self.url)
                .prefix(&self.prefix)
                .build()
                .unwrap();
            builder.channel_layer(layer)
        }

        fn outage(&mut self) -> BoxFuture<'_, bool> {
            let killed = self.private.as_mut().map(NatsServer::kill).is_some();
            Box::pin(async move { killed })
        }

        fn recover(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async {
                if let Some(server) = &mut self.private {
                    server.restart().await.expect("nats-server restarts");
                }
            })
        }
    }

    mod shared {
        use super::*;
        liveview::layer_conformance_tests!(Nats::shared());
    }

    mod private {
        use super::*;
        liveview::layer_conformance_tests!(Nats::private());
    }
}

/// Redis Cluster: a private cluster of three primaries per test; the
/// outage kills every node and starts them again with their cluster
/// configuration (and no data).
#[cfg(feature = "redis-cluster")]
mod redis_cluster {
    use liveview::layer::RedisClusterLayer;
    use liveview::testing::RedisCluster;

    use super::*;

    struct Cluster(RedisCluster);

    impl Cluster {
        async fn start() -> Self {
            Self(RedisCluster::start(3, 0).await.expect("the cluster starts"))
        }
    }

    impl Backend for Cluster {
        fn node(&self, builder: LiveViewBuilder) -> LiveViewBuilder {
            builder.channel_layer(RedisClusterLayer::builder(self.0.seeds()).build().unwrap())
        }

        fn outage(&mut self) -> BoxFuture<'_, bool> {
            for port in self.0.ports() {
                self.0.kill(port);
            }
            Box::pin(async { true })
        }

        fn recover(&mut self) -> BoxFuture<'_, ()> {
            Box::pin(async {
                for port in self.0.ports() {
                    self.0.restart(port).expect("a node restarts");
                }
                self.0
                    .wait_healthy()
                    .await
                    .expect("the cluster forms again");
            })
        }
    }

    liveview::layer_conformance_tests!(Cluster::start());
}
