//! Live search over real WebSockets, and the page that renders a query on
//! reload.

use serde_json::json;

use crate::support::{TempDir, TestDemo, call, config, html_for};

#[tokio::test]
async fn the_catalogue_is_seeded_once() {
    let dir = TempDir::new();
    let first = demo::Demo::open(config(&dir)).await.unwrap();
    assert_eq!(first.db().product_count().await.unwrap(), 3_000);
    first.db().close().await;
    let again = demo::Demo::open(config(&dir).with_products(10))
        .await
        .unwrap();
    assert_eq!(
        again.db().product_count().await.unwrap(),
        3_000,
        "not seeded twice"
    );
}

#[tokio::test]
async fn typing_shows_highlighted_results_and_puts_the_query_in_the_url() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("search-page").await;
    let frames = call(&mut ada, "search", json!({"q": "walnut LAMP"}), json!({})).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    let frame = &frames[0];
    assert_eq!(frame["target"], "#search-results");
    assert_eq!(frame["url"], "/search/?q=walnut+LAMP");
    assert_eq!(
        frame["title"],
        "“walnut LAMP” · Live search · LiveView demo"
    );
    let html = frame["html"].as_str().unwrap();
    let expected = server
        .demo
        .db()
        .search_products(&["walnut".into(), "lamp".into()], 1000)
        .await
        .unwrap();
    assert!(expected.total > 0);
    assert!(
        html.contains(&format!("{} results for “walnut LAMP”", expected.total)),
        "{html}"
    );
    assert!(
        html.contains("<mark>Walnut</mark>") && html.contains("<mark>Lamp</mark>"),
        "{html}"
    );
    assert_eq!(
        html.matches(r#"class="result""#).count(),
        expected.products.len().min(20)
    );

    // The same query again (a debounced call with nothing changed): no new
    // history entry.
    let frames = call(&mut ada, "search", json!({"q": " walnut LAMP "}), json!({})).await;
    assert!(frames[0].get("url").is_none(), "{frames:?}");

    // Emptying the box goes back to /search/.
    let frames = call(&mut ada, "search", json!({"q": ""}), json!({})).await;
    assert_eq!(frames[0]["url"], "/search/");
    assert!(html_for(&frames, "#search-results").contains("Try"));
}

#[tokio::test]
async fn queries_are_text_not_markup_or_patterns() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("search-page").await;

    let frames = call(
        &mut ada,
        "search",
        json!({"q": "<img src=x onerror=alert(1)>"}),
        json!({}),
    )
    .await;
    let html = html_for(&frames, "#search-results");
    assert!(
        html.contains("No products match “&lt;img src=x onerror=alert(1)&gt;”"),
        "{html}"
    );
    assert!(!html.contains("<img"));
    assert_eq!(
        frames[0]["url"],
        "/search/?q=%3Cimg+src%3Dx+onerror%3Dalert%281%29%3E"
    );

    // LIKE wildcards match themselves only.
    for q in ["%", "_", "\\"] {
        let frames = call(&mut ada, "search", json!({"q": q}), json!({})).await;
        assert!(
            html_for(&frames, "#search-results").contains("No products match"),
            "{q}"
        );
    }

    let frames = call(&mut ada, "search", json!({"q": "a".repeat(101)}), json!({})).await;
    assert!(
        html_for(&frames, "#search-results")
            .contains("Searches are limited to 100 characters; this one has 101."),
        "{frames:?}"
    );

    // A value that is not text is an empty search.
    let frames = call(&mut ada, "search", json!({"q": ["oak"]}), json!({})).await;
    assert!(html_for(&frames, "#search-results").contains("Try"));
}

#[tokio::test]
async fn a_reload_renders_the_query_in_the_url() {
    let server = TestDemo::start().await;
    let (status, page) = server.get("/search/?q=copper+kettle").await;
    assert_eq!(status, 200);
    assert!(
        page.contains(r#"value="copper kettle""#),
        "the box keeps the query"
    );
    assert!(page.contains("<mark>Copper</mark>") && page.contains("<mark>Kettle</mark>"));
    assert!(page.contains("<title>“copper kettle” · Live search · LiveView demo</title>"));
    assert!(page.contains(r#"data-liveview-debounce="250""#));
    assert!(page.contains("3,000 products"));

    let (_, page) = server.get("/search/?q=%22%3E%3Cscript%3E").await;
    assert!(
        page.contains(r#"value="&quot;&gt;&lt;script&gt;""#),
        "{page}"
    );
    assert!(!page.contains(r#""><script>"#));
}
