//! The quick start page: `say_hello` answers the caller, `notify_all`
//! reaches every open page.
//!
//! The handlers are the quick start example's own (`examples/quickstart`),
//! linked in by `lib.rs`; this page gives them the same element ids
//! (`#greeting`, `#notifications`) in the demo's layout.

use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use minijinja::context;

use super::Visitor;
use crate::Demo;

/// `GET /quickstart/`.
pub fn routes() -> Router<Demo> {
    Router::new().route("/quickstart/", get(page))
}

async fn page(State(demo): State<Demo>, visitor: Visitor) -> Response {
    super::page(
        &demo,
        &visitor,
        "quickstart.html",
        context! { nav => "quickstart" },
    )
}
