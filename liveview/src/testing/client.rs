//! The app in process: connections without sockets, calls through the real
//! dispatch path.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};

use crate::app::LiveView;
use crate::call::dispatch;
use crate::connection::join;
use crate::consumer::{Connection, Consumer};
use crate::layer::Resume;
use crate::scope::Scope;
use crate::testing::Closed;

/// A [`LiveView`] app under test, without a server.
///
/// ```
/// use liveview::{liveview_handler, testing::TestApp, Consumer, Content, LiveView, Update};
/// use serde_json::json;
///
/// #[liveview_handler("test_app_docs_shout")]
/// async fn shout(consumer: &Consumer, content: Content) -> liveview::Result {
///     let text = liveview::escape(content.form.str_or("text", "")).to_uppercase();
///     consumer.send_to_room(consumer.room(), Update::new("#wall").html(text)).await?;
///     Ok(())
/// }
///
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// let app = TestApp::new(LiveView::builder().build().unwrap());
/// let mut ada = app.connect("lobby");
/// let mut bob = app.connect("lobby");
/// let mut eve = app.connect("elsewhere");
/// let frames = ada.call("test_app_docs_shout", json!({"text": "hi"}), json!({})).await;
/// assert_eq!(frames, [json!({"target": "#wall", "html": "HI"})]);
/// assert_eq!(bob.received(), [json!({"target": "#wall", "html": "HI"})]);
/// assert!(eve.received().is_empty());
/// # }
/// ```
#[derive(Debug, Clone)]
pub struct TestApp {
    live: LiveView,
}

impl TestApp {
    /// Wrap an app built with [`LiveView::builder`].
    pub fn new(live: LiveView) -> Self {
        Self { live }
    }

    /// The app.
    pub fn live(&self) -> &LiveView {
        &self.live
    }

    /// Connect a client to `room`, as a browser would.
    pub fn connect(&self, room: &str) -> TestClient {
        self.connect_with_scope(room, Scope::default())
    }

    /// Connect with a scope of your own (headers, cookies, a user).
    pub fn connect_with_scope(&self, room: &str, scope: Scope) -> TestClient {
        let (conn, rx) =
            futures_util::FutureExt::now_or_never(join::open(&self.live.shared, room, scope, None))
                .expect("joining without a resume does not wait");
        TestClient::new(self.live.clone(), conn, rx)
    }

    /// Connect a client that comes back after a disconnect, having applied
    /// the frames up to the given sequence per group (the `resume` query
    /// parameter of a browser's socket URL, e.g. `"broadcast:41,room_x:17"`).
    /// What it missed arrives first.
    pub async fn reconnect(&self, room: &str, resume: &str) -> TestClient {
        let (conn, rx) = join::open(
            &self.live.shared,
            room,
            Scope::default(),
            Some(Resume::parse(resume)),
        )
        .await;
        TestClient::new(self.live.clone(), conn, rx)
    }
}

/// One in-process connection of a [`TestApp`]. Leaves its groups when
/// dropped.
#[derive(Debug)]
pub struct TestClient {
    live: LiveView,
    /// The connection's consumer, lent to each of its calls.
    consumer: Consumer,
    rx: crate::connection::outbox::Receiver,
}

impl TestClient {
    fn new(live: LiveView, conn: Arc<Connection>, rx: crate::connection::outbox::Receiver) -> Self {
        Self {
            live,
            consumer: Consumer::lent(conn),
            rx,
        }
    }

    fn conn(&self) -> &Arc<Connection> {
        self.consumer.connection()
    }

    /// Call `function` with `form` and `data` (JSON objects; keys are
    /// normalised as for a browser's call) and return every frame this
    /// client received by the time the call finished, in order.
    pub async fn call(&mut self, function: &str, form: Value, data: Value) -> Vec<Value> {
        let frame = json!({
            "function": function,
            "form": form,
            "data": data,
            "lang": "en",
            "room": &*self.conn().room,
        });
        self.send_text(&frame.to_string()).await
    }

    /// Handle a raw text frame, as if the browser sent it, and return the
    /// frames received by the time it was handled.
    pub async fn send_text(&mut self, text: &str) -> Vec<Value> {
        dispatch::handle_text(&self.live.shared, &self.consumer, text).await;
        self.received()
    }

    /// Frames received so far and not yet returned.
    pub fn received(&mut self) -> Vec<Value> {
        std::iter::from_fn(|| self.rx.try_recv().ok())
            .map(|f| serde_json::from_str(f.as_str()).expect("the server only sends JSON"))
            .collect()
    }

    /// Wait up to `timeout` for the next frame (one sent later, by a task or
    /// a thread), as [`WsClient::recv_timeout`](super::WsClient::recv_timeout)
    /// does over a socket: [`Closed::TimedOut`] when none came.
    pub async fn recv_timeout(&mut self, timeout: Duration) -> Result<Value, Closed> {
        match tokio::time::timeout(timeout, self.rx.recv()).await {
            Err(_) => Err(Closed::TimedOut),
            Ok(None) => Err(Closed::Abruptly),
            Ok(Some(frame)) => {
                Ok(serde_json::from_str(frame.as_str()).expect("the server only sends JSON"))
            }
        }
    }

    /// The connection's consumer, as handlers see it.
    pub fn consumer(&self) -> Consumer {
        Consumer::new(self.conn().clone(), None)
    }
}

impl Drop for TestClient {
    fn drop(&mut self) {
        join::close(&self.live.shared, self.conn());
    }
}
