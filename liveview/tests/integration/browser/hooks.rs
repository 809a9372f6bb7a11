//! Extension points: hooks (`data-liveview-hook`), upstream's
//! `el.__cleanup()`, `data-liveview-ignore` in replace mode and
//! `data-liveview-keyboard-map`.

use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;

use super::browser_test;

/// Renders the markup named by `data.key`.
#[liveview_handler("b_hooks")]
async fn b_hooks(consumer: &Consumer, content: Content) -> liveview::Result {
    let update = match content.data.str_or("key", "") {
        // Into the hook element itself.
        "update" => Update::new("#early").html(r#"<input name="note" value="n2"><span>v2</span>"#),
        // Replaces the hook element with another one.
        "replace" => {
            Update::new("#box").html(r#"<div id="fresh" data-liveview-hook="Early"></div>"#)
        }
        other => return Err(liveview::Error::msg(format!("unknown key {other}"))),
    };
    consumer.send(update)?;
    Ok(())
}

#[tokio::test]
async fn hooks_mount_update_disconnect_reconnect_destroy_and_call_handlers() {
    let body = r##"
<script>
  window.__hooks = [];
  const record = (what) => function () { __hooks.push(what + " " + this.el.id); };
  window.LiveViewHooks = {
    Early: {
      mounted() {
        __hooks.push("mounted " + this.el.id);
        this.call("b_log", {which: "from " + this.el.id});
      },
      updated: record("updated"),
      destroyed: record("destroyed"),
      disconnected: record("disconnected"),
      reconnected: record("reconnected"),
    },
  };
  window.__late = { mounted: record("mounted"), disconnected: record("disconnected") };
</script>
<div id="box"><div id="early" data-liveview-hook="Early"><input name="note" value="n1"></div></div>
<div id="late" data-liveview-hook="Late"></div>
<button id="update" data-action="click->page#run" data-liveview-function="b_hooks" data-data-key="update">update</button>
<button id="replace" data-action="click->page#run" data-liveview-function="b_hooks" data-data-key="replace">replace</button>
"##;
    browser_test(
        "hooks_mount_update_disconnect_reconnect_destroy_and_call_handlers",
        body,
        async |page| {
            let b = &page.browser;
            let hooks = "__hooks.join(',')";
            // Mounted with `this.el`; `this.call` reaches a handler with the
            // element's container's controls.
            let call = page.wait_call(1, "from early").await?;
            assert_eq!(call["form"], json!({"note": "n1"}));
            assert_eq!(b.eval(hooks).await?, json!("mounted early"));

            // A hook defined after the client loaded is mounted then.
            b.execute(
                "window.LiveViewHooks = Object.assign({}, window.LiveViewHooks, {Late: __late})",
                vec![],
            )
            .await?;
            assert_eq!(b.eval(hooks).await?, json!("mounted early,mounted late"));

            b.click("#update").await?;
            b.wait("__hooks.includes('updated early')").await?;

            // The connection drops and comes back.
            b.execute(
                "__hooks.length = 0; __lv.disconnects = 0; LiveView.socket.close()",
                vec![],
            )
            .await?;
            // Counted, not looked for: the page's own retry may have
            // connected it again before a look at its state.
            b.wait("__lv.disconnects === 1").await?;
            b.execute("LiveView.connect()", vec![]).await?;
            b.wait("__hooks.includes('reconnected early')").await?;
            assert_eq!(
                b.eval(hooks).await?,
                json!("disconnected early,disconnected late,reconnected early")
            );

            // The hook element is replaced: destroyed, and the new one mounted.
            b.execute("__hooks.length = 0", vec![]).await?;
            b.click("#replace").await?;
            page.wait_call(2, "from fresh").await?;
            assert_eq!(b.eval(hooks).await?, json!("destroyed early,mounted fresh"));
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Morphs `#panel`, which holds the hook element `#chart`.
#[liveview_handler("b_hooks_morph")]
async fn b_hooks_morph(consumer: &Consumer, content: Content) -> liveview::Result {
    let n = content.data.i64("n").unwrap_or(0);
    consumer.send(
        Update::new("#panel")
            .html(format!(
                r#"<h2 id="title">panel {n}</h2><div id="chart" data-liveview-hook="OnReady"></div>"#
            ))
            .morph(),
    )?;
    Ok(())
}

#[tokio::test]
async fn hooks_added_when_the_page_is_ready_are_mounted_and_see_morphs() {
    // The hook is added to `window.LiveViewHooks` after the client started
    // (on DOMContentLoaded, as a bundle loaded late would): it is mounted
    // by the time the page has loaded.
    let body = r##"
<script>
  window.__hooks = [];
  window.LiveViewHooks = {};
  document.addEventListener("DOMContentLoaded", () => {
    LiveViewHooks.OnReady = {
      mounted() { __hooks.push("mounted " + this.el.id); this.el.__instance = this; },
      updated() { __hooks.push("updated " + this.el.id); },
    };
  });
</script>
<div id="panel"><h2 id="title">panel 0</h2><div id="chart" data-liveview-hook="OnReady"></div></div>
<button id="morph" data-action="click->page#run" data-liveview-function="b_hooks_morph" data-data-n="1">morph</button>
"##;
    browser_test(
        "hooks_added_when_the_page_is_ready_are_mounted_and_see_morphs",
        body,
        async |page| {
            let b = &page.browser;
            b.wait("__hooks.join(',') === 'mounted chart'").await?;
            // A morph of the panel keeps the element and its hook instance.
            b.click("#morph").await?;
            b.wait_for_text("#title", "panel 1").await?;
            b.wait("__hooks.join(',') === 'mounted chart,updated chart'")
                .await?;
            assert_eq!(
                b.eval("document.getElementById('chart').__instance.el === document.getElementById('chart')")
                    .await?,
                json!(true)
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Renders a scripted widget (`data.key`) that records when it runs and
/// when it is cleaned up.
#[liveview_handler("b_cleanup")]
async fn b_cleanup(consumer: &Consumer, content: Content) -> liveview::Result {
    const SCRIPT: &str = r#"<script>
      __seq.push("run " + el.id);
      el.__cleanup = () => __seq.push("cleanup " + el.id);
    </script>"#;
    let update = match content.data.str_or("key", "") {
        "area" => Update::new("#area").html(format!(r#"<div id="inner"></div>{SCRIPT}"#)),
        "inner" => Update::new("#inner").html(SCRIPT),
        "remove" => Update::new("#area").remove(),
        other => return Err(liveview::Error::msg(format!("unknown key {other}"))),
    };
    consumer.send(update)?;
    Ok(())
}

#[tokio::test]
async fn cleanup_runs_before_content_is_replaced_or_removed() {
    let body = r##"
<script>window.__seq = [];</script>
<button id="area-btn" data-action="click->page#run" data-liveview-function="b_cleanup" data-data-key="area">area</button>
<button id="inner-btn" data-action="click->page#run" data-liveview-function="b_cleanup" data-data-key="inner">inner</button>
<button id="remove-btn" data-action="click->page#run" data-liveview-function="b_cleanup" data-data-key="remove">remove</button>
<div id="area"></div>
"##;
    browser_test(
        "cleanup_runs_before_content_is_replaced_or_removed",
        body,
        async |page| {
            let b = &page.browser;
            let seq = "__seq.join(',')";
            b.click("#area-btn").await?;
            b.wait("__seq.length === 1").await?;
            b.wait("LiveView.inflight === 0").await?;
            b.click("#inner-btn").await?;
            b.wait("__seq.length === 2").await?;
            assert_eq!(b.eval(seq).await?, json!("run area,run inner"));

            // Replacing #area's content cleans up #area, then what was
            // rendered inside it, before the new scripts run.
            b.wait("LiveView.inflight === 0").await?;
            b.click("#area-btn").await?;
            b.wait("__seq.length === 5").await?;
            assert_eq!(
                b.eval(seq).await?,
                json!("run area,run inner,cleanup area,cleanup inner,run area")
            );

            b.wait("LiveView.inflight === 0").await?;
            b.click("#remove-btn").await?;
            b.wait("!document.getElementById('area')").await?;
            assert_eq!(
                b.eval("__seq.slice(5).join(',')").await?,
                json!("cleanup area"),
                "once each"
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Re-renders `#target` with an empty `#widget`.
#[liveview_handler("b_rerender")]
async fn b_rerender(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(
        Update::new("#target")
            .html(r#"<div id="widget" data-liveview-ignore></div><p id="text">new</p>"#),
    )?;
    Ok(())
}

#[tokio::test]
async fn ignored_elements_keep_their_children_in_replace_mode() {
    let body = r##"
<button id="rerender" data-action="click->page#run" data-liveview-function="b_rerender">rerender</button>
<div id="target"><div id="widget" data-liveview-ignore></div><p id="text">old</p></div>
<script>
  // A widget drawn by a script of the page.
  const w = document.getElementById("widget");
  w.innerHTML = "<canvas></canvas><span>chart drawn</span>";
  w.__mark = "same node";
</script>
"##;
    browser_test(
        "ignored_elements_keep_their_children_in_replace_mode",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#rerender").await?;
            b.wait_for_text("#text", "new").await?;
            assert_eq!(
                b.eval(
                    r#"(() => {
                        const w = document.getElementById("widget");
                        return [w.__mark, w.textContent, w.querySelectorAll("canvas").length];
                    })()"#
                )
                .await?,
                json!(["same node", "chart drawn", 1])
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Appends `{"fn": …, "form": …, "data": …}` to `#log`.
fn log_key(consumer: &Consumer, content: &Content) -> liveview::Result {
    let seen = json!({
        "fn": content.function(),
        "form": content.form.as_map(),
        "data": content.data.as_map(),
    });
    let item = format!("<li>{}</li>", liveview::escape(&seen.to_string()));
    consumer.send(Update::new("#log").html(item).append())?;
    Ok(())
}

#[liveview_handler("k_save")]
async fn k_save(consumer: &Consumer, content: Content) -> liveview::Result {
    log_key(consumer, &content)
}

#[liveview_handler("k_close")]
async fn k_close(consumer: &Consumer, content: Content) -> liveview::Result {
    log_key(consumer, &content)
}

#[liveview_handler("k_send")]
async fn k_send(consumer: &Consumer, content: Content) -> liveview::Result {
    log_key(consumer, &content)
}

#[tokio::test]
async fn keyboard_maps_call_their_functions_while_the_focus_is_inside() {
    let body = r##"
<section>
  <div id="editor" data-data-doc="7"
       data-liveview-keyboard-map='{"ctrl+s": "k_save", "esc": "k_close", "shift+enter": "k_send"}'>
    <input id="title" name="title" value="Draft">
  </div>
</section>
<input id="outside" name="outside">
"##;
    browser_test(
        "keyboard_maps_call_their_functions_while_the_focus_is_inside",
        body,
        async |page| {
            let b = &page.browser;
            let fns = async || -> Result<Vec<String>, Box<dyn std::error::Error>> {
                Ok(page
                    .log()
                    .await?
                    .iter()
                    .map(|e| e["fn"].as_str().unwrap_or("").to_owned())
                    .collect())
            };
            assert_eq!(
                b.eval(r#"document.getElementById("editor").getAttribute("tabindex")"#)
                    .await?,
                json!("-1"),
                "the element can take the focus"
            );
            // ctrl+s in the input inside the element.
            b.type_text("#title", "\u{E009}s").await?;
            let log = page.wait_log(1).await?;
            assert_eq!(
                log[0],
                json!({"fn": "k_save", "form": {"title": "Draft"}, "data": {"doc": "7"}})
            );
            b.type_text("#title", "\u{E00C}").await?;
            page.wait_log(2).await?;
            b.type_text("#title", "\u{E008}\u{E007}").await?;
            page.wait_log(3).await?;
            assert_eq!(fns().await?, ["k_save", "k_close", "k_send"]);

            // Unmapped keys type as usual; mapped keys outside do nothing.
            b.type_text("#title", "!").await?;
            b.type_text("#outside", "\u{E00C}").await?;
            b.type_text("#title", "\u{E009}s").await?;
            page.wait_log(4).await?;
            assert_eq!(fns().await?, ["k_save", "k_close", "k_send", "k_save"]);
            assert_eq!(
                b.eval("document.getElementById('title').value").await?,
                json!("Draft!")
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}
