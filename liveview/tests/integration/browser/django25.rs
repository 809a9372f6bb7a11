//! A page written for Django LiveView 2.5, unchanged: it loads
//! `/static/liveview/liveview.min.js` by its upstream path, has no room of
//! its own, uses keyboard maps, and its handlers (written as the Python ones
//! would be, with plain JSON frames) send inline scripts that use `el` and
//! `el.__cleanup`.

use axum::Router;
use axum::response::Html;
use axum::routing::get;
use liveview::{Consumer, Content, liveview_handler};
use serde_json::json;

use super::browser_test_routes;

const PAGE: &str = r##"<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Shop</title>
  <script src="/static/liveview/liveview.min.js" defer></script>
  <style>#modal.open { border: 2px solid #2563eb; padding: .5rem; }</style>
</head>
<body data-controller="page" data-liveview-keyboard-map='{"ctrl+k": "dj_open_search"}'>
  <div id="no-connection" class="no-connection--hide">Connection lost</div>
  <nav>
    <button data-liveview-function="dj_open_search" data-action="click->page#run">Search</button>
  </nav>
  <section id="counter">
    <button id="increment" data-liveview-function="dj_increment" data-data-value="0"
            data-action="click->page#run">0</button>
  </section>
  <div id="modal" data-liveview-keyboard-map='{"esc": "dj_close_search"}'></div>
  <div id="results"></div>
  <script>
    // On a full page load scripts run natively, without `el`.
    if (typeof el === "undefined") document.body.dataset.loaded = "natively";
    window.__errors = [];
    window.addEventListener("error", (e) => __errors.push(String(e.message)));
  </script>
</body>
</html>"##;

#[liveview_handler("dj_open_search")]
async fn dj_open_search(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(json!({
        "target": "#modal",
        "html": r#"<form data-liveview-function="dj_search" data-action="submit->page#run">
              <input id="q" name="q" autocomplete="off">
            </form>
            <script>
              const input = el.querySelector("input");
              el.classList.add("open");
              input.focus();
              el.__cleanup = () => el.classList.remove("open");
            </script>"#,
    }))?;
    Ok(())
}

#[liveview_handler("dj_search")]
async fn dj_search(consumer: &Consumer, content: Content) -> liveview::Result {
    let q = liveview::escape(content.form.str_or("q", ""));
    consumer.send(json!({"target": "#results", "html": format!("<p>Results for {q}</p>")}))?;
    Ok(())
}

#[liveview_handler("dj_close_search")]
async fn dj_close_search(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(json!({"target": "#modal", "html": ""}))?;
    Ok(())
}

#[liveview_handler("dj_increment")]
async fn dj_increment(consumer: &Consumer, content: Content) -> liveview::Result {
    let value = content.data.i64("value").unwrap_or(0) + 1;
    consumer.send(json!({
        "target": "#counter",
        "html": format!(
            r#"<button id="increment" data-liveview-function="dj_increment" data-data-value="{value}"
                       data-action="click->page#run">{value}</button>
               <script>el.dataset.renders = String(Number(el.dataset.renders || 0) + 1);</script>"#
        ),
    }))?;
    Ok(())
}

#[tokio::test]
async fn a_page_written_for_django_liveview_2_5_works_unchanged() {
    let routes = Router::new().route("/", get(|| async { Html(PAGE) }));
    browser_test_routes(
        "a_page_written_for_django_liveview_2_5_works_unchanged",
        routes,
        async |page| {
            let b = &page.browser;
            assert_eq!(
                b.eval("document.body.dataset.loaded").await?,
                json!("natively")
            );
            // The body's keyboard map: ctrl+k anywhere opens the search,
            // whose script focuses its input through `el`.
            b.type_text("#increment", "\u{E009}k").await?;
            b.wait(r#"document.getElementById("modal").classList.contains("open") && document.activeElement.id === "q""#)
                .await?;

            b.type_text("#q", "rust\u{E007}").await?;
            b.wait_for_text("#results", "Results for rust").await?;

            // The modal's own map: esc closes it, and its cleanup runs.
            b.type_text("#q", "\u{E00C}").await?;
            b.wait(r#"document.getElementById("modal").innerHTML === "" && !document.getElementById("modal").classList.contains("open")"#)
                .await?;

            b.click("#increment").await?;
            b.wait_for_text("#increment", "1").await?;
            b.click("#increment").await?;
            b.wait_for_text("#increment", "2").await?;
            assert_eq!(
                b.eval("document.getElementById('counter').dataset.renders")
                    .await?,
                json!("2")
            );
            assert_eq!(b.eval("window.__errors").await?, json!([]));
            Ok(())
        },
    )
    .await;
}
