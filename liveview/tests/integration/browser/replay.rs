//! Replay after reconnect: a page that lost its socket gets what was sent
//! meanwhile, in order and exactly once, whether it comes back to the same
//! node or to a node restarted behind a shared Redis log; a call in flight
//! when the socket died is reported, not re-run; when more was missed than
//! the log keeps, the page is told to resync and reloads its live parts.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use liveview::layer::ReplayConfig;
use liveview::testing::TestServer;
use liveview::{Consumer, Content, LiveView, LiveViewBuilder, Update, liveview_handler};
use liveview_testing::browser::{Browser, js_string};
use serde_json::json;

use super::{TestResult, page_routes};

/// Reconnection backs off (with jitter) while the server is down: allow
/// for a few attempts.
const RECONNECT: Duration = Duration::from_secs(40);

const DISCONNECTED: &str = r##"document.documentElement.dataset.liveviewConnected === "false""##;
const CONNECTED: &str = r##"document.documentElement.dataset.liveviewConnected === "true""##;

/// Broadcasts go to `#feed`, room sends to `#room`; every init call adds
/// an entry to `#inits`; `#probe` and `#probe-all` take frames that only
/// check delivery.
pub(super) const BODY: &str = r##"
<button id="slow" data-action="click->page#run" data-liveview-function="b_slow_forever">slow</button>
<div id="live" data-liveview-init="b_replay_init" data-liveview-reinit></div>
<p id="probe"></p>
<p id="probe-all"></p>
<ul id="feed"></ul>
<ul id="room"></ul>
<ul id="inits"></ul>
<script>
  window.__resyncs = 0;
  document.addEventListener("liveview:resync", () => window.__resyncs++);
</script>
"##;

/// What a page reloads its live parts with: here, a mark in `#inits`.
#[liveview_handler("b_replay_init")]
async fn b_replay_init(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(Update::new("#inits").html("<li>init</li>").append())?;
    Ok(())
}

/// A call whose `done` never comes while the test runs.
#[liveview_handler("b_slow_forever")]
async fn b_slow_forever(_consumer: &Consumer, _content: Content) -> liveview::Result {
    tokio::time::sleep(Duration::from_secs(600)).await;
    Ok(())
}

fn item(list: &'static str, text: &str) -> Update {
    Update::new(list).html(format!("<li>{text}</li>")).append()
}

/// `text` as a broadcast to `#feed` and as a room send to `#room`.
async fn send_both(live: &LiveView, room: &str, text: &str) {
    let broadcaster = live.broadcaster();
    broadcaster
        .broadcast(item("#feed", text))
        .await
        .expect("broadcast published");
    broadcaster
        .send_to_room(room, item("#room", text))
        .await
        .expect("room send published");
}

/// The texts of the items of `list` (`#feed`, `#room`, `#inits`).
async fn items(browser: &Browser, list: &str) -> Result<Vec<String>, Box<dyn std::error::Error>> {
    browser
        .texts(&format!("{list} li"))
        .await
        .map_err(Into::into)
}

/// Wait until `list` has `n` items.
async fn wait_items(browser: &Browser, list: &str, n: usize, timeout: Duration) -> TestResult {
    browser
        .wait_for(
            &format!(
                "document.querySelectorAll({}).length === {n}",
                js_string(&format!("{list} li"))
            ),
            timeout,
        )
        .await
        .map_err(Into::into)
}

/// `["0", "1", …, "n"]` followed by `then`.
fn expected(n: usize, then: &[&str]) -> Vec<String> {
    (0..=n)
        .map(|i| i.to_string())
        .chain(then.iter().map(|s| (*s).to_owned()))
        .collect()
}

