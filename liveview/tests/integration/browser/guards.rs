//! What the user did is never lost or repeated: a slow reply does not undo
//! typing, a debounced call does not overtake the submit, a trigger runs
//! its call once, the server's own `disabled` survives the loading state,
//! and morphing never merges two elements with different ids.

use std::time::Duration;

use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;
use tokio::sync::Notify;

use super::{Page, browser_test};

/// Opened by [`typing_during_a_slow_call_is_not_undone_by_its_reply`].
static TYPING_GATE: Notify = Notify::const_new();
/// Opened by [`a_trigger_runs_its_call_once_online_and_offline`].
static HOLD_GATE: Notify = Notify::const_new();

/// Waits for the test, then renders `#box` from the form it was sent:
/// `#q` and `#other` with the values they had when the call was made (and
/// "from the server" in `#other`), in the mode `data.mode` names.
#[liveview_handler("b_guard_render")]
async fn b_guard_render(consumer: &Consumer, content: Content) -> liveview::Result {
    let _ = tokio::time::timeout(Duration::from_secs(30), TYPING_GATE.notified()).await;
    let q = liveview::escape(content.form.str_or("q", ""));
    let n = content.data.str_or("n", "");
    let html = format!(
        r#"<input id="q" name="q" value="{q}" autocomplete="off">
<input id="other" name="other" value="from the server" autocomplete="off">
<span id="n">{n}</span>"#
    );
    let morph = content.data.str_or("mode", "") == "morph";
    let update = Update::new("#box").html(html);
    consumer.send(if morph { update.morph() } else { update })?;
    Ok(())
}

/// Logs its call at once, then holds it until the test opens [`HOLD_GATE`].
#[liveview_handler("b_hold")]
async fn b_hold(consumer: &Consumer, content: Content) -> liveview::Result {
    let seen = json!({"form": content.form.as_map(), "data": content.data.as_map()});
    let item = format!("<li>{}</li>", liveview::escape(&seen.to_string()));
    consumer.send(Update::new("#log").html(item).append())?;
    let _ = tokio::time::timeout(Duration::from_secs(30), HOLD_GATE.notified()).await;
    Ok(())
}

/// Renders the button that was clicked as disabled, in morph mode.
#[liveview_handler("b_sold_out")]
async fn b_sold_out(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(
        Update::new("#shop")
            .html(r#"<button id="buy" data-action="click->page#run" data-liveview-function="b_sold_out" disabled>sold out</button><span id="sold">yes</span>"#),
    )?;
    Ok(())
}

const INPUT_STATE: &str = r#"(() => {
    const el = document.getElementById("q");
    return { value: el.value, focused: document.activeElement === el,
             start: el.selectionStart, end: el.selectionEnd };
})()"#;

async fn typing_during_a_slow_call(page: &Page, mode: &str) -> super::TestResult {
    let b = &page.browser;
    b.execute(
        "document.getElementById('go').dataset.dataMode = arguments[0];",
        vec![json!(mode)],
    )
    .await?;
    b.execute(
        "document.getElementById('go').dataset.dataN = arguments[0];",
        vec![json!(mode)],
    )
    .await?;
    b.type_text("#q", "ab").await?;
    b.click("#go").await?;
    b.wait("LiveView.inflight === 1").await?;
    // While the call runs the user types on, then moves to the other box
    // (morph) or stays in the box, caret in the middle (replace).
    b.type_text("#q", "c").await?;
    if mode == "morph" {
        b.click("#other").await?;
    } else {
        b.execute(
            "document.getElementById('q').setSelectionRange(1, 2);",
            vec![],
        )
        .await?;
    }
    TYPING_GATE.notify_one();
    b.wait_for_text("#n", mode).await?;
    let state = b.eval(INPUT_STATE).await?;
    if mode == "morph" {
        assert_eq!(state["value"], "abc", "{mode}: {state}");
    } else {
        assert_eq!(
            state,
            json!({"value": "abc", "focused": true, "start": 1, "end": 2}),
            "{mode}"
        );
    }
    // A control the user did not touch since the call shows the reply.
    assert_eq!(
        b.eval("document.getElementById('other').value").await?,
        json!("from the server")
    );
    Ok(())
}

