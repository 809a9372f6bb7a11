//! The client script: readable and minified builds, each hashed and cached.

use liveview::LiveView;
use liveview::assets::{SCRIPT, SCRIPT_MIN, script_hash, script_url, source_hash, source_url};

use crate::support::{header, http_get, server};

#[tokio::test]
async fn each_build_is_served_with_its_etag_and_long_caching_by_hash() {
    let server = server(LiveView::builder()).await;
    let builds = [
        (
            "/static/liveview/liveview.js",
            SCRIPT,
            source_hash(),
            source_url(),
        ),
        (
            "/static/liveview/liveview.min.js",
            SCRIPT_MIN,
            script_hash(),
            script_url(),
        ),
    ];
    for (path, body_expected, hash, hashed_url) in builds {
        let etag = format!("\"{hash}\"");
        let (status, headers, body) = http_get(server.addr(), path, &[]).await;
        assert_eq!(status, 200, "{path}");
        assert_eq!(body, body_expected, "{path}");
        assert_eq!(header(&headers, "etag"), Some(etag.as_str()));
        assert_eq!(header(&headers, "cache-control"), Some("no-cache"));
        assert!(
            header(&headers, "content-type")
                .unwrap()
                .starts_with("text/javascript")
        );

        let (status, headers, _) = http_get(server.addr(), &hashed_url, &[]).await;
        assert_eq!(status, 200);
        assert_eq!(
            header(&headers, "cache-control"),
            Some("public, max-age=31536000, immutable")
        );

        let (status, _, body) = http_get(server.addr(), path, &[("If-None-Match", &etag)]).await;
        assert_eq!(status, 304, "{path}");
        assert!(body.is_empty());
    }
}

#[test]
fn pages_load_the_minified_build_within_its_size_budget() {
    let tag = liveview::script_tag();
    assert!(tag.contains(&script_url()));
    assert!(SCRIPT_MIN.len() < SCRIPT.len());
}
