//! The sending side of a connection: its bounded queue of frames, the
//! signal that closes it, and the gate that holds group frames back while
//! a reconnecting client is replayed what it missed.
//!
//! The queue is a plain deque under a lock, its first frame held in place:
//! a queue of one frame (a call's answer) needs no buffer, and a longer
//! one's is given back when it has drained, so an idle connection holds
//! none.

use std::cell::Cell;
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU16, AtomicUsize, Ordering};
use std::task::Poll;

use futures_util::task::AtomicWaker;
use tokio::sync::Notify;

use crate::error::SendError;
use crate::layer::Frame;

/// Close code for a client that could not keep up with its frames.
pub(crate) const CLOSE_SLOW_CLIENT: u16 = 1013;

/// A drained queue keeps a buffer of up to this many frames besides the
/// first; a larger one is given back: an idle connection holds none.
const KEPT_CAPACITY: usize = 0;

/// The sending side of one connection: a bounded queue of frames for its
/// writer, and the signal that tells the connection to close.
#[derive(Debug)]
pub(crate) struct Outbox {
    state: Arc<OutboxState>,
    /// Whether the client tracks group sequences (it asked to, by
    /// connecting with a `resume` parameter): only then do group frames
    /// carry `seq` and `group`.
    sequenced: bool,
}

/// The state every clone of an outbox shares: why and whether the
/// connection is closing (the first reason wins), its queue of frames, and
/// the gate that holds group frames back while a reconnecting client is
/// being replayed what it missed.
#[derive(Debug, Default)]
pub(crate) struct OutboxState {
    code: AtomicU16,
    /// Woken once, when the code is set.
    closing: Notify,
    /// The frames waiting for the writer, at most `capacity`.
    frames: Mutex<Queue>,
    /// How many frames wait: written under the lock of `frames`, read
    /// without it, so that the writer finds an empty queue (most times it
    /// looks) without taking the lock.
    queued: AtomicUsize,
    capacity: usize,
    /// The writer, waiting for a frame.
    writer: AtomicWaker,
    /// Set before each wake-up of the writer: the waker it registered was
    /// taken, and it registers again.
    writer_woken: AtomicBool,
    /// A replay, waiting for room in the queue.
    room: AtomicWaker,
    /// The writer is gone: frames can no longer be queued.
    receiver_gone: AtomicBool,
    /// Outboxes of this queue: once none is left, the writer gets no more
    /// frames.
    senders: AtomicUsize,
    /// The server is shutting down: the connection closes with 1001 once
    /// its call under way, if any, is done.
    going_away: AtomicBool,
    gated: AtomicBool,
    /// More group frames arrived while gated than may be held: the client
    /// is sent a resync instead of them.
    overflowed: AtomicBool,
    held: Mutex<Vec<Held>>,
    /// For a client that tracks sequences: per group, the epoch and the
    /// newest sequence queued, so that a frame is never queued twice (a
    /// replayed frame that also arrives live).
    newest: Mutex<Vec<Newest>>,
}

/// Frames in order: the first in place, the others in a deque (empty
/// whenever there is no first).
#[derive(Debug, Default)]
struct Queue {
    first: Option<Frame>,
    rest: VecDeque<Frame>,
}

impl Queue {
    /// How many frames wait.
    #[inline(always)]
    fn len(&self) -> usize {
        // The deque holds frames only behind a first one.
        if self.first.is_none() {
            0
        } else {
            1 + self.rest.len()
        }
    }

    #[inline(always)]
    fn push_back(&mut self, frame: Frame) {
        if self.first.is_none() {
            self.first = Some(frame);
        } else {
            self.rest.push_back(frame);
        }
    }

    #[inline(always)]
    fn pop_front(&mut self) -> Option<Frame> {
        let frame = self.first.take()?;
        // Most times the frame was alone, and the deque is left as it is.
        if !self.rest.is_empty() {
            self.advance();
        }
        Some(frame)
    }

    /// The deque's first frame moves into place; a drained deque gives its
    /// buffer back.
    #[cold]
    #[inline(never)]
    fn advance(&mut self) {
        self.first = self.rest.pop_front();
        if self.rest.is_empty() && self.rest.capacity() > KEPT_CAPACITY {
            self.rest = VecDeque::new();
        }
    }
}

/// A group, the epoch of its numbering and the newest sequence queued.
type Newest = (Arc<str>, Arc<str>, u64);

/// A group frame held back by the gate.
#[derive(Debug)]
pub(crate) struct Held {
    pub group: Arc<str>,
    pub number: Option<(u64, Arc<str>)>,
    pub frame: Frame,
}

