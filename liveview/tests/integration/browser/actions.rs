//! `data-action` descriptors: events, defaults, several per element,
//! `page#stop`, and the `data-data-*` keys a call carries.

use serde_json::json;

use super::browser_test;

#[tokio::test]
async fn each_event_descriptor_calls_the_function() {
    let body = r##"
<p id="neutral">Somewhere else to click.</p>
<button id="e-click" data-action="click->page#run" data-liveview-function="b_log" data-data-which="click">click</button>
<p><input id="e-input" name="ein" data-action="input->page#run" data-liveview-function="b_log" data-data-which="input"></p>
<form id="e-form" data-action="submit->page#run" data-liveview-function="b_log" data-data-which="submit">
  <input name="efield" value="v"><button id="e-submit" type="submit">submit</button>
</form>
<p><select id="e-change" name="echange" data-action="change->page#run" data-liveview-function="b_log" data-data-which="change">
  <option value="one">one</option><option value="two">two</option>
</select></p>
<p><input id="e-blur" name="eblur" data-action="blur->page#run" data-liveview-function="b_log" data-data-which="blur"></p>
"##;
    browser_test(
        "each_event_descriptor_calls_the_function",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#e-click").await?;
            page.wait_call(1, "click").await?;

            b.type_text("#e-input", "x").await?;
            let call = page.wait_call(2, "input").await?;
            assert_eq!(call["form"], json!({"ein": "x"}));

            b.click("#e-submit").await?;
            let call = page.wait_call(3, "submit").await?;
            assert_eq!(call["form"], json!({"efield": "v"}));

            b.select("#e-change", "two").await?;
            let call = page.wait_call(4, "change").await?;
            assert_eq!(call["form"], json!({"echange": "two"}));

            // Focusing and typing call nothing; leaving the field does.
            b.type_text("#e-blur", "bye").await?;
            b.click("#neutral").await?;
            let call = page.wait_call(5, "blur").await?;
            assert_eq!(call["form"], json!({"eblur": "bye"}));

            // The submit did not navigate away: the page and its log are intact.
            assert_eq!(
                page.whiches().await?,
                ["click", "input", "submit", "change", "blur"]
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn several_descriptors_on_one_element_each_call() {
    let body = r##"
<p id="neutral">Somewhere else to click.</p>
<input id="multi" name="m" data-liveview-function="b_log" data-data-which="multi"
       data-action="focus->page#run input->page#run blur->page#run">
<button id="marker" data-action="click->page#run" data-liveview-function="b_log" data-data-which="marker">marker</button>
"##;
    browser_test(
        "several_descriptors_on_one_element_each_call",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#multi").await?;
            let call = page.wait_call(1, "multi").await?;
            assert_eq!(call["form"], json!({"m": ""}), "the focus call");

            b.type_text("#multi", "z").await?;
            let call = page.wait_call(2, "multi").await?;
            assert_eq!(call["form"], json!({"m": "z"}), "the input call");

            b.click("#neutral").await?;
            let call = page.wait_call(3, "multi").await?;
            assert_eq!(call["form"], json!({"m": "z"}), "the blur call");

            // Nothing more is on its way.
            b.click("#marker").await?;
            page.wait_call(4, "marker").await?;
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_descriptor_without_event_uses_the_default_event() {
    let body = r##"
<button id="d-button" data-action="page#run" data-liveview-function="b_log" data-data-which="button">button</button>
<p><input id="d-text" name="dtext" data-action="page#run" data-liveview-function="b_log" data-data-which="text"></p>
<p><textarea id="d-area" name="darea" data-action="page#run" data-liveview-function="b_log" data-data-which="textarea"></textarea></p>
<p><select id="d-select" name="dsel" data-action="page#run" data-liveview-function="b_log" data-data-which="select">
  <option value="1">1</option><option value="2">2</option>
</select></p>
<label><input type="checkbox" id="d-check" name="dcheck" data-action="page#run" data-liveview-function="b_log" data-data-which="checkbox"> check</label>
<form id="d-form" data-action="page#run" data-liveview-function="b_log" data-data-which="form">
  <input name="q" value="query"><button id="d-submit" type="submit">go</button>
</form>
"##;
    browser_test(
        "a_descriptor_without_event_uses_the_default_event",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#d-button").await?;
            page.wait_call(1, "button").await?;

            // A click on a text input is not its default event; typing is.
            b.click("#d-text").await?;
            b.type_text("#d-text", "a").await?;
            let call = page.wait_call(2, "text").await?;
            assert_eq!(call["form"], json!({"dtext": "a"}));

            b.click("#d-area").await?;
            b.type_text("#d-area", "b").await?;
            let call = page.wait_call(3, "textarea").await?;
            assert_eq!(call["form"], json!({"darea": "b"}));

            b.select("#d-select", "2").await?;
            let call = page.wait_call(4, "select").await?;
            assert_eq!(call["form"], json!({"dsel": "2"}));

            b.click("#d-check").await?;
            let call = page.wait_call(5, "checkbox").await?;
            assert_eq!(call["form"], json!({"dcheck": true}));
            assert_eq!(
                b.eval(r##"document.getElementById("d-check").checked"##)
                    .await?,
                json!(true)
            );

            // The submit button's click is not the form's default; the submit is.
            b.click("#d-submit").await?;
            let call = page.wait_call(6, "form").await?;
            assert_eq!(call["form"], json!({"q": "query"}));

            assert_eq!(
                page.whiches().await?,
                ["button", "text", "textarea", "select", "checkbox", "form"]
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn page_stop_keeps_ancestor_actions_from_running() {
    let body = r##"
<div id="outer" data-action="click->page#run" data-liveview-function="b_log" data-data-which="outer"
     style="padding: 1rem; border: 1px solid #999">
  <button id="stop-click" data-action="click->page#stop">click-&gt;page#stop</button>
  <button id="stop-default" data-action="page#stop">page#stop</button>
  <span id="plain">plain child</span>
</div>
<button id="marker" data-action="click->page#run" data-liveview-function="b_log" data-data-which="marker">marker</button>
"##;
    browser_test(
        "page_stop_keeps_ancestor_actions_from_running",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#stop-click").await?;
            b.click("#stop-default").await?;
            // Calls from one page are handled in order: had a stopped click
            // reached #outer, its entry would come before the marker's.
            b.click("#marker").await?;
            page.wait_call(1, "marker").await?;

            // A child without a stop lets the click reach its ancestor.
            b.click("#plain").await?;
            page.wait_call(2, "outer").await?;
            assert_eq!(page.whiches().await?, ["marker", "outer"]);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn data_data_keys_reach_the_handler_in_snake_case() {
    let body = r##"
<button id="with-data" data-action="click->page#run" data-liveview-function="b_log"
        data-data-which="data" data-data-comment-id="42" data-data-user-name="Ada Lovelace"
        data-data-x="1" data-other="not sent">send data</button>
"##;
    browser_test(
        "data_data_keys_reach_the_handler_in_snake_case",
        body,
        async |page| {
            page.browser.click("#with-data").await?;
            let call = page.wait_call(1, "data").await?;
            assert_eq!(
                call["data"],
                json!({"which": "data", "comment_id": "42", "user_name": "Ada Lovelace", "x": "1"})
            );
            // The handler's answer is in the page, as the handler saw it.
            let shown = page.browser.text("#log li").await?;
            assert!(shown.contains(r##""comment_id":"42""##), "{shown}");
            assert_eq!(call["form"], json!({}));
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn key_filters_global_descriptors_and_links() {
    let body = r##"
<input id="k-enter" name="kq" data-action="keydown.enter->page#run" data-liveview-function="b_log" data-data-which="enter">
<div data-action="keydown.esc@document->page#run" data-liveview-function="b_log" data-data-which="esc"></div>
<a id="link" href="/elsewhere" data-action="click->page#run" data-liveview-function="b_log" data-data-which="link">a link</a>
"##;
    browser_test(
        "key_filters_global_descriptors_and_links",
        body,
        async |page| {
            let b = &page.browser;
            // Other keys do not match the filter; Enter does.
            b.type_text("#k-enter", "ab").await?;
            b.type_text("#k-enter", "\u{E007}").await?;
            let call = page.wait_call(1, "enter").await?;
            assert_eq!(call["form"], json!({"kq": "ab"}));

            // Escape anywhere in the document.
            b.type_text("#k-enter", "\u{E00C}").await?;
            page.wait_call(2, "esc").await?;

            // A link runs the function instead of navigating.
            b.click("#link").await?;
            page.wait_call(3, "link").await?;
            assert_eq!(b.eval("location.pathname").await?, json!("/"));
            assert_eq!(page.whiches().await?, ["enter", "esc", "link"]);
            Ok(())
        },
    )
    .await;
}
