//! Who is watching, over real WebSockets: the alerts page and each snake
//! game count their own viewers and name the signed-in ones; other pages
//! get no presence updates.

use std::time::Duration;

use demo::pages::alerts::ROOM;
use liveview::testing::Closed;

use crate::support::{TestDemo, viewers_until};

#[tokio::test]
async fn the_alerts_page_shows_how_many_watch_and_who() {
    let server = TestDemo::start().await;
    let (_, page) = server.get("/alerts/").await;
    assert!(page.contains(r#"id="viewers""#), "{page}");

    let mut ada = server.connect_as(ROOM, "Ada").await;
    assert_eq!(
        viewers_until(&mut ada, "1 watching").await,
        "1 watching · Ada"
    );
    let bob = server.connect(ROOM).await;
    assert_eq!(
        viewers_until(&mut ada, "2 watching").await,
        "2 watching · Ada",
        "anonymous viewers are counted, not named"
    );
    let mut grace = server.connect_as(ROOM, "Grace").await;
    assert_eq!(
        viewers_until(&mut grace, "3 watching").await,
        "3 watching · Ada, Grace"
    );
    assert_eq!(
        viewers_until(&mut ada, "3 watching").await,
        "3 watching · Ada, Grace"
    );

    // Leaving is seen too.
    bob.close().await;
    assert_eq!(
        viewers_until(&mut ada, "2 watching").await,
        "2 watching · Ada, Grace"
    );
    drop(grace);
    assert_eq!(
        viewers_until(&mut ada, "1 watching").await,
        "1 watching · Ada"
    );
}

#[tokio::test]
async fn a_user_with_two_tabs_is_named_once_and_long_lists_are_cut() {
    let server = TestDemo::start().await;
    let mut tabs = Vec::new();
    for name in ["Dee", "Ada", "Ada", "Bob", "Cy"] {
        tabs.push(server.connect_as(ROOM, name).await);
    }
    // Names sorted, each once; past three the others are counted.
    assert_eq!(
        viewers_until(&mut tabs[0], "5 watching").await,
        "5 watching · Ada, Bob, Cy and 1 more"
    );
}

#[tokio::test]
async fn names_are_escaped() {
    let server = TestDemo::start().await;
    let mut eve = server
        .connect_as(ROOM, "<img src=x onerror=alert(1)>")
        .await;
    loop {
        let frame = eve.recv().await.unwrap();
        if frame["target"] == "#viewers" {
            let html = frame["html"].as_str().unwrap();
            assert!(
                html.contains("&lt;img src=x onerror=alert(1)&gt;"),
                "{html}"
            );
            assert!(!html.contains("<img"), "{html}");
            break;
        }
    }
}

#[tokio::test]
async fn each_snake_game_counts_its_own_viewers() {
    let server = TestDemo::start().await;
    let mut ada = server.connect_as("snake-one", "Ada").await;
    viewers_until(&mut ada, "1 watching").await;
    let mut bob = server.connect_as("snake-two", "Bob").await;
    viewers_until(&mut bob, "1 watching").await;
    let _alerts = server.connect(ROOM).await;
    let _grace = server.connect_as("snake-one", "Grace").await;
    assert_eq!(
        viewers_until(&mut ada, "2 watching").await,
        "2 watching · Ada, Grace"
    );
    let _cy = server.connect("snake-two").await;
    assert_eq!(
        viewers_until(&mut bob, "2 watching").await,
        "2 watching · Bob",
        "the other game and the alerts page are not counted"
    );
}

#[tokio::test]
async fn other_pages_get_no_presence_updates() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("quickstart-room").await;
    let _bob = server.connect("quickstart-room").await;
    assert_eq!(
        ada.recv_timeout(Duration::from_millis(300)).await,
        Err(Closed::TimedOut)
    );
}
