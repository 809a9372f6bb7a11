//! The quick start answers over a real WebSocket with the exact frames.

use liveview::LiveView;
use liveview::testing::TestServer;
use serde_json::json;

// The handlers live in the library crate; name it so they are linked.
use quickstart as _;

#[tokio::test]
async fn say_hello_answers_the_caller_with_the_exact_frame() {
    let server = TestServer::start(LiveView::builder(), quickstart::routes())
        .await
        .unwrap();
    let mut client = server.connect("quickstart-test").await.unwrap();

    client
        .call("say_hello", json!({"name": "Ada"}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        json!({"target": "#greeting", "html": "<h1>Hello, Ada!</h1>"})
    );

    client
        .call("say_hello", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        json!({"target": "#greeting", "html": "<h1>Hello, World!</h1>"})
    );

    client
        .call("say_hello", json!({"name": "<b>&"}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        client.recv().await.unwrap(),
        json!({"target": "#greeting", "html": "<h1>Hello, &lt;b&gt;&amp;!</h1>"})
    );
    server.shutdown().await;
}

#[tokio::test]
async fn notify_all_reaches_every_page() {
    let server = TestServer::start(LiveView::builder(), quickstart::routes())
        .await
        .unwrap();
    let mut a = server.connect("room-a").await.unwrap();
    let mut b = server.connect("room-b").await.unwrap();
    a.call("notify_all", json!({"message": "<i>deploy</i>"}), json!({}))
        .await
        .unwrap();
    let expected = json!({
        "target": "#notifications",
        "html": "<div class=\"notification\">&lt;i&gt;deploy&lt;/i&gt;</div>",
        "append": true
    });
    assert_eq!(a.recv().await.unwrap(), expected);
    assert_eq!(b.recv().await.unwrap(), expected);
    server.shutdown().await;
}

#[test]
fn the_page_uses_django_liveviews_attributes() {
    let html = quickstart::render_index("room-1", Default::default()).unwrap();
    assert!(html.contains(r#"data-controller="page""#));
    assert!(html.contains(r#"data-liveview-function="say_hello""#));
    assert!(html.contains(r#"data-action="click->page#run""#));
    assert!(html.contains("/static/liveview/liveview.min.js?v="));
    assert!(
        !liveview::LiveView::builder()
            .build()
            .unwrap()
            .functions()
            .is_empty()
    );
}
