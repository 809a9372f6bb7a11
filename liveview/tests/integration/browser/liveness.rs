//! The connection behaves well: a server that accepts and closes meets a
//! growing backoff (at least 30 s after a 1008), a dead connection is
//! noticed and replaced, an expired session stops the reconnects, and the
//! numbering of group frames survives a restart of the server's numbering
//! and the gap between a page's render and its socket's join.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use axum::Router;
use axum::extract::WebSocketUpgrade;
use axum::extract::ws::{CloseFrame, Message};
use axum::response::Html;
use axum::routing::get;
use liveview::LiveView;
use liveview::testing::TestServer;
use liveview_testing::browser::Browser;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::replay::finish;
use super::{browser_test, page_html};

/// Records every `liveview:disconnected` and `liveview:session-expired`;
/// `Math.random` returns 1 so that each retry waits its backoff's ceiling.
const RECORDER: &str = r##"
<div id="session-expired" hidden>Your session expired. <a href="/">Sign in again</a></div>
<script>
  Math.random = () => 1;
  window.__closes = [];
  window.__expired = 0;
  document.addEventListener("liveview:disconnected", (e) => __closes.push(e.detail));
  document.addEventListener("liveview:session-expired", () => __expired++);
</script>
"##;

/// A server whose socket endpoint accepts every upgrade and closes it at
/// once with `code`; counts the upgrades.
async fn closing_server(code: u16) -> (SocketAddr, Arc<AtomicUsize>) {
    let upgrades = Arc::new(AtomicUsize::new(0));
    let count = upgrades.clone();
    let page = page_html(RECORDER, Some("closing"));
    let app = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            liveview::assets::SCRIPT_PATH_MIN,
            get(|| async {
                (
                    [(axum::http::header::CONTENT_TYPE, "text/javascript")],
                    liveview::assets::SCRIPT_MIN,
                )
            }),
        )
        .route(
            "/ws/liveview/{room}/",
            get(move |ws: WebSocketUpgrade| {
                count.fetch_add(1, Ordering::SeqCst);
                async move {
                    ws.on_upgrade(move |mut socket| async move {
                        let frame = CloseFrame {
                            code,
                            reason: "".into(),
                        };
                        let _ = socket.send(Message::Close(Some(frame))).await;
                        while let Some(Ok(_)) = socket.recv().await {}
                    })
                }
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
    let addr = listener.local_addr().expect("bound");
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, upgrades)
}

async fn with_closing_server(
    name: &str,
    code: u16,
    test: impl AsyncFnOnce(&Browser, &AtomicUsize) -> super::TestResult,
) {
    let (addr, upgrades) = closing_server(code).await;
    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result = match browser.goto(&format!("http://{addr}/")).await {
        Ok(()) => test(&browser, &upgrades).await,
        Err(err) => Err(err.into()),
    };
    finish(name, &browser, result).await;
}

#[tokio::test]
async fn a_server_that_accepts_then_closes_meets_a_growing_backoff() {
    with_closing_server(
        "a_server_that_accepts_then_closes_meets_a_growing_backoff",
        1013,
        async |b, _| {
            b.wait("__closes.length >= 3").await?;
            let closes = b.eval("__closes.slice(0, 3)").await?;
            let room = "closing";
            assert_eq!(
                closes,
                json!([
                    {"room": room, "code": 1013, "retryIn": 1000},
                    {"room": room, "code": 1013, "retryIn": 2000},
                    {"room": room, "code": 1013, "retryIn": 4000},
                ])
            );
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_close_with_1008_waits_at_least_30_seconds() {
    with_closing_server(
        "a_close_with_1008_waits_at_least_30_seconds",
        1008,
        async |b, upgrades| {
            b.wait("__closes.length === 1").await?;
            assert_eq!(b.eval("__closes[0].code").await?, json!(1008));
            let wait = b.eval("__closes[0].retryIn").await?;
            assert!(wait.as_f64().is_some_and(|ms| ms >= 30_000.0), "{wait}");
            // Coming back to the tab does not cut the wait short.
            b.execute(
                "window.dispatchEvent(new Event('online')); LiveView.connect();",
                vec![],
            )
            .await?;
            assert_eq!(b.eval("LiveView.state").await?, json!("closed"));
            assert_eq!(upgrades.load(Ordering::SeqCst), 1);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn an_expired_session_stops_the_reconnects_and_shows_the_prompt() {
    with_closing_server(
        "an_expired_session_stops_the_reconnects_and_shows_the_prompt",
        4401,
        async |b, upgrades| {
            b.wait("__expired === 1").await?;
            b.wait(r#"!document.getElementById("session-expired").hidden"#)
                .await?;
            assert_eq!(
                b.eval("__closes").await?,
                json!([{"room": "closing", "code": 4401, "retryIn": null}])
            );
            b.execute("LiveView.connect(); LiveView.call('anything');", vec![])
                .await?;
            assert_eq!(b.eval("LiveView.state").await?, json!("closed"));
            assert_eq!(b.eval("__expired").await?, json!(1));
            assert_eq!(upgrades.load(Ordering::SeqCst), 1);
            Ok(())
        },
    )
    .await;
}

/// A TCP proxy in front of a server whose links can be frozen: the bytes
/// stop flowing both ways, the sockets stay open, as with a peer that
/// vanished without a FIN. Links made after a freeze work.
struct Proxy {
    addr: SocketAddr,
    links: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>>,
}

impl Proxy {
    async fn start(to: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("a free port");
        let addr = listener.local_addr().expect("bound");
        let links: Arc<std::sync::Mutex<Vec<Arc<AtomicBool>>>> = Arc::default();
        let all = links.clone();
        tokio::spawn(async move {
            while let Ok((inbound, _)) = listener.accept().await {
                let frozen = Arc::new(AtomicBool::new(false));
                all.lock().expect("not poisoned").push(frozen.clone());
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(to).await else {
                        return;
                    };
                    let (ri, wi) = inbound.into_split();
                    let (ro, wo) = outbound.into_split();
                    tokio::join!(pump(ri, wo, frozen.clone()), pump(ro, wi, frozen));
                });
            }
        });
        Self { addr, links }
    }

    fn freeze(&self) {
        for link in self.links.lock().expect("not poisoned").iter() {
            link.store(true, Ordering::SeqCst);
        }
    }
}

async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    frozen: Arc<AtomicBool>,
) {
    let mut buf = [0u8; 8192];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if frozen.load(Ordering::SeqCst) {
            // Hold both sockets open and pass nothing on, ever.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

#[tokio::test]
async fn a_dead_connection_is_noticed_and_replaced() {
    let body = r##"
<script>window.webSocketConfig = { heartbeat: 200, deadAfter: 600 };</script>
<button id="slow" data-action="click->page#run" data-liveview-function="b_slow_forever">slow</button>
"##;
    browser_test("a_dead_connection_is_noticed_and_replaced", body, async |page| {
        let proxy = Proxy::start(page.addr).await;
        // The page's origin is now the proxy's: the server must allow it
        // (the origin check compares the port too).
        page.kill_server();
        let builder = LiveView::builder().allowed_origins([format!("http://{}", proxy.addr)]);
        page.server = Some(TestServer::start_on(builder, page.routes.clone(), page.addr).await?);
        let b = &page.browser;
        b.open(&format!("http://{}/", proxy.addr)).await?;
        // A quiet, healthy connection is probed and answered, and stays.
        b.execute(
            r#"window.__pongs = 0;
               LiveView.socket.addEventListener("message", (e) => { if (JSON.parse(e.data).pong) __pongs++; });"#,
            vec![],
        )
        .await?;
        b.wait("__pongs >= 3").await?;
        assert_eq!(b.eval("__lv.connects").await?, json!(1));
        assert_eq!(b.eval("__lv.errors").await?, json!([]));

        // The link dies silently with a call in flight.
        b.click("#slow").await?;
        b.wait("LiveView.inflight === 1").await?;
        proxy.freeze();
        b.wait("__lv.lost.length === 1 && __lv.connects === 2").await?;
        assert_eq!(b.eval("__lv.lost[0].function").await?, json!("b_slow_forever"));
        b.wait_connected().await?;
        page.assert_no_page_errors().await
    })
    .await;
}

#[tokio::test]
async fn a_frame_from_a_new_epoch_is_applied_and_resyncs() {
    let body = r##"
<p id="out"></p>
<script>
  window.__resyncs = 0;
  document.addEventListener("liveview:resync", () => __resyncs++);
</script>
"##;
    browser_test(
        "a_frame_from_a_new_epoch_is_applied_and_resyncs",
        body,
        async |page| {
            let b = &page.browser;
            let shown = r##"document.getElementById("out").textContent"##;
            let apply = |seq: u32, epoch: &str, text: &str| {
                format!(
                    r##"LiveView.apply({{group: "g", seq: {seq}, epoch: "{epoch}", target: "#out", html: "{text}"}})"##
                )
            };
            b.execute(&apply(5, "one", "five"), vec![]).await?;
            b.execute(&apply(5, "one", "five again"), vec![]).await?;
            b.execute(&apply(4, "one", "four"), vec![]).await?;
            assert_eq!(b.eval(shown).await?, json!("five"), "duplicates dropped");
            assert_eq!(b.eval("__resyncs").await?, json!(0));
            // The group's numbering restarted.
            b.execute(&apply(1, "two", "one of two"), vec![]).await?;
            assert_eq!(b.eval(shown).await?, json!("one of two"));
            assert_eq!(b.eval("__resyncs").await?, json!(1));
            b.execute(&apply(1, "two", "again"), vec![]).await?;
            assert_eq!(b.eval(shown).await?, json!("one of two"));
            let url = b.eval("decodeURIComponent(LiveView.url)").await?;
            assert!(url.as_str().is_some_and(|u| u.ends_with("?resume=g:1:two")), "{url}");
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn the_first_connect_resumes_from_the_rendered_position() {
    let page = page_html(r#"<p id="out"></p>"#, Some("positioned")).replacen(
        "<script src=",
        r#"<script data-liveview-resume="broadcast:7:e1,room_positioned:3:e2" src="#,
        1,
    );
    let routes = Router::new().route("/", get(move || async move { Html(page) }));
    let server = TestServer::start(LiveView::builder(), routes)
        .await
        .expect("the test server starts");
    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let b = &browser;
    let result = async {
        b.goto(&server.url("/")).await?;
        b.wait("LiveView.socket").await?;
        let url = b.eval("decodeURIComponent(LiveView.socket.url)").await?;
        assert!(
            url.as_str()
                .is_some_and(|u| u.ends_with("?resume=broadcast:7:e1,room_positioned:3:e2")),
            "{url}"
        );
        // What the page was rendered with is not applied again.
        b.execute(
            r##"LiveView.apply({group: "broadcast", seq: 7, epoch: "e1", target: "#out", html: "old"});
                LiveView.apply({group: "broadcast", seq: 8, epoch: "e1", target: "#out", html: "new"});"##,
            vec![],
        )
        .await?;
        assert_eq!(b.eval(r##"document.getElementById("out").textContent"##).await?, json!("new"));
        Ok(())
    }
    .await;
    finish(
        "the_first_connect_resumes_from_the_rendered_position",
        b,
        result,
    )
    .await;
}
