//! The routes a LiveView app adds to an axum router.

use axum::Router;
use axum::routing::get;

use crate::app::LiveView;
use crate::assets::{SCRIPT_PATH, SCRIPT_PATH_MIN, serve_script};
use crate::socket::upgrade;

impl LiveView {
    /// The routes of the app, the counterpart of Django LiveView's
    /// `get_liveview_urlpatterns()`: the WebSocket endpoint
    /// `/ws/liveview/{room}/` (with or without the trailing slash) and the
    /// client script at `/static/liveview/liveview.js` (and `.min.js`).
    /// Merge it into your own router.
    ///
    /// ```
    /// let live = liveview::LiveView::builder().build().unwrap();
    /// let app: axum::Router = axum::Router::new().merge(live.router());
    /// # drop(app);
    /// ```
    pub fn router<S>(&self) -> Router<S>
    where
        S: Clone + Send + Sync + 'static,
    {
        Router::new()
            .route("/ws/liveview/{room}/", get(upgrade))
            .route("/ws/liveview/{room}", get(upgrade))
            .route(SCRIPT_PATH, get(serve_script))
            .route(SCRIPT_PATH_MIN, get(serve_script))
            .with_state(self.shared.clone())
    }
}
