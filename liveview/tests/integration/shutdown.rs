//! Graceful shutdown: running handlers finish, sockets close with 1001.

use liveview::LiveView;
use liveview::testing::Closed;
use serde_json::json;

use crate::support::{next, server, wait_until};

#[tokio::test]
async fn shutdown_lets_running_handlers_finish_then_closes_with_1001() {
    let server = server(LiveView::builder()).await;
    let mut busy = server.connect("shutdown").await.unwrap();
    let mut idle = server.connect("shutdown").await.unwrap();
    let live = server.live().clone();
    wait_until("both connected", || live.connections() == 2).await;

    busy.send_json(
        &json!({"function": "sleep_then_reply", "data": {"ms": "300", "label": "finished"}}),
    )
    .await
    .unwrap();
    // Let the call start before the signal.
    wait_until("the call is running", || {
        live.broadcaster().local_members("broadcast") == 2
    })
    .await;
    tokio::task::yield_now().await;
    let stopping = tokio::spawn(server.shutdown());

    assert_eq!(idle.closed().await, Closed::Code(1001));
    assert_eq!(next(&mut busy).await["html"], "finished");
    assert_eq!(busy.closed().await, Closed::Code(1001));
    stopping.await.unwrap();
    assert_eq!(live.connections(), 0);
}
