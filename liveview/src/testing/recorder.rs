//! A consumer with no socket, recording everything it sends.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use serde_json::Value;

use crate::broadcast::Broadcaster;
use crate::connection::outbox::{Outbox, Receiver};
use crate::consumer::{Connection, Consumer};
use crate::hub::Hub;
use crate::layer::{ChannelLayer, Frame, LayerError, LocalDelivery};
use crate::scope::Scope;

/// Everything a test consumer sent: to itself, and to groups.
#[derive(Debug, Clone)]
pub struct Recorder {
    inbox: Arc<Mutex<Receiver>>,
    layer: Arc<RecordingLayer>,
}

#[derive(Debug, Default)]
struct RecordingLayer {
    published: Mutex<Vec<(String, Frame)>>,
}

impl ChannelLayer for Arc<RecordingLayer> {
    fn start(&self, _local: LocalDelivery) {}
    fn subscribe(&self, _group: &str) {}
    fn unsubscribe(&self, _group: &str) {}
    fn publish<'a>(
        &'a self,
        group: &'a str,
        frame: &'a Frame,
    ) -> BoxFuture<'a, Result<(), LayerError>> {
        self.published
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((group.to_owned(), frame.clone()));
        Box::pin(async { Ok(()) })
    }
}

/// A consumer in `room` that is not connected to anything, and the
/// [`Recorder`] of what it sends. For unit tests of one handler.
///
/// ```
/// use liveview::{testing, Update};
/// use serde_json::json;
///
/// let (consumer, recorder) = testing::consumer("room-1");
/// consumer.send(Update::new("#a").html("1")).unwrap();
/// consumer.broadcast_blocking(Update::new("#b").html("2")).unwrap();
/// assert_eq!(recorder.sent(), [json!({"target": "#a", "html": "1"})]);
/// assert_eq!(recorder.broadcasts(), [json!({"target": "#b", "html": "2"})]);
/// ```
pub fn consumer(room: &str) -> (Consumer, Recorder) {
    consumer_with_scope(room, Scope::default())
}

/// [`consumer`] with a scope of your own: headers, cookies, a user.
///
/// ```
/// use liveview::{testing, Scope, User};
///
/// let scope = Scope::builder().user(User::new("1", "Ada")).build();
/// let (consumer, _recorder) = testing::consumer_with_scope("room-1", scope);
/// assert_eq!(consumer.user().unwrap().name, "Ada");
/// ```
pub fn consumer_with_scope(room: &str, scope: Scope) -> (Consumer, Recorder) {
    let layer = Arc::new(RecordingLayer::default());
    let hub = Arc::new(Hub::new(Arc::new(layer.clone())));
    let (outbox, rx) = Outbox::new(4096);
    let conn = Connection::new(
        0,
        room,
        scope,
        outbox,
        Broadcaster::new(hub, Default::default()),
        Default::default(),
    );
    let recorder = Recorder {
        inbox: Arc::new(Mutex::new(rx)),
        layer,
    };
    (Consumer::new(conn, None), recorder)
}

fn parse(frame: &Frame) -> Value {
    serde_json::from_str(frame.as_str()).expect("the server only sends JSON")
}

impl Recorder {
    /// The updates sent to the consumer itself since the last call, in order.
    pub fn sent(&self) -> Vec<Value> {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        std::iter::from_fn(|| inbox.try_recv().ok())
            .map(|f| parse(&f))
            .collect()
    }

    /// Every `(group, update)` published so far, in order.
    fn published(&self) -> Vec<(String, Value)> {
        let published = self
            .layer
            .published
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        published
            .iter()
            .map(|(g, f)| (g.clone(), parse(f)))
            .collect()
    }

    /// The updates broadcast to everyone so far.
    pub fn broadcasts(&self) -> Vec<Value> {
        self.to_group(crate::layer::BROADCAST_GROUP)
    }

    /// The updates sent to `room` so far.
    pub fn room_sends(&self, room: &str) -> Vec<Value> {
        self.to_group(&crate::layer::room_group(room))
    }

    fn to_group(&self, group: &str) -> Vec<Value> {
        self.published()
            .into_iter()
            .filter(|(g, _)| g == group)
            .map(|(_, v)| v)
            .collect()
    }
}
