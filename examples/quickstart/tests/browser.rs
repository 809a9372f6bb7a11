//! The quick start in a real headless Chromium: greet, then notify a second
//! browser.

use liveview::LiveView;
use liveview::testing::TestServer;
use liveview_testing::browser::Browser;

// The handlers live in the library crate; name it so they are linked.
use quickstart as _;

#[tokio::test]
async fn quickstart_greets_and_notifies_every_open_page() {
    let server = TestServer::start(LiveView::builder(), quickstart::routes())
        .await
        .expect("the server starts");
    let ada = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result = async {
        ada.open(&server.url("/")).await?;
        ada.type_text("input[name=name]", "Ada").await?;
        ada.click("button[data-liveview-function=say_hello]")
            .await?;
        ada.wait_for_text("#greeting", "Hello, Ada!").await?;
        assert_eq!(ada.text("#greeting h1").await?, "Hello, Ada!");

        // A second, independent browser on the same page.
        let bob = ada.new_session().await?;
        bob.open(&server.url("/")).await?;
        assert_ne!(
            ada.eval("LiveView.room").await?,
            bob.eval("LiveView.room").await?
        );
        assert_eq!(
            bob.text("#greeting").await?,
            "",
            "the greeting was Ada's only"
        );

        ada.type_text("input[name=message]", "Deploy at 5 pm")
            .await?;
        ada.click("form[data-liveview-function=notify_all] button[type=submit]")
            .await?;
        for page in [&ada, &bob] {
            page.wait_for_text("#notifications .notification", "Deploy at 5 pm")
                .await?;
        }
        // The form was not submitted natively: the page is still live.
        assert_eq!(
            ada.eval("LiveView.connected").await?,
            serde_json::json!(true)
        );
        bob.save_screenshot("quickstart-second-session").await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let shot = ada.save_screenshot("quickstart").await;
    if let Err(err) = result {
        panic!("quickstart in the browser: {err}");
    }
    shot.expect("the screenshot is saved");
}

/// Two quick start servers on two ports sharing one Redis: a notification
/// sent through one reaches a browser connected to the other.
#[tokio::test]
async fn a_broadcast_on_one_server_reaches_a_browser_on_the_other_through_redis() {
    use liveview::layer::RedisLayer;

    let prefix = format!("quickstart-e2e-{}:", liveview::template::room_uuid());
    let layer = |prefix: &str| {
        RedisLayer::builder("redis://127.0.0.1:6379")
            .prefix(prefix)
            .build()
            .expect("the Redis URL is valid")
    };
    let node_a = TestServer::start(
        LiveView::builder().channel_layer(layer(&prefix)),
        quickstart::routes(),
    )
    .await
    .expect("node A starts");
    let node_b = TestServer::start(
        LiveView::builder().channel_layer(layer(&prefix)),
        quickstart::routes(),
    )
    .await
    .expect("node B starts");
    assert_ne!(node_a.addr().port(), node_b.addr().port());

    let ada = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result = async {
        // Ada's page is served by node A and connected to it.
        ada.open(&node_a.url("/")).await?;
        // Bob's page is served by node B; he sends the notification there.
        let bob = ada.new_session().await?;
        bob.open(&node_b.url("/")).await?;
        // Wait until node A's layer subscribed to the broadcast group, so
        // the first publish is not missed (pub/sub is at-most-once).
        let redis = redis_subscribers(&format!("{prefix}broadcast")).await;
        assert!(redis >= 2, "both nodes subscribe to the broadcast group");

        bob.type_text("input[name=message]", "Hello from node B")
            .await?;
        bob.click("form[data-liveview-function=notify_all] button[type=submit]")
            .await?;
        for page in [&bob, &ada] {
            page.wait_for_text("#notifications .notification", "Hello from node B")
                .await?;
        }
        assert_eq!(
            ada.eval("document.querySelectorAll('#notifications .notification').length")
                .await?,
            serde_json::json!(1),
            "exactly once on node A's page"
        );
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let shot = ada.save_screenshot("quickstart-two-nodes").await;
    if let Err(err) = result {
        panic!("two quick start nodes on Redis: {err}");
    }
    shot.expect("the screenshot is saved");
}

/// Subscribers of a Redis channel (`PUBSUB NUMSUB`), waiting until there
/// are two for at most 15 s.
async fn redis_subscribers(channel: &str) -> i64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(15);
    loop {
        let mut stream = tokio::net::TcpStream::connect("127.0.0.1:6379")
            .await
            .expect("Redis answers on 127.0.0.1:6379");
        let command = format!(
            "*3\r\n$6\r\nPUBSUB\r\n$6\r\nNUMSUB\r\n${}\r\n{channel}\r\n",
            channel.len()
        );
        stream.write_all(command.as_bytes()).await.unwrap();
        let mut reply = vec![0; 512];
        let n = stream.read(&mut reply).await.unwrap();
        let reply = String::from_utf8_lossy(&reply[..n]).into_owned();
        let count = reply
            .lines()
            .filter_map(|l| l.strip_prefix(':'))
            .find_map(|v| v.trim().parse().ok())
            .unwrap_or(0);
        if count >= 2 || tokio::time::Instant::now() >= deadline {
            return count;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// A browser without WebSocket (taken away before the page's scripts run)
/// uses the HTTP transport: it greets, and a notification from a page on a
/// socket reaches it, and back.
#[tokio::test]
async fn quickstart_works_over_the_http_transport_beside_a_socket() {
    let server = TestServer::start(LiveView::builder(), quickstart::routes())
        .await
        .expect("the server starts");
    let ada = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result = async {
        ada.before_each_page("delete window.WebSocket;").await?;
        ada.open(&server.url("/")).await?;
        assert_eq!(
            ada.eval("document.documentElement.dataset.liveviewTransport")
                .await?,
            "sse"
        );
        ada.type_text("input[name=name]", "Ada").await?;
        ada.click("button[data-liveview-function=say_hello]")
            .await?;
        ada.wait_for_text("#greeting", "Hello, Ada!").await?;

        let bob = ada.new_session().await?;
        bob.open(&server.url("/")).await?;
        assert_eq!(
            bob.eval("document.documentElement.dataset.liveviewTransport")
                .await?,
            "websocket"
        );
        bob.type_text("input[name=message]", "From the socket")
            .await?;
        bob.click("form[data-liveview-function=notify_all] button[type=submit]")
            .await?;
        ada.type_text("input[name=message]", "From the stream")
            .await?;
        ada.click("form[data-liveview-function=notify_all] button[type=submit]")
            .await?;
        for page in [&ada, &bob] {
            page.wait(
                "['From the socket', 'From the stream'].every((t) => \
                 document.querySelector('#notifications').textContent.includes(t))",
            )
            .await?;
        }
        bob.close().await?;
        Ok::<_, Box<dyn std::error::Error>>(())
    }
    .await;
    let shot = ada.save_screenshot("quickstart-http-transport").await;
    if let Err(err) = result {
        panic!("quickstart over the HTTP transport: {err}");
    }
    shot.expect("the screenshot is saved");
}
