//! Signing in and out over HTTP, and what a session allows over the
//! WebSocket: the cookie the login form sets is the one the connection
//! reads.

use std::time::Duration;

use demo::Secret;
use demo::pages::alerts::ROOM;
use liveview::LiveView;
use serde_json::json;

use crate::support::{
    TempDir, TestDemo, call, config, cookie_pair, encode, header, html_for, next,
};

#[tokio::test]
async fn the_login_page_asks_for_a_name_only() {
    let server = TestDemo::start().await;
    let (status, page) = server.get("/login/?next=%2Falerts%2F").await;
    assert_eq!(status, 200);
    assert!(page.contains(r#"<form id="login-form" class="form" method="post" action="/login/">"#));
    assert!(page.contains(r#"name="name""#));
    assert!(!page.contains(r#"type="password""#));
    assert!(page.contains("there is no password"), "{page}");
    assert!(page.contains(r#"<input type="hidden" name="next" value="&#x2f;alerts&#x2f;">"#));

    // Every page links to it, coming back to where the visitor was.
    let (_, index) = server.get("/search/?q=oak").await;
    assert!(
        index.contains(r#"href="/login/?next=%2Fsearch%2F%3Fq%3Doak">Sign in</a>"#),
        "{index}"
    );
}

#[tokio::test]
async fn signing_in_sets_a_session_that_the_socket_reads() {
    let server = TestDemo::start().await;
    let (status, headers, _) = server
        .post_form("/login/", &[("name", "  Ada "), ("next", "/alerts/")], None)
        .await;
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/alerts/"));
    let set_cookie = header(&headers, "set-cookie").expect("a session cookie");
    assert!(set_cookie.starts_with("liveview_session="), "{set_cookie}");
    for attribute in ["HttpOnly", "SameSite=Lax", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = cookie_pair(set_cookie);

    // The pages know who it is.
    let (_, _, page) = server
        .request("GET", "/alerts/", &[("cookie", &cookie)], "")
        .await;
    assert!(
        page.contains(r#"<span class="account__name">Ada</span>"#),
        "{page}"
    );
    assert!(page.contains(r#"action="/logout/""#));
    assert!(!page.contains(">Sign in</a>"));

    // And so does the socket: Ada may delete, for everyone.
    let mut ada = liveview::testing::WsClient::connect(
        &format!("ws://{}/ws/liveview/{ROOM}/", server.addr),
        &[("cookie", &cookie)],
    )
    .await
    .unwrap();
    let mut bob = server.connect(ROOM).await;
    call(
        &mut bob,
        "alerts_create",
        json!({"kind": "info", "message": "Delete me"}),
        json!({}),
    )
    .await;
    let _ = next(&mut ada).await;
    let id = server.demo.db().alerts(None, 1, 0).await.unwrap()[0].id;
    let remove = json!({"target": format!("#alert-{id}"), "remove": true});
    let frames = call(&mut ada, "alerts_delete", json!({}), json!({"alertId": id})).await;
    assert_eq!(frames, std::slice::from_ref(&remove));
    assert_eq!(next(&mut bob).await, remove);
    // Bob, anonymous, may not.
    let frames = call(&mut bob, "alerts_delete", json!({}), json!({"alertId": id})).await;
    assert!(html_for(&frames, "#flash").contains("Sign in to delete alerts."));
}

#[tokio::test]
async fn posts_from_other_sites_are_refused() {
    let server = TestDemo::start().await;
    let body = encode(&[("name", "Mallory"), ("next", "/alerts/")]);
    for headers in [
        vec![("origin", "http://evil.example")],
        vec![("origin", "null")],
        vec![("origin", "https://127.0.0.1:1")],
        vec![("referer", "http://evil.example/")],
        vec![],
    ] {
        let (status, response_headers, text) =
            server.request("POST", "/login/", &headers, &body).await;
        assert_eq!(status, 403, "{headers:?}");
        assert!(text.contains("another site"), "{text}");
        assert_eq!(header(&response_headers, "set-cookie"), None, "{headers:?}");
    }
    // Signing out is a post too: another site cannot sign a visitor out.
    let cookie = server.session_cookie("Ada");
    let (status, response_headers, _) = server
        .request(
            "POST",
            "/logout/",
            &[("origin", "http://evil.example"), ("cookie", &cookie)],
            "next=%2F",
        )
        .await;
    assert_eq!(status, 403);
    assert_eq!(header(&response_headers, "set-cookie"), None);
}

#[tokio::test]
async fn bad_names_are_explained_and_kept_in_the_form() {
    let server = TestDemo::start().await;
    let long = "x".repeat(41);
    for (name, error) in [
        ("", "Write a name to sign in with."),
        ("   ", "Write a name to sign in with."),
        (long.as_str(), "A name has at most 40 characters."),
        ("Ada\u{7}", "A name cannot contain control characters."),
    ] {
        let (status, headers, page) = server
            .post_form("/login/", &[("name", name), ("next", "/snake/")], None)
            .await;
        assert_eq!(status, 400, "{name:?}");
        assert_eq!(header(&headers, "set-cookie"), None);
        assert!(page.contains(error), "{name:?}: {page}");
        assert!(page.contains(r#"<input type="hidden" name="next" value="&#x2f;snake&#x2f;">"#));
    }
    let (_, _, page) = server
        .post_form("/login/", &[("name", &format!("<b>{long}</b>"))], None)
        .await;
    assert!(
        page.contains("value=\"&lt;b&gt;xxx"),
        "what was typed, escaped"
    );
}

#[tokio::test]
async fn the_way_back_stays_on_this_site() {
    let server = TestDemo::start().await;
    for (next, location) in [
        ("/snake/abc/", "/snake/abc/"),
        ("/search/?q=walnut+lamp", "/search/?q=walnut+lamp"),
        ("//evil.example/", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("/a b", "/"),
        ("", "/"),
    ] {
        let (status, headers, _) = server
            .post_form("/login/", &[("name", "Ada"), ("next", next)], None)
            .await;
        assert_eq!(status, 303, "{next:?}");
        assert_eq!(header(&headers, "location"), Some(location), "{next:?}");
    }
}

#[tokio::test]
async fn signing_out_clears_the_session() {
    let server = TestDemo::start().await;
    let cookie = server.session_cookie("Ada");
    let (status, headers, _) = server
        .post_form("/logout/", &[("next", "/alerts/")], Some(&cookie))
        .await;
    assert_eq!(status, 303);
    assert_eq!(header(&headers, "location"), Some("/alerts/"));
    let cleared = header(&headers, "set-cookie").unwrap();
    assert!(cleared.starts_with("liveview_session=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");

    // A copy of the signed-out cookie is no one on a page, and an ended
    // session on a socket (closed with 4401).
    let (_, _, page) = server
        .request("GET", "/login/", &[("cookie", &cookie)], "")
        .await;
    assert!(!page.contains("You are signed in"), "{page}");
    let mut copy = liveview::testing::WsClient::connect(
        &format!("ws://{}/ws/liveview/{ROOM}/", server.addr),
        &[("cookie", &cookie)],
    )
    .await
    .unwrap();
    assert_eq!(copy.closed().await, liveview::testing::Closed::Code(4401));

    // A signed-in visitor on the login page is offered to sign out.
    let fresh = server.session_cookie("Grace");
    let (_, _, page) = server
        .request("GET", "/login/", &[("cookie", &fresh)], "")
        .await;
    assert!(page.contains("You are signed in"), "{page}");
}

/// A call from a connection whose session another process signed out is
/// refused at once with 4401, before that process looks for sign-outs made
/// elsewhere (here: not for an hour).
#[tokio::test]
async fn a_call_after_a_sign_out_on_another_process_is_refused_at_once() {
    let dir = TempDir::new();
    let secret = Secret::new("a test secret that is long enough to sign sessions");
    let one = TestDemo::start_with(
        config(&dir).with_secret(secret.clone()),
        LiveView::builder(),
    )
    .await;
    let two = TestDemo::start_with(
        config(&dir)
            .with_secret(secret)
            .with_sign_out_check(Duration::from_secs(3600)),
        LiveView::builder(),
    )
    .await;
    let mut ada = two.connect_as(ROOM, "Ada").await;
    let quiet = call(
        &mut ada,
        "alerts_validate",
        json!({}),
        json!({"field": "none"}),
    )
    .await;
    assert_eq!(quiet, Vec::<serde_json::Value>::new());

    let cookie = one.session_cookie("Ada");
    let (status, _, _) = one
        .post_form("/logout/", &[("next", "/")], Some(&cookie))
        .await;
    assert_eq!(status, 303);
    ada.send_json(&json!({"function": "alerts_validate", "data": {"field": "none"}, "ref": 1}))
        .await
        .expect("the call is sent");
    assert_eq!(ada.closed().await, liveview::testing::Closed::Code(4401));
}
