//! The NATS layer against the shared server (`127.0.0.1:4222`), each test
//! with a prefix of its own.

use std::time::Duration;

use liveview::layer::{ChannelLayer, NatsLayer};
use liveview::testing::NatsServer;
use liveview::{LiveView, Update};

use crate::support::{Gate, next, server, wait_until};

const SHARED: &str = "127.0.0.1:4222";

fn layer(address: &str, prefix: &str) -> NatsLayer {
    NatsLayer::builder(format!("nats://{address}"))
        .prefix(prefix)
        .build()
        .unwrap()
}

/// A group joined before the layer could reach the server is waited for:
/// `subscribed` answers only once the server has the subscription, and
/// what another process sends to the group then reaches this one.
#[tokio::test]
async fn a_group_joined_before_the_first_connection_is_waited_for() {
    let prefix = format!("lvtest_{}", uuid::Uuid::new_v4().simple());
    let gate = Gate::start(SHARED).await;
    let held = layer(&gate.addr().to_string(), &prefix);
    let holder = server(LiveView::builder().channel_layer(held.clone())).await;
    let mut client = holder.connect("early").await.unwrap();
    wait_until("the layer is at the gate", || gate.held() >= 1).await;
    assert!(!held.is_connected());

    crate::support::assert_subscribed_waits_for_the_gate(&held, &gate, "room_early").await;

    let sender = layer(SHARED, &prefix);
    let other = server(LiveView::builder().channel_layer(sender.clone())).await;
    wait_until("the other layer is connected", || sender.is_connected()).await;
    other
        .live()
        .broadcaster()
        .send_to_room("early", Update::new("#log").html("from the other"))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await["html"], "from the other");
}

/// A client resuming before the layer's first connection is made gets what
/// it missed once the connection is made, not a resync at once.
#[tokio::test]
async fn a_replay_asked_before_the_first_connection_is_answered_once_connected() {
    let prefix = format!("lvtest_{}", uuid::Uuid::new_v4().simple());
    let sender = layer(SHARED, &prefix);
    let other = server(LiveView::builder().channel_layer(sender.clone())).await;
    wait_until("the other layer is connected", || sender.is_connected()).await;
    for text in ["1", "2"] {
        other
            .live()
            .broadcaster()
            .send_to_room("early_replay", Update::new("#log").html(text))
            .await
            .unwrap();
    }

    let gate = Gate::start(SHARED).await;
    let held = layer(&gate.addr().to_string(), &prefix);
    let holder = server(LiveView::builder().channel_layer(held.clone())).await;
    // A member in this process, so that the group is subscribed.
    let _member = holder.connect("early_replay").await.unwrap();
    wait_until("the layer is at the gate", || gate.held() >= 1).await;
    crate::support::assert_replay_waits_for_the_gate(&held, &gate, "room_early_replay", &[1, 2])
        .await;
}

/// While the server is away nothing is subscribed: `subscribed` answers
/// `false` at once instead of waiting; once the server is back and the
/// client subscribed again, it answers `true`.
#[tokio::test]
async fn during_an_outage_a_group_is_not_subscribed() {
    let mut nats = NatsServer::start().await.expect("nats-server starts");
    let layer = NatsLayer::builder(nats.url())
        .prefix("lvtest")
        .build()
        .unwrap();
    let holder = server(LiveView::builder().channel_layer(layer.clone())).await;
    let _client = holder.connect("outage").await.unwrap();
    assert!(layer.subscribed("room_outage").await, "subscribed at first");

    nats.kill();
    wait_until("the layer saw the outage", || !layer.is_connected()).await;
    assert_eq!(
        futures_util::FutureExt::now_or_never(layer.subscribed("room_outage")),
        Some(false),
        "a group counted as subscribed, or waited for, while the server is away"
    );

    nats.restart().await.expect("nats-server restarts");
    wait_until("the layer reconnected", || layer.is_connected()).await;
    assert!(
        layer.subscribed("room_outage").await,
        "subscribed again once the server is back"
    );
}

