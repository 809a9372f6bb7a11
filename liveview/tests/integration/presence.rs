//! Presence: who is in a room, and an update to the room on every change.

use liveview::{Consumer, Content, LiveView, Scope, Update, User, liveview_handler};
use serde_json::json;

use crate::support::{next, server};

#[liveview_handler("who_is_here")]
async fn who_is_here(consumer: &Consumer, _content: Content) -> liveview::Result {
    let presence = consumer.presence().await;
    let names: Vec<&str> = presence.users.iter().map(|u| u.name.as_str()).collect();
    consumer
        .send(json!({"count": presence.count, "anonymous": presence.anonymous, "users": names}))?;
    Ok(())
}

fn by_header(scope: &Scope) -> Option<User> {
    scope.header("x-user").map(|name| User::new(name, name))
}

fn viewers(presence: &liveview::Presence) -> Option<Update> {
    Some(Update::new("#viewers").html(format!("{} watching", presence.count)))
}

#[tokio::test]
async fn the_room_hears_of_every_join_and_leave() {
    let server = server(
        LiveView::builder()
            .authenticator(by_header)
            .on_presence(viewers),
    )
    .await;
    let mut ada = server
        .connect_with("stage", &[("x-user", "Ada")])
        .await
        .unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({"target": "#viewers", "html": "1 watching"})
    );
    let mut bob = server
        .connect_with("stage", &[("x-user", "Bob")])
        .await
        .unwrap();
    assert_eq!(next(&mut ada).await["html"], "2 watching");
    assert_eq!(next(&mut bob).await["html"], "2 watching");
    let mut guest = server.connect("stage").await.unwrap();
    assert_eq!(next(&mut guest).await["html"], "3 watching");
    assert_eq!(next(&mut ada).await["html"], "3 watching");
    assert_eq!(next(&mut bob).await["html"], "3 watching");

    guest
        .call("who_is_here", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut guest).await,
        json!({"count": 3, "anonymous": 1, "users": ["Ada", "Bob"]})
    );

    bob.close().await;
    assert_eq!(next(&mut ada).await["html"], "2 watching");
    assert_eq!(next(&mut guest).await["html"], "2 watching");

    // Another room is not told.
    let mut elsewhere = server.connect("backstage").await.unwrap();
    assert_eq!(next(&mut elsewhere).await["html"], "1 watching");
    crate::support::assert_nothing_pending(&mut ada, "no update from backstage").await;
}

#[tokio::test]
async fn without_tracking_presence_still_counts_this_process() {
    let server = server(LiveView::builder()).await;
    let mut a = server.connect("quiet").await.unwrap();
    let _b = server.connect("quiet").await.unwrap();
    let live = server.live().clone();
    crate::support::wait_until("both joined", || live.connections() == 2).await;
    a.call("who_is_here", json!({}), json!({})).await.unwrap();
    assert_eq!(next(&mut a).await["count"], 2);
}
