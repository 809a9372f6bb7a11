//! The authenticator fills the scope's user at upgrade time; the scope
//! carries the request's cookies, query, path and peer.

use liveview::testing::{Closed, WsClient};
use liveview::{Identity, LiveView, Scope, User};
use serde_json::json;

use crate::support::{next, server};

fn by_session_cookie(scope: &Scope) -> Option<User> {
    match scope.cookie("session").as_deref() {
        Some("valid-ada") => Some(User::new("1", "Ada")),
        _ => None,
    }
}

#[tokio::test]
async fn the_authenticator_populates_the_user() {
    let server = server(LiveView::builder().authenticator(by_session_cookie)).await;
    let url = format!("{}?tab=alerts", server.ws_url("auth-room"));
    let mut ada =
        liveview::testing::WsClient::connect(&url, &[("Cookie", "theme=dark; session=valid-ada")])
            .await
            .unwrap();
    ada.call("whoami", json!({}), json!({})).await.unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({
            "user": "Ada",
            "cookie": "valid-ada",
            "query": "alerts",
            "path": "/ws/liveview/auth-room/",
            "peer": "127.0.0.1",
            "room": "auth-room"
        })
    );

    let frame = whoami(&server, "auth-room", "session=forged").await;
    assert_eq!(frame["user"], json!(null));
    assert_eq!(frame["cookie"], "forged");
}

/// What `whoami` answers a connection to `room` sending `cookie`.
async fn whoami(
    server: &liveview::testing::TestServer,
    room: &str,
    cookie: &str,
) -> serde_json::Value {
    let mut client = server
        .connect_with(room, &[("Cookie", cookie)])
        .await
        .unwrap();
    client.call("whoami", json!({}), json!({})).await.unwrap();
    next(&mut client).await
}

fn sessions_with_an_ended_one(scope: &Scope) -> Identity {
    match scope.cookie("session").as_deref() {
        Some("valid-ada") => Identity::User(User::new("1", "Ada")),
        Some("signed-out") => Identity::Expired,
        _ => Identity::Anonymous,
    }
}

#[tokio::test]
async fn an_ended_session_is_accepted_then_closed_with_4401() {
    let server = server(LiveView::builder().authenticator(sessions_with_an_ended_one)).await;
    let url = server.ws_url("expired-room");
    let mut ended = WsClient::connect(&url, &[("Cookie", "session=signed-out")])
        .await
        .expect("the upgrade is accepted, so the browser can read the close code");
    assert_eq!(ended.closed().await, Closed::Code(4401));
    assert_eq!(server.live().connections(), 0);

    let frame = whoami(&server, "expired-room", "session=unknown").await;
    assert_eq!(frame["user"], json!(null));
}

#[tokio::test]
async fn expire_closes_a_live_connection_with_4401_after_its_frames() {
    let server = server(LiveView::builder().authenticator(sessions_with_an_ended_one)).await;
    let mut ada = server
        .connect_with("expire-room", &[("Cookie", "session=valid-ada")])
        .await
        .unwrap();
    ada.call("expire_me", json!({}), json!({})).await.unwrap();
    assert_eq!(
        next(&mut ada).await,
        json!({"target": "#bye", "html": "bye"})
    );
    assert_eq!(ada.closed().await, Closed::Code(4401));
}

#[liveview::liveview_handler("expire_me")]
async fn expire_me(consumer: &liveview::Consumer, _content: liveview::Content) -> liveview::Result {
    consumer.send(liveview::Update::new("#bye").html("bye"))?;
    consumer.expire();
    Ok(())
}
