//! Who gets what: the caller, a room, everyone; in order; exactly once;
//! and never unbounded buffering for a client that does not read.

use std::time::Duration;

use liveview::testing::Closed;
use liveview::{LiveView, Update};
use serde_json::json;

use crate::handlers::gate::gate;
use crate::support::{assert_nothing_pending, next, server, wait_until};

#[tokio::test]
async fn frames_of_one_connection_are_handled_in_order() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("order").await.unwrap();
    for (ms, label) in [
        ("150", "first"),
        ("0", "second"),
        ("50", "third"),
        ("0", "fourth"),
    ] {
        client
            .send_json(&json!({"function": "sleep_then_reply", "data": {"ms": ms, "label": label}}))
            .await
            .unwrap();
    }
    for label in ["first", "second", "third", "fourth"] {
        assert_eq!(next(&mut client).await["html"], label);
    }
}

#[tokio::test]
async fn connections_are_handled_concurrently() {
    let server = server(LiveView::builder()).await;
    let mut held = server.connect("concurrent").await.unwrap();
    let mut other = server.connect("concurrent").await.unwrap();
    let gate = gate("delivery-concurrent");
    held.send_json(
        &json!({"function": "wait_at_gate", "data": {"gate": "delivery-concurrent", "label": "released"}}),
    )
    .await
    .unwrap();
    wait_until("the first call is waiting at its gate", || {
        gate.entered() == 1
    })
    .await;
    // Only the other connection's call opens the gate: were connections
    // served one call at a time, it would wait behind the held call, which
    // waits for it, and neither would ever answer.
    other
        .send_json(&json!({"function": "open_gate", "data": {"gate": "delivery-concurrent"}}))
        .await
        .unwrap();
    let opened = other.recv_timeout(Duration::from_secs(10)).await;
    assert_eq!(
        opened.map(|frame| frame["target"].clone()),
        Ok(json!("#opened")),
        "the second connection was not served while the first one's call ran"
    );
    assert_eq!(next(&mut held).await["html"], "released");
    assert_eq!(gate.finished(), 1);
}

#[tokio::test]
async fn a_broadcast_reaches_100_connections_exactly_once_each() {
    let server = server(LiveView::builder()).await;
    let mut clients = Vec::new();
    for i in 0..100 {
        clients.push(server.connect(&format!("fanout-{}", i % 7)).await.unwrap());
    }
    clients[0]
        .call("shout", json!({"text": "hello all"}), json!({}))
        .await
        .unwrap();
    let expected = json!({"target": "#all", "html": "hello all", "append": true});
    for client in &mut clients {
        assert_eq!(next(client).await, expected);
    }
    for (i, client) in clients.iter_mut().enumerate() {
        assert_nothing_pending(client, &format!("marker-{i}")).await;
    }
}

#[tokio::test]
async fn a_room_send_reaches_only_that_room() {
    let server = server(LiveView::builder()).await;
    let mut a1 = server.connect("room-a").await.unwrap();
    let mut a2 = server.connect("room-a").await.unwrap();
    let mut b = server.connect("room-b").await.unwrap();
    a1.call("room_say", json!({"text": "<just a>"}), json!({}))
        .await
        .unwrap();
    let expected = json!({"target": "#room", "html": "&lt;just a&gt;"});
    assert_eq!(next(&mut a1).await, expected);
    assert_eq!(next(&mut a2).await, expected);
    assert_nothing_pending(&mut b, "b got nothing").await;

    // A handler may address another room by name.
    b.send_json(
        &json!({"function": "room_say", "form": {"text": "to a"}, "data": {"to": "room-a"}}),
    )
    .await
    .unwrap();
    assert_eq!(next(&mut a1).await["html"], "to a");
    assert_eq!(next(&mut a2).await["html"], "to a");
    assert_nothing_pending(&mut b, "b still nothing").await;
}

#[tokio::test]
async fn a_std_thread_broadcasts_then_removes_the_notification() {
    let server = server(LiveView::builder()).await;
    let mut caller = server.connect("thread-a").await.unwrap();
    let mut other = server.connect("thread-b").await.unwrap();
    caller
        .send_json(
            &json!({"function": "thread_notify", "data": {"id": "n1", "removeAfterMs": "100"}}),
        )
        .await
        .unwrap();
    for client in [&mut caller, &mut other] {
        let added = next(client).await;
        assert_eq!(added["target"], "#notifications");
        assert_eq!(added["append"], true);
        assert!(
            added["html"]
                .as_str()
                .unwrap()
                .contains(r#"id="notification-n1""#)
        );
        assert_eq!(
            next(client).await,
            json!({"target": "#notification-n1", "remove": true})
        );
    }
}

#[tokio::test]
async fn the_app_broadcaster_works_outside_handlers() {
    let server = server(LiveView::builder()).await;
    let mut a = server.connect("outside-a").await.unwrap();
    let mut b = server.connect("outside-b").await.unwrap();
    let broadcaster = server.live().broadcaster();
    wait_until("both clients joined", || {
        broadcaster.local_connections("outside-a") == 1
            && broadcaster.local_connections("outside-b") == 1
    })
    .await;
    broadcaster
        .send_to_room("outside-b", Update::new("#clock").html("tick"))
        .await
        .unwrap();
    assert_eq!(
        next(&mut b).await,
        json!({"target": "#clock", "html": "tick"})
    );
    assert_nothing_pending(&mut a, "a not in that room").await;
    broadcaster
        .broadcast(json!({"title": "Everyone"}))
        .await
        .unwrap();
    assert_eq!(next(&mut a).await, json!({"title": "Everyone"}));
    assert_eq!(next(&mut b).await, json!({"title": "Everyone"}));
}

#[tokio::test]
async fn a_client_that_does_not_read_is_closed_with_1013_instead_of_growing() {
    let server = server(LiveView::builder().queue_capacity(8)).await;
    let mut reader = server.connect("slow").await.unwrap();
    let stalled = server.connect("slow").await.unwrap();
    let broadcaster = server.live().broadcaster();
    wait_until("both joined", || broadcaster.local_connections("slow") == 2).await;

    // Big frames fill the socket buffers, then the stalled client's queue.
    let chunk = "z".repeat(32 * 1024);
    let mut sent = 0;
    while broadcaster.local_connections("slow") == 2 {
        assert!(sent < 20_000, "the stalled client was never closed");
        broadcaster
            .send_to_room("slow", Update::new("#big").html(chunk.clone()))
            .await
            .unwrap();
        sent += 1;
        // Keep the healthy client drained so only the stalled one lags.
        let frame = next(&mut reader).await;
        assert_eq!(frame["target"], "#big");
    }
    // The stalled client, reading at last, finds its connection closed.
    let mut stalled = stalled;
    assert_eq!(stalled.closed().await, Closed::Code(1013));
    // The healthy one is untouched.
    assert_nothing_pending(&mut reader, "reader fine").await;
}

#[tokio::test]
async fn a_handler_flooding_its_own_unread_client_closes_it() {
    let server = server(LiveView::builder().queue_capacity(4)).await;
    let mut client = server.connect("flood").await.unwrap();
    client
        .send_json(&json!({"function": "flood_self", "data": {"n": "1000"}}))
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(10), client.closed())
        .await
        .expect("the flooded client is closed");
    assert_eq!(closed, Closed::Code(1013));
}
