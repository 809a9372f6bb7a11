//! Inline scripts in updates run as Django LiveView 2.5 runs them: as a
//! function of the updated element (`el`, `this`), classic scripts only;
//! `data-liveview-init` runs once per element.

use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;

use super::browser_test;

/// Renders the markup named by `data.key` into `#target`.
#[liveview_handler("b_scripts")]
async fn b_scripts(consumer: &Consumer, content: Content) -> liveview::Result {
    let html = match content.data.str_or("key", "") {
        // Upstream's contract: `el` and `this` are the updated element, and
        // a `const` is the script's own, so rendering it twice is fine.
        "el" => {
            r##"<span>counted</span><script>
              const step = 1;
              el.dataset.runs = String(Number(el.dataset.runs || 0) + step);
              window.__thisIsEl = this === el;
            </script>"##
        }
        "types" => {
            r##"<script type="module">window.__module = true;</script>
            <script type="application/json">{"not": "code"}</script>
            <script type="text/javascript">window.__classic = (window.__classic || 0) + 1;</script>
            <script>window.__plain = (window.__plain || 0) + 1;</script>"##
        }
        other => return Err(liveview::Error::msg(format!("unknown key {other}"))),
    };
    consumer.send(Update::new("#target").html(html))?;
    Ok(())
}

#[tokio::test]
async fn inline_scripts_run_in_function_scope_with_el_bound_to_the_updated_element() {
    let body = r##"
<button id="el" data-action="click->page#run" data-liveview-function="b_scripts" data-data-key="el">el</button>
<button id="types" data-action="click->page#run" data-liveview-function="b_scripts" data-data-key="types">types</button>
<div id="target"></div>
"##;
    browser_test(
        "inline_scripts_run_in_function_scope_with_el_bound_to_the_updated_element",
        body,
        async |page| {
            let b = &page.browser;
            let runs = r##"document.getElementById("target").dataset.runs"##;
            b.click("#el").await?;
            b.wait(&format!(r#"{runs} === "1""#)).await?;
            assert_eq!(b.eval("window.__thisIsEl").await?, json!(true));
            // The same `const` again: no redeclaration error.
            b.wait("LiveView.inflight === 0").await?;
            b.click("#el").await?;
            b.wait(&format!(r#"{runs} === "2""#)).await?;

            // Only classic scripts run.
            b.wait("LiveView.inflight === 0").await?;
            b.click("#types").await?;
            b.wait("window.__plain === 1 && window.__classic === 1")
                .await?;
            assert_eq!(b.eval("window.__module === undefined").await?, json!(true));
            page.assert_no_page_errors().await?;
            Ok(())
        },
    )
    .await;
}

/// Adds `<li>which</li>` to `#inits`.
#[liveview_handler("b_init_mark")]
async fn b_init_mark(consumer: &Consumer, content: Content) -> liveview::Result {
    let which = liveview::escape(content.data.str_or("which", ""));
    consumer.send(
        Update::new("#inits")
            .html(format!("<li>{which}</li>"))
            .append(),
    )?;
    Ok(())
}

/// Moves to `/?away=1` with other content in `#area`.
#[liveview_handler("b_away")]
async fn b_away(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(Update::new("#area").html("<p>away</p>").url("/?away=1"))?;
    Ok(())
}

/// Inserts a new init element into `#later`.
#[liveview_handler("b_insert_init")]
async fn b_insert_init(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer
        .send(Update::new("#later").html(
            r##"<div data-liveview-init="b_init_mark" data-data-which="inserted"></div>"##,
        ))?;
    Ok(())
}

#[tokio::test]
async fn init_runs_once_per_element_not_again_on_back_or_resync_unless_asked() {
    let body = r##"
<button id="away" data-action="click->page#run" data-liveview-function="b_away">away</button>
<button id="insert" data-action="click->page#run" data-liveview-function="b_insert_init">insert</button>
<div id="area">
  <div data-liveview-init="b_init_mark" data-data-which="once"></div>
  <div data-liveview-init="b_init_mark" data-data-which="again" data-liveview-reinit></div>
</div>
<div id="later"></div>
<ul id="inits"></ul>
<script>
  // Every function the page sends, in order (sends are synchronous).
  window.__sent = [];
  document.addEventListener("liveview:connected", () => {
    const ws = LiveView.socket;
    const send = ws.send;
    ws.send = function (data) {
      const msg = JSON.parse(data);
      if (msg.function) __sent.push(msg.data.which || msg.function);
      return send.call(this, data);
    };
  }, { once: true });
</script>
"##;
    browser_test(
        "init_runs_once_per_element_not_again_on_back_or_resync_unless_asked",
        body,
        async |page| {
            let b = &page.browser;
            let inits = r##"Array.from(document.querySelectorAll("#inits li"), (li) => li.textContent).sort().join(",")"##;
            b.wait(&format!(r#"{inits} === "again,once""#)).await?;
            b.execute("__sent.length = 0", vec![]).await?;

            // An element inserted later: its init runs once.
            b.click("#insert").await?;
            b.wait(&format!(r#"{inits} === "again,inserted,once""#))
                .await?;

            // Back brings the first content back: only the element that
            // asked for it runs its init again.
            b.click("#away").await?;
            b.wait(r#"location.search === "?away=1""#).await?;
            b.back().await?;
            b.wait(r##"location.search === "" && document.querySelectorAll("#area [data-liveview-init]").length === 2"##)
                .await?;
            assert_eq!(
                b.eval("__sent.filter((f) => f === 'once' || f === 'again')")
                    .await?,
                json!(["again"])
            );

            // A resync: the same.
            b.execute("LiveView.apply({resync: true})", vec![]).await?;
            assert_eq!(
                b.eval("__sent.filter((f) => f === 'once' || f === 'again')")
                    .await?,
                json!(["again", "again"])
            );
            page.assert_no_page_errors().await?;
            Ok(())
        },
    )
    .await;
}
