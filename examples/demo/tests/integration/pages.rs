//! The pages around the demos: the index, the quick start, the stylesheet,
//! a missing page; and the handlers that are linked in.

use serde_json::json;

use crate::support::{TestDemo, call, header};

#[tokio::test]
async fn the_index_links_every_demo() {
    let server = TestDemo::start().await;
    let (status, page) = server.get("/").await;
    assert_eq!(status, 200);
    for href in ["/quickstart/", "/alerts/", "/snake/", "/search/"] {
        assert!(page.contains(&format!(r#"href="{href}""#)), "{href}");
    }
    assert!(page.contains(r#"id="no-connection""#));
    assert!(page.contains(r#"data-controller="page""#));
    assert!(page.contains(demo::templates::css_url()));
    assert!(page.contains(&liveview::template::script_tag()));
}

#[tokio::test]
async fn the_stylesheet_and_missing_pages() {
    let server = TestDemo::start().await;
    let (status, headers, css) = server.get_with_headers(demo::templates::css_url()).await;
    assert_eq!(status, 200);
    assert!(headers.contains(&("content-type".into(), "text/css; charset=utf-8".into())));
    assert!(css.contains(".alert"));
    let (status, page) = server.get("/no/such/page").await;
    assert_eq!(status, 404);
    assert!(page.contains("Page not found") && page.contains(r#"href="/""#));
}

#[tokio::test]
async fn every_handler_is_linked() {
    let server = TestDemo::start().await;
    assert_eq!(
        server.live.functions(),
        [
            "alerts_create",
            "alerts_delete",
            "alerts_load_more",
            "alerts_refresh",
            "alerts_validate",
            "liveview_upload",
            "notify_all",
            "say_hello",
            "search",
            "snake_join",
            "snake_restart",
            "snake_turn",
            "uploads_save",
        ]
    );
}

/// A broadcast is multiplied by its receivers: the quick start's texts are
/// capped, and a longer one is refused to its sender and reaches no one.
#[tokio::test]
async fn a_quick_start_text_over_the_cap_is_refused_and_reaches_no_one() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("quickstart-cap-a").await;
    let mut bob = server.connect("quickstart-cap-b").await;
    let long = "'".repeat(demo::pages::quickstart::MAX_CHARS + 1);
    for (function, field, target) in [
        ("notify_all", "message", "#notifications"),
        ("say_hello", "name", "#greeting"),
    ] {
        let frames = call(&mut ada, function, json!({ field: long }), json!({})).await;
        assert_eq!(frames.len(), 1, "{frames:?}");
        assert_eq!(frames[0]["target"], target);
        let refusal = frames[0]["html"].as_str().unwrap();
        assert!(refusal.contains("At most 200 characters"), "{refusal}");
        assert!(!refusal.contains('\''), "{refusal}");
    }
    crate::support::assert_quiet(&mut bob).await;
    // At the cap, it goes through.
    let at_cap = "'".repeat(demo::pages::quickstart::MAX_CHARS);
    call(
        &mut ada,
        "notify_all",
        json!({ "message": at_cap }),
        json!({}),
    )
    .await;
    let frame = crate::support::next(&mut bob).await;
    assert!(
        frame["html"].as_str().unwrap().contains("&#x27;"),
        "{frame}"
    );
}

#[tokio::test]
async fn the_quick_start_page_greets_and_notifies_every_page() {
    let server = TestDemo::start().await;
    let (_, page) = server.get("/quickstart/").await;
    assert!(page.contains(r#"id="greeting""#) && page.contains(r#"id="notifications""#));
    assert!(page.contains(r#"data-liveview-function="say_hello""#));

    let mut ada = server.connect("quickstart-ada").await;
    let mut bob = server.connect("quickstart-bob").await;
    let frames = call(&mut ada, "say_hello", json!({"name": "<Ada>"}), json!({})).await;
    assert_eq!(
        frames,
        [json!({"target": "#greeting", "html": "<h1>Hello, &lt;Ada&gt;!</h1>"})]
    );
    call(
        &mut ada,
        "notify_all",
        json!({"message": "Deploy at 5"}),
        json!({}),
    )
    .await;
    let frame = crate::support::next(&mut bob).await;
    assert_eq!(
        frame["html"],
        r#"<div class="notification">Deploy at 5</div>"#
    );
}

#[tokio::test]
async fn metrics_and_health_checks_answer() {
    let server = TestDemo::start().await;
    let (status, headers, before) = server.metrics().await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type").is_some_and(|t| t.starts_with("text/plain")),
        "{headers:?}"
    );
    assert!(
        before.contains("# TYPE liveview_calls_total counter"),
        "{before}"
    );
    assert!(!before.contains(r#"function="say_hello""#), "{before}");

    let mut ada = server.connect("quickstart-metrics").await;
    call(&mut ada, "say_hello", json!({"name": "Ada"}), json!({})).await;
    let (_, _, after) = server.metrics().await;
    assert!(
        after.contains(r#"liveview_calls_total{function="say_hello",outcome="ok"} 1"#),
        "{after}"
    );
    assert!(after.contains("liveview_connections 1\n"), "{after}");

    assert_eq!(server.get("/healthz").await, (200, "ok".to_owned()));
    assert_eq!(server.get("/readyz").await, (200, "ready".to_owned()));
}
