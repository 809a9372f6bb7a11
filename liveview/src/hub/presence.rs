//! Presence: who is in a room, across every server process, and an update
//! to the room whenever someone joins or leaves.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use serde::Serialize;

use crate::scope::User;
use crate::update::Update;

/// Who is in a room: how many connections, and the distinct signed-in
/// users among them (as the authenticator gave them).
///
/// ```
/// use liveview::{Presence, User};
///
/// let presence = Presence::new("lobby", vec![Some(User::new("1", "Ada")), None, Some(User::new("1", "Ada"))]);
/// assert_eq!(presence.count, 3);
/// assert_eq!(presence.users.len(), 1);
/// assert_eq!(presence.anonymous, 1);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[non_exhaustive]
pub struct Presence {
    /// The room.
    pub room: String,
    /// Open connections in the room (a user with two tabs counts twice).
    pub count: usize,
    /// Connections without a user.
    pub anonymous: usize,
    /// The distinct users, by id, in a stable order.
    pub users: Vec<User>,
}

impl Presence {
    /// Presence from one entry per connection.
    pub fn new(room: impl Into<String>, members: Vec<Option<User>>) -> Self {
        let count = members.len();
        let mut users: Vec<User> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let mut anonymous = 0;
        for member in members {
            match member {
                Some(user) => {
                    if seen.insert(user.id.clone()) {
                        users.push(user);
                    }
                }
                None => anonymous += 1,
            }
        }
        users.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
        Self {
            room: room.into(),
            count,
            anonymous,
            users,
        }
    }
}

/// What the app sends a room when its presence changes.
pub(crate) type OnPresence = Arc<dyn Fn(&Presence) -> Option<Update> + Send + Sync>;

/// The signed-in users of each room in this process, by connection. A
/// room's anonymous connections are not listed: they are its members in
/// the hub's room group that have no user here, so a room of anonymous
/// connections takes no table at all.
#[derive(Debug, Default)]
pub(crate) struct LocalPresence {
    rooms: Mutex<HashMap<Box<str>, Users>>,
}

/// A room's connections that have a user, and their users.
type Users = HashMap<u64, Box<User>>;

impl LocalPresence {
    pub(crate) fn join(&self, room: &str, id: u64, user: Option<User>) {
        let Some(user) = user else { return };
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        match rooms.get_mut(room) {
            Some(users) => {
                users.insert(id, Box::new(user));
            }
            None => {
                rooms.insert(room.into(), HashMap::from([(id, Box::new(user))]));
            }
        }
    }

    pub(crate) fn leave(&self, room: &str, id: u64) {
        let mut rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(users) = rooms.get_mut(room) {
            users.remove(&id);
            if users.is_empty() {
                rooms.remove(room);
            }
        }
    }

    /// One entry per connection of `room`, of its `count` connections
    /// here: their users, then `None` for the others.
    pub(crate) fn members(&self, room: &str, count: usize) -> Vec<Option<User>> {
        let rooms = self.rooms.lock().unwrap_or_else(|e| e.into_inner());
        let mut members: Vec<Option<User>> = rooms
            .get(room)
            .map(|users| users.values().map(|user| Some((**user).clone())).collect())
            .unwrap_or_default();
        // A connection is in the room group whenever its user is listed
        // (it joins the group first and leaves it last); the two are read
        // one after the other, so the difference is bounded at zero.
        let anonymous = count.saturating_sub(members.len());
        members.extend(std::iter::repeat_n(None, anonymous));
        members
    }
}

/// A change of a room's presence, waiting to be written through the layer.
#[derive(Debug)]
pub(crate) enum Change {
    Join(u64, Option<User>),
    Leave(u64),
}

/// Presence changes not yet written through the layer nor announced, per
/// room: joins and leaves only queue here, and one task writes them and
/// tells each changed room once per pass, however many came meanwhile.
#[derive(Debug, Default)]
pub(crate) struct PresenceQueue {
    pending: Mutex<HashMap<String, Vec<Change>>>,
    pub(crate) wake: tokio::sync::Notify,
    /// Test hook: while set, nothing is written nor announced.
    held: std::sync::atomic::AtomicBool,
    pub(crate) held_changed: tokio::sync::Notify,
}

impl PresenceQueue {
    pub(crate) fn push(&self, room: &str, change: Change) {
        let mut pending = self.pending.lock().unwrap_or_else(|e| e.into_inner());
        match pending.get_mut(room) {
            Some(changes) => changes.push(change),
            None => {
                pending.insert(room.to_owned(), vec![change]);
            }
        }
        drop(pending);
        self.wake.notify_one();
    }

    /// Everything queued so far, per room.
    pub(crate) fn take(&self) -> HashMap<String, Vec<Change>> {
        std::mem::take(&mut *self.pending.lock().unwrap_or_else(|e| e.into_inner()))
    }

    pub(crate) fn hold(&self, held: bool) {
        self.held.store(held, std::sync::atomic::Ordering::Release);
        self.held_changed.notify_waiters();
        if !held {
            self.wake.notify_one();
        }
    }

    pub(crate) fn is_held(&self) -> bool {
        self.held.load(std::sync::atomic::Ordering::Acquire)
    }
}
