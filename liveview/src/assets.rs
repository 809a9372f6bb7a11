//! The browser client, embedded in the binary and served with a content
//! hash, so it is cached for a year and never stale.
//!
//! Two builds of the same client are served: the minified one, which pages
//! load ([`script_tag`](crate::template::script_tag), [`script_url`]), and the readable
//! source it is made from (`scripts/build-client.sh`), for reading and
//! debugging.

use std::sync::OnceLock;

use axum::extract::Query;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use serde::Deserialize;

/// The client script's readable source.
pub const SCRIPT: &str = include_str!("../assets/liveview.js");

/// The minified client, built from [`SCRIPT`]: the one pages load.
pub const SCRIPT_MIN: &str = include_str!("../assets/liveview.min.js");

/// The path the readable source is served at.
pub const SCRIPT_PATH: &str = "/static/liveview/liveview.js";

/// The path the minified client is served at.
pub const SCRIPT_PATH_MIN: &str = "/static/liveview/liveview.min.js";

/// FNV-1a, as 16 hex digits: stable across builds and platforms, unlike
/// std's hasher.
fn fnv(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in text.bytes() {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{hash:016x}")
}

/// A short hash of the minified client (the one [`script_url`] names),
/// changing whenever it does.
///
/// ```
/// assert_eq!(liveview::assets::script_hash().len(), 16);
/// ```
pub fn script_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| fnv(SCRIPT_MIN))
}

/// A short hash of the readable source, served at [`SCRIPT_PATH`].
///
/// ```
/// assert_ne!(liveview::assets::source_hash(), liveview::assets::script_hash());
/// ```
pub fn source_hash() -> &'static str {
    static HASH: OnceLock<String> = OnceLock::new();
    HASH.get_or_init(|| fnv(SCRIPT))
}

/// The minified client's URL with its hash, for `<script src>`.
///
/// ```
/// assert!(liveview::assets::script_url().starts_with("/static/liveview/liveview.min.js?v="));
/// ```
pub fn script_url() -> String {
    format!("{SCRIPT_PATH_MIN}?v={}", script_hash())
}

/// The readable source's URL with its hash.
///
/// ```
/// assert!(liveview::assets::source_url().starts_with("/static/liveview/liveview.js?v="));
/// ```
pub fn source_url() -> String {
    format!("{SCRIPT_PATH}?v={}", source_hash())
}

#[derive(Deserialize)]
pub(crate) struct Version {
    v: Option<String>,
}

/// Serves the client (the minified build under `.min.js`, the source
/// otherwise).
pub(crate) async fn serve_script(
    uri: Uri,
    Query(version): Query<Version>,
    headers: HeaderMap,
) -> Response {
    if uri.path().ends_with(".min.js") {
        serve_text(SCRIPT_MIN, script_hash(), &version, &headers)
    } else {
        serve_text(SCRIPT, source_hash(), &version, &headers)
    }
}

/// FNV-1a of an embedded script, for the script's own hash cell.
pub(crate) fn hash_text(text: &str) -> String {
    fnv(text)
}

/// Serves an embedded script whose hash is `hash`: immutable for a year
/// when asked for by it (`?v=`), revalidated with the ETag otherwise.
pub(crate) fn serve_text(
    body: &'static str,
    hash: &str,
    version: &Version,
    headers: &HeaderMap,
) -> Response {
    let etag = format!("\"{hash}\"");
    let cache = if version.v.as_deref() == Some(hash) {
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
        body,
    )
        .into_response()
}
