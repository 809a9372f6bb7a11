//! One call, from text frame to `done`: parse, middleware, handler, errors.
//! Shared by real sockets and the in-process test client.

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_util::future::Either;
use tracing::Instrument;

use crate::app::Shared;
use crate::call::handler::{Handler, HandlerEntry, HandlerFuture};
use crate::call::log::{Escaped, Warn, escaped};
use crate::call::protocol::{self, errors};
use crate::consumer::{CallRef, Connection, Consumer};
use crate::layer::Frame;
use crate::metrics::Outcome;

/// Handle one text frame of the connection `consumer` answers (the one its
/// calls borrow, [`Consumer::lent`]). Never fails: every problem becomes
/// one of the protocol's error frames and a log line.
///
/// The frame is read at once, and the handler started: the returned future
/// holds the handler's future, not the call's content. It is `Unpin`, so
/// it is polled where it stands, and the connection boxes it only when the
/// call is not done in its first poll (most are). A frame that is no call
/// of a handler is answered here, and the future is ready.
pub(crate) fn handle_text<'a>(shared: &'a Shared, consumer: &'a Consumer, text: &str) -> Call<'a> {
    handle_text_reusing(shared, consumer, text, &mut None)
}

/// [`handle_text`] for a connection that keeps the box of its last call's
/// handler (`spare`, see [`spare`]): a call of the same handler starts in
/// it, without allocating.
pub(crate) fn handle_text_reusing<'a>(
    shared: &'a Shared,
    consumer: &'a Consumer,
    text: &str,
    spare: &mut Spare<'a>,
) -> Call<'a> {
    let conn = consumer.connection();
    let mut frame = protocol::Frame::default();
    match protocol::parse_frame(text, &mut frame) {
        Ok(()) => {}
        Err(invalid) => {
            return Either::Right(std::future::ready(refuse_invalid(
                shared, conn, text, invalid,
            )));
        }
    }
    let reference = frame.reference;
    let Some((entry, index)) = shared.registry.get(&frame.function) else {
        return Either::Right(std::future::ready(refuse_unknown(
            shared,
            conn,
            &frame.function,
            reference,
        )));
    };
    Either::Left(dispatch(
        shared,
        consumer,
        (entry, index),
        &mut frame,
        reference,
        spare,
    ))
}

/// A call under way: a handler's, or a frame answered at once.
pub(crate) type Call<'a> = Either<Dispatch<'a>, std::future::Ready<Outcome>>;

/// The box of an async handler's future whose call is done, and the
/// handler it belongs to: kept by the connection, the next call of that
/// handler starts in it.
pub(crate) type Spare<'a> = Option<(&'static HandlerEntry, HandlerFuture<'a>)>;

