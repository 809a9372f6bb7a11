//! Leaving the page and coming back; the room of a page without
//! `data-room`.

use serde_json::{Value, json};

use super::browser_test;

const LOG_BUTTON: &str = r##"
<button id="call" data-action="click->page#run" data-liveview-function="b_log" data-data-which="call">call</button>
"##;

#[tokio::test]
async fn coming_back_to_the_page_keeps_it_live() {
    browser_test(
        "coming_back_to_the_page_keeps_it_live",
        LOG_BUTTON,
        async |page| {
            let b = &page.browser;
            b.click("#call").await?;
            page.wait_call(1, "call").await?;
            b.eval("window.__marker = 1").await?;

            b.open(&page.url(&format!(
                "/?room=elsewhere-{}",
                liveview::template::room_uuid()
            )))
            .await?;
            b.back().await?;
            b.wait_connected().await?;
            let restored = b.eval("window.__marker === 1").await? == json!(true);
            if restored {
                assert_eq!(b.eval("__lv.persisted").await?, json!(true));
            }
            // From the cache the page is as it was left; otherwise it is loaded
            // anew. Either way it is live.
            let before = if restored { 1 } else { 0 };
            b.click("#call").await?;
            page.wait_call(before + 1, "call").await?;
            assert_eq!(b.eval("LiveView.connected").await?, json!(true));
            Ok(())
        },
    )
    .await;
}

#[tokio::test]
async fn a_page_without_data_room_keeps_its_room_across_reloads() {
    browser_test(
        "a_page_without_data_room_keeps_its_room_across_reloads",
        LOG_BUTTON,
        async |page| {
            let b = &page.browser;
            b.open(&page.url("/?room=none")).await?;
            let room = b.eval("LiveView.room").await?;
            let id = room.as_str().unwrap_or_default().to_owned();
            assert!(
                liveview::is_valid_room(&id) && id.len() == 32,
                "a random room: {room}"
            );
            assert_eq!(
                b.eval(r#"document.documentElement.hasAttribute("data-room")"#)
                    .await?,
                json!(false)
            );

            b.client().refresh().await?;
            b.wait_connected().await?;
            assert_eq!(
                b.eval("LiveView.room").await?,
                room,
                "a reload keeps the room"
            );
            b.click("#call").await?;
            page.wait_call(1, "call").await?;

            // Another browser gets a room of its own.
            let other = b.new_session().await?;
            other.open(&page.url("/?room=none")).await?;
            let other_room: Value = other.eval("LiveView.room").await?;
            assert_ne!(other_room, room);
            Ok(())
        },
    )
    .await;
}
