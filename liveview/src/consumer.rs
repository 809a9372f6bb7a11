//! The consumer: one browser connection, as a handler sees it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::broadcast::Broadcaster;
use crate::connection::outbox::Outbox;
use crate::error::SendError;
use crate::layer::Frame;
use crate::scope::{Scope, User};
use crate::update::IntoUpdate;

/// One connection: where a handler sends its updates, and what it knows
/// about the page on the other end.
///
/// [`send`](Self::send) answers this connection; every other audience is a
/// [`Broadcaster`] method, which the consumer reaches through `Deref`:
/// `consumer.broadcast(update).await`, `consumer.send_to_room(room,
/// update).await`, and their `_blocking` forms for sync code.
///
/// A `Consumer` is a cheap handle (`Clone`, `Send`, `'static`): move a clone
/// into a spawned task or a `std::thread` to send or broadcast later.
///
/// ```
/// use liveview::{liveview_handler, Consumer, Content, Update};
///
/// #[liveview_handler("whoami")]
/// async fn whoami(consumer: &Consumer, _content: Content) -> liveview::Result {
///     let name = consumer.user().map_or("anonymous", |u| u.name.as_str());
///     let html = format!("<p>{} in room {}</p>", liveview::escape(name), liveview::escape(consumer.room()));
///     consumer.send(Update::new("#me").html(html))?;
///     // Through `Deref` to the app's `Broadcaster`:
///     consumer.send_to_room("lobby", Update::new("#log").html("hello").append()).await?;
///     Ok(())
/// }
/// ```
#[derive(Debug)]
pub struct Consumer {
    conn: Arc<Connection>,
    call: Calls,
}

/// Which call's `ref` a consumer's frames carry.
#[derive(Clone, Copy, Debug)]
enum Calls {
    /// The connection's own consumer, lent to each of its calls in turn:
    /// the `ref` of the call that runs, if it has one.
    Lent,
    /// A consumer of its own (a clone): the `ref` of the call it was made
    /// in, if any, while that call runs.
    Of(Option<CallRef>),
}

/// The state of one connection, shared by every clone of its consumer.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) id: u64,
    pub(crate) room: Arc<str>,
    /// The language of the last call, shared by the next ones in it.
    pub(crate) lang: crate::call::content::LastLang,
    pub(crate) scope: Scope,
    pub(crate) outbox: Outbox,
    pub(crate) broadcaster: Broadcaster,
    app: Arc<http::Extensions>,
    state: Mutex<http::Extensions>,
    /// How many warnings this connection's calls may still write.
    pub(crate) warnings: crate::call::log::WarnLimit,
    /// Names the running call that carries a `ref`, if any: odd while one
    /// runs, each such call with a value of its own. A connection's calls
    /// run one after the other.
    calls: AtomicU64,
    /// The `ref` of that call, while [`calls`](Self::calls) is odd.
    reference: AtomicU64,
}

/// The call with a `ref` that a consumer answers: its frames carry the
/// `ref` while that call runs, and not after (a clone kept by a spawned
/// task sends plain frames once the call is done).
#[derive(Clone, Copy, Debug)]
pub(crate) struct CallRef {
    reference: u64,
    /// The value of [`Connection::calls`] while the call runs.
    running: u64,
}

impl CallRef {
    /// The start of the call of `conn` with the `ref` `reference`; end it
    /// with [`finish`](Self::finish).
    pub(crate) fn start(conn: &Connection, reference: u64) -> Self {
        // A load and a store, not an atomic increment: only the
        // connection's calls write, one call at a time. Past the last
        // value, odd even when that call was dropped before its end.
        let running = (conn.calls.load(Ordering::Relaxed) + 2) | 1;
        conn.reference.store(reference, Ordering::Relaxed);
        conn.calls.store(running, Ordering::Release);
        Self { reference, running }
    }

    /// The start of a call of `conn` that has a `ref` or not: its frames
    /// carry that `ref`, and those of a call without one none, not even
    /// after a call dropped before its end.
    pub(crate) fn start_any(conn: &Connection, reference: Option<u64>) -> Option<Self> {
        match reference {
            Some(reference) => Some(Self::start(conn, reference)),
            None => {
                let calls = conn.calls.load(Ordering::Relaxed);
                if calls & 1 == 1 {
                    conn.calls.store(calls + 1, Ordering::Release);
                }
                None
            }
        }
    }

