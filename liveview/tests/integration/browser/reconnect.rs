//! The server dies and comes back on the same port: the page shows it is
//! offline, keeps the calls made meanwhile, and reconnects by itself.

use std::time::Duration;

use serde_json::json;

use super::browser_test;

const BANNER_SHOWN: &str = r##"(() => {
    const el = document.getElementById("no-connection");
    return !el.hidden && getComputedStyle(el).display !== "none" && el.getBoundingClientRect().height > 0;
})()"##;
const BANNER_HIDDEN: &str = r##"(() => {
    const el = document.getElementById("no-connection");
    return el.hidden && getComputedStyle(el).display === "none";
})()"##;
const DISCONNECTED: &str = r##"document.documentElement.dataset.liveviewConnected === "false""##;

/// Reconnection backs off (with jitter) while the server is down: allow
/// for a few attempts.
const RECONNECT: Duration = Duration::from_secs(40);

#[tokio::test]
async fn the_page_reconnects_and_delivers_a_call_queued_while_down() {
    let body = r##"
<button id="call" data-action="click->page#run" data-liveview-function="b_log" data-data-which="queued">call</button>
"##;
    browser_test(
        "the_page_reconnects_and_delivers_a_call_queued_while_down",
        body,
        async |page| {
            let room = page.browser.eval("LiveView.room").await?;
            page.kill_server();
            let b = &page.browser;
            b.wait(DISCONNECTED).await?;

            b.click("#call").await?;
            b.wait("LiveView.queued === 1").await?;
            assert_eq!(
                b.eval(r##"document.querySelectorAll("#log li").length"##)
                    .await?,
                json!(0)
            );

            page.restart_server().await;
            let b = &page.browser;
            b.wait_for(
                r##"document.documentElement.dataset.liveviewConnected === "true""##,
                RECONNECT,
            )
            .await?;
            let call = page.wait_call(1, "queued").await?;
            assert_eq!(call["data"], json!({"which": "queued"}));
            assert_eq!(b.eval("LiveView.queued").await?, json!(0));
            assert_eq!(
                b.eval("LiveView.room").await?,
                room,
                "same room after reconnecting"
            );

            // And it keeps working.
            b.click("#call").await?;
            page.wait_call(2, "queued").await?;
            page.assert_no_page_errors().await
        },
    )
    .await;
}

#[tokio::test]
async fn no_connection_is_shown_while_the_server_is_down() {
    browser_test(
        "no_connection_is_shown_while_the_server_is_down",
        "",
        async |page| {
            page.browser.wait(BANNER_HIDDEN).await?;
            page.kill_server();
            let b = &page.browser;
            b.wait(DISCONNECTED).await?;
            b.wait(BANNER_SHOWN).await?;
            b.save_screenshot("no_connection_is_shown_while_the_server_is_down-offline")
                .await?;
            assert!(b.text("#no-connection").await?.contains("Connection lost"));

            page.restart_server().await;
            let b = &page.browser;
            b.wait_for(
                r##"document.documentElement.dataset.liveviewConnected === "true""##,
                RECONNECT,
            )
            .await?;
            b.wait(BANNER_HIDDEN).await?;
            Ok(())
        },
    )
    .await;
}