#[tokio::test]
async fn typing_during_a_slow_call_is_not_undone_by_its_reply() {
    let body = r##"
<form id="f">
  <div id="box">
    <input id="q" name="q" autocomplete="off">
    <input id="other" name="other" autocomplete="off">
    <span id="n"></span>
  </div>
  <button id="go" type="button" data-action="click->page#run" data-liveview-function="b_guard_render">go</button>
</form>
"##;
    browser_test(
        "typing_during_a_slow_call_is_not_undone_by_its_reply",
        body,
        async |page| {
            typing_during_a_slow_call(page, "replace").await?;
            page.browser.clear("#q").await?;
            typing_during_a_slow_call(page, "morph").await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn a_submit_sends_the_pending_debounced_call_first() {
    let body = r##"
<form id="search" data-action="submit->page#run" data-liveview-function="b_log" data-data-which="submit">
  <input id="q" name="q" autocomplete="off" data-action="input->page#run" data-liveview-function="b_log"
         data-data-which="search" data-liveview-debounce="5000">
  <button id="send" name="button" value="send">send</button>
</form>
"##;
    browser_test(
        "a_submit_sends_the_pending_debounced_call_first",
        body,
        async |page| {
            let b = &page.browser;
            b.type_text("#q", "pyt").await?;
            b.click("#send").await?;
            let log = page.wait_log(2).await?;
            assert_eq!(log[0]["data"]["which"], "search", "{log:?}");
            assert_eq!(log[0]["form"]["q"], "pyt");
            assert_eq!(log[1]["data"]["which"], "submit", "{log:?}");
            // The submitter's name and value go with the submit.
            assert_eq!(
                log[1]["form"],
                json!({"q": "pyt", "button": "send"}),
                "{log:?}"
            );
            Ok(())
        },
    )
    .await;
}

const BUY_BUSY: &str = r#"(() => {
    const el = document.getElementById("buy");
    return el.disabled && el.getAttribute("aria-busy") === "true";
})()"#;
const BUY_IDLE: &str = r#"(() => {
    const el = document.getElementById("buy");
    return !el.disabled && !el.hasAttribute("aria-busy");
})()"#;
const DISCONNECTED: &str = r#"document.documentElement.dataset.liveviewConnected === "false""#;
const CONNECTED: &str = r#"document.documentElement.dataset.liveviewConnected === "true""#;