/// The handler's box of `call`, which is done, to start the connection's
/// next call of the same handler in. None when the handler was blocking,
/// panicked, timed out or did not run. Inlined where the call is kept, not
/// moved here.
#[inline(always)]
pub(crate) fn spare(call: Call<'_>) -> Spare<'_> {
    match call {
        Either::Left(Dispatch {
            entry,
            work:
                Work::Started(Started {
                    running: Running::Async(future),
                    ..
                }),
            ..
        }) => Some((entry, future)),
        _ => None,
    }
}

/// Answer a frame that is not a call (or a probe).
fn refuse_invalid(
    shared: &Shared,
    conn: &Connection,
    text: &str,
    invalid: protocol::InvalidMessage,
) -> Outcome {
    // A probe has no `function`, so it is never a call: looked for
    // only among refused frames.
    if let Some(n) = protocol::ping(text) {
        let _ = conn.outbox.push(Frame::from(protocol::pong_frame(n)));
        return Outcome::Ok;
    }
    if warn(conn) {
        tracing::debug!(target: "liveview", connection = conn.id, reason = %escaped(&invalid.0), "invalid message");
    }
    // Counted before the answer goes out: a client that reads the
    // answer then the metrics sees its call counted.
    shared
        .metrics
        .call(None, Outcome::Invalid, std::time::Duration::ZERO);
    // A frame with a `ref` gets it back, and its `done`, whatever
    // else is wrong with it: the page's loading state ends.
    error_then_done(
        conn,
        Some(errors::INVALID_MESSAGE),
        protocol::reference_only(text),
    );
    Outcome::Invalid
}

/// Answer a call of a function no handler has.
fn refuse_unknown(
    shared: &Shared,
    conn: &Connection,
    function: &str,
    reference: Option<u64>,
) -> Outcome {
    let outcome = Outcome::Unknown;
    let span = tracing::info_span!(
        target: "liveview",
        "call",
        function = %function,
        outcome = tracing::field::Empty,
    );
    {
        let _entered = span.enter();
        if warn(conn) {
            tracing::warn!(target: "liveview", connection = conn.id, function = %escaped(function), "unknown function");
        }
    }
    span.record("outcome", outcome.as_str());
    conclude(
        shared,
        conn,
        (function, None),
        (outcome, Duration::ZERO),
        reference,
    )
}

/// What a handler's call is waiting for: the handler itself, or the
/// middleware before it (boxed, with the content they read, and run in the
/// call's span). A handler started at once has no span to run in or to
/// record its outcome in: it is started only when the span is disabled.
enum Work<'a> {
    Started(Started<'a>),
    Boxed(
        Pin<Box<dyn Future<Output = (Outcome, Duration)> + Send + 'a>>,
        tracing::Span,
    ),
}

/// Run one call of `entry` that `frame` asked for: middleware, handler,
/// errors, `done`. The handler starts now, unless middleware must allow it
/// first.
///
/// The call's content is made from the frame where it is handed on, as the
/// argument of the handler's start (or of the middleware), not made before
/// and moved there: inlined, with [`start`], where the frame is parsed, the
/// content is copied once less on its way to the handler.
#[inline(always)]
fn dispatch<'a>(
    shared: &'a Shared,
    consumer: &'a Consumer,
    (entry, index): (&'static HandlerEntry, usize),
    frame: &mut protocol::Frame<'_>,
    reference: Option<u64>,
    spare: &mut Spare<'a>,
) -> Dispatch<'a> {
    let span = tracing::info_span!(
        target: "liveview",
        "call",
        function = %entry.name,
        outcome = tracing::field::Empty,
    );
    let conn = consumer.connection();
    let call_ref = CallRef::start_any(conn, reference);
    // The registered name, the connection's room and, nearly always, the
    // language of its last call: no copy of any of them per call.
    let lang = conn.lang.share(frame.lang.as_deref().unwrap_or(""));
    let content = |frame: &mut protocol::Frame<'_>, lang| {
        frame.take_content(entry.name.into(), lang, conn.room.clone())
    };
    let work = if span.is_disabled() && shared.middleware.is_empty() {
        Work::Started(start(entry, consumer, content(frame, lang), spare))
    } else {
        // Entered and left at every poll.
        Work::Boxed(
            Box::pin(
                middleware_then_run(shared, consumer, entry, content(frame, lang))
                    .instrument(span.clone()),
            ),
            span,
        )
    };
    Dispatch {
        shared,
        conn,
        entry,
        index,
        call_ref,
        reference,
        work,
    }
}

/// One call of a handler, from its start to its answer: wait for the
/// handler, count the call, answer its errors and `done`. Written out as a
/// future rather than an `async fn`, so that it is `Unpin`: polled where
/// it stands, it needs a box only when the handler is not done in its
/// first poll. Its state is kept small: it is moved, from the dispatch to
/// where the connection keeps it.
pub(crate) struct Dispatch<'a> {
    shared: &'a Shared,
    conn: &'a Connection,
    entry: &'static HandlerEntry,
    index: usize,
    /// The call's `ref`, while the call runs (its frames carry it).
    call_ref: Option<CallRef>,
    reference: Option<u64>,
    work: Work<'a>,
}