    /// The end of the call: frames sent from now on carry no `ref`.
    pub(crate) fn finish(self, conn: &Connection) {
        conn.calls.store(self.running + 1, Ordering::Release);
    }
}

impl Connection {
    pub(crate) fn new(
        id: u64,
        room: &str,
        scope: Scope,
        outbox: Outbox,
        broadcaster: Broadcaster,
        app: Arc<http::Extensions>,
    ) -> Arc<Self> {
        Arc::new(Self {
            id,
            room: room.into(),
            lang: Default::default(),
            scope,
            outbox,
            broadcaster,
            app,
            state: Mutex::default(),
            warnings: Default::default(),
            calls: AtomicU64::new(0),
            reference: AtomicU64::new(0),
        })
    }

    /// The call with a `ref` running now, if any. Read by the consumer
    /// lent to the calls, while one of them runs: no call starts or ends
    /// meanwhile.
    #[inline]
    fn running(&self) -> Option<CallRef> {
        let running = self.calls.load(Ordering::Acquire);
        (running & 1 == 1).then(|| CallRef {
            reference: self.reference.load(Ordering::Relaxed),
            running,
        })
    }

    /// A connection of room "room" on an in-memory hub, with an outbox of
    /// `capacity` frames and its receiving end: for unit tests.
    #[cfg(test)]
    pub(crate) fn for_tests(capacity: usize) -> (Arc<Self>, crate::connection::outbox::Receiver) {
        let (outbox, rx) = Outbox::new(capacity);
        let hub = Arc::new(crate::hub::Hub::new(Arc::new(crate::layer::MemoryLayer)));
        let conn = Self::new(
            1,
            "room",
            Scope::default(),
            outbox,
            Broadcaster::new(hub, Default::default()),
            Default::default(),
        );
        (conn, rx)
    }
}

impl std::ops::Deref for Consumer {
    type Target = Broadcaster;

    /// The app's broadcaster: `broadcast`, `send_to_room` and their
    /// `_blocking` forms.
    fn deref(&self) -> &Broadcaster {
        &self.conn.broadcaster
    }
}

impl Clone for Consumer {
    /// A clone made during a call answers that call: its frames carry the
    /// call's `ref` while the call runs, and none once it is done, nor the
    /// `ref` of a later call.
    fn clone(&self) -> Self {
        Self {
            conn: self.conn.clone(),
            call: Calls::Of(self.call()),
        }
    }
}

impl Consumer {
    /// A consumer of `conn` that answers `call`, if any, while it runs.
    #[cfg(any(test, feature = "testing"))]
    pub(crate) fn new(conn: Arc<Connection>, call: Option<CallRef>) -> Self {
        Self {
            conn,
            call: Calls::Of(call),
        }
    }

    /// The consumer of `conn` its calls borrow, one after the other: its
    /// frames carry the `ref` of the call that runs, if it has one. Made
    /// once per connection, it costs a call nothing.
    pub(crate) fn lent(conn: Arc<Connection>) -> Self {
        Self {
            conn,
            call: Calls::Lent,
        }
    }

    /// The connection this consumer answers.
    pub(crate) fn connection(&self) -> &Arc<Connection> {
        &self.conn
    }

    /// The call this consumer answers, if it has a `ref`.
    fn call(&self) -> Option<CallRef> {
        match self.call {
            Calls::Lent => self.conn.running(),
            Calls::Of(call) => call,
        }
    }

    /// This connection's id, unique within the process.
    pub fn id(&self) -> u64 {
        self.conn.id
    }

    /// The room of this connection (the `{room}` of its URL).
    pub fn room(&self) -> &str {
        &self.conn.room
    }

    /// The upgrade request: headers, cookies, query, path, peer, user.
    pub fn scope(&self) -> &Scope {
        &self.conn.scope
    }

    /// The user the authenticator returned, if any.
    pub fn user(&self) -> Option<&User> {
        self.conn.scope.user()
    }

