//! The browser client in a real headless Chromium, against the real router.
//!
//! Every test serves its own page (the body below, wrapped in
//! [`page_html`]) with the handlers of these modules, opens it in Chromium,
//! and waits for conditions in the page: never for a fixed time. Each test
//! leaves a screenshot in `target/screenshots/<test>.png`, also when it
//! fails.

mod actions;
mod csp;
mod django25;
mod forms;
mod guards;
mod history;
mod hooks;
mod liveness;
mod loading;
mod morph;
mod navigation;
mod observers;
mod presence;
mod reconnect;
mod recovery;
mod replay;
mod rooms;
mod scripts;
mod server_keys;
mod transports;
mod uploads;

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::Router;
use axum::extract::Query;
use axum::response::Html;
use axum::routing::get;
use liveview::testing::TestServer;
use liveview::{Consumer, Content, LiveView, Update, liveview_handler};
use liveview_testing::browser::Browser;
use serde_json::{Value, json};

/// What a browser test returns.
pub type TestResult = Result<(), Box<dyn std::error::Error>>;

/// Appends `<li>{"form": …, "data": …}</li>` to `#log`: what the handler
/// saw, for the test to read back.
#[liveview_handler("b_log")]
async fn b_log(consumer: &Consumer, content: Content) -> liveview::Result {
    let seen = json!({"form": content.form.as_map(), "data": content.data.as_map()});
    let item = format!("<li>{}</li>", liveview::escape(&seen.to_string()));
    consumer.send(Update::new("#log").html(item).append())?;
    Ok(())
}

/// A full page around `body`, in `room` (`None`: no `data-room`, the
/// client picks one).
pub fn page_html(body: &str, room: Option<&str>) -> String {
    let room = room
        .map(|r| format!(r#" data-room="{r}""#))
        .unwrap_or_default();
    format!(
        r##"<!doctype html>
<html lang="en"{room}>
<head>
<meta charset="utf-8">
<title>LiveView browser test</title>
<style>
  body {{ font-family: sans-serif; margin: 1rem; }}
  button, input, select, textarea {{ font: inherit; margin: .2rem; }}
  #log {{ font-family: monospace; font-size: 12px; }}
  #no-connection {{ background: #b91c1c; color: white; padding: .3rem; }}
  .liveview-loading {{ opacity: .5; }}
</style>
<script>
  window.__errors = [];
  window.addEventListener("error", (e) => __errors.push(String(e.message)));
  window.__lv = {{ errors: [], lost: [] }};
  document.addEventListener("liveview:error", (e) => __lv.errors.push(e.detail));
  document.addEventListener("liveview:call-lost", (e) => __lv.lost.push(e.detail));
  document.addEventListener("liveview:connected", () => __lv.connects = (__lv.connects || 0) + 1);
  document.addEventListener("liveview:disconnected", () => __lv.disconnects = (__lv.disconnects || 0) + 1);
  window.addEventListener("pageshow", (e) => __lv.persisted = e.persisted);
</script>
</head>
<body data-controller="page">
<div id="no-connection" hidden>Connection lost. Reconnecting…</div>
{body}
<ul id="log"></ul>
{script}
</body>
</html>"##,
        script = liveview::template::script_tag(),
    )
}

/// `/` serves the page; `?room=` picks its room (`?room=none`: no
/// `data-room`), otherwise every load gets a fresh one.
pub fn page_routes(body: &str) -> Router {
    let body = body.to_owned();
    Router::new().route(
        "/",
        get(move |Query(query): Query<HashMap<String, String>>| {
            let body = body.clone();
            async move {
                let room = match query.get("room").map(String::as_str) {
                    Some("none") => None,
                    Some(room) => Some(room.to_owned()),
                    None => Some(liveview::template::room_uuid()),
                };
                Html(page_html(&body, room.as_deref()))
            }
        }),
    )
}

/// A test's server and browser.
pub struct Page {
    /// The browser, with the page open.
    pub browser: Browser,
    server: Option<TestServer>,
    routes: Router,
    addr: SocketAddr,
}

impl Page {
    /// The served URL of `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Kill the server as if its process died.
    pub fn kill_server(&mut self) {
        self.server.take().expect("the server is running").kill();
    }

    /// Start the server again on the same address.
    pub async fn restart_server(&mut self) {
        let server = TestServer::start_on(LiveView::builder(), self.routes.clone(), self.addr)
            .await
            .expect("the server restarts on its port");
        self.server = Some(server);
    }

    /// Every `#log` entry so far.
    pub async fn log(&self) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        let value = self
            .browser
            .eval(r##"Array.from(document.querySelectorAll("#log li"), (li) => JSON.parse(li.textContent))"##)
            .await?;
        Ok(serde_json::from_value(value)?)
    }

    /// Wait until `#log` has `n` entries, and return them.
    pub async fn wait_log(&self, n: usize) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
        self.browser
            .wait(&format!(
                r##"document.querySelectorAll("#log li").length >= {n}"##
            ))
            .await?;
        self.log().await
    }

    /// The `data.which` of every `#log` entry.
    pub async fn whiches(&self) -> Result<Vec<String>, Box<dyn std::error::Error>> {
        Ok(self
            .log()
            .await?
            .iter()
            .map(|entry| entry["data"]["which"].as_str().unwrap_or("").to_owned())
            .collect())
    }

    /// Wait until the last `#log` entry has `data.which == which`, with `n`
    /// entries in all; return that entry.
    pub async fn wait_call(
        &self,
        n: usize,
        which: &str,
    ) -> Result<Value, Box<dyn std::error::Error>> {
        let log = self.wait_log(n).await?;
        assert_eq!(log.len(), n, "expected {n} calls, got {log:?}");
        let last = log.last().cloned().unwrap_or_default();
        assert_eq!(
            last["data"]["which"], which,
            "unexpected last call in {log:?}"
        );
        Ok(last)
    }

    /// No uncaught error was reported in the page.
    pub async fn assert_no_page_errors(&self) -> TestResult {
        let errors = self.browser.eval("window.__errors").await?;
        assert_eq!(errors, json!([]), "uncaught errors in the page");
        Ok(())
    }
}

/// Serve `body`, open it in a fresh Chromium, wait for the socket, run
/// `test`, and save the screenshot `name` whatever the outcome.
pub async fn browser_test(name: &str, body: &str, test: impl AsyncFnOnce(&mut Page) -> TestResult) {
    browser_test_routes(name, page_routes(body), test).await;
}

/// [`browser_test`] with the page served by `routes` (at `/`).
pub async fn browser_test_routes(
    name: &str,
    routes: Router,
    test: impl AsyncFnOnce(&mut Page) -> TestResult,
) {
    let server = TestServer::start(LiveView::builder(), routes.clone())
        .await
        .expect("the test server starts");
    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let addr = server.addr();
    let mut page = Page {
        browser,
        server: Some(server),
        routes,
        addr,
    };
    let result = match page.browser.open(&page.url("/")).await {
        Ok(()) => test(&mut page).await,
        Err(err) => Err(err.into()),
    };
    let shot = page.browser.save_screenshot(name).await;
    if let Err(err) = result {
        panic!("{name} failed: {err}");
    }
    shot.expect("the screenshot is saved");
}
