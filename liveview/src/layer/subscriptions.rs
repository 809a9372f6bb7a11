//! Which groups a layer's server has confirmed the subscription of, for
//! [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed) and for a
//! log read that must not miss what follows it
//! ([`Subscriptions::before_log_read`]).

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

use super::LayerError;

/// Longest wait for the server to confirm a group's subscription: in
/// [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed), and
/// before a log read.
const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

/// Whether a layer's server is away: the layer is not `connected` and its
/// first attempt to connect is over. Before that attempt ends the layer is
/// on its way, and a group joined meanwhile is subscribed as it connects:
/// worth the wait.
pub(super) fn is_away(connected: &AtomicBool, first_attempt_over: &AtomicBool) -> bool {
    !connected.load(Ordering::Acquire) && first_attempt_over.load(Ordering::Acquire)
}

/// The groups whose subscription the server confirmed: what other
/// processes publish to them reaches this one.
#[derive(Default)]
pub(super) struct Subscriptions {
    confirmed: Mutex<HashSet<String>>,
    changed: Notify,
    /// Callers waiting now for a subscription that is not confirmed yet.
    waiting: AtomicUsize,
}

/// One caller counted in [`Subscriptions::waiting`] while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(count: &'a AtomicUsize) -> Self {
        count.fetch_add(1, Ordering::AcqRel);
        Self(count)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Subscriptions {
    fn confirmed(&self) -> MutexGuard<'_, HashSet<String>> {
        self.confirmed
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The server confirmed these groups: their messages reach this
    /// process from now on.
    pub(super) fn confirm<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        self.confirmed().extend(groups.into_iter().cloned());
        self.changed.notify_waiters();
    }

    /// These groups are about to be unsubscribed, or the server dropped
    /// their subscription.
    pub(super) fn withdraw<'a>(&self, groups: impl IntoIterator<Item = &'a String>) {
        let mut confirmed = self.confirmed();
        for group in groups {
            confirmed.remove(group);
        }
    }

    /// The connection that held the subscriptions was lost: nothing is
    /// subscribed.
    pub(super) fn reset(&self) {
        self.confirmed().clear();
        self.changed.notify_waiters();
    }

    /// How many callers wait now for a subscription that is not confirmed
    /// yet (for tests: a log read held back until its group is subscribed).
    #[cfg_attr(not(feature = "redis-cluster"), allow(dead_code))]
    pub(super) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Acquire)
    }

    /// Whether `group` is subscribed now.
    pub(super) fn is_confirmed(&self, group: &str) -> bool {
        self.confirmed().contains(group)
    }

    /// [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed): wait
    /// until `group` is subscribed, for at most [`SUBSCRIBE_WAIT`]; `false`
    /// at once while the server is `away`, when nothing is subscribed.
    pub(super) async fn subscribed(&self, away: bool, group: &str) -> bool {
        !away && self.wait_subscribed(group, SUBSCRIBE_WAIT).await
    }

    /// Before `group`'s log is read for a client that resumes: wait until
    /// the group is subscribed here, for at most [`SUBSCRIBE_WAIT`], so
    /// that every frame numbered after the read reaches this process live
    /// (frames both read and received are queued once, by the outbox). A
    /// group that gained its first member a moment ago may not be yet: a
    /// frame published between the read and its subscription would be
    /// neither read nor received. An error at once while the server is
    /// `away`, and when the subscription does not come in time; `layer`
    /// names the layer in it. A client that resumes in the process's first
    /// moments, before the layer's first connection is made, is answered
    /// once it is (the server is not away yet).
    pub(super) async fn before_log_read(
        &self,
        layer: &str,
        away: bool,
        group: &str,
    ) -> Result<(), LayerError> {
        if away {
            return Err(LayerError::new(format!(
                "{layer}: not connected; the log cannot be read"
            )));
        }
        if !self.wait_subscribed(group, SUBSCRIBE_WAIT).await {
            return Err(LayerError::new(format!(
                "{layer}: {group} was not subscribed in time"
            )));
        }
        Ok(())
    }

    /// Wait until `group` is subscribed, for at most `limit`.
    async fn wait_subscribed(&self, group: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        let mut waiting = None;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.confirmed().contains(group) {
                return true;
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.waiting));
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}
