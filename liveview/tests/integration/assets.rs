//! The client script: served under both names, hashed, cached.

use liveview::LiveView;

use crate::support::{header, http_get, server};

#[tokio::test]
async fn the_script_is_served_with_an_etag_and_long_caching_by_hash() {
    let server = server(LiveView::builder()).await;
    let hash = liveview::assets::script_hash();
    for path in [
        "/static/liveview/liveview.js",
        "/static/liveview/liveview.min.js",
    ] {
        let (status, headers, body) = http_get(server.addr(), path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, liveview::assets::SCRIPT);
        assert_eq!(
            header(&headers, "etag"),
            Some(format!("\"{hash}\"").as_str())
        );
        assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with("text/javascript")
        );
    }
    let (status, headers, _) = http_get(server.addr(), &liveview::assets::script_url(), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "cache-control"),
        Some("public, max-age=31536000, immutable")
    );
    let etag = format!("\"{hash}\"");
    let (status, _, body) = http_get(
        server.addr(),
        "/static/liveview/liveview.js",
        &[("If-None-Match", &etag)],
    )
    .await;
    assert_eq!(status, 304);
    assert!(body.is_empty());
}

#[test]
fn the_script_tag_points_at_the_hashed_url() {
    let tag = liveview::script_tag();
    assert!(tag.contains(&liveview::assets::script_url()));
}
