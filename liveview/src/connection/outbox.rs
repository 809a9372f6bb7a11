//! The sending side of a connection: its bounded queue of frames, the
//! signal that closes it, and the gate that holds group frames back while
//! a reconnecting client is replayed what it missed.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};

use tokio::sync::mpsc::{self, error::TrySendError};
use tokio_util::sync::CancellationToken;

use crate::error::SendError;
use crate::layer::Frame;

/// Close code for a client that could not keep up with its frames.
pub(crate) const CLOSE_SLOW_CLIENT: u16 = 1013;

/// The sending side of one connection: a bounded queue of frames for its
/// writer, and the signal that tells the connection to close.
#[derive(Clone, Debug)]
pub(crate) struct Outbox {
    tx: mpsc::Sender<Frame>,
    closer: Arc<Closer>,
    /// Whether the client tracks group sequences (it asked to, by
    /// connecting with a `resume` parameter): only then do group frames
    /// carry `seq` and `group`.
    sequenced: bool,
}

/// Why and whether a connection is closing (the first reason wins), and
/// the gate that holds group frames back while a reconnecting client is
/// being replayed what it missed.
#[derive(Debug, Default)]
pub(crate) struct Closer {
    code: AtomicU16,
    token: CancellationToken,
    gated: AtomicBool,
    held: Mutex<Vec<Held>>,
}

/// A group frame held back by the gate.
#[derive(Debug)]
pub(crate) struct Held {
    pub group: Arc<str>,
    pub seq: Option<u64>,
    pub frame: Frame,
}

impl Closer {
    /// Ask the connection to close with `code`, unless it already is.
    pub(crate) fn close(&self, code: u16) {
        if self
            .code
            .compare_exchange(0, code, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
        {
            self.token.cancel();
        }
    }

    /// The close code, once [`close`](Self::close) was called.
    pub(crate) fn code(&self) -> Option<u16> {
        match self.code.load(Ordering::Acquire) {
            0 => None,
            code => Some(code),
        }
    }

    pub(crate) async fn closed(&self) {
        self.token.cancelled().await
    }
}

impl Outbox {
    /// A new outbox holding at most `capacity` frames, and the queue's
    /// receiving end for the connection's writer.
    pub(crate) fn new(capacity: usize) -> (Self, mpsc::Receiver<Frame>) {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let outbox = Self {
            tx,
            closer: Arc::new(Closer::default()),
            sequenced: false,
        };
        (outbox, rx)
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
    pub(crate) fn push(&self, frame: Frame) -> Result<(), SendError> {
        match self.tx.try_send(frame) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.closer.close(CLOSE_SLOW_CLIENT);
                Err(SendError::SlowClient)
            }
            Err(TrySendError::Closed(_)) => Err(SendError::Closed),
        }
    }

    /// Queue a frame of `group` (with its sequence, if any), unless the
    /// gate holds group frames back.
    pub(crate) fn push_group(
        &self,
        group: &Arc<str>,
        seq: Option<u64>,
        frame: Frame,
    ) -> Result<(), SendError> {
        if self.closer.gated.load(Ordering::Acquire) {
            let mut held = self.closer.held.lock().unwrap_or_else(|e| e.into_inner());
            if self.closer.gated.load(Ordering::Acquire) {
                if held.len() >= self.tx.max_capacity() {
                    self.closer.close(CLOSE_SLOW_CLIENT);
                    return Err(SendError::SlowClient);
                }
                held.push(Held {
                    group: group.clone(),
                    seq,
                    frame,
                });
                return Ok(());
            }
        }
        self.push(frame)
    }

    /// Hold group frames back from now on.
    pub(crate) fn hold(&self) {
        self.closer.gated.store(true, Ordering::Release);
    }

    /// Queue the held frames that `keep` accepts, in arrival order, and
    /// stop holding: frames published meanwhile come after them.
    pub(crate) fn release(&self, keep: impl Fn(&Held) -> bool) {
        let mut held = self.closer.held.lock().unwrap_or_else(|e| e.into_inner());
        for item in held.drain(..) {
            if keep(&item) {
                let _ = self.push(item.frame);
            }
        }
        self.closer.gated.store(false, Ordering::Release);
    }

    pub(crate) fn closer(&self) -> &Arc<Closer> {
        &self.closer
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.closer.code().is_some() || self.tx.is_closed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_queue_closes_the_connection_as_slow() {
        let (outbox, _rx) = Outbox::new(2);
        assert!(outbox.push(Frame::from("a")).is_ok());
        assert!(outbox.push(Frame::from("b")).is_ok());
        assert!(matches!(
            outbox.push(Frame::from("c")),
            Err(SendError::SlowClient)
        ));
        assert_eq!(outbox.closer().code(), Some(CLOSE_SLOW_CLIENT));
    }

    #[test]
    fn held_frames_are_released_in_order_minus_those_already_replayed() {
        let (outbox, mut rx) = Outbox::new(8);
        let group: Arc<str> = Arc::from("room_a");
        outbox.hold();
        outbox
            .push_group(&group, Some(3), Frame::from("3"))
            .unwrap();
        outbox
            .push_group(&group, Some(4), Frame::from("4"))
            .unwrap();
        assert!(rx.try_recv().is_err(), "held back");
        outbox.push(Frame::from("replayed 3")).unwrap();
        outbox.release(|held| held.seq.is_some_and(|s| s > 3));
        outbox
            .push_group(&group, Some(5), Frame::from("5"))
            .unwrap();
        let order: Vec<_> = std::iter::from_fn(|| rx.try_recv().ok()).collect();
        assert_eq!(order, ["replayed 3", "4", "5"].map(Frame::from));
    }
}