impl Future for Dispatch<'_> {
    type Output = Outcome;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Outcome> {
        let this = self.get_mut();
        let (outcome, elapsed) = match &mut this.work {
            Work::Started(started) => {
                std::task::ready!(started.poll_finish(this.shared, this.conn, this.entry, cx))
            }
            Work::Boxed(work, _) => std::task::ready!(work.as_mut().poll(cx)),
        };
        if let Work::Boxed(_, span) = &this.work {
            span.record("outcome", outcome.as_str());
        }
        if let Some(call) = this.call_ref.take() {
            call.finish(this.conn);
        }
        Poll::Ready(conclude(
            this.shared,
            this.conn,
            (this.entry.name, Some(this.index)),
            (outcome, elapsed),
            this.reference,
        ))
    }
}

/// The end of a call of `function` (`index` in the registry, when it has
/// a handler): counted, answered, logged. Counted before the answer goes
/// out: a client that reads its error or `done` then the metrics sees its
/// call counted.
#[inline(always)]
fn conclude(
    shared: &Shared,
    conn: &Connection,
    (function, index): (&str, Option<usize>),
    (outcome, elapsed): (Outcome, Duration),
    reference: Option<u64>,
) -> Outcome {
    shared.metrics.call(index, outcome, elapsed);
    answer(conn, outcome, reference);
    if tracing::enabled!(target: "liveview", tracing::Level::DEBUG) {
        log_call(conn, function, outcome, elapsed);
    }
    outcome
}

/// The end of a call's answer: its error, if any, and its `done` when it
/// has a `ref`.
fn answer(conn: &Connection, outcome: Outcome, reference: Option<u64>) {
    let error = match outcome {
        Outcome::Unknown => Some(errors::UNKNOWN_FUNCTION),
        Outcome::Failed | Outcome::Panicked | Outcome::TimedOut => Some(errors::INTERNAL),
        Outcome::OverBudget => Some(errors::RATE_LIMITED),
        Outcome::Ok | Outcome::Invalid | Outcome::Refused => None,
    };
    error_then_done(conn, error, reference);
}

/// Queue `error`, if any, then `done` when the call has a `ref`: the page's
/// loading state ends whatever went wrong.
fn error_then_done(conn: &Connection, error: Option<&str>, reference: Option<u64>) {
    if let Some(error) = error {
        let _ = conn
            .outbox
            .push(Frame::from(protocol::error_frame(error, reference)));
    }
    if let Some(reference) = reference {
        let _ = conn
            .outbox
            .push(Frame::from(protocol::done_frame(reference)));
    }
}

#[cold]
#[inline(never)]
fn log_call(conn: &Connection, function: &str, outcome: Outcome, elapsed: Duration) {
    tracing::debug!(
        target: "liveview",
        connection = conn.id,
        room = %conn.room,
        function = %function,
        outcome = outcome.as_str(),
        elapsed_us = elapsed.as_micros() as u64,
        "call"
    );
}

/// Whether a warning caused by `conn`'s client may be written: each
/// connection has a budget per minute, and the last warning it allows says
/// so.
fn warn(conn: &Connection) -> bool {
    match conn.warnings.take(Instant::now()) {
        Warn::Yes => true,
        Warn::Last => {
            tracing::warn!(
                target: "liveview",
                connection = conn.id,
                "this connection's warnings are held back for the rest of the minute"
            );
            true
        }
        Warn::No => false,
    }
}

/// Answer a call refused by a rate limit: the fixed error, with the call's
/// `ref` and `done` when it has one, so the page's loading state ends.
pub(crate) fn refuse_rate_limited(conn: &Connection, text: &str) {
    error_then_done(
        conn,
        Some(errors::RATE_LIMITED),
        protocol::reference_only(text),
    );
}

/// The middleware, then the handler unless one of them stops the call.
async fn middleware_then_run(
    shared: &Shared,
    consumer: &Consumer,
    entry: &'static HandlerEntry,
    content: crate::Content,
) -> (Outcome, Duration) {
    for middleware in &shared.middleware {
        if !middleware.allows(consumer, &content, entry.name).await {
            return (Outcome::Refused, Duration::ZERO);
        }
    }
    let conn = consumer.connection();
    let mut started = start(entry, consumer, content, &mut None);
    std::future::poll_fn(|cx| started.poll_finish(shared, conn, entry, cx)).await
}

