//! Every key of a server frame, applied by the client.

use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;

use super::browser_test;

/// Sends the frame named by `data.key`.
#[liveview_handler("b_keys")]
async fn b_keys(consumer: &Consumer, content: Content) -> liveview::Result {
    match content.data.str_or("key", "") {
        "html" => consumer.send(Update::new("#target").html("<b>replaced</b>"))?,
        "append" => consumer.send(Update::new("#target").html("<i>appended</i>").append())?,
        "remove" => consumer.send(Update::new("#removable").remove())?,
        "title" => consumer.send(Update::empty().title("A new title"))?,
        "script" => consumer.send(Update::script_only("window.__scriptRuns = (window.__scriptRuns || 0) + 1;"))?,
        "inline" => consumer.send(Update::new("#target").html(
            r##"<span id="inline-out">not run</span><script>document.getElementById("inline-out").textContent = "inline ran";</script>"##,
        ))?,
        "scroll" => consumer.send(Update::empty().scroll("#far"))?,
        "scroll_top" => consumer.send(Update::empty().scroll_top())?,
        "error" => consumer.send(json!({"error": "custom failure"}))?,
        "missing" => consumer.send(Update::new("#no-such-element").html("lost"))?,
        other => return Err(liveview::Error::msg(format!("unknown key {other}"))),
    }
    Ok(())
}

/// A fixed toolbar, so clicking never scrolls the page.
fn toolbar(keys: &[&str]) -> String {
    let buttons: String = keys
        .iter()
        .map(|key| {
            format!(
                r##"<button id="k-{key}" data-action="click->page#run" data-liveview-function="b_keys" data-data-key="{key}">{key}</button>"##
            )
        })
        .collect();
    format!(r##"<nav style="position: fixed; top: 0; right: 0; background: #eee">{buttons}</nav>"##)
}

#[tokio::test]
async fn html_append_and_remove_change_the_target() {
    let body = format!(
        r##"{}<div id="target"><span>initial</span></div><p id="removable">remove me</p><p id="stays">stays</p>"##,
        toolbar(&["html", "append", "remove"])
    );
    browser_test(
        "html_append_and_remove_change_the_target",
        &body,
        async |page| {
            let b = &page.browser;
            let inner = r##"document.getElementById("target").innerHTML"##;
            b.click("#k-html").await?;
            b.wait(&format!(r##"{inner} === "<b>replaced</b>""##))
                .await?;
            b.click("#k-append").await?;
            b.wait(&format!(
                r##"{inner} === "<b>replaced</b><i>appended</i>""##
            ))
            .await?;
            b.click("#k-remove").await?;
            b.wait(r##"document.getElementById("removable") === null"##)
                .await?;
            assert_eq!(b.text("#stays").await?, "stays");
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn title_script_and_inline_scripts_run() {
    let body = format!(
        r##"{}<div id="target"></div>"##,
        toolbar(&["title", "script", "inline"])
    );
    browser_test("title_script_and_inline_scripts_run", &body, async |page| {
        let b = &page.browser;
        b.click("#k-title").await?;
        b.wait(r##"document.title === "A new title""##).await?;
        b.click("#k-script").await?;
        b.wait("window.__scriptRuns === 1").await?;
        b.click("#k-inline").await?;
        b.wait_for_text("#inline-out", "inline ran").await?;
        // Each script ran once.
        b.click("#k-script").await?;
        b.wait("window.__scriptRuns === 2").await?;
        assert_eq!(b.text("#inline-out").await?, "inline ran");
        page.assert_no_page_errors().await
    })
    .await;
}

#[tokio::test]
async fn scroll_and_scroll_top_move_the_window() {
    let body = format!(
        r##"{}<div style="height: 3000px">tall</div><h2 id="far">far down</h2><div style="height: 2000px"></div>"##,
        toolbar(&["scroll", "scroll_top"])
    );
    browser_test(
        "scroll_and_scroll_top_move_the_window",
        &body,
        async |page| {
            let b = &page.browser;
            assert_eq!(b.eval("window.scrollY").await?, json!(0));
            b.click("#k-scroll").await?;
            // Smooth scrolling ends with #far at the top of the viewport.
            b.wait(r##"Math.abs(document.getElementById("far").getBoundingClientRect().top) < 2"##)
                .await?;
            b.click("#k-scroll_top").await?;
            b.wait("window.scrollY === 0").await?;
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn error_frames_fire_liveview_error() {
    let body = format!(
        r##"{}<button id="unknown" data-action="click->page#run" data-liveview-function="b_no_such_function">unknown</button>
<button id="after" data-action="click->page#run" data-liveview-function="b_log" data-data-which="after">after</button>"##,
        toolbar(&["error"])
    );
    browser_test("error_frames_fire_liveview_error", &body, async |page| {
        let b = &page.browser;
        b.click("#k-error").await?;
        b.wait("__lv.errors.length === 1").await?;
        assert_eq!(
            b.eval("__lv.errors[0].message").await?,
            json!("custom failure")
        );
        assert!(
            b.eval("__lv.errors[0].ref").await?.is_u64(),
            "the error answers the call"
        );

        b.click("#unknown").await?;
        b.wait("__lv.errors.length === 2").await?;
        assert_eq!(
            b.eval("__lv.errors[1].message").await?,
            json!("Unknown function")
        );

        // The connection survives, and so does the page.
        b.click("#after").await?;
        page.wait_call(1, "after").await?;
        assert_eq!(b.eval("LiveView.connected").await?, json!(true));
        page.assert_no_page_errors().await
    })
    .await;
}

#[tokio::test]
async fn an_update_for_a_missing_target_leaves_the_page_working() {
    let body = format!(
        r##"{}<div id="target">initial</div>"##,
        toolbar(&["missing", "html"])
    );
    browser_test("an_update_for_a_missing_target_leaves_the_page_working", &body, async |page| {
        let b = &page.browser;
        b.click("#k-missing").await?;
        // The call completes (its loading state is gone)...
        b.wait(r##"!document.getElementById("k-missing").hasAttribute("aria-busy") && LiveView.inflight === 0"##)
            .await?;
        // ...and the next update still applies.
        b.click("#k-html").await?;
        b.wait(r##"document.getElementById("target").innerHTML === "<b>replaced</b>""##)
            .await?;
        assert_eq!(b.eval("LiveView.connected").await?, json!(true));
        page.assert_no_page_errors().await
    })
    .await;
}

#[tokio::test]
async fn the_console_names_the_unknown_function_the_page_called() {
    let body = r##"
<script>
  window.__console = [];
  const error = console.error;
  console.error = (...args) => { __console.push(args.map(String).join(" ")); error(...args); };
</script>
<button id="missing-fn" data-action="click->page#run" data-liveview-function="no_such_handler">call</button>
"##;
    browser_test(
        "the_console_names_the_unknown_function_the_page_called",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#missing-fn").await?;
            b.wait("__lv.errors.length === 1").await?;
            assert_eq!(
                b.eval("__console").await?,
                json!([r#"LiveView: server error: Unknown function (calling "no_such_handler")"#])
            );
            Ok(())
        },
    )
    .await;
}
