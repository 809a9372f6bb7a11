//! The loading state of an element while its call runs.

use std::time::Duration;

use liveview::{Consumer, Content, Update, liveview_handler};
use tokio::sync::Notify;

use super::browser_test;

/// Opened by the test once it has seen the loading state.
static GATE: Notify = Notify::const_new();

/// Waits for the test to open [`GATE`] (at most 30 s), then answers.
#[liveview_handler("b_slow")]
async fn b_slow(consumer: &Consumer, content: Content) -> liveview::Result {
    let _ = tokio::time::timeout(Duration::from_secs(30), GATE.notified()).await;
    let which = liveview::escape(content.data.str_or("which", ""));
    consumer.send(Update::new("#slow-out").html(format!("{which} done")))?;
    Ok(())
}

fn is_busy(id: &str, disabled: bool) -> String {
    format!(
        r##"(() => {{
            const el = document.getElementById("{id}");
            return el.getAttribute("aria-busy") === "true" && el.classList.contains("liveview-loading") && !!el.disabled === {disabled};
        }})()"##
    )
}

fn is_idle(id: &str) -> String {
    format!(
        r##"(() => {{
            const el = document.getElementById("{id}");
            return !el.hasAttribute("aria-busy") && !el.classList.contains("liveview-loading") && !el.disabled;
        }})()"##
    )
}

#[tokio::test]
async fn loading_state_is_set_while_a_slow_handler_runs() {
    let body = r##"
<button id="slow" data-action="click->page#run" data-liveview-function="b_slow" data-data-which="button">slow</button>
<button id="slow-panel" data-action="click->page#run" data-liveview-function="b_slow" data-data-which="panel"
        data-liveview-loading-target="#panel">slow, loading on the panel</button>
<div id="panel" style="padding: 1rem; border: 1px solid #999">panel</div>
<div id="slow-out"></div>
"##;
    browser_test(
        "loading_state_is_set_while_a_slow_handler_runs",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#slow").await?;
            b.wait(&is_busy("slow", true)).await?;
            b.save_screenshot("loading_state_is_set_while_a_slow_handler_runs-busy")
                .await?;
            GATE.notify_one();
            b.wait_for_text("#slow-out", "button done").await?;
            b.wait(&is_idle("slow")).await?;

            // With a loading target, the target gets the state (a div is not
            // disabled) and the button stays as it is.
            b.click("#slow-panel").await?;
            b.wait(&is_busy("panel", false)).await?;
            b.wait(&is_idle("slow-panel")).await?;
            GATE.notify_one();
            b.wait_for_text("#slow-out", "panel done").await?;
            b.wait(&is_idle("panel")).await?;
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn loading_state_is_cleared_when_the_call_is_lost() {
    let body = r##"
<button id="slow" data-action="click->page#run" data-liveview-function="b_slow" data-data-which="lost">slow</button>
<div id="slow-out"></div>
"##;
    browser_test(
        "loading_state_is_cleared_when_the_call_is_lost",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#slow").await?;
            b.wait(&is_busy("slow", true)).await?;
            // The server dies while the handler runs: the call will never be
            // answered.
            page.kill_server();
            let b = &page.browser;
            b.wait("__lv.lost.length === 1").await?;
            assert_eq!(
                b.eval("__lv.lost[0].function").await?,
                serde_json::json!("b_slow")
            );
            b.wait(&is_idle("slow")).await?;
            assert_eq!(b.eval("LiveView.inflight").await?, serde_json::json!(0));
            assert_eq!(b.text("#slow-out").await?, "");
            Ok(())
        },
    )
    .await;
}
