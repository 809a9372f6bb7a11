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