#[tokio::test]
async fn a_trigger_runs_its_call_once_online_and_offline() {
    let body = r##"
<button id="buy" data-action="click->page#run" data-liveview-function="b_log" data-data-which="buy">buy</button>
<form id="order" data-action="submit->page#run" data-liveview-function="b_hold" data-data-which="order">
  <input id="qty" name="qty" value="1" autocomplete="off">
  <button id="place">place</button>
</form>
<button id="mark" data-action="click->page#run" data-liveview-function="b_log" data-data-which="mark">mark</button>
"##;
    browser_test(
        "a_trigger_runs_its_call_once_online_and_offline",
        body,
        async |page| {
            // Offline: busy from the click on, one call queued however often
            // the user clicks.
            page.kill_server();
            page.browser.wait(DISCONNECTED).await?;
            let b = &page.browser;
            for _ in 0..3 {
                b.execute("document.getElementById('buy').click();", vec![])
                    .await?;
            }
            b.wait(BUY_BUSY).await?;
            assert_eq!(b.eval("LiveView.queued").await?, json!(1));
            page.restart_server().await;
            let b = &page.browser;
            b.wait_for(CONNECTED, Duration::from_secs(40)).await?;
            page.wait_call(1, "buy").await?;
            b.wait(BUY_IDLE).await?;

            // Online: a form submitted by Enter is busy until its done; a
            // second Enter does nothing.
            b.type_text("#qty", "\u{E007}").await?;
            page.wait_call(2, "order").await?;
            b.wait(r#"document.getElementById("order").getAttribute("aria-busy") === "true""#)
                .await?;
            b.execute(
                "document.getElementById('order').requestSubmit(document.getElementById('place'));",
                vec![],
            )
            .await?;
            b.type_text("#qty", "\u{E007}").await?;
            HOLD_GATE.notify_one();
            b.wait(r#"!document.getElementById("order").hasAttribute("aria-busy")"#)
                .await?;
            b.click("#mark").await?;
            page.wait_call(3, "mark").await?;
            assert_eq!(page.whiches().await?, ["buy", "order", "mark"]);
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn a_queued_call_expires_with_call_lost() {
    let body = r##"
<script>window.webSocketConfig = { queueTimeout: 300 };</script>
<button id="buy" data-action="click->page#run" data-liveview-function="b_log" data-data-which="buy">buy</button>
<button id="mark" data-action="click->page#run" data-liveview-function="b_log" data-data-which="mark">mark</button>
"##;
    browser_test("a_queued_call_expires_with_call_lost", body, async |page| {
        page.kill_server();
        page.browser.wait(DISCONNECTED).await?;
        let b = &page.browser;
        b.click("#buy").await?;
        b.wait("__lv.lost.length === 1").await?;
        assert_eq!(
            b.eval("__lv.lost[0]").await?,
            json!({"function": "b_log", "ref": null})
        );
        assert_eq!(b.eval("LiveView.queued").await?, json!(0));
        b.wait(BUY_IDLE).await?;
        page.restart_server().await;
        let b = &page.browser;
        b.wait_for(CONNECTED, Duration::from_secs(40)).await?;
        b.click("#mark").await?;
        page.wait_call(1, "mark").await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn a_button_the_server_disabled_stays_disabled_after_done() {
    let body = r##"
<div id="shop" data-liveview-morph>
  <button id="buy" data-action="click->page#run" data-liveview-function="b_sold_out">buy</button>
</div>
"##;
    browser_test(
        "a_button_the_server_disabled_stays_disabled_after_done",
        body,
        async |page| {
            let b = &page.browser;
            b.execute("document.getElementById('buy').__mark = 1;", vec![])
                .await?;
            b.click("#buy").await?;
            b.wait_for_text("#sold", "yes").await?;
            b.wait("LiveView.inflight === 0").await?;
            let state = b
                .eval(
                    r#"(() => { const el = document.getElementById("buy");
                        return {same: el.__mark === 1, disabled: el.disabled, busy: el.hasAttribute("aria-busy")}; })()"#,
                )
                .await?;
            assert_eq!(state, json!({"same": true, "disabled": true, "busy": false}));
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn morphing_never_merges_elements_whose_ids_differ() {
    let body = r##"
<div id="m" data-liveview-morph><input id="a" name="a" type="password" autocomplete="off"></div>
<ul id="keyed" data-liveview-morph><li id="k1">1</li><li id="k2">2</li><li id="k3">3</li></ul>
"##;
    browser_test(
        "morphing_never_merges_elements_whose_ids_differ",
        body,
        async |page| {
            let b = &page.browser;
            b.type_text("#a", "secret").await?;
            b.execute(
                r##"document.querySelectorAll("#keyed li").forEach((li) => li.__mark = li.id);"##,
                vec![],
            )
            .await?;
            b.execute(
                r##"LiveView.apply({target: "#m", html: '<input id="b" name="b" autocomplete="off">'});
                   LiveView.apply({target: "#keyed", html: '<li id="k3">3</li><li id="k1">1</li><li id="k2">two</li>'});"##,
                vec![],
            )
            .await?;
            let state = b
                .eval(
                    r##"({ a: !!document.getElementById("a"),
                          b: document.getElementById("b").value,
                          type: document.getElementById("b").type,
                          keyed: Array.from(document.querySelectorAll("#keyed li"), (li) => [li.id, li.__mark || null, li.textContent]) })"##,
                )
                .await?;
            assert_eq!(
                state,
                json!({"a": false, "b": "", "type": "text",
                       "keyed": [["k3", "k3", "3"], ["k1", "k1", "1"], ["k2", "k2", "two"]]})
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}
