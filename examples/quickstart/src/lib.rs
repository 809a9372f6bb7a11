//! The quick start of LiveView for Rust: one page, two handlers.
//!
//! - `say_hello` answers the caller with a greeting;
//! - `notify_all` appends a notification on every open page.

use axum::Router;
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::get;
use liveview::{Consumer, Content, LiveView, Update, html, liveview_handler};

/// Greets the caller: `<h1>Hello, NAME!</h1>` in `#greeting`, with the
/// escaped `form.name`, or `World` when it is missing or empty.
#[liveview_handler("say_hello")]
pub async fn say_hello(consumer: &Consumer, content: Content) -> liveview::Result {
    let name = content.form.str_or("name", "World");
    consumer.send(Update::new("#greeting").html(html!("<h1>Hello, {name}!</h1>")))?;
    Ok(())
}

/// Appends `<div class="notification">MESSAGE</div>` to `#notifications` on
/// every connected page, with the escaped `form.message`.
#[liveview_handler("notify_all")]
pub async fn notify_all(consumer: &Consumer, content: Content) -> liveview::Result {
    let message = content.form.str_or("message", "");
    let html = html!(r#"<div class="notification">{message}</div>"#);
    consumer
        .broadcast(Update::new("#notifications").html(html).append())
        .await?;
    Ok(())
}

/// The page in `room`, rendered with the LiveView template helpers and the
/// page's `position` in its groups (see [`LiveView::position`]).
pub fn render_index(
    room: &str,
    position: liveview::template::Position,
) -> Result<String, minijinja::Error> {
    let mut env = minijinja::Environment::new();
    liveview::template::register(&mut env);
    env.add_template("index.html", include_str!("../templates/index.html"))?;
    env.get_template("index.html")?
        .render(minijinja::context! { room, position })
}

/// The quick start's page at `/`; merge [`LiveView::router`] in for the
/// LiveView routes.
pub fn routes() -> Router {
    Router::new().route("/", get(index))
}

async fn index(live: LiveView) -> Result<Html<String>, StatusCode> {
    let room = liveview::template::room_uuid();
    // Where the page stands: a notification sent before its socket connects
    // is delivered all the same.
    let position = live.position(&room).await;
    render_index(&room, position).map(Html).map_err(|err| {
        eprintln!("rendering the page failed: {err}");
        StatusCode::INTERNAL_SERVER_ERROR
    })
}

/// The whole app: the page and the LiveView routes.
pub fn app(live: &LiveView) -> Router {
    routes().merge(live.router())
}
