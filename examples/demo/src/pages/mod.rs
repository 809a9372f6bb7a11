//! The pages: one module each, with its HTTP route and its LiveView
//! handlers.

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::get;
use liveview::Update;
use minijinja::{Value, context};

use crate::Demo;

pub mod alerts;
pub mod quickstart;
pub mod search;
pub mod snake;

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
        .fallback(not_found)
}

/// A rendered page, or a plain 500 when the template fails (the error goes
/// to the log, not to the visitor).
pub(crate) fn page(demo: &Demo, template: &str, context: Value) -> Response {
    page_with_status(demo, StatusCode::OK, template, context)
}

pub(crate) fn page_with_status(
    demo: &Demo,
    status: StatusCode,
    template: &str,
    context: Value,
) -> Response {
    match demo.templates().render(template, context) {
        Ok(html) => (status, Html(html)).into_response(),
        Err(err) => {
            tracing::error!(template, error = %err, "rendering a page failed");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong on our side.",
            )
                .into_response()
        }
    }
}

/// The response for a page whose data could not be read.
pub(crate) fn unavailable(what: &str, err: &dyn std::error::Error) -> Response {
    tracing::error!(what, error = %err, "a page could not be served");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        "The database is not available right now; please try again.",
    )
        .into_response()
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

async fn index(State(demo): State<Demo>) -> Response {
    page(&demo, "index.html", context! { nav => "home" })
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

async fn not_found(State(demo): State<Demo>) -> Response {
    page_with_status(&demo, StatusCode::NOT_FOUND, "not_found.html", context! {})
}
