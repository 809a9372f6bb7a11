//! The browser client, embedded in the binary and served with a content
//! hash, so it is cached for a year and never stale.

use std::sync::OnceLock;

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use serde::Deserialize;

/// The client script's source.
pub const SCRIPT: &str = include_str!("../assets/liveview.js");

/// The path the script is served at.
pub const SCRIPT_PATH: &str = "/static/liveview/liveview.js";

/// The seed's name for the same script.
pub const SCRIPT_PATH_MIN: &str = "/static/liveview/liveview.min.js";

/// A short hash of the script, changing whenever the script does.
///
/// ```
/// assert_eq!(liveview::assets::script_hash().len(), 16);
/// ```
pub fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| {
        // FNV-1a: stable across builds and platforms, unlike std's hasher.
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in SCRIPT.bytes() {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        format!("{hash:016x}")
    })
}

/// The script URL with its hash, for `<script src>`.
///
/// ```
/// assert!(liveview::assets::script_url().starts_with("/static/liveview/liveview.js?v="));
/// ```
pub fn script_url() -> String {
    format!("{SCRIPT_PATH}?v={}", script_hash())
}

#[derive(Deserialize)]
pub(crate) struct Version {
    v: Option<String>,
}

/// Serves the script: immutable for a year when asked for by its hash,
/// revalidated with the ETag otherwise.
pub(crate) async fn serve_script(Query(version): Query<Version>, headers: HeaderMap) -> Response {
    let etag = format!("\"{}\"", script_hash());
    let cache = if version.v.as_deref() == Some(script_hash()) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    let etag_value = HeaderValue::from_str(&etag).expect("hex is a valid header value");
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(',')
                .any(|tag| tag.trim() == etag || tag.trim() == "*")
        });
    let common = [
        (header::ETAG, etag_value),
        (header::CACHE_CONTROL, HeaderValue::from_static(cache)),
    ];
    if matches {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/javascript; charset=utf-8"),
        )],
        SCRIPT,
    )
        .into_response()
}
