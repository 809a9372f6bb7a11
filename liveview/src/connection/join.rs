//! A connection joining its groups, with the replay of what it missed when
//! it comes back after a disconnect, and leaving them.

use std::sync::Arc;

use super::outbox::{Outbox, Receiver};
use crate::app::Shared;
use crate::broadcast::Broadcaster;
use crate::consumer::Connection;
use crate::hub::log::sequenced;
use crate::hub::presence::{Change, OnPresence, PresenceQueue};
use crate::layer::{BROADCAST_GROUP, Frame, Missed, Replay, Resume, room_group};
use crate::scope::Scope;

/// The frame that tells a client its missed frames are gone: reload the
/// live parts of the page.
pub(crate) const RESYNC: &str = r#"{"resync":true}"#;

/// Open a connection in `room`: join `room_<room>` and `broadcast`, and,
/// for a client resuming after a disconnect, queue what it missed in each
/// group, in order, before any frame published since. A client that sent a
/// `resume` parameter (even an empty one) gets group frames numbered.
pub(crate) async fn open(
    shared: &Shared,
    room: &str,
    scope: Scope,
    resume: Option<Resume>,
) -> (Arc<Connection>, Receiver) {
    let id = shared.next_id();
    let replay_on = shared.hub.logs().is_some();
    // A `resume` parameter, even empty, says the client tracks sequences.
    let (outbox, rx) = Outbox::new(shared.config.queue);
    let outbox = outbox.with_sequences(replay_on && resume.is_some());
    let conn = Connection::new(
        id,
        room,
        scope,
        outbox.clone(),
        shared.broadcaster.for_connection(
            shared.config.broadcast_budget,
            shared.config.max_outgoing_frame,
        ),
        shared.state.clone(),
    );
    let groups = [room_group(room), BROADCAST_GROUP.to_owned()];
    let resume = resume.filter(|r| !r.is_empty() && replay_on);
    if resume.is_some() {
        // Frames published while the log is read wait behind the gate.
        outbox.hold();
    }
    for group in &groups {
        shared.hub.join(group, id, outbox.clone());
    }
    // A shutdown that began before the join did not find this connection
    // in the broadcast group; one that begins after it does.
    if shared.shutdown.is_cancelled() {
        outbox.state().go_away();
    }
    if let Some(resume) = resume {
        replay(shared, &outbox, &groups, &resume).await;
    }
    let user = conn.scope.user().cloned();
    shared.hub.presence.join(room, id, user.clone());
    if shared.presence.tracked {
        // Written through the layer and announced by the presence task,
        // off the connection's path.
        shared.presence_queue.push(room, Change::Join(id, user));
    }
    (conn, rx)
}

/// Leave every group of the connection, and the room's presence.
pub(crate) fn close(shared: &Shared, conn: &Connection) {
    // Its user first: a room's anonymous connections are counted as its
    // members without a user (see `LocalPresence`).
    shared.hub.presence.leave(&conn.room, conn.id);
    shared.hub.leave(&room_group(&conn.room), conn.id);
    shared.hub.leave(BROADCAST_GROUP, conn.id);
    if shared.presence.tracked && !shared.shutdown.is_cancelled() {
        shared
            .presence_queue
            .push(&conn.room, Change::Leave(conn.id));
    }
}

/// Writes the queued presence changes through the layer and tells each
/// changed room once per pass, until `stop`.
pub(crate) async fn run_presence(
    queue: Arc<PresenceQueue>,
    layer: Arc<dyn crate::layer::ChannelLayer>,
    broadcaster: Broadcaster,
    on_change: Option<OnPresence>,
    stop: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = queue.wake.notified() => {}
        }
        while queue.is_held() {
            let changed = queue.held_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if !queue.is_held() {
                break;
            }
            tokio::select! {
                () = stop.cancelled() => return,
                () = changed => {}
            }
        }
        for (room, changes) in queue.take() {
            for change in changes {
                let written = match &change {
                    Change::Join(id, user) => layer.presence_join(&room, *id, user.as_ref()).await,
                    Change::Leave(id) => layer.presence_leave(&room, *id).await,
                };
                if let Err(err) = written {
                    tracing::warn!(target: "liveview", room, error = %err, "presence not shared");
                }
            }
            announce(on_change.as_ref(), &broadcaster, &room).await;
        }
    }
}

/// Send the room the app's presence update, if it wants one.
async fn announce(on_change: Option<&OnPresence>, broadcaster: &Broadcaster, room: &str) {
    let Some(on_change) = on_change else {
        return;
    };
    let presence = broadcaster.presence(room).await;
    if let Some(update) = on_change(&presence) {
        let _ = broadcaster.send_to_room(room, update).await;
    }
}

async fn replay(shared: &Shared, outbox: &Outbox, groups: &[String], resume: &Resume) {
    // Everything read before any of it is sent: the client's queue is
    // filled as fast as the client reads it (see `Outbox::replay`), by a task
    // of its own, so that the connection's writer starts meanwhile.
    let mut resync = false;
    let mut frames = Vec::new();
    for group in groups {
        let Some(after) = resume.last(group) else {
            continue;
        };
        let epoch = resume.epoch(group);
        let answer = match shared.hub.layer().replay(group, after, epoch).await {
            Ok(Some(answer)) => Some(answer),
            Ok(None) => shared
                .hub
                .logs()
                .map(|logs| logs.replay(group, after, epoch)),
            Err(err) => {
                tracing::warn!(target: "liveview", group, error = %err, "replay unavailable");
                None
            }
        };
        match answer {
            Some(Missed {
                epoch,
                replay: Replay::Frames(missed),
            }) => {
                let newest = missed.last().map_or(after, |(seq, _)| *seq);
                // Frames up to there that also arrive live are dropped, so
                // nothing is sent twice.
                outbox.replayed(group, newest, &epoch);
                frames.extend(
                    missed
                        .into_iter()
                        .map(|(seq, frame)| sequenced(&frame, group, seq, &epoch)),
                );
            }
            Some(Missed {
                replay: Replay::Gap,
                ..
            })
            | None => resync = true,
        }
    }
    if resync {
        frames.insert(0, Frame::from_static(RESYNC));
    }
    let outbox = outbox.clone();
    let mut sending = Box::pin(async move { outbox.replay(frames).await });
    // Usually it all fits in the queue at once; the rest waits for the
    // connection's writer to make room, in a task of its own.
    if futures_util::FutureExt::now_or_never(&mut sending).is_none() {
        shared.tracker.spawn(sending);
    }
}
