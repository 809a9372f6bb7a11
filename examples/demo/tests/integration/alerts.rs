//! The alert system over real WebSockets: publishing, validation, bad
//! input, deletion (signed-in visitors only), auto-dismissal, infinite
//! scroll and the refresh of the list.

use std::time::Duration;

use demo::db::{AlertKind, NewAlert, now_ms};
use demo::pages::alerts::ROOM;
use liveview::testing::TestApp;
use liveview::{LiveView, Scope, User};
use serde_json::{Value, json};

use crate::support::{TestDemo, assert_quiet, call, eventually, frame_for, html_for, next};

fn alert_form(kind: &str, message: &str, dismiss_after: &str) -> Value {
    json!({"kind": kind, "message": message, "dismissAfter": dismiss_after})
}

async fn stored(server: &TestDemo) -> Vec<demo::db::Alert> {
    server.demo.db().alerts(None, 1000, 0).await.unwrap()
}

#[tokio::test]
async fn the_page_has_the_form_and_joins_the_alerts_room() {
    let server = TestDemo::start().await;
    let (status, html) = server.get("/alerts/").await;
    assert_eq!(status, 200);
    assert!(html.contains(r#"data-room="alerts""#), "{html}");
    assert!(
        html.contains(r#"data-liveview-function="alerts_create" data-action="submit->page#run""#)
    );
    assert!(html.contains(r#"data-liveview-debounce="300""#));
    assert!(html.contains("No alerts yet"));
    assert!(
        !html.contains("data-liveview-intersect-appear"),
        "no trigger for an empty list"
    );
}

#[tokio::test]
async fn a_published_alert_is_stored_and_reaches_every_alerts_page() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let mut bob = server.connect(ROOM).await;
    let mut elsewhere = server.connect("some-other-page").await;

    let frames = call(
        &mut ada,
        "alerts_create",
        alert_form("warning", "  Disk 90% full\n", ""),
        json!({}),
    )
    .await;

    let alerts = stored(&server).await;
    assert_eq!(alerts.len(), 1);
    let alert = &alerts[0];
    assert_eq!(
        (alert.kind, alert.message.as_str(), alert.dismiss_at),
        (AlertKind::Warning, "Disk 90% full", None)
    );

    // The caller: a fresh form, a confirmation, and the alert itself.
    assert!(html_for(&frames, "#alert-form").contains(r#"name="message""#));
    assert!(
        !html_for(&frames, "#alert-form").contains("Disk 90%"),
        "the form is reset"
    );
    assert!(html_for(&frames, "#flash").contains("Alert published."));
    let appended = frame_for(&frames, "#alerts-live");
    assert_eq!(appended["append"], true);
    let html = appended["html"].as_str().unwrap();
    assert!(
        html.contains(&format!(r#"id="alert-{}""#, alert.id)),
        "{html}"
    );
    assert!(
        html.contains("alert--warning") && html.contains("Disk 90% full"),
        "{html}"
    );
    assert!(
        html.contains(&format!(r#"data-data-alert-id="{}""#, alert.id)),
        "{html}"
    );

    // Every other alerts page gets the same alert; other pages nothing.
    assert_eq!(
        next(&mut bob).await,
        json!({"target": "#alerts-live", "html": html, "append": true})
    );
    assert_quiet(&mut bob).await;
    assert_quiet(&mut elsewhere).await;

    // A reload shows what is in the database.
    let (_, page) = server.get("/alerts/").await;
    assert!(page.contains(&format!(r#"id="alert-{}""#, alert.id)));
    assert!(page.contains("Disk 90% full"));
}

#[tokio::test]
async fn html_in_a_message_is_stored_as_typed_and_shown_as_text() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let message = r#"<script>alert("x")</script><b onmouseover='y'>&amp;</b>"#;
    let frames = call(
        &mut ada,
        "alerts_create",
        alert_form("error", message, ""),
        json!({}),
    )
    .await;

    assert_eq!(
        stored(&server).await[0].message,
        message,
        "stored exactly as typed"
    );
    let (_, page) = server.get("/alerts/").await;
    for html in [html_for(&frames, "#alerts-live"), page.as_str()] {
        assert!(
            html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;"),
            "{html}"
        );
        assert!(
            html.contains("&lt;b onmouseover=&#x27;y&#x27;&gt;&amp;amp;&lt;"),
            "{html}"
        );
        assert!(
            !html.contains("<script>alert") && !html.contains("<b on"),
            "{html}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_explained_under_each_field_and_nothing_is_stored() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let mut bob = server.connect(ROOM).await;

    let cases = [
        (
            alert_form("info", "", ""),
            "#error-message",
            "Write a message.",
        ),
        (
            alert_form("info", " \n\t ", ""),
            "#error-message",
            "Write a message.",
        ),
        (
            alert_form("critical", "Fine message", ""),
            "#error-kind",
            "Choose a type: info, warning or error.",
        ),
        (
            json!({"message": "No kind"}),
            "#error-kind",
            "Choose a type: info, warning or error.",
        ),
        (
            alert_form("info", &"x".repeat(10_000), ""),
            "#error-message",
            "The message is 10000 characters long; the limit is 500.",
        ),
        (
            alert_form("info", "Fine", "0"),
            "#error-dismiss-after",
            "Auto-dismiss must be a number of seconds from 1 to 3600.",
        ),
        (
            alert_form("info", "Fine", "forever"),
            "#error-dismiss-after",
            "Auto-dismiss must be a number of seconds from 1 to 3600.",
        ),
        (
            json!({"kind": ["info"], "message": 42}),
            "#error-message",
            "Write a message.",
        ),
    ];
    for (form, target, message) in cases {
        let frames = call(&mut ada, "alerts_create", form.clone(), json!({})).await;
        assert_eq!(html_for(&frames, target), message, "for {form}");
        assert!(
            html_for(&frames, "#flash").contains("The alert was not published"),
            "for {form}: {frames:?}"
        );
        assert!(
            frames
                .iter()
                .all(|f| f["target"] != "#alert-form" && f["target"] != "#alerts-live"),
            "for {form}: the form is kept and nothing is published: {frames:?}"
        );
    }
    assert!(stored(&server).await.is_empty());
    assert_quiet(&mut bob).await;

    // The field errors clear once the input is right.
    let frames = call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Now fine", "5"),
        json!({}),
    )
    .await;
    assert!(html_for(&frames, "#flash").contains("Alert published."));
    assert_eq!(stored(&server).await.len(), 1);
}

#[tokio::test]
async fn exactly_500_characters_is_allowed() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let message = "é".repeat(500);
    let frames = call(
        &mut ada,
        "alerts_create",
        alert_form("info", &message, ""),
        json!({}),
    )
    .await;
    assert!(
        html_for(&frames, "#flash").contains("Alert published."),
        "{frames:?}"
    );
    assert_eq!(stored(&server).await[0].message, message);
}

#[tokio::test]
async fn fields_are_validated_one_at_a_time_while_typing() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;

    let long = "y".repeat(501);
    let frames = call(
        &mut ada,
        "alerts_validate",
        alert_form("info", &long, ""),
        json!({"field": "message"}),
    )
    .await;
    assert_eq!(
        frames,
        [
            json!({"target": "#message-count", "html": r#"<strong class="over">501</strong> / 500"#}),
            json!({"target": "#error-message", "html": "The message is 501 characters long; the limit is 500."}),
        ]
    );

    let frames = call(
        &mut ada,
        "alerts_validate",
        alert_form("info", "ok", ""),
        json!({"field": "message"}),
    )
    .await;
    assert_eq!(
        frames,
        [
            json!({"target": "#message-count", "html": "2 / 500"}),
            json!({"target": "#error-message", "html": ""}),
        ]
    );

    let frames = call(
        &mut ada,
        "alerts_validate",
        alert_form("<b>", "ok", ""),
        json!({"field": "kind"}),
    )
    .await;
    assert_eq!(
        frames,
        [json!({"target": "#error-kind", "html": "Choose a type: info, warning or error."})]
    );

    let frames = call(
        &mut ada,
        "alerts_validate",
        alert_form("info", "ok", "99999"),
        json!({"field": "dismiss_after"}),
    )
    .await;
    assert_eq!(
        frames,
        [
            json!({"target": "#error-dismiss-after", "html": "Auto-dismiss must be a number of seconds from 1 to 3600."})
        ]
    );

    // A field the form does not have is ignored.
    let frames = call(
        &mut ada,
        "alerts_validate",
        json!({}),
        json!({"field": "<script>"}),
    )
    .await;
    assert!(frames.is_empty(), "{frames:?}");
    assert!(stored(&server).await.is_empty());
}

#[tokio::test]
async fn deleting_removes_the_alert_for_everyone() {
    let server = TestDemo::start().await;
    let mut ada = server.connect_as(ROOM, "Ada").await;
    let mut bob = server.connect(ROOM).await;
    call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Delete me", ""),
        json!({}),
    )
    .await;
    let _ = next(&mut bob).await;
    let id = stored(&server).await[0].id;

    let frames = call(
        &mut ada,
        "alerts_delete",
        json!({}),
        json!({"dataAlertId": id.to_string()}),
    )
    .await;
    let remove = json!({"target": format!("#alert-{id}"), "remove": true});
    assert_eq!(frames, std::slice::from_ref(&remove));
    assert_eq!(next(&mut bob).await, remove);
    assert!(stored(&server).await.is_empty());

    // Deleting it again (a second click, a stale page): a clear message,
    // for the caller only.
    let frames = call(&mut ada, "alerts_delete", json!({}), json!({"alertId": id})).await;
    assert_eq!(frames[0], remove);
    assert!(html_for(&frames, "#flash").contains("That alert does not exist any more."));
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn deleting_an_alert_that_does_not_exist_is_explained() {
    let server = TestDemo::start().await;
    let mut ada = server.connect_as(ROOM, "Ada").await;
    let mut bob = server.connect(ROOM).await;
    call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Keep me", ""),
        json!({}),
    )
    .await;
    let _ = next(&mut bob).await;

    for data in [json!({"alertId": "999999"}), json!({"alertId": -1})] {
        let frames = call(&mut ada, "alerts_delete", json!({}), data).await;
        assert!(
            html_for(&frames, "#flash").contains("That alert does not exist any more."),
            "{frames:?}"
        );
    }
    for data in [
        json!({}),
        json!({"alertId": "abc"}),
        json!({"alertId": "1; DROP TABLE alerts"}),
        json!({"alertId": [1]}),
    ] {
        let frames = call(&mut ada, "alerts_delete", json!({}), data.clone()).await;
        assert_eq!(frames.len(), 1, "{data}: {frames:?}");
        assert!(
            html_for(&frames, "#flash").contains("That alert does not exist."),
            "{data}: {frames:?}"
        );
    }
    assert_eq!(stored(&server).await.len(), 1, "nothing else was deleted");
    assert_quiet(&mut bob).await;
}

#[tokio::test]
async fn anonymous_visitors_are_told_to_sign_in_and_delete_nothing() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let mut bob = server.connect(ROOM).await;
    call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Anyone may publish", ""),
        json!({}),
    )
    .await;
    let _ = next(&mut bob).await;
    let id = stored(&server).await[0].id;

    let frames = call(&mut ada, "alerts_delete", json!({}), json!({"alertId": id})).await;
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert!(
        html_for(&frames, "#flash").contains("Sign in to delete alerts."),
        "{frames:?}"
    );
    assert_eq!(stored(&server).await.len(), 1, "the alert is still there");
    assert_quiet(&mut bob).await;

    // A forged or altered session cookie is anonymous too.
    let forged = format!("{}x", server.session_cookie("Mallory"));
    let mut mallory = liveview::testing::WsClient::connect(
        &format!("ws://{}/ws/liveview/{ROOM}/", server.addr),
        &[("cookie", &forged)],
    )
    .await
    .unwrap();
    let frames = call(
        &mut mallory,
        "alerts_delete",
        json!({}),
        json!({"alertId": id}),
    )
    .await;
    assert!(html_for(&frames, "#flash").contains("Sign in to delete alerts."));
    assert_eq!(stored(&server).await.len(), 1);

    // The count of refused calls is in the metrics.
    let (_, _, metrics) = server.metrics().await;
    assert!(
        metrics.contains(r#"liveview_calls_total{function="alerts_delete",outcome="refused"} 2"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn the_handler_refuses_anonymous_deletes_even_without_the_middleware() {
    let server = TestDemo::start().await;
    call(
        &mut server.connect(ROOM).await,
        "alerts_create",
        alert_form("info", "Still protected", ""),
        json!({}),
    )
    .await;
    let id = stored(&server).await[0].id;
    // An app with the demo's state and handlers, but none of its
    // middleware or authenticator.
    let app = TestApp::new(
        LiveView::builder()
            .state(server.demo.clone())
            .build()
            .unwrap(),
    );
    let mut anonymous = app.connect(ROOM);
    let frames = anonymous
        .call("alerts_delete", json!({}), json!({"alertId": id}))
        .await;
    assert!(
        html_for(&frames, "#flash").contains("Sign in to delete alerts."),
        "{frames:?}"
    );
    assert_eq!(stored(&server).await.len(), 1);

    let mut ada =
        app.connect_with_scope(ROOM, Scope::builder().user(User::new("1", "Ada")).build());
    let frames = ada
        .call("alerts_delete", json!({}), json!({"alertId": id}))
        .await;
    assert_eq!(
        frames,
        [json!({"target": format!("#alert-{id}"), "remove": true})]
    );
    assert!(stored(&server).await.is_empty());
}

#[tokio::test]
async fn delete_buttons_are_for_signed_in_visitors() {
    let server = TestDemo::start().await;
    seed(&server, 3).await;
    let (_, anonymous) = server.get("/alerts/").await;
    assert_eq!(ids_in(&anonymous), [3, 2, 1]);
    assert!(!anonymous.contains("alerts_delete"), "{anonymous}");
    assert!(anonymous.contains(r#"href="/login/?next="#), "{anonymous}");

    let cookie = server.session_cookie("Ada");
    let (status, _, signed_in) = server
        .request("GET", "/alerts/", &[("cookie", &cookie)], "")
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        signed_in
            .matches(r#"data-liveview-function="alerts_delete""#)
            .count(),
        3
    );
    assert!(signed_in.contains(r#"<body data-controller="page" class="signed-in">"#));

    // Alerts loaded or refreshed over the socket follow the same rule.
    for (mut client, buttons) in [
        (server.connect(ROOM).await, 0),
        (server.connect_as(ROOM, "Ada").await, 3),
    ] {
        let frames = call(&mut client, "alerts_refresh", json!({}), json!({})).await;
        let list = html_for(&frames, "#alerts-list");
        assert_eq!(ids_in(list), [3, 2, 1]);
        assert_eq!(list.matches("alerts_delete").count(), buttons, "{list}");
    }
}

#[tokio::test]
async fn the_list_refreshes_from_the_database_on_init() {
    let server = TestDemo::start().await;
    seed(&server, 12).await;
    let (_, page) = server.get("/alerts/").await;
    assert!(
        page.contains(r#"data-liveview-init="alerts_refresh""#),
        "the list reloads when the page connects and on resync"
    );
    // Meanwhile, one alert is published and one deleted.
    server
        .demo
        .db()
        .insert_alert(
            &NewAlert {
                kind: AlertKind::Error,
                message: "Missed while away".into(),
                dismiss_after: None,
            },
            now_ms(),
        )
        .await
        .unwrap();
    server.demo.db().delete_alert(12).await.unwrap();

    let mut ada = server.connect(ROOM).await;
    let frames = call(&mut ada, "alerts_refresh", json!({}), json!({})).await;
    assert_eq!(
        frames[0],
        json!({"target": "#alerts-live", "html": ""}),
        "what was pushed live is now in the list"
    );
    let list = html_for(&frames, "#alerts-list");
    assert_eq!(
        ids_in(list),
        [13, 11, 10, 9, 8, 7, 6, 5, 4, 3],
        "the newest page as stored"
    );
    assert!(list.contains("Missed while away"));
    assert!(
        html_for(&frames, "#alerts-more").contains(r#"data-data-page="2" data-data-before="3""#)
    );
}

#[tokio::test]
async fn auto_dismissed_alerts_disappear_for_everyone() {
    let server = TestDemo::start().await;
    let mut ada = server.connect(ROOM).await;
    let mut bob = server.connect(ROOM).await;
    let frames = call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Gone soon", "1"),
        json!({}),
    )
    .await;
    assert!(html_for(&frames, "#alerts-live").contains("disappears after 1 s"));
    let _ = next(&mut bob).await;
    let alert = stored(&server).await.remove(0);
    let due = alert.dismiss_at.expect("a dismissal time");
    assert_eq!(due - alert.created_at, 1000);

    let remove = json!({"target": format!("#alert-{}", alert.id), "remove": true});
    assert_eq!(next(&mut ada).await, remove);
    assert_eq!(next(&mut bob).await, remove);
    assert!(now_ms() >= due, "removed when due, not before");
    assert!(stored(&server).await.is_empty());
}

#[tokio::test]
async fn alerts_due_while_the_server_was_down_are_dismissed_at_start() {
    let dir = crate::support::TempDir::new();
    let config = crate::support::config(&dir);
    {
        let db = demo::db::Db::open(&config.database).await.unwrap();
        let old = NewAlert {
            kind: AlertKind::Error,
            message: "Expired while down".into(),
            dismiss_after: Some(Duration::from_secs(1)),
        };
        db.insert_alert(&old, now_ms() - 60_000).await.unwrap();
        let kept = NewAlert {
            dismiss_after: None,
            message: "Still here".into(),
            ..old
        };
        db.insert_alert(&kept, now_ms() - 60_000).await.unwrap();
        db.close().await;
    }
    let server = TestDemo::start_with(config, liveview::LiveView::builder()).await;
    let (_, page) = server.get("/alerts/").await;
    assert!(
        !page.contains("Expired while down"),
        "an expired alert is never shown"
    );
    assert!(page.contains("Still here"));
    let db = server.demo.db().clone();
    eventually(
        "the expired alert is deleted",
        Duration::from_secs(10),
        || {
            let db = db.clone();
            async move { db.alert_count().await.unwrap() == 1 }
        },
    )
    .await;
}

async fn seed(server: &TestDemo, count: usize) {
    for i in 1..=count {
        let alert = NewAlert {
            kind: AlertKind::ALL[i % 3],
            message: format!("Alert number {i}"),
            dismiss_after: None,
        };
        server
            .demo
            .db()
            .insert_alert(&alert, now_ms())
            .await
            .unwrap();
    }
}

/// The ids of the alerts in `html`, in order.
fn ids_in(html: &str) -> Vec<i64> {
    html.match_indices(r#"id="alert-"#)
        .filter_map(|(at, m)| {
            let rest = &html[at + m.len()..];
            rest[..rest.find('"').unwrap()].parse().ok()
        })
        .collect()
}

#[tokio::test]
async fn past_alerts_load_ten_at_a_time_and_stop_at_the_end() {
    let server = TestDemo::start().await;
    seed(&server, 25).await;
    let (_, page) = server.get("/alerts/").await;
    assert_eq!(
        ids_in(&page),
        (16..=25).rev().collect::<Vec<_>>(),
        "the newest ten first"
    );
    assert!(page.contains(r#"data-liveview-intersect-appear="alerts_load_more""#));
    assert!(
        page.contains(r#"data-data-page="2" data-data-before="16""#),
        "{page}"
    );

    let mut ada = server.connect(ROOM).await;
    let frames = call(
        &mut ada,
        "alerts_load_more",
        json!({}),
        json!({"page": "2", "before": "16"}),
    )
    .await;
    let list = frame_for(&frames, "#alerts-list");
    assert_eq!(list["append"], true);
    assert_eq!(
        ids_in(list["html"].as_str().unwrap()),
        (6..=15).rev().collect::<Vec<_>>()
    );
    assert!(
        html_for(&frames, "#alerts-more").contains(r#"data-data-page="3" data-data-before="6""#)
    );

    // An alert published meanwhile does not shift the pages.
    call(
        &mut ada,
        "alerts_create",
        alert_form("info", "Newer", ""),
        json!({}),
    )
    .await;

    let frames = call(
        &mut ada,
        "alerts_load_more",
        json!({}),
        json!({"page": "3", "before": "6"}),
    )
    .await;
    assert_eq!(ids_in(html_for(&frames, "#alerts-list")), [5, 4, 3, 2, 1]);
    let end = html_for(&frames, "#alerts-more");
    assert!(end.contains("no older alerts"), "{end}");
    assert!(
        !end.contains("data-liveview-intersect-appear"),
        "the trigger is gone: {end}"
    );

    // Past the end (a stale trigger): nothing is appended.
    let frames = call(
        &mut ada,
        "alerts_load_more",
        json!({}),
        json!({"page": "4", "before": "1"}),
    )
    .await;
    assert!(
        frames.iter().all(|f| f["target"] != "#alerts-list"),
        "{frames:?}"
    );
}

#[tokio::test]
async fn a_trigger_without_its_data_says_it_cannot_load() {
    let server = TestDemo::start().await;
    seed(&server, 12).await;
    let mut ada = server.connect(ROOM).await;
    for data in [
        json!({}),
        json!({"page": "2"}),
        json!({"page": "two", "before": "3"}),
    ] {
        let frames = call(&mut ada, "alerts_load_more", json!({}), data.clone()).await;
        assert_eq!(frames.len(), 1, "{data}: {frames:?}");
        assert!(
            html_for(&frames, "#alerts-more").contains("could not be loaded"),
            "{data}"
        );
    }
}
