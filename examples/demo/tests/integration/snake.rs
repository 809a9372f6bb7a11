//! Snake over real WebSockets: the game loop on the server, every viewer
//! of a room on the same board.

use serde_json::{Value, json};

use crate::support::{TestDemo, assert_quiet, call, html_for, next, viewers_until};

/// `data-NAME="..."` of the board in a screen's HTML.
fn board_attr(html: &str, name: &str) -> String {
    let key = format!(r#"data-{name}=""#);
    let at = html
        .find(&key)
        .unwrap_or_else(|| panic!("no {key} in {html}"))
        + key.len();
    html[at..at + html[at..].find('"').unwrap()].to_owned()
}

fn head(frame: &Value) -> (i32, i32) {
    let head = board_attr(frame["html"].as_str().unwrap(), "head");
    let (x, y) = head.split_once(',').unwrap();
    (x.parse().unwrap(), y.parse().unwrap())
}

fn phase(frame: &Value) -> String {
    board_attr(frame["html"].as_str().unwrap(), "phase")
}

#[tokio::test]
async fn a_new_game_gets_a_room_of_its_own() {
    let server = TestDemo::start().await;
    let (status, headers, _) = server.get_with_headers("/snake/").await;
    assert_eq!(status, 303);
    let location = &headers.iter().find(|(k, _)| k == "location").unwrap().1;
    let id = location
        .strip_prefix("/snake/")
        .and_then(|r| r.strip_suffix('/'))
        .unwrap();
    assert!(demo::pages::snake::is_valid_id(id), "{location}");

    let (status, page) = server.get(location).await;
    assert_eq!(status, 200);
    assert!(
        page.contains(&format!(r#"data-room="snake-{id}""#)),
        "{page}"
    );
    assert!(page.contains(r#"data-liveview-init="snake_join""#));
    assert!(page.contains(r#"id="viewers""#), "who is watching");
    assert!(page.contains("keydown.up@window->page#run"));
    assert!(
        page.contains(r#"class="share""#) && page.matches(id).count() >= 2,
        "the share link"
    );
    assert!(page.contains(r#"data-phase="ready""#));

    for bad in ["/snake/%3Cscript%3E/", "/snake/a.b/"] {
        assert_eq!(server.get(bad).await.0, 404, "{bad}");
    }
}

#[tokio::test]
async fn arrow_keys_steer_and_every_viewer_sees_the_same_board() {
    let server = TestDemo::start().await;
    let room = "snake-steer";
    let mut ada = server.connect(room).await;
    let mut bob = server.connect(room).await;

    viewers_until(&mut ada, "2 watching").await;
    viewers_until(&mut bob, "2 watching").await;

    let frames = call(&mut ada, "snake_join", json!({}), json!({})).await;
    let joined = frames[0].clone();
    assert_eq!(joined["target"], "#snake-screen");
    assert_eq!(phase(&joined), "ready");
    assert_eq!(next(&mut bob).await, joined);
    let start = head(&joined);

    let frames = call(
        &mut ada,
        "snake_turn",
        json!({}),
        json!({"direction": "up"}),
    )
    .await;
    assert!(frames.is_empty() || frames.iter().all(|f| f["target"] == "#snake-screen"));
    // Each move reaches both viewers, the same frames in the same order.
    let mut seen_by_ada = frames;
    let mut seen_by_bob = Vec::new();
    while seen_by_ada.len() < 3 {
        seen_by_ada.push(next(&mut ada).await);
    }
    while seen_by_bob.len() < 3 {
        seen_by_bob.push(next(&mut bob).await);
    }
    assert_eq!(seen_by_ada, seen_by_bob);
    for (i, frame) in seen_by_ada.iter().enumerate() {
        let expected = (start.0, start.1 - 1 - i as i32);
        assert_eq!(head(frame), expected, "move {i} goes up");
    }

    // A turn to the left takes effect at the next move.
    call(
        &mut bob,
        "snake_turn",
        json!({}),
        json!({"direction": "left"}),
    )
    .await;
    let mut frame = next(&mut ada).await;
    let before = head(&frame);
    while head(&frame) == before && phase(&frame) == "running" {
        frame = next(&mut ada).await;
    }
    let after = head(&frame);
    assert!(
        after.0 < before.0 || phase(&frame) == "over",
        "{before:?} -> {after:?}"
    );
}

#[tokio::test]
async fn the_game_ends_at_the_wall_and_restarts() {
    let server = TestDemo::start().await;
    let room = "snake-wall";
    let mut ada = server.connect(room).await;
    call(
        &mut ada,
        "snake_turn",
        json!({}),
        json!({"direction": "up"}),
    )
    .await;
    let mut frame = next(&mut ada).await;
    while phase(&frame) == "running" {
        frame = next(&mut ada).await;
    }
    assert_eq!(phase(&frame), "over");
    assert_eq!(head(&frame).1, 0, "it crashed into the top wall");
    assert!(frame["html"].as_str().unwrap().contains("Game over"));
    // The loop stopped: no more frames.
    assert_quiet(&mut ada).await;

    // Turning does nothing once it is over; a new game does.
    call(
        &mut ada,
        "snake_turn",
        json!({}),
        json!({"direction": "left"}),
    )
    .await;
    assert_quiet(&mut ada).await;
    let frames = call(&mut ada, "snake_restart", json!({}), json!({})).await;
    assert_eq!(phase(&frames[0]), "ready");
    assert_eq!(head(&frames[0]), (10, 10));
    assert_quiet(&mut ada).await;
}

#[tokio::test]
async fn bad_input_is_refused_with_a_message() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("snake-bad").await;
    for data in [
        json!({}),
        json!({"direction": "diagonal"}),
        json!({"direction": ["up"]}),
    ] {
        let frames = call(&mut ada, "snake_turn", json!({}), data.clone()).await;
        assert_eq!(frames.len(), 1, "{data}: {frames:?}");
        assert!(
            html_for(&frames, "#flash").contains("Unknown direction"),
            "{data}"
        );
    }
    assert_quiet(&mut ada).await;

    // Games only live in snake rooms: a call from another page starts none.
    let mut alerts = server.connect("alerts").await;
    for function in ["snake_turn", "snake_join", "snake_restart"] {
        let frames = call(&mut alerts, function, json!({}), json!({"direction": "up"})).await;
        assert_eq!(frames.len(), 1, "{function}: {frames:?}");
        assert!(html_for(&frames, "#flash").contains("Snake is played on the snake page."));
    }
    assert_quiet(&mut alerts).await;
}

#[tokio::test]
async fn a_reloaded_page_shows_the_game_as_it_is() {
    let server = TestDemo::start().await;
    let mut ada = server.connect("snake-reload").await;
    call(
        &mut ada,
        "snake_turn",
        json!({}),
        json!({"direction": "down"}),
    )
    .await;
    let mut frame = next(&mut ada).await;
    while phase(&frame) == "running" {
        frame = next(&mut ada).await;
    }
    let (_, page) = server.get("/snake/reload/").await;
    assert!(page.contains(r#"data-phase="over""#), "{page}");
    assert!(page.contains(&format!(
        r#"data-head="{},{}""#,
        head(&frame).0,
        head(&frame).1
    )));
}
