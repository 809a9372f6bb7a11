//! Attributes acted on when an element is rendered or seen: intersect,
//! focus, init; and debounced calls.

use std::sync::atomic::{AtomicUsize, Ordering};

use liveview::{Consumer, Content, Update, liveview_handler};
use serde_json::json;

use super::browser_test;

/// Puts `data.html` into `#target` (test markup only).
#[liveview_handler("b_render")]
async fn b_render(consumer: &Consumer, content: Content) -> liveview::Result {
    consumer.send(Update::new("#target").html(content.data.str_or("html", "")))?;
    Ok(())
}

static DEBOUNCED_CALLS: AtomicUsize = AtomicUsize::new(0);

/// Counts its calls and shows `count:text`.
#[liveview_handler("b_debounced")]
async fn b_debounced(consumer: &Consumer, content: Content) -> liveview::Result {
    let count = DEBOUNCED_CALLS.fetch_add(1, Ordering::SeqCst) + 1;
    let text = liveview::escape(content.form.str_or("q", ""));
    consumer.send(Update::new("#debounced").html(format!("{count}:{text}")))?;
    Ok(())
}

#[tokio::test]
async fn intersect_appear_and_disappear_respect_the_threshold() {
    // #a starts 100 px below the viewport; #b under it, but within its
    // 400 px threshold.
    let body = r##"
<div style="height: calc(100vh + 100px)">top</div>
<div id="a" style="height: 50px; background: #fde68a" data-liveview-intersect-appear="b_log"
     data-liveview-intersect-disappear="b_log" data-data-which="a">a</div>
<div id="b" style="height: 50px; background: #bfdbfe" data-liveview-intersect-appear="b_log"
     data-liveview-intersect-disappear="b_log" data-liveview-intersect-threshold="400" data-data-which="b">b</div>
<div style="height: 4000px">bottom</div>
"##;
    browser_test(
        "intersect_appear_and_disappear_respect_the_threshold",
        body,
        async |page| {
            let b = &page.browser;
            page.wait_call(1, "b").await?;
            let scroll = |js: &'static str| async move {
                b.execute(&format!("window.scrollTo(0, {js});"), vec![])
                    .await
            };
            let a_in_middle = r##"document.getElementById("a").offsetTop - innerHeight / 2"##;

            // #a comes into view.
            scroll(a_in_middle).await?;
            page.wait_call(2, "a").await?;

            // #b's bottom 200 px above the viewport: #a is out, #b within 400 px.
            scroll(r##"document.getElementById("b").offsetTop + 250"##).await?;
            page.wait_call(3, "a").await?;

            // 1000 px further: #b leaves its extended viewport too.
            scroll(r##"document.getElementById("b").offsetTop + 1050"##).await?;
            page.wait_call(4, "b").await?;

            // And back: both appear again.
            scroll(a_in_middle).await?;
            let log = page.wait_log(6).await?;
            let mut last_two: Vec<_> = log[4..]
                .iter()
                .map(|c| c["data"]["which"].clone())
                .collect();
            last_two.sort_by_key(|v| v.to_string());
            assert_eq!(last_two, [json!("a"), json!("b")]);
            assert_eq!(page.whiches().await?.len(), 6);
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn focus_goes_to_rendered_elements() {
    let body = r##"
<input id="first" data-liveview-focus="true" placeholder="focused on load">
<input id="never" data-liveview-focus="false" placeholder="not focused">
<button id="render" data-action="click->page#run" data-liveview-function="b_render"
        data-data-html='<input id="second" data-liveview-focus="true" placeholder="focused when rendered">'>render</button>
<div id="target"></div>
"##;
    browser_test("focus_goes_to_rendered_elements", body, async |page| {
        let b = &page.browser;
        b.wait(r##"document.activeElement && document.activeElement.id === "first""##)
            .await?;
        b.click("#render").await?;
        b.wait(r##"document.activeElement && document.activeElement.id === "second""##)
            .await?;
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn init_calls_once_per_rendered_element() {
    let body = r##"
<div data-liveview-init="b_log" data-data-which="init-page">on the page</div>
<button id="render" data-action="click->page#run" data-liveview-function="b_render"
        data-data-html='<div data-liveview-init="b_log" data-data-which="init-rendered">rendered</div>'>render</button>
<button id="marker" data-action="click->page#run" data-liveview-function="b_log" data-data-which="marker">marker</button>
<div id="target"></div>
"##;
    browser_test("init_calls_once_per_rendered_element", body, async |page| {
        let b = &page.browser;
        page.wait_call(1, "init-page").await?;
        b.click("#render").await?;
        page.wait_call(2, "init-rendered").await?;
        b.click("#marker").await?;
        page.wait_call(3, "marker").await?;
        assert_eq!(
            page.whiches().await?,
            ["init-page", "init-rendered", "marker"]
        );
        Ok(())
    })
    .await;
}

#[tokio::test]
async fn debounce_sends_one_call_for_a_burst_of_typing() {
    let body = r##"
<input id="q" name="q" data-action="input->page#run" data-liveview-function="b_debounced" data-liveview-debounce="1000">
<div id="debounced"></div>
<button id="marker" data-action="click->page#run" data-liveview-function="b_log" data-data-which="marker">marker</button>
"##;
    browser_test(
        "debounce_sends_one_call_for_a_burst_of_typing",
        body,
        async |page| {
            let b = &page.browser;
            b.type_text("#q", "hello").await?;
            // Had any keystroke but the last been sent, the count would be 2+.
            b.wait_for_text("#debounced", "1:hello").await?;
            b.click("#marker").await?;
            page.wait_call(1, "marker").await?;
            assert_eq!(DEBOUNCED_CALLS.load(Ordering::SeqCst), 1);
            assert_eq!(b.text("#debounced").await?, "1:hello");
            Ok(())
        },
    )
    .await;
}

/// The infinite scroll of Django LiveView's documentation: appends ten
/// items of page `data.page` to `#items` and puts the trigger for the next
/// page in `#load-more-trigger` (none after page 3).
#[liveview_handler("b_more")]
async fn b_more(consumer: &Consumer, content: Content) -> liveview::Result {
    let page = content.data.i64("page").unwrap_or(1);
    let items: String = (1..=10)
        .map(|i| format!(r#"<li class="item" style="height: 100px">item {page}.{i}</li>"#))
        .collect();
    consumer.send(Update::new("#items").html(items).append())?;
    let trigger = if page < 3 {
        format!(
            r#"<div id="trigger-{next}" data-liveview-intersect-appear="b_more" data-data-page="{next}">loading page {next}…</div>"#,
            next = page + 1
        )
    } else {
        String::new()
    };
    consumer.send(Update::new("#load-more-trigger").html(trigger))?;
    Ok(())
}

#[tokio::test]
async fn infinite_scroll_loads_each_page_once() {
    let body = r##"
<ul id="items"></ul>
<div id="load-more-trigger">
  <div id="trigger-1" data-liveview-intersect-appear="b_more" data-data-page="1">loading page 1…</div>
</div>
"##;
    browser_test("infinite_scroll_loads_each_page_once", body, async |page| {
        let b = &page.browser;
        let items =
            |n: usize| format!(r##"document.querySelectorAll("#items .item").length === {n}"##);
        // Page 1 loads by itself; its items push the next trigger out of view.
        b.wait(&items(10)).await?;
        b.wait(r#"document.getElementById("trigger-2")"#).await?;
        for (n, next) in [(20, Some("trigger-3")), (30, None)] {
            b.execute("window.scrollTo(0, document.body.scrollHeight);", vec![])
                .await?;
            b.wait(&items(n)).await?;
            if let Some(id) = next {
                b.wait(&format!(r#"document.getElementById("{id}")"#))
                    .await?;
            }
        }
        b.wait(r#"document.getElementById("load-more-trigger").children.length === 0"#)
            .await?;
        let texts = b.texts("#items .item").await?;
        let expected: Vec<String> = (1..=3)
            .flat_map(|p| (1..=10).map(move |i| format!("item {p}.{i}")))
            .collect();
        assert_eq!(texts, expected, "every page once, in order");
        page.assert_no_page_errors().await
    })
    .await;
}