    /// Send an update to this connection only.
    ///
    /// While a handler answers a call that carried a `ref`, the frame
    /// carries it too. The frame is queued, not awaited: a client whose
    /// queue is full is closed as too slow ([`SendError::SlowClient`]). A
    /// frame over the outgoing limit is not sent ([`SendError::TooLarge`])
    /// and the connection stays open.
    pub fn send(&self, update: impl IntoUpdate) -> Result<(), SendError> {
        let frame = update
            .into_frame(self.current_ref())
            .map_err(|_| SendError::Serialize)?;
        self.conn
            .broadcaster
            .check_size(frame.len())
            .map_err(|()| SendError::TooLarge)?;
        self.conn.outbox.push(Frame::from(frame))
    }

    /// Who is in this connection's room (see [`Broadcaster::presence`]).
    pub async fn presence(&self) -> crate::Presence {
        self.conn.broadcaster.presence(&self.conn.room).await
    }

    /// A handle of its own on the app's [`Broadcaster`], for tasks and
    /// threads that outlive the call (the consumer reaches the same
    /// methods through `Deref`). Its sends count against this connection's
    /// [broadcast budget](crate::LiveViewBuilder::broadcast_budget), if any.
    pub fn broadcaster(&self) -> Broadcaster {
        self.conn.broadcaster.clone()
    }

    /// End this connection because its session ended (the user signed out
    /// in another tab, an administrator revoked the session): it closes with
    /// code 4401, after the frames already sent, and the client stops
    /// reconnecting, fires `liveview:session-expired` and shows the page's
    /// `#session-expired` element. Pair it with an
    /// [`Authenticator`](crate::Authenticator) that answers
    /// [`Identity::Expired`](crate::Identity::Expired) for the same session,
    /// so a page that was offline meanwhile is told the same on reconnect.
    ///
    /// ```
    /// use liveview::{liveview_handler, Consumer, Content};
    ///
    /// #[liveview_handler("account_check")]
    /// async fn account_check(consumer: &Consumer, _content: Content) -> liveview::Result {
    ///     let signed_out = consumer.user().is_none();
    ///     if signed_out {
    ///         consumer.expire();
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub fn expire(&self) {
        self.conn
            .outbox
            .state()
            .close(crate::call::protocol::close::SESSION_EXPIRED);
    }

    /// Whether the connection is closed or closing.
    pub fn is_closed(&self) -> bool {
        self.conn.outbox.is_closed()
    }

