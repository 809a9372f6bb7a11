//! Which groups a layer's server has confirmed the subscription of, for
//! [`ChannelLayer::subscribed`](super::ChannelLayer::subscribed) and for a
//! log read that must not miss what follows it.

use std::collections::HashSet;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use tokio::sync::Notify;

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
