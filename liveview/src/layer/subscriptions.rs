//! Which groups a layer's server has confirmed the subscription of, for
//! [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed) and for a
//! log read that must not miss what follows it.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

/// Longest wait for the server to confirm a group's subscription: in
/// [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed), and
/// before a log read.
pub(super) const SUBSCRIBE_WAIT: Duration = Duration::from_secs(2);

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

    /// Wait until `group` is subscribed, for at most `limit`.
    pub(super) async fn wait_subscribed(&self, group: &str, limit: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + limit;
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if self.confirmed().contains(group) {
                return true;
            }
            if tokio::time::timeout_at(deadline, changed).await.is_err() {
                return false;
            }
        }
    }
}
