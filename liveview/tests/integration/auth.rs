//! The authenticator fills the scope's user at upgrade time; the scope
//! carries the request's cookies, query, path and peer.

use liveview::{LiveView, Scope, User};
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
    ada.call("whoami", json!({})).await.unwrap();
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

    let mut anonymous = server
        .connect_with("auth-room", &[("Cookie", "session=forged")])
        .await
        .unwrap();
    anonymous.call("whoami", json!({})).await.unwrap();
    let frame = next(&mut anonymous).await;
    assert_eq!(frame["user"], json!(null));
    assert_eq!(frame["cookie"], "forged");
}
