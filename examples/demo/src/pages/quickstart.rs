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
use liveview::{Consumer, Content, Update, html};
use minijinja::context;

use super::Visitor;
use crate::Demo;

/// The most characters of the quick start's `name` and `message`: a
/// message is broadcast to every open page, so its size is multiplied by
/// the number of receivers.
pub const MAX_CHARS: usize = 200;

/// A middleware refusing a `say_hello` or `notify_all` whose text is over
/// [`MAX_CHARS`]: the caller is told, no one else gets anything.
pub fn cap_lengths(consumer: &Consumer, content: &Content, function: &str) -> bool {
    let (field, target) = match function {
        "say_hello" => ("name", "#greeting"),
        "notify_all" => ("message", "#notifications"),
        _ => return true,
    };
    let chars = content.form.str(field).unwrap_or("").chars().count();
    if chars <= MAX_CHARS {
        return true;
    }
    let refusal = html!(
        r#"<p class="notification error">At most {MAX_CHARS} characters, please ({chars} given).</p>"#
    );
    let _ = consumer.send(Update::new(target).html(refusal).append());
    false
}

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