/// Poll `condition` every 10 ms until it holds, for at most 15 s.
pub(super) async fn until<F, Fut>(what: &str, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while !condition().await {
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting until {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Save the screenshot `name` whatever the outcome, then fail on an error.
pub(super) async fn finish(name: &str, browser: &Browser, result: TestResult) {
    let shot = browser.save_screenshot(name).await;
    if let Err(err) = result {
        panic!("{name} failed: {err}");
    }
    shot.expect("the screenshot is saved");
}

/// A port nothing listens on: sockets to it are refused at once.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Close the page's socket and keep it from reconnecting (its retries go to
/// a closed port) until [`let_reconnect`].
async fn cut(browser: &Browser) -> TestResult {
    browser
        .execute(
            "window.webSocketConfig = { host: arguments[0] }; LiveView.socket.close();",
            vec![json!(format!("127.0.0.1:{}", closed_port()))],
        )
        .await?;
    browser.wait(DISCONNECTED).await?;
    Ok(())
}

/// Undo [`cut`] and wait until the page is connected again.
async fn let_reconnect(browser: &Browser) -> TestResult {
    browser
        .execute("delete window.webSocketConfig; LiveView.connect();", vec![])
        .await?;
    browser.wait_for(CONNECTED, RECONNECT).await?;
    Ok(())
}

/// Serve `routes` with the app of `builder` and open `/?room=<room>` in
/// a fresh Chromium.
async fn open(builder: LiveViewBuilder, room: &str) -> (TestServer, Browser, Router) {
    let routes = page_routes(BODY);
    let server = TestServer::start(builder, routes.clone())
        .await
        .expect("the test server starts");
    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    browser
        .open(&server.url(&format!("/?room={room}")))
        .await
        .expect("the page connects");
    (server, browser, routes)
}

#[tokio::test]
async fn a_page_that_lost_its_socket_gets_the_missed_frames_in_order_once() {
    const N: usize = 8;
    let name = "a_page_that_lost_its_socket_gets_the_missed_frames_in_order_once";
    let room = liveview::template::room_uuid();
    let (server, browser, _) = open(LiveView::builder(), &room).await;
    let b = &browser;
    let result: TestResult = async {
        let live = server.live();
        wait_items(b, "#inits", 1, b.timeout()).await?;
        send_both(live, &room, "0").await;
        wait_items(b, "#feed", 1, b.timeout()).await?;
        wait_items(b, "#room", 1, b.timeout()).await?;

        cut(b).await?;
        until("the server saw the socket close", || async { live.connections() == 0 }).await;
        for i in 1..=N {
            send_both(live, &room, &i.to_string()).await;
        }
        let_reconnect(b).await?;
        let url = b.eval("LiveView.socket.url").await?;
        // `GROUP:SEQ:EPOCH` per group, `:` and `,` encoded.
        let url = url.as_str().unwrap_or_default();
        let (_, resume) = url.split_once("resume=").unwrap_or_default();
        let entries: Vec<&str> = resume.split("%2C").collect();
        assert!(
            entries.len() == 2
                && entries[0].starts_with("broadcast%3A1%3A")
                && entries[1].starts_with(&format!("room_{room}%3A1%3A")),
            "the page asks for what came after what it applied: {url}"
        );

        wait_items(b, "#feed", N + 1, b.timeout()).await?;
        wait_items(b, "#room", N + 1, b.timeout()).await?;
        send_both(live, &room, "live").await;
        wait_items(b, "#feed", N + 2, b.timeout()).await?;
        wait_items(b, "#room", N + 2, b.timeout()).await?;
        assert_eq!(items(b, "#feed").await?, expected(N, &["live"]));
        assert_eq!(items(b, "#room").await?, expected(N, &["live"]));

        // A frame the page applied already (a replay overlapping live
        // frames) is dropped.
        b.execute(
            r##"LiveView.apply({target: "#feed", html: "<li>again</li>", append: true, seq: 3, group: "broadcast"});"##,
            vec![],
        )
        .await?;
        assert_eq!(items(b, "#feed").await?, expected(N, &["live"]));

        assert_eq!(b.eval("window.__resyncs").await?, json!(0));
        assert_eq!(items(b, "#inits").await?, ["init"], "no reload of the live parts");
        assert_eq!(b.eval("window.__errors").await?, json!([]));
        Ok(())
    }
    .await;
    finish(name, b, result).await;
}

#[tokio::test]
async fn a_gap_larger_than_the_log_fires_resync_and_runs_init_again() {
    let name = "a_gap_larger_than_the_log_fires_resync_and_runs_init_again";
    let room = liveview::template::room_uuid();
    let builder = LiveView::builder().replay(Some(ReplayConfig::default().with_frames(2)));
    let (server, browser, _) = open(builder, &room).await;
    let b = &browser;
    let result: TestResult = async {
        let live = server.live();
        wait_items(b, "#inits", 1, b.timeout()).await?;
        let broadcaster = live.broadcaster();
        broadcaster.send_to_room(&room, item("#room", "0")).await?;
        wait_items(b, "#room", 1, b.timeout()).await?;

        cut(b).await?;
        until("the server saw the socket close", || async {
            live.connections() == 0
        })
        .await;
        for i in 1..=5 {
            broadcaster
                .send_to_room(&room, item("#room", &i.to_string()))
                .await?;
        }
        let_reconnect(b).await?;
        b.wait("window.__resyncs === 1").await?;
        wait_items(b, "#inits", 2, b.timeout()).await?;

        // Live frames go on after the resync (the numbering is taken
        // afresh), and the five missed ones were not replayed.
        broadcaster
            .send_to_room(&room, item("#room", "live"))
            .await?;
        wait_items(b, "#room", 2, b.timeout()).await?;
        assert_eq!(items(b, "#room").await?, ["0", "live"]);
        assert_eq!(b.eval("window.__resyncs").await?, json!(1));
        assert_eq!(b.eval("window.__errors").await?, json!([]));
        Ok(())
    }
    .await;
    finish(name, b, result).await;
}

#[cfg(feature = "redis")]
pub(super) mod shared {
    //! Two nodes sharing one Redis.

    use std::net::TcpStream;

    use liveview::layer::RedisLayer;

    use super::*;

    pub(crate) const REDIS: &str = "redis://127.0.0.1:6379";

    /// An app on the shared Redis under `prefix`.
    pub(crate) fn on_redis(builder: LiveViewBuilder, prefix: &str) -> LiveViewBuilder {
        assert!(
            TcpStream::connect("127.0.0.1:6379").is_ok(),
            "no Redis on 127.0.0.1:6379 (scripts/ensure-redis.sh starts one)"
        );
        let layer = RedisLayer::builder(REDIS)
            .prefix(prefix)
            .build()
            .expect("the Redis layer builds");
        builder.channel_layer(layer)
    }

    /// A prefix no other test uses.
    pub(crate) fn unique_prefix() -> String {
        format!("lvbrowser:{}:", uuid::Uuid::new_v4().simple())
    }

    /// Send probes through `from` (a room send to `#probe`, a broadcast to
    /// `#probe-all`) until the page shows both: the page's node then gets
    /// both groups from the other node.
    pub(crate) async fn wait_delivered(
        browser: &Browser,
        from: &LiveView,
        room: &str,
    ) -> TestResult {
        let broadcaster = from.broadcaster();
        for attempt in 0..100 {
            let text = format!("probe {attempt}");
            broadcaster
                .send_to_room(room, Update::new("#probe").html(text.as_str()))
                .await?;
            broadcaster
                .broadcast(Update::new("#probe-all").html(text.as_str()))
                .await?;
            let condition = format!(
                "document.getElementById('probe').textContent === {t} && \
                 document.getElementById('probe-all').textContent === {t}",
                t = js_string(&text)
            );
            if browser
                .wait_for(&condition, Duration::from_millis(300))
                .await
                .is_ok()
            {
                return Ok(());
            }
        }
        Err("frames from the other node never reached the page".into())
    }

    #[tokio::test]
    async fn a_page_whose_node_died_gets_what_another_node_sent_meanwhile() {
        const N: usize = 6;
        let name = "a_page_whose_node_died_gets_what_another_node_sent_meanwhile";
        let room = liveview::template::room_uuid();
        let prefix = unique_prefix();
        let (node_a, browser, routes) = open(on_redis(LiveView::builder(), &prefix), &room).await;
        let node_b = TestServer::start(on_redis(LiveView::builder(), &prefix), Router::new())
            .await
            .expect("node B starts");
        let addr = node_a.addr();
        let b = &browser;
        let mut node_a = Some(node_a);
        let result: TestResult = async {
            wait_items(b, "#inits", 1, b.timeout()).await?;
            wait_delivered(b, node_b.live(), &room).await?;
            send_both(node_b.live(), &room, "0").await;
            wait_items(b, "#feed", 1, b.timeout()).await?;
            wait_items(b, "#room", 1, b.timeout()).await?;

            // A call in flight when the node dies is reported, not re-run.
            b.click("#slow").await?;
            b.wait("LiveView.inflight === 1").await?;
            node_a.take().expect("node A runs").kill();
            b.wait(DISCONNECTED).await?;
            b.wait("__lv.lost.length === 1").await?;
            let lost = b.eval("__lv.lost[0]").await?;
            assert_eq!(lost["function"], "b_slow_forever");
            assert!(lost["ref"].as_u64().is_some_and(|r| r >= 1), "{lost}");

            for i in 1..=N {
                send_both(node_b.live(), &room, &i.to_string()).await;
            }
            let restarted =
                TestServer::start_on(on_redis(LiveView::builder(), &prefix), routes, addr)
                    .await
                    .expect("node A restarts on its port");
            node_a = Some(restarted);
            b.wait_for(CONNECTED, RECONNECT).await?;

            let got = wait_items(b, "#feed", N + 1, b.timeout()).await;
            if let Err(err) = got {
                let resyncs = b.eval("window.__resyncs").await?;
                return Err(format!(
                    "the missed broadcasts did not come ({err}); resyncs: {resyncs}, feed: {:?}",
                    items(b, "#feed").await?
                )
                .into());
            }
            wait_items(b, "#room", N + 1, b.timeout()).await?;
            wait_delivered(b, node_b.live(), &room).await?;
            send_both(node_b.live(), &room, "live").await;
            wait_items(b, "#feed", N + 2, b.timeout()).await?;
            wait_items(b, "#room", N + 2, b.timeout()).await?;
            assert_eq!(items(b, "#feed").await?, expected(N, &["live"]));
            assert_eq!(items(b, "#room").await?, expected(N, &["live"]));
            assert_eq!(b.eval("window.__resyncs").await?, json!(0));
            assert_eq!(
                items(b, "#inits").await?,
                ["init"],
                "no reload of the live parts"
            );
            assert_eq!(
                b.eval("__lv.lost.length").await?,
                json!(1),
                "nothing re-run"
            );
            assert_eq!(b.eval("window.__errors").await?, json!([]));
            Ok(())
        }
        .await;
        finish(name, b, result).await;
        drop(node_a);
    }
}