/// A handler on its way: the future of an async one, the task of a
/// blocking one.
enum Running<'a> {
    /// Kept once done, unless it panicked: the connection may start its
    /// next call of the handler in its box.
    Async(HandlerFuture<'a>),
    Blocking(tokio::task::JoinHandle<crate::Result>),
    /// Out of time, or panicked: its future was dropped, its task left to
    /// end alone.
    Abandoned,
}

/// A handler started, and when.
struct Started<'a> {
    running: Running<'a>,
    /// Read from the system's clock, not tokio's: the handler's duration
    /// for the metrics is the one clock read a call needs at each end
    /// (tokio's, which a test may pause, checks for that first).
    at: Instant,
    /// The handler's deadline, set once a poll left it unfinished (most
    /// handlers are done in their first, and need none). Boxed, out of the
    /// call's state.
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

/// Start the handler of `entry`: an async one borrows the consumer, a
/// blocking one takes a clone of it to its thread (which answers this call
/// only); each takes the content. An async one starts in the box of
/// `spare` when that is its own. Inlined where the content is made.
#[inline(always)]
fn start<'a>(
    entry: &'static HandlerEntry,
    consumer: &'a Consumer,
    content: crate::Content,
    spare: &mut Spare<'a>,
) -> Started<'a> {
    // An async handler's future is made before the clock is read: the
    // content goes straight from the frame to the handler's future, not
    // kept meanwhile.
    let (running, at) = match entry.handler {
        Handler::Async(f) => {
            let future = match spare.take() {
                Some((handler, mut future)) if std::ptr::eq(handler, entry) => {
                    future.as_mut().restart(consumer, content);
                    future
                }
                _ => f(consumer, content),
            };
            (Running::Async(future), Instant::now())
        }
        Handler::Blocking(f) => {
            let at = Instant::now();
            let consumer = consumer.clone();
            let task = tokio::task::spawn_blocking(move || f(&consumer, content));
            (Running::Blocking(task), at)
        }
    };
    Started {
        running,
        at,
        timer: None,
    }
}

impl Started<'_> {
    /// Wait for the handler, with the timeout, catching panics and errors;
    /// the detail goes to the log only. Gives the outcome and how long the
    /// handler took.
    #[inline]
    fn poll_finish(
        &mut self,
        shared: &Shared,
        conn: &Connection,
        entry: &'static HandlerEntry,
        cx: &mut Context<'_>,
    ) -> Poll<(Outcome, Duration)> {
        let function = entry.name;
        let outcome = match &mut self.running {
            Running::Async(fut) => {
                match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(cx))) {
                    Ok(Poll::Ready(Ok(()))) => Outcome::Ok,
                    Ok(Poll::Ready(Err(err))) => failed(conn, function, &err),
                    Err(panic) => {
                        // Not started again: dropped now.
                        self.running = Running::Abandoned;
                        if warn(conn) {
                            log_panic(function, conn.id, &panic);
                        }
                        Outcome::Panicked
                    }
                    Ok(Poll::Pending) => return self.poll_deadline(shared, conn, function, cx),
                }
            }
            Running::Blocking(task) => match Pin::new(task).poll(cx) {
                Poll::Ready(Ok(Ok(()))) => Outcome::Ok,
                Poll::Ready(Ok(Err(err))) => failed(conn, function, &err),
                Poll::Ready(Err(join)) => {
                    match join.try_into_panic() {
                        Ok(panic) if warn(conn) => log_panic(function, conn.id, &panic),
                        Ok(_) => {}
                        Err(join) => {
                            tracing::error!(target: "liveview", function = %function, error = %join, "handler task failed")
                        }
                    }
                    Outcome::Panicked
                }
                Poll::Pending => return self.poll_deadline(shared, conn, function, cx),
            },
            Running::Abandoned => Outcome::TimedOut,
        };
        Poll::Ready((outcome, self.at.elapsed()))
    }

    /// The handler is not done: wait for its deadline, and abandon it
    /// there.
    #[cold]
    fn poll_deadline(
        &mut self,
        shared: &Shared,
        conn: &Connection,
        function: &str,
        cx: &mut Context<'_>,
    ) -> Poll<(Outcome, Duration)> {
        let timeout = shared.config.handler_timeout;
        let timer = match &mut self.timer {
            Some(timer) => timer,
            None => {
                // The deadline counts from the handler's start, on tokio's
                // clock. A timeout too far off to be a point in time is
                // none.
                let left = timeout.saturating_sub(self.at.elapsed());
                let Some(deadline) = tokio::time::Instant::now().checked_add(left) else {
                    return Poll::Pending;
                };
                self.timer
                    .insert(Box::pin(tokio::time::sleep_until(deadline)))
            }
        };
        if timer.as_mut().poll(cx).is_pending() {
            return Poll::Pending;
        }
        // Abandoned here: it ran out of time.
        self.running = Running::Abandoned;
        self.timer = None;
        if warn(conn) {
            tracing::error!(target: "liveview", connection = conn.id, function = %function, timeout_ms = timeout.as_millis() as u64, "handler timed out");
        }
        Poll::Ready((Outcome::TimedOut, self.at.elapsed()))
    }
}

