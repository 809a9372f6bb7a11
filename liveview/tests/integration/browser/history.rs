//! `url` pushes history entries; back and forward put their content back.

use liveview::{Consumer, Content, Update, liveview_handler};

use super::browser_test;

/// Shows step `data.step` in `#main`, at `/?step=N`, titled `Step N`.
#[liveview_handler("b_nav")]
async fn b_nav(consumer: &Consumer, content: Content) -> liveview::Result {
    let step = content.data.i64("step").unwrap_or(0);
    consumer.send(
        Update::new("#main")
            .html(format!("<p>step {step}</p>"))
            .url(format!("/?step={step}"))
            .title(format!("Step {step}")),
    )?;
    Ok(())
}

#[tokio::test]
async fn back_and_forward_restore_content_after_url() {
    let body = r##"
<button id="step-2" data-action="click->page#run" data-liveview-function="b_nav" data-data-step="2">step 2</button>
<button id="step-3" data-action="click->page#run" data-liveview-function="b_nav" data-data-step="3">step 3</button>
<main id="main"><p>first</p></main>
"##;
    browser_test("back_and_forward_restore_content_after_url", body, async |page| {
        let b = &page.browser;
        let at = |text: &str, search: &str, title: &str| {
            format!(
                r##"document.querySelector("#main").textContent === "{text}" && location.search === "{search}" && document.title === "{title}""##
            )
        };
        let first = at("first", "", "LiveView browser test");
        b.wait(&first).await?;

        b.click("#step-2").await?;
        b.wait(&at("step 2", "?step=2", "Step 2")).await?;
        b.click("#step-3").await?;
        b.wait(&at("step 3", "?step=3", "Step 3")).await?;

        b.back().await?;
        b.wait(&at("step 2", "?step=2", "Step 2")).await?;
        b.back().await?;
        b.wait(&first).await?;
        b.forward().await?;
        b.wait(&at("step 2", "?step=2", "Step 2")).await?;
        b.forward().await?;
        b.wait(&at("step 3", "?step=3", "Step 3")).await?;

        // The page was never reloaded: still the same socket, still live.
        b.back().await?;
        b.wait(&at("step 2", "?step=2", "Step 2")).await?;
        b.click("#step-3").await?;
        b.wait(&at("step 3", "?step=3", "Step 3")).await?;
        assert_eq!(b.eval("LiveView.connected").await?, serde_json::json!(true));
        page.assert_no_page_errors().await
    })
    .await;
}

