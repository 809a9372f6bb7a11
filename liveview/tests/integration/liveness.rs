//! Half-open connections do not live forever: the server pings, and a
//! connection that sends nothing, not even a Pong, for the idle timeout is
//! closed and everything it held is freed.

use std::time::Duration;

use futures_util::StreamExt;
use liveview::LiveView;
use tokio_tungstenite::tungstenite::Message;

use crate::support::{assert_nothing_pending, server, wait_until};

fn short_keepalive() -> liveview::LiveViewBuilder {
    LiveView::builder()
        .ping_interval(Duration::from_millis(100))
        .idle_timeout(Duration::from_millis(400))
}

#[tokio::test]
async fn a_client_that_stops_answering_is_closed_and_everything_it_held_is_freed() {
    let builder = short_keepalive()
        .max_connections_per_address(Some(1))
        .track_presence();
    let server = server(builder).await;
    let live = server.live().clone();
    let broadcaster = live.broadcaster();
    // A client that vanished: its socket stays open, but it never reads
    // (so never answers a ping) and never sends.
    let (vanished, _) = tokio_tungstenite::connect_async(server.ws_url("liveness-gone"))
        .await
        .unwrap();
    wait_until("it joined", || {
        broadcaster.local_members("room_liveness-gone") == 1
    })
    .await;
    assert_eq!(broadcaster.presence("liveness-gone").await.count, 1);

    wait_until("its memberships are freed", || {
        broadcaster.local_members("room_liveness-gone") == 0
            && broadcaster.local_members("broadcast") == 0
    })
    .await;
    assert_eq!(broadcaster.presence("liveness-gone").await.count, 0);
    wait_until("its connection is gone", || live.connections() == 0).await;
    // Its address's only slot is free again.
    let mut next = server.connect("liveness-gone").await.unwrap();
    assert_nothing_pending(&mut next, "a new connection from the address").await;
    // Free the slot again for the metrics request.
    next.close().await;
    wait_until("the new connection is gone", || live.connections() == 0).await;
    let metrics = crate::support::http_get(server.addr(), "/metrics", &[])
        .await
        .2;
    assert!(
        metrics.contains("liveview_idle_closes_total 1\n"),
        "{metrics}"
    );
    drop(vanished);
}

#[tokio::test]
async fn a_quiet_client_that_answers_pings_stays_connected() {
    let server = server(short_keepalive()).await;
    let (mut ws, _) = tokio_tungstenite::connect_async(server.ws_url("liveness-quiet"))
        .await
        .unwrap();
    // Reading answers each ping (tungstenite replies on the next read).
    // Ten pings span 2.5 idle timeouts with no application frame at all.
    let mut pings = 0;
    while pings < 10 {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Ping(_)))) => pings += 1,
            other => panic!("expected pings, got {other:?}"),
        }
    }
    assert_eq!(
        server
            .live()
            .broadcaster()
            .local_members("room_liveness-quiet"),
        1,
        "still in its room"
    );
}
