//! What an outsider without an account can reach: metrics, error text,
//! framing, and a session after signing out.

use demo::pages::alerts::ROOM;
use liveview::LiveView;

use crate::support::{METRICS_TOKEN, TempDir, TestDemo, config, cookie_pair, header};

#[tokio::test]
async fn metrics_are_not_served_to_the_public_by_default() {
    let dir = TempDir::new();
    let mut plain = config(&dir);
    plain.metrics_token = None;
    let server = TestDemo::start_with(plain, LiveView::builder()).await;
    let (status, body) = server.get("/metrics").await;
    assert_eq!(status, 404);
    assert!(!body.contains("liveview_calls_total"), "{body}");
    assert!(!body.contains("say_hello"), "{body}");

    // With a token, only requests that carry it get them.
    let server = TestDemo::start().await;
    let (status, headers, body) = server.get_with_headers("/metrics").await;
    assert_eq!(status, 401);
    assert_eq!(header(&headers, "www-authenticate"), Some("Bearer"));
    assert!(!body.contains("liveview_calls_total"), "{body}");
    let wrong = format!("Bearer {METRICS_TOKEN}x");
    let (status, _, _) = server
        .request("GET", "/metrics", &[("authorization", &wrong)], "")
        .await;
    assert_eq!(status, 401);
    let (status, _, body) = server.metrics().await;
    assert_eq!(status, 200);
    assert!(body.contains("liveview_calls_total"), "{body}");
}

#[tokio::test]
async fn framework_error_text_never_reaches_a_visitor() {
    let server = TestDemo::start().await;
    for (method, path) in [
        ("GET", "/search/?q=a&q=b"),
        ("GET", "/login/?next=a&next=b"),
        ("DELETE", "/search/"),
        ("POST", "/static/demo.css"),
    ] {
        let (status, _, body) = server.request(method, path, &[], "").await;
        assert!((400..500).contains(&status), "{method} {path}: {status}");
        for leak in [
            "deserialize",
            "duplicate field",
            "query string",
            "invalid",
            "`",
        ] {
            assert!(
                !body.to_lowercase().contains(leak),
                "{method} {path} says {leak:?}: {body}"
            );
        }
    }
    let (status, body) = server.get("/search/?q=a&q=b").await;
    assert_eq!((status, body.as_str()), (400, "Bad Request"));
}

#[tokio::test]
async fn pages_cannot_be_framed_or_sniffed() {
    let server = TestDemo::start().await;
    for path in [
        "/",
        "/alerts/",
        "/search/?q=oak",
        "/login/",
        "/static/demo.css",
        "/no-such-page/",
        "/search/?q=a&q=b",
    ] {
        let (_, headers, _) = server.get_with_headers(path).await;
        assert_eq!(
            header(&headers, "x-content-type-options"),
            Some("nosniff"),
            "{path}"
        );
        assert_eq!(header(&headers, "x-frame-options"), Some("DENY"), "{path}");
        assert_eq!(
            header(&headers, "content-security-policy"),
            Some("frame-ancestors 'none'"),
            "{path}"
        );
    }
}

#[tokio::test]
async fn signing_out_ends_the_session_on_the_server() {
    let server = TestDemo::start().await;
    let (_, headers, _) = server
        .post_form("/login/", &[("name", "Ada"), ("next", "/alerts/")], None)
        .await;
    let cookie = cookie_pair(header(&headers, "set-cookie").expect("a session cookie"));
    let signed_in = r#"<span class="account__name">Ada</span>"#;
    let (_, _, page) = server
        .request("GET", "/alerts/", &[("cookie", &cookie)], "")
        .await;
    assert!(page.contains(signed_in), "{page}");

    let (status, _, _) = server
        .post_form("/logout/", &[("next", "/alerts/")], Some(&cookie))
        .await;
    assert_eq!(status, 303);

    // A copy of the cookie, kept (another tab) or stolen, is anonymous now:
    // for the pages...
    let (_, _, page) = server
        .request("GET", "/alerts/", &[("cookie", &cookie)], "")
        .await;
    assert!(!page.contains(signed_in), "{page}");
    assert!(page.contains(">Sign in</a>"), "{page}");
    // ...and for the socket, which is closed as an ended session.
    let mut stolen = liveview::testing::WsClient::connect(
        &format!("ws://{}/ws/liveview/{ROOM}/", server.addr),
        &[("cookie", &cookie)],
    )
    .await
    .unwrap();
    assert_eq!(stolen.closed().await, liveview::testing::Closed::Code(4401));
}