/// The private server counts the subscriptions of a group's subject: one
/// while a process has a member of the group, none once it left.
#[tokio::test]
async fn the_private_server_counts_a_subjects_subscriptions() {
    let nats = NatsServer::start().await.expect("nats-server starts");
    let subject = "lvcount.fan.room_counted";
    assert_eq!(nats.subscriptions(subject).await.unwrap(), 0);
    let layer = layer(&format!("127.0.0.1:{}", nats.port()), "lvcount");
    let holder = server(LiveView::builder().channel_layer(layer.clone())).await;
    let client = holder.connect("counted").await.unwrap();
    assert!(layer.subscribed("room_counted").await, "subscribed");
    assert_eq!(nats.subscriptions(subject).await.unwrap(), 1);
    assert_eq!(
        nats.subscriptions("lvcount.fan.room_other").await.unwrap(),
        0
    );
    client.close().await;
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
    while nats.subscriptions(subject).await.unwrap() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the subscription stayed after the member left"
        );
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(
        nats.subscriptions("lvcount.fan.*").await.is_err(),
        "a subject with wildcards is refused"
    );
    holder.shutdown().await;
}

/// A client that resumes on a process whose last member of the group just
/// left, while the process is about to unsubscribe from it, misses no
/// frame published between that unsubscribe and the next subscription
/// (see the helper). A private server: the test counts the subscriptions
/// of the group's subject on it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_resuming_while_its_group_is_unsubscribed_misses_nothing() {
    let nats = NatsServer::start().await.expect("nats-server starts");
    let prefix = "lvleaving";
    let address = format!("127.0.0.1:{}", nats.port());
    let (layer_a, layer_b) = (layer(&address, prefix), layer(&address, prefix));
    let a = server(LiveView::builder().channel_layer(layer_a.clone())).await;
    let b = server(LiveView::builder().channel_layer(layer_b.clone())).await;
    let subject = &format!("{prefix}.fan.room_leaving");
    let nats = &nats;
    crate::support::assert_a_client_resuming_while_its_group_is_unsubscribed_misses_nothing(
        &layer_a,
        &a,
        &b,
        "leaving",
        move || async move {
            let held = nats
                .subscriptions(subject)
                .await
                .expect("nats-server answers");
            u64::try_from(held).unwrap_or(u64::MAX)
        },
    )
    .await;
    a.shutdown().await;
    b.shutdown().await;
}

