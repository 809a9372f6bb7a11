//! Presence across two nodes sharing one Redis: pages in one room, on
//! either node, show how many are watching, and the count drops when a tab
//! closes.

#![cfg(feature = "redis")]

use axum::Router;
use liveview::testing::TestServer;
use liveview::{LiveView, LiveViewBuilder, Presence, Update};
use liveview_testing::browser::Browser;

use super::page_routes;
use super::replay::finish;
use super::replay::shared::{on_redis, unique_prefix, wait_delivered};

const BODY: &str = r##"
<p id="viewers"></p>
<p id="probe"></p>
<p id="probe-all"></p>
"##;

fn viewers(presence: &Presence) -> Option<Update> {
    Some(Update::new("#viewers").html(format!("{} watching", presence.count)))
}

fn node(prefix: &str) -> LiveViewBuilder {
    on_redis(LiveView::builder().on_presence(viewers), prefix)
}

#[tokio::test]
async fn presence_counts_across_two_nodes_and_drops_when_a_tab_closes() {
    let name = "presence_counts_across_two_nodes_and_drops_when_a_tab_closes";
    let room = liveview::template::room_uuid();
    let prefix = unique_prefix();
    let routes: Router = page_routes(BODY);
    let node_a = TestServer::start(node(&prefix), routes.clone())
        .await
        .expect("node A starts");
    let node_b = TestServer::start(node(&prefix), routes)
        .await
        .expect("node B starts");
    let on_a = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let path = format!("/?room={room}");
    let result = async {
        on_a.open(&node_a.url(&path)).await?;
        on_a.wait_for_text("#viewers", "1 watching").await?;
        // Node A hears the room from node B before the second tab comes.
        wait_delivered(&on_a, node_b.live(), &room).await?;

        let on_b = on_a.new_session().await?;
        on_b.open(&node_b.url(&path)).await?;
        on_b.wait_for_text("#viewers", "2 watching").await?;
        on_a.wait_for_text("#viewers", "2 watching").await?;
        on_b.save_screenshot(&format!("{name}-b")).await?;

        // Closing the tab on node B: node A's page counts one again.
        on_b.close().await?;
        on_a.wait_for_text("#viewers", "1 watching").await?;
        Ok(())
    }
    .await;
    finish(name, &on_a, result).await;
}