#[tokio::test]
async fn back_restores_typed_values_and_the_scroll_position() {
    let body = r##"
<main id="main">
  <form>
    <input id="name" name="name">
    <input type="checkbox" id="ok" name="ok">
    <input type="password" id="pw" name="pw">
    <textarea id="bio" name="bio"></textarea>
    <select id="color" name="color"><option value="red">red</option><option value="green">green</option></select>
  </form>
  <div style="height: 4000px">tall</div>
</main>
"##;
    browser_test(
        "back_restores_typed_values_and_the_scroll_position",
        body,
        async |page| {
            let b = &page.browser;
            b.type_text("#name", "Ada").await?;
            b.click("#ok").await?;
            b.type_text("#pw", "secret").await?;
            b.type_text("#bio", "hello").await?;
            b.select("#color", "green").await?;
            b.execute("window.scrollTo(0, 1500)", vec![]).await?;
            b.wait("window.scrollY === 1500").await?;
            // A navigation that leaves the scroll position alone until the
            // frame comes.
            b.execute("LiveView.call('b_nav', {data: {step: '2'}})", vec![])
                .await?;
            b.wait(r#"location.search === "?step=2" && window.scrollY === 0"#)
                .await?;

            b.back().await?;
            b.wait(r#"location.search === "" && !!document.getElementById("name")"#)
                .await?;
            assert_eq!(
                b.eval(
                    r#"[
                        document.getElementById("name").value,
                        document.getElementById("ok").checked,
                        document.getElementById("pw").value,
                        document.getElementById("bio").value,
                        document.getElementById("color").value,
                        window.scrollY,
                    ]"#
                )
                .await?,
                serde_json::json!(["Ada", true, "", "hello", "green", 1500]),
                "values as left (never a password), scrolled as left"
            );
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn a_failing_replace_state_never_cancels_the_url_change() {
    let body = r##"
<button id="step-2" data-action="click->page#run" data-liveview-function="b_nav" data-data-step="2">step 2</button>
<main id="main"><p>first</p></main>
<script>
  // A browser that refuses (a rate limit, a quota).
  history.replaceState = () => { throw new DOMException("refused", "SecurityError"); };
</script>
"##;
    browser_test(
        "a_failing_replace_state_never_cancels_the_url_change",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#step-2").await?;
            b.wait(r##"document.querySelector("#main").textContent === "step 2""##)
                .await?;
            b.wait(r#"location.search === "?step=2" && document.title === "Step 2""#)
                .await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}

/// Shows page `data.n` (default 1) of about 700 KB in `#main`, at
/// `/?big=N`, in three frames
/// (a frame is at most 256 KiB).
#[liveview_handler("b_big")]
async fn b_big(consumer: &Consumer, content: Content) -> liveview::Result {
    let n = content.data.i64("n").unwrap_or(1);
    let rows = "<p>a row of a very long page</p>".repeat(7_000);
    consumer.send(
        Update::new("#main")
            .html(format!(r#"<h1 id="big">big {n}</h1>{rows}"#))
            .url(format!("/?big={n}")),
    )?;
    for _ in 0..2 {
        consumer.send(Update::new("#main").html(rows.as_str()).append())?;
    }
    Ok(())
}

#[tokio::test]
async fn history_state_stays_small_and_a_big_page_comes_back_from_memory() {
    let body = r##"
<button id="big" data-action="click->page#run" data-liveview-function="b_big">big</button>
<button id="step-2" data-action="click->page#run" data-liveview-function="b_nav" data-data-step="2">step 2</button>
<main id="main"><p>first</p></main>
"##;
    browser_test(
        "history_state_stays_small_and_a_big_page_comes_back_from_memory",
        body,
        async |page| {
            let b = &page.browser;
            b.click("#big").await?;
            b.wait("LiveView.inflight === 0 && document.querySelectorAll('#main p').length === 21000")
                .await?;
            b.click("#step-2").await?;
            b.wait(r#"location.search === "?step=2""#).await?;

            b.back().await?;
            b.wait(r##"location.search === "?big=1" && !!document.querySelector("h1#big")"##)
                .await?;
            let size = b.eval("JSON.stringify(history.state).length").await?;
            assert!(
                size.as_u64().is_some_and(|n| n < 100_000),
                "the big entry's state holds no markup: {size}"
            );
            assert_eq!(
                b.eval("document.querySelectorAll('#main p').length")
                    .await?,
                serde_json::json!(21_000)
            );
            b.back().await?;
            b.wait(r##"location.search === "" && document.querySelector("#main").textContent === "first""##)
                .await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn snapshots_in_memory_are_bounded_and_a_page_without_one_is_reloaded() {
    let body = r##"
<main id="main"><p>first</p></main>
"##;
    browser_test(
        "snapshots_in_memory_are_bounded_and_a_page_without_one_is_reloaded",
        body,
        async |page| {
            let b = &page.browser;
            b.execute("window.__samePage = true", vec![]).await?;
            // Four pages too big for history.state (about 670 K characters
            // each: three fit in memory), then a small one.
            for n in 1..=4 {
                b.execute(&format!("LiveView.call('b_big', {{data: {{n: '{n}'}}}})"), vec![])
                    .await?;
                b.wait(&format!(
                    r##"LiveView.inflight === 0 && location.search === "?big={n}" && document.querySelectorAll("#main p").length === 21000"##
                ))
                .await?;
            }
            b.execute("LiveView.call('b_nav', {data: {step: '5'}})", vec![])
                .await?;
            b.wait(r#"location.search === "?step=5""#).await?;

            // The three newest big pages come back from memory...
            for n in [4, 3, 2] {
                b.back().await?;
                b.wait(&format!(
                    r#"location.search === "?big={n}" && document.querySelector("h1").textContent === "big {n}""#
                ))
                .await?;
                assert_eq!(b.eval("window.__samePage").await?, serde_json::json!(true));
            }
            // ...the oldest was dropped from it: the server renders it.
            b.back().await?;
            b.wait(r#"location.search === "?big=1" && window.__samePage === undefined && !document.querySelector("h1")"#)
                .await?;
            Ok(())
        },
    )
    .await;
}

/// Plays `data.track` in the permanent player, at `/?track=N`.
#[liveview_handler("b_play")]
async fn b_play(consumer: &Consumer, content: Content) -> liveview::Result {
    let track = content.data.i64("track").unwrap_or(0);
    consumer.send(
        Update::new("#now-playing")
            .html(format!("track {track}"))
            .url(format!("/?track={track}")),
    )?;
    Ok(())
}

/// Step 2 of a page whose `#visitors` widget is permanent.
#[liveview_handler("b_nav_visitors")]
async fn b_nav_visitors(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(
        Update::new("#main")
            .html(r#"<p>step 2</p><div id="visitors" data-liveview-permanent>0 online</div>"#)
            .url("/?step=2"),
    )?;
    Ok(())
}

#[tokio::test]
async fn permanent_elements_stay_live_through_back_and_forward() {
    let body = r##"
<aside id="player" data-liveview-permanent><div id="now-playing">nothing</div></aside>
<button id="play" data-action="click->page#run" data-liveview-function="b_play" data-data-track="2">play</button>
<button id="step-2" data-action="click->page#run" data-liveview-function="b_nav_visitors">step 2</button>
<main id="main"><p>first</p><div id="visitors" data-liveview-permanent>0 online</div></main>
"##;
    browser_test(
        "permanent_elements_stay_live_through_back_and_forward",
        body,
        async |page| {
            let b = &page.browser;
            let at = |search: &str, main: &str, playing: &str, visitors: &str| {
                format!(
                    r##"location.search === "{search}" && document.querySelector("#main p").textContent === "{main}" && document.querySelector("#now-playing").textContent === "{playing}" && document.querySelector("#visitors").textContent === "{visitors}""##
                )
            };
            b.click("#play").await?;
            b.wait(&at("?track=2", "first", "track 2", "0 online")).await?;
            b.click("#step-2").await?;
            b.wait(&at("?step=2", "step 2", "track 2", "0 online")).await?;
            // The live widget changes.
            page.server
                .as_ref()
                .expect("the server runs")
                .live()
                .broadcaster()
                .broadcast(Update::new("#visitors").html("5 online"))
                .await?;
            b.wait(&at("?step=2", "step 2", "track 2", "5 online")).await?;

            // Back: the area comes back with the live widget in it, and the
            // player (an area inside a permanent element) is not rolled back.
            b.back().await?;
            b.wait(&at("?track=2", "first", "track 2", "5 online")).await?;
            b.back().await?;
            b.wait(&at("", "first", "track 2", "5 online")).await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}
