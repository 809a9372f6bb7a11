//! Handlers as an application sees them: registry, content, state.

use liveview::LiveView;
use serde_json::json;

use crate::support::{next, server};

#[test]
fn every_handler_is_registered_and_listed_sorted() {
    let names = LiveView::builder().build().unwrap().functions();
    for name in ["echo", "fail", "blocking_work", "signup", "thread_notify"] {
        assert!(names.contains(&name), "{name} missing from {names:?}");
    }
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(names, sorted);
}

#[tokio::test]
async fn handlers_see_normalised_form_and_data_keys() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("content-keys").await.unwrap();
    client
        .send_json(&json!({
            "function": "echo",
            "form": {"firstName": "Ada", "tags": ["a", "b"], "agree": true},
            "data": {"commentId": "3", "dataPostId": "4", "data_user_id": "5"},
            "lang": "es",
            "room": "content-keys",
            "somethingElse": 1
        }))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({
            "function": "echo",
            "form": {"first_name": "Ada", "tags": ["a", "b"], "agree": true},
            "data": {"comment_id": "3", "post_id": "4", "user_id": "5"},
            "lang": "es",
            "room": "content-keys"
        })
    );
}

#[tokio::test]
async fn the_room_defaults_to_the_url_room() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("url-room").await.unwrap();
    client
        .send_json(&json!({"function": "echo"}))
        .await
        .unwrap();
    let frame = next(&mut client).await;
    assert_eq!(frame["room"], "url-room");
    assert_eq!(frame["lang"], "");
    assert_eq!(frame["form"], json!({}));
}

#[tokio::test]
async fn typed_form_access_converts_strings_and_explains_misfits() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("typed").await.unwrap();
    client
        .call(
            "signup",
            json!({"email": "a@b.c", "age": "36", "newsletter": "on"}),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#signup", "html": "a@b.c 36 true"})
    );
    client
        .call(
            "signup",
            json!({"email": "a@b.c", "age": "old", "newsletter": false}),
            json!({}),
        )
        .await
        .unwrap();
    let error = next(&mut client).await;
    assert_eq!(error["target"], "#signup-error");
    assert_eq!(error["html"], "form.age: \"old\" is not a whole number");
    client
        .call(
            "signup",
            json!({"age": "3", "newsletter": false}),
            json!({}),
        )
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await["html"],
        "form: missing field `email`"
    );
}

#[tokio::test]
async fn a_sync_handler_runs_on_the_blocking_pool() {
    let server = server(LiveView::builder()).await;
    let mut client = server.connect("blocking").await.unwrap();
    client
        .call("blocking_work", json!({"text": "done"}), json!({}))
        .await
        .unwrap();
    let frame = next(&mut client).await;
    assert_eq!(frame["html"], "done");
    assert_eq!(frame["on_worker"], false);
}

#[tokio::test]
async fn per_connection_state_lives_between_calls_and_is_not_shared() {
    let server = server(LiveView::builder()).await;
    let mut a = server.connect("state").await.unwrap();
    let mut b = server.connect("state").await.unwrap();
    for expected in ["1", "2", "3"] {
        a.call("count", json!({}), json!({})).await.unwrap();
        assert_eq!(next(&mut a).await["html"], expected);
    }
    b.call("count", json!({}), json!({})).await.unwrap();
    assert_eq!(next(&mut b).await["html"], "1");
}

#[tokio::test]
async fn handlers_read_the_application_state() {
    let builder = LiveView::builder().state(crate::handlers::Greeting("Hola"));
    let server = server(builder).await;
    let mut client = server.connect("app-state").await.unwrap();
    client
        .call("app_greeting", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await["html"], "Hola");
    assert_eq!(
        server
            .live()
            .state::<crate::handlers::Greeting>()
            .unwrap()
            .0,
        "Hola"
    );

    let without = crate::support::server(LiveView::builder()).await;
    let mut client = without.connect("app-state").await.unwrap();
    client
        .call("app_greeting", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(next(&mut client).await["html"], "(none)");
}
