//! An open WebSocket connection, as one hand-written poll: its reader (a
//! call at a time), its writer, its pings and its idle timeout, on the one
//! socket and one timer, so that an idle connection's task holds little
//! more than the socket itself. Its close takes another, boxed, future.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};

use futures_util::{Sink, Stream};
use tokio::time::{Instant, Sleep};
use tokio_tungstenite::tungstenite::{self, Message};

use super::outbox::{OutboxState, Receiver};
use super::socket::Socket;
use super::upgrade;
use super::{Ended, Inbound, allowed, inbound, outgoing};
use crate::app::Shared;
use crate::call::dispatch;
use crate::call::protocol::close;
use crate::consumer::{Connection, Consumer};
use crate::limits::Bucket;

/// A call under way: at most one per connection, and boxed, so that an
/// idle connection does not carry its state. Only a call that was not done
/// in its first poll is boxed: the others are polled where they stand. The
/// box holds the dispatch's own state and nothing around it (the frame's
/// text is parsed before and not kept), so that it stays small enough for
/// the allocator's fast path.
pub(super) type Call<'a> = Box<dispatch::Call<'a>>;

/// The state of an open connection between polls.
pub(super) struct Live<'a> {
    shared: &'a Shared,
    /// The connection's consumer, lent to each of its calls.
    consumer: &'a Consumer,
    conn: &'a Connection,
    pub(super) rx: Receiver,
    pub(super) call: Option<Call<'a>>,
    /// The box of the last call's async handler, in which the next call of
    /// that handler starts: a burst of calls allocates none. Released when
    /// the timer fires, so that a connection quiet since does not keep it.
    spare: dispatch::Spare<'a>,
    bucket: Option<Bucket>,
    ip: Option<IpAddr>,
    /// When the next Ping is due.
    next_ping: Instant,
    /// When the client is closed as idle, unless it was `heard` before.
    idle_at: Instant,
    /// The client sent something since the timer last fired: the clock is
    /// read then, not for every frame.
    heard: bool,
    strikes: u32,
    /// A Ping is due but the socket could not take it yet.
    ping_due: bool,
    /// Frames were handed to the socket since its last flush.
    pub(super) unflushed: bool,
    /// The waker the timer was last polled with, since it was last reset
    /// or fired: the timer keeps it and wakes it when it fires, so it is
    /// not polled again while the task's waker stays the same.
    timer_waker: Option<Waker>,
}

/// Why the open connection's poll ended: it was told to close (its close
/// code is set).
pub(super) struct Stop {
    /// How the reader ended; `None` while a call is still under way (the
    /// reader ends once it is done, the stream still readable).
    pub ended: Option<Ended>,
    /// A write failed: nothing more can be sent.
    pub write_failed: bool,
}

impl<'a> Live<'a> {
    pub(super) fn new(
        shared: &'a Shared,
        consumer: &'a Consumer,
        rx: Receiver,
        ip: Option<IpAddr>,
    ) -> Self {
        let now = Instant::now();
        let config = &shared.config;
        Self {
            shared,
            consumer,
            conn: consumer.connection(),
            rx,
            call: None,
            spare: None,
            bucket: config.limits.per_connection.as_ref().map(Bucket::new),
            ip,
            next_ping: now + config.ping_interval,
            idle_at: now + config.idle_timeout,
            heard: false,
            strikes: 0,
            ping_due: false,
            unflushed: false,
            timer_waker: None,
        }
    }

    /// When the timer must next fire: the next Ping, or the idle timeout
    /// (which only counts between calls: a call under way is no silence).
    #[inline]
    pub(super) fn deadline(&self) -> Instant {
        if self.call.is_some() {
            self.next_ping
        } else {
            self.next_ping.min(self.idle_at)
        }
    }

