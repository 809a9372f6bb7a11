//! Two independent browsers in different rooms: broadcasts reach both,
//! a room send only its room.

use liveview::{Consumer, Content, Update, liveview_handler};

use super::browser_test;

fn feed_item(content: &Content) -> Update {
    let message = liveview::escape(content.data.str_or("message", ""));
    Update::new("#feed")
        .html(format!("<li>{message}</li>"))
        .append()
}

/// Appends `data.message` to `#feed` on every page.
#[liveview_handler("b_broadcast")]
async fn b_broadcast(consumer: &Consumer, content: Content) -> liveview::Result {
    consumer.broadcast(feed_item(&content)).await?;
    Ok(())
}

/// Appends `data.message` to `#feed` on the pages of room `data.room`.
#[liveview_handler("b_to_room")]
async fn b_to_room(consumer: &Consumer, content: Content) -> liveview::Result {
    let room = content.data.str_or("room", "").to_owned();
    consumer.send_to_room(&room, feed_item(&content)).await?;
    Ok(())
}

#[tokio::test]
async fn broadcast_reaches_both_sessions_and_room_send_only_one() {
    let room_a = format!("room-a-{}", liveview::template::room_uuid());
    let room_b = format!("room-b-{}", liveview::template::room_uuid());
    let body = format!(
        r##"
<button id="everyone" data-action="click->page#run" data-liveview-function="b_broadcast" data-data-message="to everyone">broadcast</button>
<button id="to-b" data-action="click->page#run" data-liveview-function="b_to_room" data-data-room="{room_b}" data-data-message="to room b">to room b</button>
<button id="marker" data-action="click->page#run" data-liveview-function="b_broadcast" data-data-message="marker">marker</button>
<ul id="feed"></ul>
"##
    );
    browser_test(
        "broadcast_reaches_both_sessions_and_room_send_only_one",
        &body,
        async |page| {
            let a = &page.browser;
            a.open(&page.url(&format!("/?room={room_a}"))).await?;
            let b = a.new_session().await?;
            b.open(&page.url(&format!("/?room={room_b}"))).await?;
            assert_eq!(a.eval("LiveView.room").await?, serde_json::json!(room_a));
            assert_eq!(b.eval("LiveView.room").await?, serde_json::json!(room_b));
            // Separate browsers: separate storage.
            a.execute("localStorage.setItem('who', 'a');", vec![])
                .await?;
            assert_eq!(
                b.eval("localStorage.getItem('who')").await?,
                serde_json::Value::Null
            );

            let feed =
                |n: usize| format!(r##"document.querySelectorAll("#feed li").length === {n}"##);
            a.click("#everyone").await?;
            a.wait(&feed(1)).await?;
            b.wait(&feed(1)).await?;
            assert_eq!(a.texts("#feed li").await?, ["to everyone"]);
            assert_eq!(b.texts("#feed li").await?, ["to everyone"]);

            a.click("#to-b").await?;
            b.wait(&feed(2)).await?;
            assert_eq!(b.texts("#feed li").await?, ["to everyone", "to room b"]);

            // Frames reach a page in order: once the marker is in, the room
            // send would have been too.
            a.click("#marker").await?;
            a.wait(&feed(2)).await?;
            b.wait(&feed(3)).await?;
            assert_eq!(a.texts("#feed li").await?, ["to everyone", "marker"]);
            b.save_screenshot("broadcast_reaches_both_sessions_and_room_send_only_one-b")
                .await?;
            Ok(())
        },
    )
    .await;
}
