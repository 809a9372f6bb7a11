//! The pages: one module each, with its HTTP route and its LiveView
//! handlers.

use std::convert::Infallible;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use liveview::{Scope, Update, User};
use minijinja::value::Serde;
use minijinja::{Value, context};

use crate::Demo;

pub mod alerts;
pub mod login;
pub mod presence;
pub mod quickstart;
pub mod search;
pub mod snake;
pub mod uploads;

/// The routes of every page and of the stylesheet (without the LiveView
/// routes, which [`Demo::router`] adds).
pub fn routes() -> Router<Demo> {
    Router::new()
        .route("/", get(index))
        .route("/static/demo.css", get(stylesheet))
        .merge(quickstart::routes())
        .merge(alerts::routes())
        .merge(snake::routes())
        .merge(search::routes())
        .merge(login::routes())
        .merge(uploads::routes())
        .fallback(not_found)
        .layer(axum::middleware::map_response(plain_errors))
}

/// Marks an error response whose text the demo wrote itself.
#[derive(Debug, Clone, Copy)]
struct OwnText;

/// An error response with a text of the demo's own.
pub(crate) fn plain(status: StatusCode, text: &'static str) -> Response {
    (status, axum::Extension(OwnText), text).into_response()
}

/// Error responses that are neither a page nor [`plain`] come from the
/// framework (a query string that does not fit, a form too large); their
/// text names fields and types (`Failed to deserialize query string:
/// duplicate field `q``), so the visitor gets the status's plain name.
async fn plain_errors(response: Response) -> Response {
    let status = response.status();
    let is_error = status.is_client_error() || status.is_server_error();
    let is_page = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"text/html"));
    if !is_error || is_page || response.extensions().get::<OwnText>().is_some() {
        return response;
    }
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut plain = (status, reason).into_response();
    // Keep what tells a client how to go on (`Allow` for a 405).
    for name in [header::ALLOW, header::RETRY_AFTER, header::WWW_AUTHENTICATE] {
        if let Some(value) = response.headers().get(&name) {
            plain.headers_mut().insert(name, value.clone());
        }
    }
    plain
}

/// Headers on every response of the demo: no MIME sniffing, and no
/// framing by other sites (the alerts page's delete buttons could be
/// clicked through a transparent frame otherwise).
pub(crate) async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        header::HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::X_FRAME_OPTIONS,
        header::HeaderValue::from_static("DENY"),
    );
    headers
        .entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(header::HeaderValue::from_static("frame-ancestors 'none'"));
    response
}

/// Who asks for a page, and which page: the signed-in user (from the
/// session cookie) and the path with its query, for the sign-in link to
/// come back to.
#[derive(Debug, Clone, Default)]
pub struct Visitor {
    /// The signed-in user, if any.
    pub user: Option<User>,
    /// The path and query of the request.
    pub path: String,
}

impl FromRequestParts<Demo> for Visitor {
    type Rejection = Infallible;

    async fn from_request_parts(parts: &mut Parts, demo: &Demo) -> Result<Self, Self::Rejection> {
        let mut scope = Scope::builder();
        for cookie in parts.headers.get_all(header::COOKIE) {
            if let Ok(cookie) = cookie.to_str() {
                scope = scope.header("cookie", cookie);
            }
        }
        let user = match demo.sessions().user(&scope.build()) {
            Some(user) => match demo.live_sessions().is_signed_out(&user.id).await {
                Ok(false) => Some(user),
                Ok(true) => None,
                Err(err) => {
                    // Shown as signed out: nothing a signed-out visitor
                    // could not do.
                    tracing::warn!(error = %err, "a session could not be looked up");
                    None
                }
            },
            None => None,
        };
        Ok(Self {
            user,
            path: parts
                .uri
                .path_and_query()
                .map_or_else(|| "/".to_owned(), |p| p.as_str().to_owned()),
        })
    }
}

/// A rendered page, or a plain 500 when the template fails (the error goes
/// to the log, not to the visitor).
pub(crate) fn page(demo: &Demo, visitor: &Visitor, template: &str, context: Value) -> Response {
    page_with_status(demo, visitor, StatusCode::OK, template, context)
}

/// [`page`] with another status. Every page gets `user` (the signed-in
/// user, or none) and `path` (where the sign-in link comes back to).
pub(crate) fn page_with_status(
    demo: &Demo,
    visitor: &Visitor,
    status: StatusCode,
    template: &str,
    context: Value,
) -> Response {
    let context = context! {
        user => Serde(&visitor.user),
        path => &visitor.path,
        ..context
    };
    match demo.templates().render(template, context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(template, error = %err, "rendering a page failed");
            plain(
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
        }
    }
}

/// The response for a page whose data could not be read.
pub(crate) fn unavailable(what: &str, err: &dyn std::error::Error) -> Response {
    tracing::error!(what, error = %err, "a page could not be served");
    plain(
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is not available right now; please try again.",
    )
}

/// The kinds of message the flash area shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlashKind {
    /// Something worked.
    Success,
    /// Something was refused or failed.
    Error,
}

/// An update that shows `message` in the page's flash area (`#flash`).
pub fn flash(demo: &Demo, kind: FlashKind, message: &str) -> liveview::Result<Update> {
    let kind = match kind {
        FlashKind::Success => "success",
        FlashKind::Error => "error",
    };
    let html = demo
        .templates()
        .render("flash.html", context! { kind, message })?;
    Ok(Update::new("#flash").html(html))
}

async fn index(State(demo): State<Demo>, visitor: Visitor) -> Response {
    page(&demo, &visitor, "index.html", context! { nav => "home" })
}

async fn stylesheet() -> Response {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            // The URL carries a hash of the content.
            (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
        ],
        crate::templates::STYLESHEET,
    )
        .into_response()
}

async fn not_found(State(demo): State<Demo>, visitor: Visitor) -> Response {
    page_with_status(
        &demo,
        &visitor,
        StatusCode::NOT_FOUND,
        "not_found.html",
        context! {},
    )
}
