//! The three levels of testing, used the way an application would.

use liveview::testing::{self, TestApp};
use liveview::{Content, LiveView, Scope, User};
use serde_json::json;

#[tokio::test]
async fn level_one_a_handler_called_directly_with_a_recording_consumer() {
    let (consumer, recorder) = testing::consumer("unit-room");
    let content = Content::new("signup")
        .with_form(json!({"email": "x@y.z", "age": "7", "newsletter": "off"}));
    crate::handlers::signup(&consumer, content).await.unwrap();
    assert_eq!(
        recorder.sent(),
        [json!({"target": "#signup", "html": "x@y.z 7 false"})]
    );
    assert!(recorder.sent().is_empty(), "sent() drains");

    let content =
        Content::new("thread_notify").with_data(json!({"id": "u1", "removeAfterMs": "10"}));
    crate::handlers::thread_notify(&consumer, content)
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while recorder.broadcasts().len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the thread never broadcast"
        );
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        recorder.broadcasts()[1],
        json!({"target": "#notification-u1", "remove": true})
    );
    assert!(recorder.sent().is_empty(), "broadcasts are not sends");
}

#[tokio::test]
async fn level_two_rooms_and_broadcasts_in_process() {
    let app = TestApp::new(LiveView::builder().build().unwrap());
    let mut a = app.connect("lv2-a");
    let mut b = app.connect("lv2-a");
    let mut c = app.connect("lv2-c");
    let frames = a.call("room_say", json!({"text": "hi"}), json!({})).await;
    assert_eq!(frames, [json!({"target": "#room", "html": "hi"})]);
    assert_eq!(b.received(), [json!({"target": "#room", "html": "hi"})]);
    assert!(c.received().is_empty());

    let frames = c.send_text("garbage").await;
    assert_eq!(frames, [json!({"error": "Invalid message"})]);

    let user = Scope::builder().user(User::new("9", "Grace")).build();
    let mut grace = app.connect_with_scope("lv2-c", user);
    let frames = grace.call("whoami", json!({}), json!({})).await;
    assert_eq!(frames[0]["user"], "Grace");
}