    /// Poll the connection until it is told to close. The reader goes
    /// first, as the writer sends in the same poll what a call queued.
    pub(super) fn poll<S: upgrade::Stream>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut Socket<S>,
        mut timer: Pin<&mut Sleep>,
    ) -> Poll<Stop> {
        let conn = self.conn;
        let closer = conn.outbox.state();
        // Before anything is looked at: a frame queued, a close or a
        // shutdown from now on wakes the task.
        self.rx.register(cx.waker());
        loop {
            if closer.code().is_some() {
                return Poll::Ready(self.stop(None));
            }
            let (read, written) = {
                // A call finished in this turn: it is dropped once its
                // frames are on their way, not before, where it stands,
                // and its handler's box kept for the next call.
                let mut finished = None;
                let read = match self.read(cx, socket, closer, &mut finished) {
                    Ok(read) => read,
                    Err(ended) => return Poll::Ready(self.stop(Some(ended))),
                };
                let written = self.write(cx, socket);
                if let Some(call) = finished {
                    self.spare = dispatch::spare(call);
                }
                match written {
                    Ok(written) => (read, written),
                    Err(err) => {
                        self.shared.metrics.write_failures.add(1);
                        tracing::debug!(target: "liveview", error = %err, "write failed");
                        closer.close(close::NORMAL);
                        return Poll::Ready(self.stop_failed());
                    }
                }
            };
            if read || written {
                continue;
            }
            let deadline = self.deadline();
            if deadline < timer.deadline() {
                timer.as_mut().reset(deadline);
                self.timer_waker = None;
            }
            // Polled once per deadline and waker, not at every turn: a
            // timer that fired has woken the task, and says so.
            let armed = self
                .timer_waker
                .as_ref()
                .is_some_and(|waker| waker.will_wake(cx.waker()));
            if armed && !timer.is_elapsed() {
                return Poll::Pending;
            }
            if timer.as_mut().poll(cx).is_pending() {
                if !armed {
                    self.timer_waker = Some(cx.waker().clone());
                }
                return Poll::Pending;
            }
            self.timer_waker = None;
            self.spare = None;
            let now = Instant::now();
            if now >= self.next_ping {
                self.ping_due = true;
                self.next_ping = now + self.shared.config.ping_interval;
            }
            // Heard since the timer last fired (at the latest a ping
            // interval or an idle timeout ago): silent since now at most.
            // The close comes no sooner than the idle timeout after the
            // client's last frame, and at most a ping interval later.
            if std::mem::take(&mut self.heard) {
                self.idle_at = now + self.shared.config.idle_timeout;
            }
            if self.call.is_none() && now >= self.idle_at {
                let idle_timeout = self.shared.config.idle_timeout;
                tracing::debug!(target: "liveview", connection = self.conn.id, idle_ms = idle_timeout.as_millis() as u64, "closing a connection that sent nothing, not even a Pong");
                self.shared.metrics.idle_closes.add(1);
                closer.close(close::IDLE);
                return Poll::Ready(self.stop(Some(Ended::Readable)));
            }
            // Re-armed (and polled, to be woken) on the next turn.
            timer.as_mut().reset(self.deadline());
        }
    }

    fn stop(&self, ended: Option<Ended>) -> Stop {
        Stop {
            // Told to close between calls: the reader ends at once.
            ended: ended.or(if self.call.is_none() {
                Some(Ended::Readable)
            } else {
                None
            }),
            write_failed: false,
        }
    }

    fn stop_failed(&self) -> Stop {
        Stop {
            write_failed: true,
            ..self.stop(None)
        }
    }

    /// One step of the reader: the call under way, or else the next
    /// message (and the first poll of the call it starts). `Ok(true)` when
    /// it got anywhere and may get further; `Err` when the reader ended
    /// (the close code is set). A call that finished is handed to
    /// `finished`.
    fn read<S: upgrade::Stream>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut Socket<S>,
        closer: &Arc<OutboxState>,
        finished: &mut Option<dispatch::Call<'a>>,
    ) -> Result<bool, Ended> {
        if let Some(call) = &mut self.call {
            // The frames the call queues go out in this same poll.
            return match closer.driving(|| Pin::new(&mut **call).poll(cx)) {
                Poll::Ready(_) => {
                    *finished = self.call.take().map(|call| *call);
                    Ok(true)
                }
                Poll::Pending => Ok(false),
            };
        }
        if closer.going_away() {
            closer.close(close::GOING_AWAY);
            return Err(Ended::Readable);
        }
        let message = match Pin::new(socket).poll_next(cx) {
            Poll::Pending => return Ok(false),
            Poll::Ready(None) => {
                closer.close(close::NORMAL);
                return Err(Ended::Gone);
            }
            Poll::Ready(Some(message)) => inbound(self.conn.id, message),
        };
        // Anything from the client, a Pong included, proves it is there.
        self.heard = true;
        match message {
            Inbound::Text(text) => {
                let shared = self.shared;
                shared.metrics.frames_in.add(1);
                shared.metrics.bytes_in.add(text.len() as u64);
                if allowed(shared, &mut self.bucket, self.ip) {
                    self.strikes = 0;
                    let consumer = self.consumer;
                    // Parsed now, and polled at once: most calls are done
                    // in their first poll, and their frames go out in this
                    // same poll of the task, without another turn of the
                    // loop. Whatever is queued meanwhile (a refusal, the
                    // handler's frames) needs no wake-up.
                    // Made where it is kept once done, not moved there.
                    let call = finished.insert(closer.driving(|| {
                        dispatch::handle_text_reusing(shared, consumer, &text, &mut self.spare)
                    }));
                    drop(text);
                    if closer.driving(|| Pin::new(call).poll(cx)).is_pending() {
                        // Nothing more to read meanwhile: the call wakes
                        // the task when it can go on, from its box.
                        self.call = finished.take().map(Box::new);
                        return Ok(false);
                    }
                } else {
                    self.strikes += 1;
                    shared.metrics.rate_limited.add(1);
                    closer.driving(|| dispatch::refuse_rate_limited(self.conn, text.as_str()));
                    if self.strikes >= shared.config.limits.strikes {
                        tracing::warn!(target: "liveview", connection = self.conn.id, "closing a connection that kept exceeding its rate limit");
                        closer.close(close::POLICY);
                        return Err(Ended::Readable);
                    }
                }
            }
            Inbound::Alive => {}
            Inbound::End(code, ended) => {
                closer.close(code);
                return Err(ended);
            }
        }
        Ok(true)
    }

    /// One step of the writer: a Ping when due, the queued frames, and a
    /// flush once nothing else waits. `Ok(true)` when it got anywhere.
    fn write<S: upgrade::Stream>(
        &mut self,
        cx: &mut Context<'_>,
        socket: &mut Socket<S>,
    ) -> Result<bool, tungstenite::Error> {
        let metrics = &self.shared.metrics;
        let mut socket = Pin::new(socket);
        let mut progress = false;
        loop {
            if socket.as_mut().poll_ready(cx)?.is_pending() {
                return Ok(progress);
            }
            let message = if self.ping_due {
                self.ping_due = false;
                // An empty Ping: the client's Pong resets its idle timer.
                Message::Ping(Default::default())
            } else if let Ok(frame) = self.rx.try_recv() {
                metrics.frames_out.add(1);
                metrics.bytes_out.add(frame.len() as u64);
                outgoing(frame)
            } else if self.unflushed {
                // Nothing else waits: out in as few writes as the burst
                // allows.
                return Ok(match socket.as_mut().poll_flush(cx)? {
                    Poll::Pending => progress,
                    Poll::Ready(()) => {
                        self.unflushed = false;
                        true
                    }
                });
            } else {
                return Ok(progress);
            };
            socket.as_mut().start_send(message)?;
            self.unflushed = true;
            progress = true;
        }
    }
}
