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

/// The client's size budget, gzipped, as `scripts/build-client.sh` checks it.
const BUDGET_GZIPPED: usize = 10 * 1024;

#[test]
fn pages_load_the_minified_build_within_its_size_budget() {
    let tag = liveview::template::script_tag();
    assert!(tag.contains(&script_url()), "{tag}");
    assert!(!tag.contains(&source_url()), "{tag}");
    // What browsers download: the minified build, compressed as a server
    // or CDN in front of the app would (gzip -9, as the build script).
    let mut gzip = std::process::Command::new("gzip")
        .args(["-9", "-n", "-c"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("gzip is installed");
    let mut stdin = gzip.stdin.take().unwrap();
    let writer = std::thread::spawn(move || {
        use std::io::Write;
        stdin.write_all(SCRIPT_MIN.as_bytes())
    });
    let output = gzip.wait_with_output().unwrap();
    writer.join().unwrap().unwrap();
    assert!(output.status.success());
    let gzipped = output.stdout.len();
    assert!(gzipped > 1024, "gzip gave {gzipped} bytes: not the client");
    assert!(
        gzipped < BUDGET_GZIPPED,
        "the minified client is {gzipped} bytes gzipped, over its budget of {BUDGET_GZIPPED}"
    );
}
