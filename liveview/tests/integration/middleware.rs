//! Middleware: run in order before every handler; `false` stops the call.

use std::sync::{Arc, Mutex};

use futures_util::future::BoxFuture;
use liveview::middleware::Middleware;
use liveview::{Consumer, Content, LiveView, Update};
use serde_json::json;

use crate::support::{assert_nothing_pending, next, server};

fn refuse_without_pass(consumer: &Consumer, content: &Content, function: &str) -> bool {
    if function != "protected" || content.form.str("pass") == Some("yes") {
        return true;
    }
    let _ = consumer.send(Update::new("#error").html("<p>You must be logged in</p>"));
    false
}

/// A middleware that awaits.
struct Audit;

impl Middleware for Audit {
    fn allows<'a>(
        &'a self,
        consumer: &'a Consumer,
        _content: &'a Content,
        function: &'a str,
    ) -> BoxFuture<'a, bool> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            function != "echo" || consumer.room() != "middleware-forbidden"
        })
    }
}

#[tokio::test]
async fn middleware_runs_in_order_and_can_refuse_or_allow() {
    let seen = Arc::new(Mutex::new(Vec::<String>::new()));
    let first = seen.clone();
    let second = seen.clone();
    let builder = LiveView::builder()
        .middleware(move |_c: &Consumer, _content: &Content, function: &str| {
            first.lock().unwrap().push(format!("1:{function}"));
            true
        })
        .middleware(refuse_without_pass)
        .middleware(Audit)
        .middleware(move |_c: &Consumer, _content: &Content, function: &str| {
            second.lock().unwrap().push(format!("4:{function}"));
            true
        });
    let server = server(builder).await;
    let mut client = server.connect("middleware").await.unwrap();

    client
        .call("protected", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#error", "html": "<p>You must be logged in</p>"})
    );
    assert_nothing_pending(&mut client, "only the middleware's frame").await;

    client
        .call("protected", json!({"pass": "yes"}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#secret", "html": "the secret"})
    );
    assert_eq!(
        *seen.lock().unwrap(),
        [
            "1:protected",
            "1:echo",
            "4:echo",
            "1:protected",
            "4:protected"
        ]
    );

    // The async middleware refuses silently: nothing at all comes back.
    let mut forbidden = server.connect("middleware-forbidden").await.unwrap();
    forbidden
        .call("echo", json!({"marker": "x"}), json!({}))
        .await
        .unwrap();
    forbidden
        .call("protected", json!({"pass": "yes"}), json!({}))
        .await
        .unwrap();
    assert_eq!(next(&mut forbidden).await["target"], "#secret");
}

#[tokio::test]
async fn require_user_refuses_anonymous_callers_of_the_listed_handlers() {
    let builder = LiveView::builder().middleware(liveview::middleware::require_user(
        Update::new("#error").html("Sign in first"),
        &["protected"],
    ));
    let server = server(builder).await;
    let mut client = server.connect("require-user").await.unwrap();
    client
        .call("protected", json!({}), json!({}))
        .await
        .unwrap();
    assert_eq!(
        next(&mut client).await,
        json!({"target": "#error", "html": "Sign in first"})
    );
    // Other handlers are not affected.
    assert_nothing_pending(&mut client, "echo allowed").await;
}