/// A process's members that another process found without a heartbeat
/// (its first one on its way) are not erased once they have been written
/// again with that heartbeat: the removal is of the revision it read.
/// Without that, the removal landing after the rewrite left the process's
/// members uncounted for as long as its membership did not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn members_written_again_with_a_first_heartbeat_are_not_removed() {
    let prefix = format!("lvtest_{}", uuid::Uuid::new_v4().simple());
    let with_presence = |layer: &NatsLayer| {
        LiveView::builder()
            .channel_layer(layer.clone())
            .authenticator(|scope: &liveview::Scope| {
                scope
                    .header("x-user")
                    .map(|name| liveview::User::new(name, name))
            })
            .on_presence(|_| None)
    };
    let layer_a = layer(SHARED, &prefix);
    let layer_b = layer(SHARED, &prefix);
    let a = server(with_presence(&layer_a)).await;
    let b = server(with_presence(&layer_b)).await;
    let count = async |node: &liveview::testing::TestServer| {
        node.live().broadcaster().presence("hall").await.count
    };
    let counts_within = async |node: &liveview::testing::TestServer, n: usize, what: &str| {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while count(node).await != n {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };

    // A's member is written while A's first heartbeat is held.
    layer_a.hold_heartbeats(true);
    let _ada = a
        .connect_with("hall", &[("x-user", "Ada")])
        .await
        .expect("connects");
    counts_within(&a, 1, "A never counted its member").await;
    wait_until("A's first heartbeat waits", || {
        layer_a.waiting_heartbeats() == 1
    })
    .await;

    // B finds A's member without a heartbeat, and is held before it
    // removes it.
    layer_b.hold_presence_cleanups(true);
    let reading = tokio::spawn({
        let broadcaster = b.live().broadcaster();
        async move { broadcaster.presence("hall").await.count }
    });
    wait_until("B is about to remove A's member", || {
        layer_b.waiting_presence_cleanups() == 1
    })
    .await;

    // A's first heartbeat is written, and its member with it; the next
    // heartbeat waiting shows the first one done.
    layer_a.hold_heartbeats(false);
    wait_until("A's first heartbeat goes", || {
        layer_a.waiting_heartbeats() == 0
    })
    .await;
    layer_a.hold_heartbeats(true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while layer_a.waiting_heartbeats() == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "A's next heartbeat never came"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    // B's removal, decided before the rewrite, comes after it.
    layer_b.hold_presence_cleanups(false);
    assert_eq!(reading.await.expect("the read ends"), 0);
    counts_within(&b, 1, "B never counted A's member again").await;
    counts_within(&a, 1, "A lost its member").await;
    layer_a.hold_heartbeats(false);
    a.shutdown().await;
    b.shutdown().await;
}

/// A frame published once a group counts as subscribed reaches the
/// group's members here, even when it is in the log before this process
/// reads the log's tail to start the group's delivery and reaches this
/// process only after that read. The new subscription is held between the
/// server having it and that read, and the frames received are held until
/// the delivery has started; the frame is published as soon as the group
/// counts as subscribed (while the subscription is held, if it counts as
/// subscribed then).
///
/// A connection joins its room's group and the `broadcast` group, and the
/// hold stops every new subscription: a first connection, in another room,
/// has the `broadcast` group subscribed and delivered beforehand, so that
/// the one subscription held is the room's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frame_published_once_a_group_counts_as_subscribed_is_delivered() {
    let prefix = format!("lvtest_{}", uuid::Uuid::new_v4().simple());
    let layer_a = layer(SHARED, &prefix);
    let layer_b = layer(SHARED, &prefix);
    let a = server(LiveView::builder().channel_layer(layer_a.clone())).await;
    let b = server(LiveView::builder().channel_layer(layer_b.clone())).await;
    wait_until("B's layer is connected", || layer_b.is_connected()).await;
    let publish = async || {
        b.live()
            .broadcaster()
            .send_to_room("held", Update::new("#log").html("one"))
            .await
            .expect("published");
    };

    let _elsewhere = a.connect("elsewhere").await.expect("connects");
    for group in ["broadcast", "room_elsewhere"] {
        assert!(
            layer_a.subscribed(group).await,
            "A never subscribed {group}"
        );
        wait_until(
            "A's delivery of the first connection's groups started",
            || layer_a.delivery_started(group),
        )
        .await;
    }

    layer_a.hold_catch_ups(true);
    layer_a.hold_incoming_frames(true);
    let mut client = a.connect("held").await.expect("connects");
    wait_until("A's subscription waits to start its delivery", || {
        layer_a.waiting_catch_ups() == 1
    })
    .await;
    let early = layer_a.subscribed_now("room_held");
    if early {
        publish().await;
    }
    layer_a.hold_catch_ups(false);
    wait_until("A's delivery started", || {
        layer_a.delivery_started("room_held")
    })
    .await;
    if !early {
        assert!(layer_a.subscribed("room_held").await, "A never subscribed");
        publish().await;
    }
    wait_until("the frame reached A", || {
        layer_a.waiting_incoming_frames() == 1
    })
    .await;
    layer_a.hold_incoming_frames(false);
    assert_eq!(next(&mut client).await["html"], "one");
    a.shutdown().await;
    b.shutdown().await;
}
