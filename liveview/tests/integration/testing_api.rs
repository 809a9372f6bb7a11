//! The test helpers themselves: the in-process client and the socket
//! client answer the same calls the same way.

use std::time::Duration;

use axum::routing::get;
use liveview::testing::{Closed, TestApp, TestServer};
use liveview::{Consumer, Content, LiveView, Update, liveview_handler};
use serde_json::json;

#[liveview_handler("testing_api_twice")]
async fn twice(consumer: &Consumer, content: Content) -> liveview::Result {
    let text = content.data.str_or("text", "");
    consumer.send(Update::new("#one").html(text))?;
    consumer.send(Update::new("#two").html(text).morph())?;
    Ok(())
}

#[tokio::test]
async fn both_clients_take_form_and_data_and_list_what_they_received() {
    let expected = [
        json!({"target": "#one", "html": "hi"}),
        json!({"target": "#two", "html": "hi", "morph": true}),
    ];

    let app = TestApp::new(LiveView::builder().build().unwrap());
    let mut page = app.connect("testing-api");
    let frames = page
        .call("testing_api_twice", json!({}), json!({"text": "hi"}))
        .await;
    assert_eq!(frames, expected);
    assert_eq!(
        page.recv_timeout(Duration::from_millis(50)).await,
        Err(Closed::TimedOut)
    );

    let server = TestServer::start(LiveView::builder(), axum::Router::new())
        .await
        .unwrap();
    let mut ws = server.connect("testing-api").await.unwrap();
    ws.call("testing_api_twice", json!({}), json!({"text": "hi"}))
        .await
        .unwrap();
    // Wait for the first frame; then both are in, in order, or the second
    // is still on its way and arrives through recv.
    let first = ws.recv().await.unwrap();
    let mut frames = vec![first];
    frames.extend(ws.received());
    if frames.len() < 2 {
        frames.push(ws.recv().await.unwrap());
    }
    assert_eq!(frames, expected);
    assert!(ws.received().is_empty());
    assert_eq!(
        ws.recv_timeout(Duration::from_millis(50)).await,
        Err(Closed::TimedOut)
    );
}

#[tokio::test]
async fn a_close_frame_read_by_received_is_kept_for_closed() {
    let server = TestServer::start(LiveView::builder(), axum::Router::new())
        .await
        .unwrap();
    let mut ws = server.connect("testing-api-close").await.unwrap();
    ws.send_binary(vec![1, 2, 3]).await.unwrap();
    // Binary frames are refused with 1003. Once the server has let the
    // connection go, its close frame is on the client's socket: `received`
    // reads it, and `closed` still reports its code.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while server.live().connections() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the server kept the connection"
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert!(ws.received().is_empty());
    assert_eq!(ws.closed().await, Closed::Code(1003));
}

#[tokio::test]
async fn test_server_gets_pages_with_headers() {
    let routes = axum::Router::new().route(
        "/hello",
        get(|headers: axum::http::HeaderMap| async move {
            let name = headers
                .get("x-name")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("World")
                .to_owned();
            ([("x-greeted", name.clone())], format!("Hello, {name}!"))
        }),
    );
    let server = TestServer::start(LiveView::builder(), routes)
        .await
        .unwrap();
    let response = server.get("/hello").await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.body(), "Hello, World!");
    let response = server
        .get_with("/hello", &[("X-Name", "Ada")])
        .await
        .unwrap();
    assert_eq!(response.headers()["x-greeted"], "Ada");
    assert_eq!(response.body(), "Hello, Ada!");
    assert_eq!(server.get("/missing").await.unwrap().status(), 404);
}