    /// The application state of type `T` given to
    /// [`LiveViewBuilder::state`](crate::LiveViewBuilder::state): a database
    /// pool, a configuration, a template environment.
    ///
    /// ```
    /// use liveview::{liveview_handler, Consumer, Content, Update};
    ///
    /// #[derive(Clone)]
    /// struct Greeting(&'static str);
    ///
    /// #[liveview_handler("docs_app_state")]
    /// async fn greet(consumer: &Consumer, _content: Content) -> liveview::Result {
    ///     let greeting = consumer.app_state::<Greeting>().map_or("Hello", |g| g.0);
    ///     consumer.send(Update::new("#greeting").html(greeting))?;
    ///     Ok(())
    /// }
    ///
    /// let live = liveview::LiveView::builder().state(Greeting("Hola")).build().unwrap();
    /// # drop(live);
    /// ```
    pub fn app_state<T: Clone + Send + Sync + 'static>(&self) -> Option<&T> {
        self.conn.app.get::<T>()
    }

    /// Store a per-connection value, kept between calls (the app-wide
    /// values are [`app_state`](Self::app_state)); returns the one it
    /// replaces.
    ///
    /// ```
    /// # let (consumer, _recorder) = liveview::testing::consumer("room");
    /// #[derive(Clone, Default)]
    /// struct Cart(Vec<String>);
    ///
    /// consumer.insert(Cart(vec!["tea".into()]));
    /// consumer.with(|cart: &mut Cart| cart.0.push("milk".into()));
    /// assert_eq!(consumer.get::<Cart>().unwrap().0, ["tea", "milk"]);
    /// ```
    pub fn insert<T: Clone + Send + Sync + 'static>(&self, value: T) -> Option<T> {
        self.connection_state().insert(value)
    }

    /// A clone of the per-connection value of type `T`.
    pub fn get<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.connection_state().get::<T>().cloned()
    }

    /// Take the per-connection value of type `T` out.
    pub fn remove<T: Clone + Send + Sync + 'static>(&self) -> Option<T> {
        self.connection_state().remove::<T>()
    }

    /// Read and change the per-connection value of type `T` in place,
    /// starting from `T::default()`. Do not call other state methods of
    /// this consumer inside `f`.
    pub fn with<T, R>(&self, f: impl FnOnce(&mut T) -> R) -> R
    where
        T: Clone + Default + Send + Sync + 'static,
    {
        let mut state = self.connection_state();
        f(state.get_or_insert_default::<T>())
    }

    fn connection_state(&self) -> std::sync::MutexGuard<'_, http::Extensions> {
        self.conn.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    #[inline]
    fn current_ref(&self) -> Option<u64> {
        match self.call {
            Calls::Lent => self.conn.running().map(|call| call.reference),
            Calls::Of(call) => call
                .filter(|call| self.conn.calls.load(Ordering::Acquire) == call.running)
                .map(|call| call.reference),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::update::Update;

    #[test]
    fn a_consumer_sends_its_calls_ref_only_while_that_call_runs() {
        let (conn, mut rx) = Connection::for_tests(16);
        let mut sent = || rx.try_recv().unwrap().as_str().to_owned();

        let first = CallRef::start(&conn, 7);
        let kept = Consumer::new(conn.clone(), Some(first));
        kept.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a","ref":7}"##);
        first.finish(&conn);
        kept.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a"}"##, "the call is over");

        // A later call has its own ref; the first call's consumer does not
        // take it.
        let second = CallRef::start(&conn, 8);
        let current = Consumer::new(conn.clone(), Some(second));
        kept.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a"}"##);
        current.send(Update::new("#b")).unwrap();
        assert_eq!(sent(), r##"{"target":"#b","ref":8}"##);

        // A call dropped before its end does not lend its ref to the next.
        let third = CallRef::start(&conn, 9);
        let dropped = Consumer::new(conn.clone(), Some(third));
        let fourth = CallRef::start(&conn, 10);
        dropped.send(Update::new("#c")).unwrap();
        assert_eq!(sent(), r##"{"target":"#c"}"##);
        current.send(Update::new("#b")).unwrap();
        assert_eq!(sent(), r##"{"target":"#b"}"##);
        Consumer::new(conn.clone(), Some(fourth))
            .send(Update::new("#d"))
            .unwrap();
        assert_eq!(sent(), r##"{"target":"#d","ref":10}"##);
    }

    #[test]
    fn the_lent_consumer_sends_the_running_calls_ref_and_its_clones_keep_their_own() {
        let (conn, mut rx) = Connection::for_tests(16);
        let mut sent = || rx.try_recv().unwrap().as_str().to_owned();
        let lent = Consumer::lent(conn.clone());

        let first = CallRef::start_any(&conn, Some(7)).unwrap();
        lent.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a","ref":7}"##);
        let kept = lent.clone();
        kept.send(Update::new("#k")).unwrap();
        assert_eq!(sent(), r##"{"target":"#k","ref":7}"##);
        first.finish(&conn);
        lent.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a"}"##, "between calls");
        kept.send(Update::new("#k")).unwrap();
        assert_eq!(sent(), r##"{"target":"#k"}"##, "its call is over");

        // A later call's ref is the lent consumer's, not the first call's
        // clone's; a clone of a clone answers the same call.
        let _second = CallRef::start_any(&conn, Some(8)).unwrap();
        lent.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a","ref":8}"##);
        kept.clone().send(Update::new("#k")).unwrap();
        assert_eq!(sent(), r##"{"target":"#k"}"##);
        let current = lent.clone().clone();
        current.send(Update::new("#c")).unwrap();
        assert_eq!(sent(), r##"{"target":"#c","ref":8}"##);

        // The second call is dropped before its end: the next call, which
        // has no ref, sends none, and neither do the clones.
        assert!(CallRef::start_any(&conn, None).is_none());
        lent.send(Update::new("#a")).unwrap();
        assert_eq!(sent(), r##"{"target":"#a"}"##);
        current.send(Update::new("#c")).unwrap();
        assert_eq!(sent(), r##"{"target":"#c"}"##);
        lent.clone().send(Update::new("#n")).unwrap();
        assert_eq!(sent(), r##"{"target":"#n"}"##);
    }
}