/// The outcome of a handler that returned `err`, logged.
#[cold]
fn failed(conn: &Connection, function: &str, err: &crate::Error) -> Outcome {
    if matches!(
        err.source_error().downcast_ref(),
        Some(crate::BroadcastError::OverBudget)
    ) {
        // The client's doing, counted where it was refused.
        return Outcome::OverBudget;
    }
    // The error may quote what the client sent (a form value that did not
    // parse).
    if warn(conn) {
        tracing::error!(target: "liveview", connection = conn.id, function = %function, error = %Escaped::long(&err.to_string()), "handler failed");
    }
    Outcome::Failed
}

fn log_panic(function: &str, connection: u64, panic: &Box<dyn std::any::Any + Send>) {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic".to_owned());
    tracing::error!(target: "liveview", connection, function, panic = %Escaped::long(&message), "handler panicked");
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn connection() -> (Arc<Connection>, crate::connection::outbox::Receiver) {
        Connection::for_tests(8)
    }

    #[test]
    fn a_rate_limited_frame_has_only_its_ref_read() {
        let (conn, mut rx) = connection();
        let data = crate::call::content::keys::prefixed_keys(5_000);
        let frame = serde_json::json!({"function": "f", "data": data, "ref": 7}).to_string();
        let before = crate::call::content::keys::probes();
        refuse_rate_limited(&conn, &frame);
        assert_eq!(
            crate::call::content::keys::probes(),
            before,
            "a refused frame's keys are not normalised"
        );
        assert_eq!(
            rx.try_recv().unwrap().as_str(),
            r#"{"error":"Rate limited","ref":7}"#
        );
        assert_eq!(rx.try_recv().unwrap().as_str(), r#"{"ref":7,"done":true}"#);
    }

    /// The largest request glibc's per-thread cache serves: a call's box
    /// up to this size is allocated and freed without taking a lock.
    const ALLOCATOR_FAST_PATH: usize = 1_032;

    #[tokio::test]
    async fn a_calls_box_fits_the_allocators_fast_path() {
        let live = crate::LiveView::builder().build().unwrap();
        let (conn, _rx) = connection();
        let consumer = Consumer::lent(conn);
        let call = handle_text(&live.shared, &consumer, r#"{"function":"f"}"#);
        let size = std::mem::size_of_val(&call);
        assert!(
            size <= ALLOCATOR_FAST_PATH,
            "a call's box takes {size} bytes, over {ALLOCATOR_FAST_PATH}"
        );
    }
}
