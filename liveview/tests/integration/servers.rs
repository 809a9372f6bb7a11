//! The private servers of `liveview::testing` for channel layers: a Redis
//! Cluster that fails over when a primary is killed, a NATS server that
//! keeps its JetStream store across a restart.

use std::time::Duration;

use liveview::testing::{NatsServer, RedisCluster};

#[tokio::test]
async fn a_private_redis_cluster_fails_over_when_a_primary_is_killed() {
    let mut cluster = RedisCluster::start(3, 1).await.unwrap();
    assert_eq!(cluster.seeds().len(), 6);
    let primaries = cluster.wait_healthy().await.unwrap();
    assert_eq!(primaries.len(), 3);
    let primary = cluster.primary_of("{room_lobby}").await.unwrap();
    assert!(primaries.contains(&primary));

    cluster.kill(primary);
    let after = cluster.wait_healthy().await.unwrap();
    assert_eq!(after.len(), 3);
    assert!(!after.contains(&primary));
    let replacement = cluster.primary_of("{room_lobby}").await.unwrap();
    assert_ne!(replacement, primary);
    assert_eq!(cluster.seeds().len(), 5);

    // The old primary comes back as a replica of its replacement.
    cluster.restart(primary).unwrap();
    let again = cluster.wait_healthy().await.unwrap();
    assert!(!again.contains(&primary));
    assert_eq!(
        cluster.primary_of("{room_lobby}").await.unwrap(),
        replacement
    );
}

#[tokio::test]
async fn a_private_nats_server_restarts_on_its_port() {
    let mut nats = NatsServer::start().await.unwrap();
    let address = ("127.0.0.1", nats.port());
    assert!(std::net::TcpStream::connect(address).is_ok());
    nats.kill();
    assert!(std::net::TcpStream::connect(address).is_err());
    tokio::time::timeout(Duration::from_secs(30), nats.restart())
        .await
        .unwrap()
        .unwrap();
    assert!(std::net::TcpStream::connect(address).is_ok());
    assert!(nats.url().starts_with("nats://127.0.0.1:"));
}