thread_local! {
    /// The queue whose writer this thread polls next, in the same poll of
    /// the connection's task (see [`OutboxState::driving`]): a frame queued
    /// meanwhile needs no wake-up.
    static DRIVING: Cell<usize> = const { Cell::new(0) };
}

/// The receiving end of an outbox's queue: the connection's writer.
#[derive(Debug)]
pub(crate) struct Receiver {
    state: Arc<OutboxState>,
    /// The waker last registered, while it stays registered: a task that
    /// registers on each poll most times finds it there, and has nothing
    /// to do.
    registered: Option<std::task::Waker>,
}

/// Nothing is queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Empty;

impl Receiver {
    /// The next frame, once there is one; `None` once the queue is empty
    /// and every outbox of it is gone.
    pub(crate) async fn recv(&mut self) -> Option<Frame> {
        poll_fn(|cx| {
            if let Ok(frame) = self.try_recv() {
                return Poll::Ready(Some(frame));
            }
            self.register(cx.waker());
            match self.try_recv() {
                Ok(frame) => Poll::Ready(Some(frame)),
                // The last outbox may have queued a frame after the look
                // above, before it went.
                Err(Empty) if self.state.senders.load(Ordering::Acquire) == 0 => {
                    Poll::Ready(self.try_recv().ok())
                }
                Err(Empty) => Poll::Pending,
            }
        })
        .await
    }

    /// Wake the task of `waker` when a frame is queued, the connection is
    /// told to close or the server shuts down; registered before looking,
    /// so nothing in between is missed.
    #[inline]
    pub(crate) fn register(&mut self, waker: &std::task::Waker) {
        // A wake-up that sets the flag after this look takes a waker of
        // this same task: the task is polled again, and registers then.
        if !self.state.writer_woken.load(Ordering::Acquire)
            && self.registered.as_ref().is_some_and(|w| w.will_wake(waker))
        {
            return;
        }
        self.register_anew(waker);
    }

    #[cold]
    #[inline(never)]
    fn register_anew(&mut self, waker: &std::task::Waker) {
        // Cleared before registering: a wake-up from now on either finds
        // the new waker or sets the flag again.
        self.state.writer_woken.store(false, Ordering::Release);
        self.state.writer.register(waker);
        match &mut self.registered {
            Some(registered) => registered.clone_from(waker),
            None => self.registered = Some(waker.clone()),
        }
    }

    /// The next frame, if one is queued.
    #[inline]
    pub(crate) fn try_recv(&mut self) -> Result<Frame, Empty> {
        // A frame queued on another thread after this look wakes the
        // writer, which looks again; one queued on this thread was counted
        // before. Most looks find nothing, and cost only this load.
        if self.state.queued.load(Ordering::Acquire) == 0 {
            return Err(Empty);
        }
        self.take()
    }

    /// The next frame, from a queue that was not empty a moment ago.
    #[inline]
    fn take(&mut self) -> Result<Frame, Empty> {
        let frame = {
            let mut frames = self.state.lock_frames();
            let frame = frames.pop_front().ok_or(Empty)?;
            self.state.queued.store(frames.len(), Ordering::Release);
            frame
        };
        // Only a replay waits for room, and only while the gate is shut
        // (it opens the gate last): the gate was shut before the replay
        // last looked at the queue, under the lock taken above since.
        if self.state.gated.load(Ordering::Acquire) {
            self.state.room.wake();
        }
        Ok(frame)
    }

    /// Whether nothing is queued.
    pub(crate) fn is_empty(&self) -> bool {
        self.state.queued.load(Ordering::Acquire) == 0
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.state.receiver_gone.store(true, Ordering::Release);
        self.state.room.wake();
    }
}

