//! Who is watching: the app's presence callback.
//!
//! The library tracks who is in each room, on every process, and calls
//! [`update`] whenever someone joins or leaves one; the update it returns
//! goes to that room. The alerts page and every snake game have a
//! `#viewers` element for it ("3 watching · Ada, Grace"); other pages'
//! rooms get nothing.

use liveview::{Presence, Update};
use minijinja::context;

use super::{alerts, snake};
use crate::Demo;

/// How many names `#viewers` shows; the other signed-in viewers are
/// counted.
pub const MAX_NAMES: usize = 3;

/// Whether pages of `room` show who is watching.
pub fn shows_viewers(room: &str) -> bool {
    room == alerts::ROOM || room.starts_with(snake::ROOM_PREFIX)
}

/// The update for `#viewers` in the room of `presence`, if its pages have
/// one.
pub fn update(demo: &Demo, presence: &Presence) -> Option<Update> {
    if !shows_viewers(&presence.room) {
        return None;
    }
    match render(demo, presence) {
        Ok(html) => Some(Update::new("#viewers").html(html)),
        Err(err) => {
            tracing::error!(room = %presence.room, error = %err, "rendering the viewers failed");
            None
        }
    }
}

/// The content of `#viewers`: how many connections watch, and the names
/// of the signed-in viewers (the first [`MAX_NAMES`], by name).
pub fn render(demo: &Demo, presence: &Presence) -> Result<String, minijinja::Error> {
    let names: Vec<String> = presence
        .users
        .iter()
        .take(MAX_NAMES)
        .map(|user| user.name.clone())
        .collect();
    let more = presence.users.len().saturating_sub(MAX_NAMES);
    demo.templates().render(
        "viewers.html",
        context! { count => presence.count, names, more },
    )
}
