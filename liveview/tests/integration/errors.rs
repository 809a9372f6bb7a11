//! PROTOCOL.md's error table, row by row, over a real WebSocket.

use liveview::LiveView;
use liveview::testing::Closed;
use serde_json::json;

use crate::handlers::gate::gate;
use crate::support::{assert_nothing_pending, next, server, wait_until};

/// No frame may carry internals: handler lists, error text, paths, types.
fn assert_no_internals(frame: &serde_json::Value) {
    let text = frame.to_string();
    for leak in ["secret", ".rs", "panic", "echo", "liveview::", "Error("] {
        assert!(!text.contains(leak), "frame leaks {leak:?}: {text}");
    }
}

#[tokio::test]
async fn unknown_function_gets_a_fixed_error_and_the_connection_stays_open() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-unknown").await.unwrap();
    client
        .call("no_such_handler", json!({}), json!({}))
        .await
        .unwrap();
    let frame = next(&mut client).await;
    assert_eq!(frame, json!({"error": "Unknown function"}));
    assert_no_internals(&frame);
    assert_nothing_pending(&mut client, "still open").await;
}

#[tokio::test]
async fn a_handler_error_is_an_internal_error_without_its_text() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-fail").await.unwrap();
    client.call("fail", json!({}), json!({})).await.unwrap();
    let frame = next(&mut client).await;
    assert_eq!(frame, json!({"error": "Internal error"}));
    assert_no_internals(&frame);
    assert_nothing_pending(&mut client, "after error").await;
}

#[tokio::test]
async fn async_and_blocking_panics_are_internal_errors_and_hurt_no_one_else() {
    let server = server(LiveView::builder()).await;
    let mut victim = server.connect("errors-panic").await.unwrap();
    let mut bystander = server.connect("errors-panic").await.unwrap();
    for function in ["explode", "explode_sync"] {
        victim.call(function, json!({}), json!({})).await.unwrap();
        let frame = next(&mut victim).await;
        assert_eq!(frame, json!({"error": "Internal error"}), "{function}");
        assert_no_internals(&frame);
    }
    assert_nothing_pending(&mut victim, "victim alive").await;
    assert_nothing_pending(&mut bystander, "bystander alive").await;
}

#[tokio::test]
async fn malformed_frames_are_invalid_messages_and_the_connection_stays_open() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-invalid").await.unwrap();
    for text in [
        "not json at all",
        "[1, 2, 3]",
        "\"a string\"",
        "42",
        "{}",
        r#"{"form": {}}"#,
        r#"{"function": 12}"#,
        r#"{"function": null}"#,
        r#"{"function": "echo", "form": "not an object"}"#,
        "{\"function\": \"echo\"",
    ] {
        client.send_text(text).await.unwrap();
        let frame = next(&mut client).await;
        assert_eq!(frame, json!({"error": "Invalid message"}), "for {text}");
    }
    assert_nothing_pending(&mut client, "after garbage").await;
}

#[tokio::test]
async fn a_binary_frame_closes_with_1003() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-binary").await.unwrap();
    client.send_binary(vec![1, 2, 3]).await.unwrap();
    assert_eq!(client.closed().await, Closed::Code(1003));
}

#[tokio::test]
async fn a_frame_over_the_limit_closes_with_1009() {
    let server = server(LiveView::builder().max_frame_size(1024)).await;
    let mut client = server.connect("errors-big").await.unwrap();
    let big = json!({"function": "echo", "form": {"text": "x".repeat(2000)}});
    client.send_json(&big).await.unwrap();
    assert_eq!(client.closed().await, Closed::Code(1009));

    // The default limit is 64 KiB: a frame just under it is fine.
    let server = crate::support::server(LiveView::builder()).await;
    let mut client = server.connect("errors-big").await.unwrap();
    let fits = json!({"function": "echo", "form": {"text": "y".repeat(60 * 1024)}});
    client.send_json(&fits).await.unwrap();
    assert_eq!(
        next(&mut client).await["form"]["text"]
            .as_str()
            .unwrap()
            .len(),
        60 * 1024
    );
    let over = json!({"function": "echo", "form": {"text": "y".repeat(65 * 1024)}});
    client.send_json(&over).await.unwrap();
    assert_eq!(client.closed().await, Closed::Code(1009));
}