impl OutboxState {
    /// Ask the connection to close with `code`, unless it already is.
    pub(crate) fn close(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.closing.notify_waiters();
            // A WebSocket connection's task waits for its close here.
            self.wake_writer();
        }
    }

    /// Wake the writer: it registers its waker again.
    #[inline]
    fn wake_writer(&self) {
        self.writer_woken.store(true, Ordering::Release);
        self.writer.wake();
    }

    /// The server is shutting down: close with 1001 once the call under
    /// way, if any, is done.
    pub(crate) fn go_away(&self) {
        self.going_away.store(true, Ordering::Release);
        self.wake_writer();
    }

    /// Whether [`go_away`](Self::go_away) was called.
    #[inline]
    pub(crate) fn going_away(&self) -> bool {
        self.going_away.load(Ordering::Acquire)
    }

    /// The close code, once [`close`](Self::close) was called.
    #[inline]
    pub(crate) fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    /// Once the connection is told to close.
    pub(crate) async fn closed(&self) {
        // Registered before the code is read: a close in between wakes it.
        let closing = self.closing.notified();
        if self.code().is_none() {
            closing.await;
        }
    }

    #[inline(always)]
    fn lock_frames(&self) -> std::sync::MutexGuard<'_, Queue> {
        self.frames.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Poll `poll`, the reading side of this outbox's connection, telling
    /// the outbox that the writer is polled right after, in the same poll
    /// of the task: the frames queued meanwhile (a call's replies) go out
    /// without waking the task again.
    pub(crate) fn driving<T>(self: &Arc<Self>, poll: impl FnOnce() -> T) -> T {
        let key = Arc::as_ptr(self) as usize;
        let previous = DRIVING.with(|d| d.replace(key));
        let out = poll();
        DRIVING.with(|d| d.set(previous));
        out
    }

    /// Queue `frame` if there is room for it, or at any rate when `force`
    /// (frames a replay made room for).
    #[inline]
    fn enqueue(self: &Arc<Self>, frame: Frame, force: bool) -> Result<(), SendError> {
        if self.receiver_gone.load(Ordering::Acquire) {
            return Err(SendError::Closed);
        }
        {
            let mut frames = self.lock_frames();
            let len = frames.len();
            if !force && len >= self.capacity {
                drop(frames);
                self.close(CLOSE_SLOW_CLIENT);
                return Err(SendError::SlowClient);
            }
            frames.push_back(frame);
            self.queued.store(len + 1, Ordering::Release);
        }
        if DRIVING.with(Cell::get) != Arc::as_ptr(self) as usize {
            self.wake_writer();
        }
        Ok(())
    }

    /// Once `count` frames fit in the queue; `false` when the writer is
    /// gone.
    async fn room_for(&self, count: usize) -> bool {
        poll_fn(|cx| {
            let fits = || self.lock_frames().len() + count <= self.capacity;
            if self.receiver_gone.load(Ordering::Acquire) {
                return Poll::Ready(false);
            }
            if fits() {
                return Poll::Ready(true);
            }
            self.room.register(cx.waker());
            if self.receiver_gone.load(Ordering::Acquire) {
                Poll::Ready(false)
            } else if fits() {
                Poll::Ready(true)
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

impl Clone for Outbox {
    fn clone(&self) -> Self {
        self.state.senders.fetch_add(1, Ordering::Relaxed);
        Self {
            state: self.state.clone(),
            sequenced: self.sequenced,
        }
    }
}

impl Drop for Outbox {
    fn drop(&mut self) {
        if self.state.senders.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.state.wake_writer();
        }
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, and the queue's
    /// receiving end for the connection's writer.
    pub(crate) fn new(capacity: usize) -> (Self, Receiver) {
        let state = Arc::new(OutboxState {
            capacity: capacity.max(1),
            senders: AtomicUsize::new(1),
            ..OutboxState::default()
        });
        let receiver = Receiver {
            state: state.clone(),
            registered: None,
        };
        let outbox = Self {
            state,
            sequenced: false,
        };
        (outbox, receiver)
    }

    /// Group frames to this outbox carry their sequence numbers.
    pub(crate) fn with_sequences(mut self, sequenced: bool) -> Self {
        self.sequenced = sequenced;
        self
    }

    pub(crate) fn wants_sequences(&self) -> bool {
        self.sequenced
    }

    /// Queue a frame. A full queue means the client is not reading fast
    /// enough: the connection is closed with 1013 rather than buffering
    /// without bound.
    #[inline]
    pub(crate) fn push(&self, frame: Frame) -> Result<(), SendError> {
        self.state.enqueue(frame, false)
    }

    /// Whether frame `seq` of `group`, numbered in `epoch`, is newer than
    /// what this client was queued; if so, it is the newest now. Always true
    /// for a client that does not track sequences.
    fn is_new(&self, group: &Arc<str>, seq: u64, epoch: &Arc<str>) -> bool {
        if !self.sequenced {
            return true;
        }
        let mut newest = self.state.newest.lock().unwrap_or_else(|e| e.into_inner());
        match newest.iter_mut().find(|(g, _, _)| g == group) {
            Some((_, e, s)) if e == epoch => {
                if seq <= *s {
                    return false;
                }
                *s = seq;
            }
            Some((_, e, s)) => {
                // A new numbering: whatever its numbers, it is new.
                *e = epoch.clone();
                *s = seq;
            }
            None => newest.push((group.clone(), epoch.clone(), seq)),
        }
        true
    }

    /// The client was replayed `group` up to `seq` of `epoch`: frames up to
    /// there that arrive live are not queued again.
    pub(crate) fn replayed(&self, group: &str, seq: u64, epoch: &str) {
        let (group, epoch): (Arc<str>, Arc<str>) = (Arc::from(group), Arc::from(epoch));
        let mut newest = self.state.newest.lock().unwrap_or_else(|e| e.into_inner());
        newest.retain(|(g, _, _)| *g != group);
        newest.push((group, epoch, seq));
    }

    /// Queue a frame of `group` (with its sequence and epoch, if numbered),
    /// unless the gate holds group frames back. A numbered frame the client
    /// was already queued is skipped.
    pub(crate) fn push_group(
        &self,
        group: &Arc<str>,
        number: Option<(u64, &Arc<str>)>,
        frame: Frame,
    ) -> Result<(), SendError> {
        if self.state.gated.load(Ordering::Acquire) {
            let mut held = self.state.held.lock().unwrap_or_else(|e| e.into_inner());
            if self.state.gated.load(Ordering::Acquire) {
                if held.len() >= self.held_limit() {
                    // The client is being replayed more than it can take
                    // in while new frames keep coming: it resyncs instead.
                    held.clear();
                    self.state.overflowed.store(true, Ordering::Release);
                }
                if self.state.overflowed.load(Ordering::Acquire) {
                    return Ok(());
                }
                held.push(Held {
                    group: group.clone(),
                    number: number.map(|(seq, epoch)| (seq, epoch.clone())),
                    frame,
                });
                return Ok(());
            }
        }
        match number {
            Some((seq, epoch)) if !self.is_new(group, seq, epoch) => Ok(()),
            _ => self.push(frame),
        }
    }

    /// Hold group frames back from now on.
    pub(crate) fn hold(&self) {
        self.state.gated.store(true, Ordering::Release);
    }

    /// Most group frames held back while a replay is sent.
    fn held_limit(&self) -> usize {
        self.state.capacity.saturating_mul(4)
    }

    /// Send a reconnecting client what it missed (`replayed`, in order),
    /// then the held frames it was not replayed, then stop holding: frames
    /// published meanwhile come after them.
    ///
    /// The frames go out as fast as the client reads them, never more than
    /// the queue holds: this waits for room in the queue, batch after batch,
    /// keeping a quarter of it free for the replies to the client's own
    /// calls. When more live frames arrive meanwhile than may be held, the
    /// client is sent a resync instead of the rest. Returns early when the
    /// connection closes.
    pub(crate) async fn replay(&self, replayed: Vec<Frame>) {
        let closed = self.state.closed();
        tokio::pin!(closed);
        tokio::select! {
            () = &mut closed => {}
            () = self.pump(replayed) => {}
        }
    }

    async fn pump(&self, replayed: Vec<Frame>) {
        let capacity = self.state.capacity;
        let headroom = capacity / 4;
        let batch = (capacity - headroom).max(1);
        let mut pending: std::collections::VecDeque<Frame> = replayed.into();
        loop {
            if self.state.overflowed.load(Ordering::Acquire) {
                if !self.state.room_for(1).await
                    || self
                        .state
                        .enqueue(Frame::from_static(super::join::RESYNC), true)
                        .is_err()
                {
                    return;
                }
                let mut held = self.state.held.lock().unwrap_or_else(|e| e.into_inner());
                held.clear();
                self.state.overflowed.store(false, Ordering::Release);
                self.state.gated.store(false, Ordering::Release);
                return;
            }
            if pending.is_empty() {
                let mut held = self.state.held.lock().unwrap_or_else(|e| e.into_inner());
                if held.is_empty() && !self.state.overflowed.load(Ordering::Acquire) {
                    // Under the lock: a frame arriving now is not held.
                    self.state.gated.store(false, Ordering::Release);
                    return;
                }
                let fresh: Vec<Frame> = held
                    .drain(..)
                    .filter(|held| match &held.number {
                        Some((seq, epoch)) => self.is_new(&held.group, *seq, epoch),
                        None => true,
                    })
                    .map(|held| held.frame)
                    .collect();
                pending.extend(fresh);
                continue;
            }
            let count = pending.len().min(batch);
            if !self.state.room_for((count + headroom).min(capacity)).await {
                return;
            }
            for frame in pending.drain(..count) {
                if self.state.enqueue(frame, true).is_err() {
                    return;
                }
            }
        }
    }

    /// The shared state: the connection's closing signal, among others.
    pub(crate) fn state(&self) -> &Arc<OutboxState> {
        &self.state
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.state.code().is_some() || self.state.receiver_gone.load(Ordering::Acquire)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_queue_ends_when_every_outbox_is_gone() {
        let (outbox, mut rx) = Outbox::new(4);
        let other = outbox.clone();
        outbox.push(Frame::from("a")).unwrap();
        drop(outbox);
        other.push(Frame::from("b")).unwrap();
        drop(other);
        assert_eq!(rx.recv().await, Some(Frame::from("a")));
        assert_eq!(rx.recv().await, Some(Frame::from("b")));
        assert_eq!(rx.recv().await, None);
    }

    #[test]
    fn frames_leave_in_the_order_they_came_however_pushes_and_takes_interleave() {
        let (outbox, mut rx) = Outbox::new(8);
        for frame in ["a", "b", "c"] {
            outbox.push(Frame::from(frame)).unwrap();
        }
        assert_eq!(rx.try_recv(), Ok(Frame::from("a")));
        outbox.push(Frame::from("d")).unwrap();
        assert!(!rx.is_empty());
        let rest: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(rest, ["b", "c", "d"].map(Frame::from));
        assert!(rx.is_empty());
        outbox.push(Frame::from("e")).unwrap();
        assert_eq!(rx.try_recv(), Ok(Frame::from("e")));
        assert_eq!(rx.try_recv(), Err(Empty));
    }

    #[test]
    fn a_full_queue_closes_the_connection_as_slow() {
        let (outbox, _rx) = Outbox::new(2);
        assert!(outbox.push(Frame::from("a")).is_ok());
        assert!(outbox.push(Frame::from("b")).is_ok());
        assert!(matches!(
            outbox.push(Frame::from("c")),
            Err(SendError::SlowClient)
        ));
        assert_eq!(outbox.state().code(), Some(CLOSE_SLOW_CLIENT));
    }

    /// Counts its wake-ups.
    struct Wakes(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Wakes {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_replay_waiting_for_room_is_woken_by_each_frame_taken() {
        let (outbox, mut rx) = Outbox::new(4);
        outbox.hold();
        let wakes = Arc::new(Wakes(AtomicUsize::new(0)));
        let waker = std::task::Waker::from(wakes.clone());
        let mut cx = std::task::Context::from_waker(&waker);
        let frames: Vec<Frame> = (0..6).map(|i| Frame::from(i.to_string())).collect();
        let mut replay = Box::pin(outbox.replay(frames));
        let mut taken = Vec::new();
        while replay.as_mut().poll(&mut cx).is_pending() {
            // The queue is full: the replay waits for room.
            let before = wakes.0.load(Ordering::Relaxed);
            taken.push(rx.try_recv().expect("a frame is queued"));
            assert!(wakes.0.load(Ordering::Relaxed) > before, "woken");
        }
        taken.extend(std::iter::from_fn(|| rx.try_recv().ok()));
        assert_eq!(
            taken,
            (0..6)
                .map(|i| Frame::from(i.to_string()))
                .collect::<Vec<_>>()
        );
    }

    #[tokio::test]
    async fn held_frames_are_released_in_order_minus_those_already_replayed() {
        let (outbox, mut rx) = Outbox::new(8);
        let outbox = outbox.with_sequences(true);
        let group: Arc<str> = Arc::from("room_a");
        let epoch: Arc<str> = Arc::from("e1");
        outbox.hold();
        for seq in [3, 4] {
            outbox
                .push_group(&group, Some((seq, &epoch)), Frame::from(seq.to_string()))
                .unwrap();
        }
        assert!(rx.try_recv().is_err(), "held back");
        outbox.replayed("room_a", 3, "e1");
        outbox.replay(vec![Frame::from("replayed 3")]).await;
        for seq in [4, 5] {
            // 4 again (live after the replay read it): queued once.
            outbox
                .push_group(&group, Some((seq, &epoch)), Frame::from(seq.to_string()))
                .unwrap();
        }
        // A new numbering starts again at 1.
        let restarted: Arc<str> = Arc::from("e2");
        outbox
            .push_group(&group, Some((1, &restarted)), Frame::from("1 of e2"))
            .unwrap();
        let order: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, ["replayed 3", "4", "5", "1 of e2"].map(Frame::from));
    }
}
