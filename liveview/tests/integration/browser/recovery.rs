//! Form recovery: after a reconnect (not the first connect), every form
//! with `data-liveview-recover="fn"` calls `fn` with the values it shows.

use serde_json::json;

use super::browser_test;

#[tokio::test]
async fn forms_with_recover_send_their_values_after_every_reconnect() {
    let body = r##"
<form id="draft" data-liveview-recover="b_log" data-data-which="recover">
  <input id="title" name="title">
  <input type="checkbox" id="public" name="public">
</form>
<form id="plain"><input name="other" value="not sent"></form>
<button id="mark" data-action="click->page#run" data-liveview-function="b_log" data-data-which="mark">mark</button>
"##;
    browser_test(
        "forms_with_recover_send_their_values_after_every_reconnect",
        body,
        async |page| {
            let b = &page.browser;
            let reconnect = async || -> Result<(), Box<dyn std::error::Error>> {
                let n = b.eval("__lv.connects").await?;
                let d = b.eval("__lv.disconnects || 0").await?;
                b.execute("LiveView.socket.close()", vec![]).await?;
                // Counted, not looked for: the page's own retry may have
                // connected it again before a look at its state.
                b.wait(&format!("__lv.disconnects === {d} + 1")).await?;
                b.execute("LiveView.connect()", vec![]).await?;
                b.wait(&format!("__lv.connects === {n} + 1")).await?;
                Ok(())
            };
            // The first connect sends nothing: the first call is the mark.
            b.type_text("#title", "half a title").await?;
            b.click("#mark").await?;
            page.wait_call(1, "mark").await?;

            reconnect().await?;
            let call = page.wait_call(2, "recover").await?;
            assert_eq!(
                call["form"],
                json!({"title": "half a title", "public": false})
            );

            b.click("#public").await?;
            reconnect().await?;
            let call = page.wait_call(3, "recover").await?;
            assert_eq!(
                call["form"],
                json!({"title": "half a title", "public": true})
            );

            b.click("#mark").await?;
            page.wait_call(4, "mark").await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}
