//! Every frame the server accepts to send can be sent: one over the
//! outgoing limit is refused where it is made, and disconnects no one.

use liveview::testing::WsClient;
use liveview::{Consumer, Content, LiveView, Update, html, liveview_handler};
use serde_json::json;

use crate::support::{assert_nothing_pending, next, server};

/// Replies to the caller with `n` apostrophes (escaped: six bytes each),
/// then reports how the send went.
#[liveview_handler("outgoing_reply")]
async fn outgoing_reply(consumer: &Consumer, content: Content) -> liveview::Result {
    let n = content.data.i64("n").unwrap_or(0) as usize;
    let html = html!("{}", "'".repeat(n));
    let result = consumer.send(Update::new("#reply").html(html));
    consumer.send(json!({"sent": result.map_err(|e| e.to_string()).err()}))?;
    Ok(())
}

/// A notify-all: broadcasts the message, escaped, to every connection,
/// then reports how the broadcast went.
#[liveview_handler("outgoing_notify_all")]
async fn outgoing_notify_all(consumer: &Consumer, content: Content) -> liveview::Result {
    let message = content.form.str_or("message", "");
    let result = consumer
        .broadcast(Update::new("#alerts").html(html!("{message}")).append())
        .await;
    consumer.send(json!({"broadcast": result.map_err(|e| e.to_string()).err()}))?;
    Ok(())
}

/// Broadcast amplification: one connection within its call rate sending
/// large broadcasts would multiply them by every receiver. With a budget,
/// what it can make the server send is bounded; the refused calls get
/// `Rate limited` (with their `ref` and `done`) and are counted.
#[tokio::test]
async fn a_connection_broadcasting_at_its_call_rate_is_bounded_by_its_broadcast_budget() {
    // A budget of 1 byte a second: one frame of the outgoing limit (8 KiB)
    // at once, and nothing refills within the test.
    let server = server(
        LiveView::builder()
            .max_outgoing_frame_size(8 * 1024)
            .broadcast_budget(Some(1)),
    )
    .await;
    let mut sender = server.connect("budget-a").await.unwrap();
    let mut receiver = server.connect("budget-b").await.unwrap();
    let calls = 10;
    for reference in 1..=calls {
        sender
            .send_json(&json!({
                // Broadcasts its text, and returns a failed broadcast.
                "function": "shout",
                "ref": reference,
                "form": {"text": "x".repeat(5000)},
            }))
            .await
            .unwrap();
    }
    let (mut delivered, mut refused) = (0, 0);
    loop {
        let frame = next(&mut sender).await;
        if frame.get("html").is_some() {
            delivered += 1;
        } else if frame["error"] == "Rate limited" {
            refused += 1;
        } else if frame == json!({"ref": calls, "done": true}) {
            break;
        }
    }
    assert_eq!((delivered, refused), (1, calls - 1));
    assert_eq!(next(&mut receiver).await["html"], "x".repeat(5000));
    assert_nothing_pending(&mut receiver, "one broadcast reached the receiver").await;
    assert_nothing_pending(&mut sender, "the sender stays connected").await;
    let metrics = reqwest_metrics(&server).await;
    for line in [
        format!("liveview_broadcast_budget_exceeded_total {}\n", calls - 1),
        format!(
            "liveview_calls_total{{function=\"shout\",outcome=\"over_budget\"}} {}\n",
            calls - 1
        ),
        "liveview_publishes_total 1\n".to_owned(),
    ] {
        assert!(metrics.contains(&line), "missing {line:?} in\n{metrics}");
    }
}

#[tokio::test]
async fn an_oversized_reply_errors_in_the_handler_and_the_connection_stays_up() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("outgoing-reply").await.unwrap();
    // ~270 KB once escaped: over the default limit of 256 KiB.
    client
        .send_json(&json!({"function": "outgoing_reply", "data": {"n": 45_000}}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"sent": "the frame is larger than the outgoing limit; not sent"})
    );
    assert_nothing_pending(&mut client, "still connected").await;

    // Under the limit, a large reply goes through.
    client
        .send_json(&json!({"function": "outgoing_reply", "data": {"n": 40_000}}))
        .await
        .unwrap();
    let reply = next(&mut client).await;
    assert_eq!(reply["html"].as_str().unwrap().len(), 240_000);
    assert_eq!(next(&mut client).await, json!({"sent": null}));
    let metrics = reqwest_metrics(&server).await;
    assert!(
        metrics.contains("liveview_frames_too_large_total 1\n"),
        "{metrics}"
    );
}

#[tokio::test]
async fn a_poison_broadcast_disconnects_no_one_and_is_never_replayed() {
    let server = server(LiveView::builder()).await;
    let mut caller = server.connect("outgoing-a").await.unwrap();
    let mut others = Vec::new();
    for room in ["outgoing-a", "outgoing-b", "outgoing-c"] {
        let url = format!("{}?resume=", server.ws_url(room));
        others.push(WsClient::connect(&url, &[]).await.unwrap());
    }
    let broadcaster = server.live().broadcaster();
    crate::support::wait_until("everyone joined", || {
        ["outgoing-a", "outgoing-b", "outgoing-c"]
            .iter()
            .map(|room| broadcaster.local_connections(room))
            .sum::<usize>()
            == 4
    })
    .await;
    // 60,000 apostrophes: a valid call under the frame limit, ~390 KB as
    // a broadcast frame.
    caller
        .call(
            "outgoing_notify_all",
            json!({"message": "'".repeat(60_000)}),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut caller).await,
        json!({"broadcast": "the frame is larger than the outgoing limit; sent to no one"})
    );
    assert_nothing_pending(&mut caller, "the caller is connected").await;
    for (i, client) in others.iter_mut().enumerate() {
        assert_nothing_pending(client, &format!("receiver {i} is connected")).await;
    }

    // A normal broadcast after it is the first frame of the group: the
    // poison frame was never numbered nor logged for replay.
    caller
        .call("outgoing_notify_all", json!({"message": "fine"}), json!({}))
        .await
        .unwrap();
    assert_eq!(next(&mut caller).await["html"], "fine");
    assert_eq!(next(&mut caller).await, json!({"broadcast": null}));
    let url = format!("{}?resume=broadcast:0", server.ws_url("outgoing-d"));
    let mut late = WsClient::connect(&url, &[]).await.unwrap();
    let replayed = next(&mut late).await;
    assert_eq!(replayed["html"], "fine", "{replayed}");
    assert_eq!(replayed["seq"], 1, "{replayed}");
}

async fn reqwest_metrics(server: &liveview::testing::TestServer) -> String {
    crate::support::http_get(server.addr(), "/metrics", &[])
        .await
        .2
}
