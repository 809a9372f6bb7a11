//! The HTTP transport in Chromium: a browser without WebSocket, and a
//! socket that a proxy cuts right after it opened, fall back to Server-Sent
//! Events and POSTs; pages on either transport share their room.

use std::net::SocketAddr;

use liveview::LiveView;
use liveview::testing::TestServer;
use liveview_testing::browser::Browser;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{TestResult, page_routes};

const BODY: &str = r##"
<button id="call" data-action="click->page#run" data-liveview-function="b_log" data-data-which="one">call</button>
<form id="say" data-action="submit->page#run" data-liveview-function="room_say">
  <input name="text"><button type="submit">say</button>
</form>
<div id="room"></div>
"##;

const TRANSPORT: &str = "document.documentElement.dataset.liveviewTransport";

/// Run `test` with a browser and the server, saving the screenshot `name`.
async fn run(
    name: &str,
    server: &TestServer,
    browser: Browser,
    test: impl AsyncFnOnce(&Browser) -> TestResult,
) {
    let _ = server;
    let result = test(&browser).await;
    let shot = browser.save_screenshot(name).await;
    if let Err(err) = result {
        panic!("{name} failed: {err}");
    }
    shot.expect("the screenshot is saved");
}

#[tokio::test]
async fn a_browser_without_websocket_uses_the_http_transport() {
    let server = TestServer::start(LiveView::builder(), page_routes(BODY))
        .await
        .expect("the test server starts");
    let browser = Browser::start().await.expect("Chromium starts");
    browser
        .before_each_page("delete window.WebSocket;")
        .await
        .expect("the script is added");
    let url = server.url("/?room=transports");
    run(
        "a_browser_without_websocket_uses_the_http_transport",
        &server,
        browser,
        async |sse| {
            sse.open(&url).await?;
            assert_eq!(sse.eval("typeof WebSocket").await?, "undefined");
            assert_eq!(sse.eval(TRANSPORT).await?, "sse");
            assert_eq!(sse.eval("LiveView.transport").await?, "sse");
            sse.click("#call").await?;
            sse.wait(r##"document.querySelectorAll("#log li").length === 1"##)
                .await?;

            // A page on a socket in the same room: each reaches the other.
            let socket = sse.new_session().await?;
            socket.open(&url).await?;
            assert_eq!(socket.eval(TRANSPORT).await?, "websocket");
            socket.type_text("#say input", "from the socket").await?;
            socket.click("#say button").await?;
            sse.wait_for_text("#room", "from the socket").await?;
            sse.clear("#say input").await?;
            sse.type_text("#say input", "from the stream").await?;
            sse.click("#say button").await?;
            socket.wait_for_text("#room", "from the stream").await?;
            // Loading states end: every call got its `done`.
            sse.wait("LiveView.inflight === 0").await?;
            let metrics = server.live().metrics_text();
            assert!(metrics.contains("liveview_transport_connections{transport=\"sse\"} 1"));
            assert!(metrics.contains("liveview_transport_connections{transport=\"websocket\"} 1"));
            socket.close().await?;
            Ok(())
        },
    )
    .await;
}

/// A proxy that passes plain HTTP through, but closes every WebSocket
/// right after the server accepted it, as some corporate proxies do.
async fn cutting_proxy(listener: TcpListener, server: SocketAddr) {
    loop {
        let Ok((mut client, _)) = listener.accept().await else {
            return;
        };
        tokio::spawn(async move {
            let Ok(mut upstream) = TcpStream::connect(server).await else {
                return;
            };
            // Read the request head to see whether it is an upgrade.
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") {
                match client.read(&mut byte).await {
                    Ok(1) => head.push(byte[0]),
                    _ => return,
                }
            }
            let upgrade = String::from_utf8_lossy(&head)
                .to_ascii_lowercase()
                .contains("upgrade: websocket");
            if upstream.write_all(&head).await.is_err() {
                return;
            }
            if upgrade {
                // Pass the server's 101 on, then cut both sides.
                let mut answer = Vec::new();
                while !answer.ends_with(b"\r\n\r\n") {
                    match upstream.read(&mut byte).await {
                        Ok(1) => answer.push(byte[0]),
                        _ => return,
                    }
                }
                let _ = client.write_all(&answer).await;
                return;
            }
            let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
        });
    }
}

#[tokio::test]
async fn a_socket_cut_by_a_proxy_right_after_opening_falls_back() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let proxy = listener.local_addr().unwrap();
    let server = TestServer::start(
        LiveView::builder().allowed_origins([format!("http://{proxy}")]),
        page_routes(BODY),
    )
    .await
    .expect("the test server starts");
    tokio::spawn(cutting_proxy(listener, server.addr()));
    let browser = Browser::start().await.expect("Chromium starts");
    let url = format!("http://{proxy}/");
    run(
        "a_socket_cut_by_a_proxy_right_after_opening_falls_back",
        &server,
        browser,
        async |page| {
            page.goto(&url).await?;
            page.wait_for(
                &format!("{TRANSPORT} === 'sse' && LiveView.connected"),
                std::time::Duration::from_secs(30),
            )
            .await?;
            page.click("#call").await?;
            page.wait(r##"document.querySelectorAll("#log li").length === 1"##)
                .await?;
            // The next page of this tab goes straight to the HTTP
            // transport: its first connection is the stream.
            page.goto(&url).await?;
            page.wait(&format!("{TRANSPORT} === 'sse' && LiveView.connected"))
                .await?;
            assert_eq!(page.eval("__lv.connects").await?, 1);
            Ok(())
        },
    )
    .await;
}
