//! Replay after reconnect: what a client missed in its groups comes first,
//! in order, with no duplicate and no gap; a gap beyond the log is a
//! resync.

use liveview::layer::ReplayConfig;
use liveview::testing::TestApp;
use liveview::{LiveView, Update};
use serde_json::{Value, json};

use crate::support::{next, server};

fn app(capacity: usize) -> TestApp {
    let replay = ReplayConfig::default().with_frames(capacity);
    TestApp::new(LiveView::builder().replay(Some(replay)).build().unwrap())
}

async fn say(app: &TestApp, room: &str, text: &str) {
    app.live()
        .broadcaster()
        .send_to_room(room, Update::new("#log").html(text).append())
        .await
        .unwrap();
}

/// The frames with their `epoch` taken out, once checked: well-formed, and
/// the same for every frame of a group.
fn without_epochs(mut frames: Vec<Value>) -> Vec<Value> {
    let mut epochs = std::collections::HashMap::new();
    for frame in &mut frames {
        if let Some(epoch) = frame.as_object_mut().and_then(|f| f.remove("epoch")) {
            let epoch = epoch.as_str().expect("a string epoch").to_owned();
            assert!(liveview::layer::is_valid_epoch(&epoch), "{epoch:?}");
            let group = frame["group"]
                .as_str()
                .expect("a numbered frame has its group");
            let first = epochs
                .entry(group.to_owned())
                .or_insert_with(|| epoch.clone());
            assert_eq!(*first, epoch, "one epoch per group");
        }
    }
    frames
}

fn texts(frames: &[Value]) -> Vec<(&str, u64)> {
    frames
        .iter()
        .map(|f| {
            (
                f["html"].as_str().unwrap_or("?"),
                f["seq"].as_u64().unwrap_or(0),
            )
        })
        .collect()
}

#[tokio::test]
async fn group_frames_are_numbered_only_for_clients_that_track_them() {
    let app = app(16);
    let mut tracking = app.reconnect("numbered", "").await;
    let mut plain = app.connect("numbered");
    say(&app, "numbered", "a").await;
    say(&app, "numbered", "b").await;
    assert_eq!(
        without_epochs(tracking.received()),
        [
            json!({"target": "#log", "html": "a", "append": true, "seq": 1, "group": "room_numbered"}),
            json!({"target": "#log", "html": "b", "append": true, "seq": 2, "group": "room_numbered"}),
        ]
    );
    assert_eq!(
        plain.received(),
        [
            json!({"target": "#log", "html": "a", "append": true}),
            json!({"target": "#log", "html": "b", "append": true}),
        ]
    );
}

#[tokio::test]
async fn no_gap_small_gap_and_then_live_frames_in_order() {
    let app = app(16);
    let _member = app.connect("small");
    for text in ["1", "2", "3"] {
        say(&app, "small", text).await;
    }
    // Saw everything: nothing to replay.
    let mut up_to_date = app.reconnect("small", "room_small:3").await;
    assert!(up_to_date.received().is_empty());

    // Missed two: they come first, in order, then the next live one.
    let mut behind = app.reconnect("small", "room_small:1").await;
    say(&app, "small", "4").await;
    assert_eq!(texts(&behind.received()), [("2", 2), ("3", 3), ("4", 4)]);
    assert_eq!(texts(&up_to_date.received()), [("4", 4)]);
}

#[tokio::test]
async fn broadcasts_are_replayed_too() {
    let app = app(16);
    let _member = app.connect("b");
    let broadcaster = app.live().broadcaster();
    broadcaster
        .broadcast(json!({"title": "one"}))
        .await
        .unwrap();
    broadcaster
        .broadcast(json!({"title": "two"}))
        .await
        .unwrap();
    let mut back = app.reconnect("b", "broadcast:0,room_b:0").await;
    let frames = without_epochs(back.received());
    assert_eq!(
        frames,
        [
            json!({"title": "one", "seq": 1, "group": "broadcast"}),
            json!({"title": "two", "seq": 2, "group": "broadcast"}),
        ]
    );
}

#[tokio::test]
async fn a_gap_beyond_the_log_asks_the_page_to_resync() {
    let app = app(2);
    let _member = app.connect("gap");
    for text in ["1", "2", "3", "4", "5"] {
        say(&app, "gap", text).await;
    }
    let mut far_behind = app.reconnect("gap", "room_gap:1").await;
    assert_eq!(far_behind.received(), [json!({"resync": true})]);
    say(&app, "gap", "6").await;
    assert_eq!(texts(&far_behind.received()), [("6", 6)]);

    // A client numbered by a log this process no longer has (a restart).
    let mut from_before = app.reconnect("gap", "room_gap:99").await;
    assert_eq!(from_before.received(), [json!({"resync": true})]);
}

#[tokio::test]
async fn resume_asks_only_for_the_connections_own_groups() {
    let app = app(16);
    let _member = app.connect("secret-room");
    say(&app, "secret-room", "private").await;
    let mut snoop = app.reconnect("other", "room_secret-room:0").await;
    assert!(snoop.received().is_empty(), "another room's log leaked");
}

#[tokio::test]
async fn replay_can_be_turned_off() {
    let app = TestApp::new(LiveView::builder().replay(None).build().unwrap());
    let _member = app.connect("off");
    say(&app, "off", "x").await;
    let mut back = app.reconnect("off", "room_off:0").await;
    assert!(back.received().is_empty());
    say(&app, "off", "y").await;
    assert_eq!(
        back.received(),
        [json!({"target": "#log", "html": "y", "append": true})]
    );
}

#[tokio::test]
async fn a_browser_socket_resumes_through_the_url() {
    let server = server(LiveView::builder()).await;
    let mut first = liveview::testing::WsClient::connect(
        &format!("{}?resume=", server.ws_url("url-room")),
        &[],
    )
    .await
    .unwrap();
    let broadcaster = server.live().broadcaster();
    crate::support::wait_until("joined", || broadcaster.local_connections("url-room") == 1).await;
    for text in ["a", "b", "c"] {
        broadcaster
            .send_to_room("url-room", Update::new("#log").html(text))
            .await
            .unwrap();
    }
    assert_eq!(next(&mut first).await["seq"], 1);
    first.close().await;

    let url = format!("{}?resume=room_url-room:1", server.ws_url("url-room"));
    let mut again = liveview::testing::WsClient::connect(&url, &[])
        .await
        .unwrap();
    assert_eq!(next(&mut again).await["html"], "b");
    assert_eq!(next(&mut again).await["html"], "c");
    broadcaster
        .send_to_room("url-room", Update::new("#log").html("d"))
        .await
        .unwrap();
    let live = next(&mut again).await;
    assert_eq!(
        (live["html"].as_str(), live["seq"].as_u64()),
        (Some("d"), Some(4))
    );
}
