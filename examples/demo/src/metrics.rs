//! `/metrics` on the public port, only for requests that carry the token.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use liveview::LiveView;

/// The library's metrics router, refusing requests without
/// `Authorization: Bearer <token>` with a plain 401.
pub(crate) fn behind_token(live: &LiveView, token: &str) -> Router {
    let expected = format!("Bearer {token}");
    live.metrics_router().layer(middleware::from_fn(
        move |request: Request<Body>, next: Next| {
            let allowed = request
                .headers()
                .get(header::AUTHORIZATION)
                .is_some_and(|given| same_bytes(given.as_bytes(), expected.as_bytes()));
            async move {
                if allowed {
                    next.run(request).await
                } else {
                    unauthorized()
                }
            }
        },
    ))
}

fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, "Bearer")],
        "Unauthorized",
    )
        .into_response()
}

/// Equal bytes, compared in a time that does not depend on where they
/// differ (only on their lengths), so the token cannot be guessed a byte at
/// a time.
fn same_bytes(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    #[test]
    fn tokens_compare_whole() {
        assert!(super::same_bytes(b"Bearer abc", b"Bearer abc"));
        assert!(!super::same_bytes(b"Bearer abd", b"Bearer abc"));
        assert!(!super::same_bytes(b"Bearer ab", b"Bearer abc"));
    }
}
