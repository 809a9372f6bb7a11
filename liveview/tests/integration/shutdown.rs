//! Graceful shutdown: running handlers finish, sockets close with 1001,
//! readiness fails as soon as it starts, and a handler that outlives the
//! grace period does not hold the server up.

use std::time::Duration;

use liveview::LiveView;
use liveview::testing::Closed;
use serde_json::json;

use crate::handlers::gate::gate;
use crate::support::{http_get, next, server, wait_until};

#[tokio::test]
async fn shutdown_lets_running_handlers_finish_then_closes_with_1001() {
    let server = server(LiveView::builder()).await;
    let mut busy = server.connect("shutdown").await.unwrap();
    let mut idle = server.connect("shutdown").await.unwrap();
    let live = server.live().clone();
    let gate = gate("shutdown-finish");
    busy.send_json(
        &json!({"function": "wait_at_gate", "data": {"gate": "shutdown-finish", "label": "finished"}}),
    )
    .await
    .unwrap();
    wait_until("the call is running", || gate.entered() == 1).await;
    let stopping = tokio::spawn(server.shutdown());

    // The idle connection closes at once; the busy one waits for its call.
    assert_eq!(idle.closed().await, Closed::Code(1001));
    assert!(!stopping.is_finished());
    wait_until("only the busy connection is left", || {
        live.connections() == 1
    })
    .await;

    gate.open();
    assert_eq!(next(&mut busy).await["html"], "finished");
    assert_eq!(busy.closed().await, Closed::Code(1001));
    stopping.await.unwrap();
    assert_eq!(live.connections(), 0);
    assert_eq!((gate.finished(), gate.abandoned()), (1, 0));
}

#[tokio::test]
async fn a_handler_outliving_the_grace_period_does_not_hold_shutdown_up() {
    let builder = LiveView::builder().shutdown_grace(Duration::from_millis(300));
    let server = server(builder).await;
    let mut busy = server.connect("shutdown-grace").await.unwrap();
    let mut idle = server.connect("shutdown-grace").await.unwrap();
    let live = server.live().clone();
    let gate = gate("shutdown-grace");
    busy.send_json(&json!({"function": "wait_at_gate", "data": {"gate": "shutdown-grace"}}))
        .await
        .unwrap();
    wait_until("the call is running", || gate.entered() == 1).await;

    // The gate never opens. Shutdown reports the connection it could not
    // close, returns after the grace period, and the server stops.
    assert!(!live.shutdown().await, "the held connection is reported");
    assert_eq!(idle.closed().await, Closed::Code(1001));
    tokio::time::timeout(Duration::from_secs(10), server.shutdown())
        .await
        .expect("the server stops without waiting for the handler");
    // Stopping the server dropped the handler and its socket, unfinished.
    assert_eq!(busy.closed().await, Closed::Abruptly);
    wait_until("the handler is dropped", || gate.abandoned() == 1).await;
    assert_eq!(gate.finished(), 0);
}

#[tokio::test]
async fn readiness_and_health_answer_503_as_soon_as_shutdown_starts() {
    let server = server(LiveView::builder()).await;
    let mut busy = server.connect("shutdown-ready").await.unwrap();
    let live = server.live().clone();
    let gate = gate("shutdown-ready");
    assert_eq!(probe(&server, "/readyz").await, (200, "ready".to_owned()));
    assert_eq!(probe(&server, "/healthz").await, (200, "ok".to_owned()));

    busy.send_json(&json!({"function": "wait_at_gate", "data": {"gate": "shutdown-ready"}}))
        .await
        .unwrap();
    wait_until("the call is running", || gate.entered() == 1).await;
    // Only the app is told to stop, so the listener still answers probes
    // while a connection drains, as a load balancer sees it.
    let draining = live.clone();
    let stopping = tokio::spawn(async move { draining.shutdown().await });
    wait_until("shutdown started", || live.is_shutting_down()).await;
    assert_eq!(
        probe(&server, "/readyz").await,
        (503, "shutting down".to_owned())
    );
    assert_eq!(
        probe(&server, "/healthz").await,
        (503, "shutting down".to_owned())
    );
    assert_eq!(live.connections(), 1, "still draining");

    gate.open();
    assert_eq!(busy.closed().await, Closed::Code(1001));
    assert!(stopping.await.unwrap());
    server.shutdown().await;
}

/// Status and body of `GET path`.
async fn probe(server: &liveview::testing::TestServer, path: &str) -> (u16, String) {
    let (status, _, body) = http_get(server.addr(), path, &[]).await;
    (status, body)
}