#[tokio::test]
async fn an_invalid_room_is_refused_before_the_upgrade() {
    let server = server(LiveView::builder()).await;
    for room in ["bad%20room", "a%2Fb", &"x".repeat(95)] {
        match server.connect(room).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                assert_eq!(response.status(), 400, "room {room}");
            }
            other => panic!("room {room} was not refused: {other:?}"),
        }
    }
    // Without the trailing slash the endpoint still answers.
    let url = server.ws_url("no-slash");
    let url = url.trim_end_matches('/');
    let mut client = liveview::testing::WsClient::connect(url, &[])
        .await
        .unwrap();
    assert_nothing_pending(&mut client, "no slash").await;
}

#[tokio::test]
async fn calls_with_a_ref_get_it_back_then_done() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-ref").await.unwrap();
    client
        .send_json(&json!({"function": "echo", "form": {"a": "1"}, "ref": 7}))
        .await
        .unwrap();
    let reply = next(&mut client).await;
    assert_eq!(reply["ref"], 7);
    assert_eq!(reply["form"], json!({"a": "1"}));
    assert_eq!(next(&mut client).await, json!({"ref": 7, "done": true}));

    client
        .send_json(&json!({"function": "missing", "ref": 8}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"error": "Unknown function", "ref": 8})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 8, "done": true}));

    client
        .send_json(&json!({"function": "fail", "ref": 9}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"error": "Internal error", "ref": 9})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 9, "done": true}));
}

#[tokio::test]
async fn a_consumer_kept_past_its_call_sends_no_ref_while_the_next_calls_consumer_does() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("errors-kept-ref").await.unwrap();
    let data = json!({"key": "errors-kept-ref"});
    client
        .send_json(&json!({"function": "keep_consumer", "data": data, "ref": 1}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#kept", "ref": 1})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 1, "done": true}));

    // The kept consumer's call is over: its frame carries no ref, not even
    // the ref of the call that runs now, whose own consumer sends it.
    client
        .send_json(&json!({"function": "send_kept", "data": data, "ref": 2}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, json!({"target": "#from-kept"}));
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#from-call", "ref": 2})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 2, "done": true}));

    // A call without a ref: no frame of it carries one.
    client
        .send_json(&json!({"function": "send_kept", "data": data}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, json!({"target": "#from-kept"}));
    assert_eq!(next(&mut client).await, json!({"target": "#from-call"}));
    assert_nothing_pending(&mut client, "after the calls").await;
}

#[tokio::test]
async fn a_handler_over_its_timeout_is_abandoned_with_an_internal_error_and_the_connection_lives() {
    let builder = LiveView::builder().handler_timeout(std::time::Duration::from_millis(100));
    let server = server(builder).await;
    let mut client = server.connect("errors-timeout").await.unwrap();
    let gate = gate("errors-timeout");
    client
        .send_json(&json!({"function": "wait_at_gate", "data": {"gate": "errors-timeout"}}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await, json!({"error": "Internal error"}));
    // Abandoned, not left running behind the error: its future was dropped
    // while it waited.
    wait_until("the handler is dropped", || gate.abandoned() == 1).await;
    assert_eq!((gate.entered(), gate.finished()), (1, 0));
    // Opening the gate now runs nothing: no late reply follows.
    gate.open();
    assert_nothing_pending(&mut client, "after timeout").await;
    assert_eq!(gate.finished(), 0);
}

#[tokio::test]
async fn a_handler_timeout_too_long_to_be_a_deadline_lets_a_waiting_handler_finish() {
    let builder = LiveView::builder().handler_timeout(std::time::Duration::MAX);
    let server = server(builder).await;
    let mut client = server.connect("errors-no-deadline").await.unwrap();
    let gate = gate("errors-no-deadline");
    client
        .send_json(&json!({"function": "wait_at_gate", "data": {"gate": "errors-no-deadline", "label": "through"}, "ref": 3}))
        .await
        .unwrap();
    // Past its first poll, still waiting: no deadline ends it.
    wait_until("the handler waits at the gate", || gate.entered() == 1).await;
    gate.open();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#gate", "html": "through", "ref": 3})
    );
    assert_eq!(next(&mut client).await, json!({"ref": 3, "done": true}));
    assert_eq!((gate.finished(), gate.abandoned()), (1, 0));
}
