//! The starter answers over a real WebSocket and serves its page.

use liveview::LiveView;
use liveview::testing::TestServer;
use serde_json::json;

// The starter is a single file; it is compiled in here so its handler is
// linked into the test.
#[path = "../src/main.rs"]
#[allow(dead_code)]
mod starter;

#[tokio::test]
async fn greet_answers_over_a_websocket_with_escaped_input() {
    let server = TestServer::start(LiveView::builder(), starter::routes())
        .await
        .unwrap();
    let mut client = server.connect("starter-test").await.unwrap();
    client
        .call("greet", json!({"name": "<Ada>"}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        json!({"target": "#greeting", "html": "Hello, &lt;Ada&gt;!"})
    );
    client.call("greet", json!({}), json!({})).await.unwrap();
    assert_eq!(client.recv().await.unwrap()["html"], "Hello, World!");
    server.shutdown().await;
}

#[tokio::test]
async fn the_page_wires_the_handler_and_the_script() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let server = TestServer::start(LiveView::builder(), starter::routes())
        .await
        .unwrap();
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let request = format!(
        "GET / HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
        server.addr()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    assert!(
        response.contains(r#"data-liveview-function="greet""#),
        "{response}"
    );
    assert!(
        response.contains(&liveview::template::script_tag()),
        "{response}"
    );
    server.shutdown().await;
}
