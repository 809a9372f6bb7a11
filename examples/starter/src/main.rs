//! The smallest LiveView app: one page, one handler. Copy this crate to
//! start your own, then `cargo run -p starter` and open http://127.0.0.1:8000.

use axum::{Router, http::StatusCode, response::Html, routing::get};
use liveview::{Consumer, Content, LiveView, Update, html, liveview_handler};

/// Answers the caller: "Hello, NAME!" in `#greeting`.
#[liveview_handler("greet")]
async fn greet(consumer: &Consumer, content: Content) -> liveview::Result {
    let name = content.form.str_or("name", "World");
    consumer.send(Update::new("#greeting").html(html!("Hello, {name}!")))?;
    Ok(())
}

/// The page at `/`, rendered from `templates/index.html` (escaped: its name ends in `.html`).
pub fn routes() -> Router {
    let mut env = minijinja::Environment::new();
    liveview::template::register(&mut env);
    env.add_template("index.html", include_str!("../templates/index.html"))
        .expect("the template compiles");
    let page = move || async move {
        let html = env.get_template("index.html").and_then(|t| t.render(()));
        html.map(Html)
            .map_err(|_| StatusCode::INTERNAL_SERVER_ERROR)
    };
    Router::new().route("/", get(page))
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let live = LiveView::builder().from_env()?.build()?;
    let app = routes().merge(live.router());
    let addr = std::env::var("LIVEVIEW_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let listener = tokio::net::TcpListener::bind(&addr).await?;
    println!("Listening on http://{}", listener.local_addr()?);
    liveview::serve(listener, app, live).await?;
    Ok(())
}
