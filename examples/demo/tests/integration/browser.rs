//! Every page in headless Chromium, through the real client: what a visitor
//! does, and what a second visitor sees. Each test waits for conditions,
//! never for a fixed time, and saves a screenshot of the page to
//! `target/screenshots/demo-*.png`.

use std::future::Future;
use std::time::Duration;

use demo::db::{AlertKind, NewAlert, now_ms};
use liveview_testing::browser::{Browser, js_string};
use serde_json::{Value, json};

use crate::support::TestDemo;

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

/// One browser test at a time in this process: each drives a Chromium of
/// its own, and two cores are shared by everything.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// The window of every test: a laptop screen.
const WINDOW: (u32, u32) = (1280, 800);

async fn start_browser() -> Browser {
    Browser::builder()
        .window_size(WINDOW.0, WINDOW.1)
        .start()
        .await
        .expect("chromedriver and Chromium start (scripts/ensure-chromium.sh)")
}

/// Run `test` with a browser, then save its screenshot as `demo-NAME`
/// whether the test passed or not, and fail with the test's error.
async fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = (Browser, Result)>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let (browser, result) = test(start_browser().await).await;
    let shot = browser.save_screenshot(&format!("demo-{name}")).await;
    if let Err(err) = result {
        panic!("{name} in the browser: {err}");
    }
    shot.expect("the screenshot is saved");
}

/// A JavaScript expression: how many elements match `selector`.
fn count(selector: &str) -> String {
    format!("document.querySelectorAll({}).length", js_string(selector))
}

/// A JavaScript expression: how many elements match `selector` and are
/// shown.
fn visible(selector: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll({}), (e) => e.offsetParent !== null).filter(Boolean).length",
        js_string(selector)
    )
}

/// A JavaScript expression: whether the text of `selector` contains
/// `text`.
fn text_has(selector: &str, text: &str) -> String {
    format!(
        "(document.querySelector({}) || {{}}).textContent?.includes({}) === true",
        js_string(selector),
        js_string(text)
    )
}

/// Sign in as `name` from the page `page` shows: the "Sign in" link of the
/// top bar, the login form, and back to the page, connected again.
async fn sign_in(page: &Browser, name: &str) -> Result {
    let back = page.eval("location.pathname + location.search").await?;
    page.click(".account__in").await?;
    page.wait("location.pathname === '/login/'").await?;
    page.type_text("#login-name", name).await?;
    page.click("#login-form button[type=submit]").await?;
    page.wait(&format!("location.pathname + location.search === {back}"))
        .await?;
    page.wait_connected().await?;
    page.wait_for_text(".account__name", name).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// Alerts
// ---------------------------------------------------------------------------

async fn publish(page: &Browser, kind: &str, message: &str, dismiss: &str) -> Result {
    page.click(&format!(".segmented__option--{kind}")).await?;
    page.type_text("#alert-message", message).await?;
    page.select("#alert-dismiss", dismiss).await?;
    // The confirmation of an earlier alert must not count for this one.
    page.execute("document.querySelector('#flash').replaceChildren()", vec![])
        .await?;
    page.click("#alert-form button[type=submit]").await?;
    page.wait_for_text("#flash .flash", "Alert published.")
        .await?;
    Ok(())
}

fn alert_with_text(text: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('.alert .alert__message')).some((m) => m.textContent === {})",
        js_string(text)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_are_shared_deleted_and_dismissed_for_every_visitor() {
    let server = TestDemo::start().await;
    let url = server.url("/alerts/");
    run("alerts", |ada| async move {
        let result = async {
            ada.open(&url).await?;
            sign_in(&ada, "Ada").await?;
            let bob = ada.new_session().await?;
            bob.open(&url).await?;

            // Both see who is watching; Ada is named, Bob is not.
            for page in [&ada, &bob] {
                page.wait(&text_has("#viewers", "2 watching · Ada")).await?;
            }

            // Published by Ada, shown to both; what she typed stays text.
            publish(
                &ada,
                "warning",
                "Database failover at 14:00 <b>not bold</b>",
                "",
            )
            .await?;
            for page in [&ada, &bob] {
                page.wait(&alert_with_text(
                    "Database failover at 14:00 <b>not bold</b>",
                ))
                .await?;
            }
            assert_eq!(ada.eval(&count(".alert__message b")).await?, json!(0));
            assert_eq!(
                ada.eval("document.querySelector('#alert-message').value")
                    .await?,
                json!("")
            );

            // Only Ada, signed in, has delete buttons; Bob has a way to
            // sign in instead. Deleted by Ada, gone for both.
            assert_eq!(bob.eval(&visible(".alert__delete")).await?, json!(0));
            assert_eq!(
                bob.eval(&count(".lead a[href^='/login/']")).await?,
                json!(1)
            );
            assert_eq!(ada.eval(&visible(".alert__delete")).await?, json!(1));
            ada.click(".alert--warning .alert__delete").await?;
            for page in [&ada, &bob] {
                page.wait(&format!(
                    "!({})",
                    alert_with_text("Database failover at 14:00 <b>not bold</b>")
                ))
                .await?;
            }

            // Dismissed by the server after five seconds, for both.
            publish(&ada, "error", "Payments are failing", "5").await?;
            for page in [&ada, &bob] {
                page.wait(&alert_with_text("Payments are failing")).await?;
                page.wait(&count(".alert--error .alert__timer")).await?;
            }
            for page in [&ada, &bob] {
                page.wait_for(
                    &format!("!({})", alert_with_text("Payments are failing")),
                    Duration::from_secs(20),
                )
                .await?;
            }

            // A few lasting alerts for the picture, and a reload from the
            // database shows them.
            publish(
                &ada,
                "info",
                "Release 2.4 is rolling out to all regions.",
                "",
            )
            .await?;
            publish(&bob, "warning", "Disk usage on db-2 is at 85%.", "").await?;
            ada.wait(&alert_with_text("Disk usage on db-2 is at 85%."))
                .await?;
            assert_eq!(
                ada.eval(&visible(".alert__delete")).await?,
                json!(2),
                "alerts pushed by others can be deleted too"
            );
            publish(
                &ada,
                "error",
                "Checkout error rate above 2% for 5 minutes.",
                "30",
            )
            .await?;
            ada.open(&url).await?;
            ada.wait(&format!("{} === 3", count("#alerts-list .alert")))
                .await?;
            ada.wait(&alert_with_text("Disk usage on db-2 is at 85%."))
                .await?;
            assert_eq!(ada.eval(&visible(".alert__delete")).await?, json!(3));
            ada.wait(&text_has("#viewers", "2 watching · Ada")).await?;
            bob.close().await?;
            ada.wait(&text_has("#viewers", "1 watching · Ada")).await?;
            Ok(())
        }
        .await;
        (ada, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alert_fields_are_validated_while_typing() {
    let server = TestDemo::start().await;
    let url = server.url("/alerts/");
    run("alerts-validation", |page| async move {
        let result = async {
            page.open(&url).await?;
            page.click("#alert-form button[type=submit]").await?;
            page.wait_for_text("#error-message", "Write a message.")
                .await?;
            page.wait_for_text(
                "#flash .flash",
                "The alert was not published: please fix the fields marked in red.",
            )
            .await?;

            page.type_text("#alert-message", "Hello").await?;
            page.wait_for_text("#message-count", "5 / 500").await?;
            page.wait_for_text("#error-message", "").await?;

            // A pasted text that is far too long.
            page.execute(
                "const t = document.querySelector('#alert-message');
                 t.value = 'x'.repeat(10000);
                 t.dispatchEvent(new Event('input', {bubbles: true}));",
                vec![],
            )
            .await?;
            page.wait_for_text(
                "#error-message",
                "The message is 10000 characters long; the limit is 500.",
            )
            .await?;
            page.wait_for_text("#message-count", "10000 / 500").await?;
            page.click("#alert-form button[type=submit]").await?;
            page.wait_for_text(
                "#flash .flash",
                "The alert was not published: please fix the fields marked in red.",
            )
            .await?;
            assert_eq!(
                page.eval(&count(".alert")).await?,
                json!(0),
                "nothing was published"
            );
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
    assert_eq!(server.demo.db().alert_count().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_alerts_load_as_the_visitor_scrolls_and_stop_at_the_end() {
    let server = TestDemo::start().await;
    for i in 1..=25 {
        let alert = NewAlert {
            kind: AlertKind::ALL[i % 3],
            message: format!("Past alert number {i}"),
            dismiss_after: None,
        };
        server
            .demo
            .db()
            .insert_alert(&alert, now_ms() - 3_600_000)
            .await
            .unwrap();
    }
    let url = server.url("/alerts/");
    run("alerts-scroll", |page| async move {
        let result = async {
            page.open(&url).await?;
            assert_eq!(page.eval(&count("#alerts-list .alert")).await?, json!(10));
            assert_eq!(
                page.eval(
                    "document.querySelector('#alerts-list .alert .alert__message').textContent"
                )
                .await?,
                json!("Past alert number 25"),
                "newest first"
            );
            for expected in [20, 25] {
                page.execute("window.scrollTo(0, document.body.scrollHeight)", vec![])
                    .await?;
                page.wait(&format!("{} === {expected}", count("#alerts-list .alert")))
                    .await?;
            }
            page.wait(&count("#alerts-more .list-end")).await?;
            assert_eq!(
                page.eval(&count("[data-liveview-intersect-appear]"))
                    .await?,
                json!(0)
            );
            let messages: Vec<String> = page.texts("#alerts-list .alert__message").await?;
            let expected: Vec<String> = (1..=25)
                .rev()
                .map(|i| format!("Past alert number {i}"))
                .collect();
            assert_eq!(messages, expected, "every alert once, newest first");
            // Nothing more is asked for at the end.
            page.wait("LiveView.inflight === 0").await?;
            assert_eq!(page.eval(&count("#alerts-list .alert")).await?, json!(25));
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resync_reloads_the_alert_list_from_the_database() {
    let server = TestDemo::start().await;
    let db = server.demo.db().clone();
    for message in ["Kept through the outage", "Deleted during the outage"] {
        let alert = NewAlert {
            kind: AlertKind::Info,
            message: message.into(),
            dismiss_after: None,
        };
        db.insert_alert(&alert, now_ms()).await.unwrap();
    }
    let url = server.url("/alerts/");
    run("alerts-resync", |page| async move {
        let result = async {
            page.open(&url).await?;
            // The list's init call ran when the page connected.
            page.wait("LiveView.inflight === 0").await?;
            assert_eq!(page.eval(&count("#alerts-list .alert")).await?, json!(2));

            // What the page missed and the server cannot replay: an alert
            // published, one deleted.
            let missed = NewAlert {
                kind: AlertKind::Warning,
                message: "Published during the outage".into(),
                dismiss_after: None,
            };
            db.insert_alert(&missed, now_ms()).await.unwrap();
            db.delete_alert(2).await.unwrap();
            page.execute("LiveView.apply({resync: true})", vec![])
                .await?;
            page.wait(&alert_with_text("Published during the outage"))
                .await?;
            page.wait(&format!(
                "!({})",
                alert_with_text("Deleted during the outage")
            ))
            .await?;
            assert!(
                page.eval(&alert_with_text("Kept through the outage"))
                    .await?
                    == json!(true)
            );
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

// ---------------------------------------------------------------------------
// Signing in
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn visitors_sign_in_with_a_name_and_out_again() {
    let server = TestDemo::start().await;
    let url = server.url("/alerts/");
    run("login", |page| async move {
        let result = async {
            page.open(&url).await?;
            assert_eq!(page.text(".account__in").await?, "Sign in");
            page.click(".account__in").await?;
            page.wait("location.pathname === '/login/'").await?;
            assert!(page.text(".signin").await?.contains("no password"));

            // A name is needed.
            page.execute(
                "document.querySelector('#login-name').removeAttribute('required')",
                vec![],
            )
            .await?;
            page.click("#login-form button[type=submit]").await?;
            page.wait_for_text("#login-error", "Write a name to sign in with.")
                .await?;

            page.type_text("#login-name", "Grace Hopper").await?;
            page.click("#login-form button[type=submit]").await?;
            page.wait("location.pathname === '/alerts/'").await?;
            page.wait_connected().await?;
            page.wait_for_text(".account__name", "Grace Hopper").await?;
            page.wait(&text_has("#viewers", "1 watching · Grace Hopper"))
                .await?;

            // Signed out: back on the same page, anonymous.
            page.click(".account__out button").await?;
            page.wait(&count(".account__in")).await?;
            page.wait_connected().await?;
            assert_eq!(page.eval("location.pathname").await?, json!("/alerts/"));
            page.wait(&text_has("#viewers", "1 watching")).await?;
            assert!(!page.text("#viewers").await?.contains("Grace"));

            // The sign-in page, as a visitor sees it, for the picture.
            page.click(".account__in").await?;
            page.wait("location.pathname === '/login/'").await?;
            page.type_text("#login-name", "Ada Lovelace").await?;
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

/// Two tabs of one browser share the session cookie: signing out in one
/// ends the session in the other too, whose connection the server closes
/// with 4401; its delete buttons become a "sign in again" prompt rather
/// than buttons that would fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_out_in_one_tab_turns_the_other_tabs_delete_buttons_into_a_sign_in_prompt() {
    let server = TestDemo::start().await;
    let url = server.url("/alerts/");
    run("session-expired", |page| async move {
        let result = async {
            page.open(&url).await?;
            sign_in(&page, "Ada").await?;
            publish(&page, "info", "Deploy window opens at noon.", "").await?;
            let first = page.client().window().await?;

            // A second tab, signed in through the same cookie, its alert
            // list loaded (the page's first call).
            let second = page.client().new_window(true).await?.handle;
            page.client().switch_to_window(second.clone()).await?;
            page.open(&url).await?;
            page.wait("LiveView.inflight === 0 && LiveView.queued === 0")
                .await?;
            page.wait(&visible(".alert__delete")).await?;

            // Signed out in the first tab.
            page.client().switch_to_window(first).await?;
            page.click(".account__out button").await?;
            page.wait(&count(".account__in")).await?;

            // The second tab says so, and offers to sign in again.
            page.client().switch_to_window(second).await?;
            page.wait(&visible(".alert__sign-in")).await?;
            assert_eq!(page.eval(&count(".alert__delete")).await?, json!(0));
            // (Both banners are fixed: shown means not hidden.)
            page.wait("!document.getElementById('session-expired').hidden")
                .await?;
            assert_eq!(
                page.eval("document.getElementById('no-connection').hidden")
                    .await?,
                json!(true)
            );
            assert_eq!(
                page.eval("document.querySelector('.alert__sign-in').getAttribute('href')")
                    .await?,
                json!("/login/?next=%2Falerts%2F")
            );
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

// ---------------------------------------------------------------------------
// Snake
// ---------------------------------------------------------------------------

async fn board(page: &Browser) -> Result<(String, String, String)> {
    let value = page
        .eval(
            "(() => { const b = document.querySelector('#snake-board');
               return [b.dataset.head, b.dataset.phase, b.innerHTML]; })()",
        )
        .await?;
    let parts: Vec<String> = serde_json::from_value(value)?;
    Ok((parts[0].clone(), parts[1].clone(), parts[2].clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snake_moves_on_arrow_keys_and_a_second_tab_watches_the_same_game() {
    let dir = crate::support::TempDir::new();
    let config = crate::support::config(&dir).with_snake_tick(Duration::from_millis(125));
    let server = TestDemo::start_with(config, liveview::LiveView::builder()).await;
    let url = server.url("/snake/");
    run("snake", |ada| async move {
        let result = async {
            ada.open(&url).await?;
            let game_url = ada.eval("location.href").await?;
            let game_url = game_url.as_str().unwrap_or_default().to_owned();
            assert!(
                game_url.contains("/snake/") && !game_url.ends_with("/snake/"),
                "{game_url}"
            );
            let bob = ada.new_session().await?;
            bob.open(&game_url).await?;
            for page in [&ada, &bob] {
                page.wait(&text_has("#viewers", "2 watching")).await?;
            }
            let (start, phase, _) = board(&ada).await?;
            assert_eq!((start.as_str(), phase.as_str()), ("10,10", "ready"));

            // A real key press on the board.
            ada.find("#snake").await?.send_keys("\u{E013}").await?; // ArrowUp
            ada.wait("document.querySelector('#snake-board').dataset.head.split(',')[1] < 10")
                .await?;

            // While it runs, Bob sees the same board as Ada.
            let mut same = false;
            for _ in 0..200 {
                let (a, b) = (board(&ada).await?, board(&bob).await?);
                if a.1 == "running" && a == b {
                    same = true;
                    break;
                }
                if a.1 == "over" {
                    break;
                }
            }
            assert!(same, "the two tabs never showed the same running board");

            // The snake goes on up to the wall: game over, for both.
            for page in [&ada, &bob] {
                page.wait("document.querySelector('#snake-board').dataset.phase === 'over'")
                    .await?;
            }
            assert!(ada.text("#snake-board").await?.contains("Game over"));
            assert_eq!(board(&ada).await?, board(&bob).await?);

            // Space starts a new game, for both.
            bob.find("#snake").await?.send_keys(" ").await?;
            for page in [&ada, &bob] {
                page.wait("document.querySelector('#snake-board').dataset.phase === 'ready'")
                    .await?;
            }
            // Steer right for the picture.
            ada.find("#snake").await?.send_keys("\u{E014}").await?; // ArrowRight
            ada.wait("document.querySelector('#snake-board').dataset.head !== '10,10'")
                .await?;
            bob.close().await?;
            ada.wait(&text_has("#viewers", "1 watching")).await?;
            Ok(())
        }
        .await;
        (ada, result)
    })
    .await;
}

// ---------------------------------------------------------------------------
// Search
// ---------------------------------------------------------------------------

fn summary_is(text: &str) -> String {
    format!(
        "(document.querySelector('.results__summary') || {{}}).textContent?.includes({})",
        js_string(text)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_updates_results_and_the_url_and_back_restores_the_query() {
    let server = TestDemo::start().await;
    let url = server.url("/search/");
    run("search", |page| async move {
        let result = async {
            page.open(&url).await?;
            page.type_text("#search-input", "walnut").await?;
            page.wait("location.search === '?q=walnut'").await?;
            page.wait(&summary_is("for “walnut”")).await?;
            page.wait(&count(".result__name mark")).await?;
            let marks: Vec<String> = page.texts(".result__name mark").await?;
            assert!(
                marks.iter().all(|m| m.eq_ignore_ascii_case("walnut")),
                "{marks:?}"
            );

            page.type_text("#search-input", " lamp").await?;
            page.wait("location.search === '?q=walnut+lamp'").await?;
            page.wait(&summary_is("for “walnut lamp”")).await?;
            let names: Vec<String> = page.texts(".result__name").await?;
            assert!(!names.is_empty());
            assert!(
                names
                    .iter()
                    .all(|n| n.contains("Walnut") && n.contains("Lamp")),
                "{names:?}"
            );
            assert_eq!(
                page.eval("document.title").await?,
                json!("“walnut lamp” · Live search · LiveView demo")
            );

            // Back: the previous query, its results and its title.
            page.back().await?;
            page.wait("location.search === '?q=walnut'").await?;
            page.wait(&summary_is("for “walnut”")).await?;
            page.wait("document.querySelector('#search-input').value === 'walnut'")
                .await?;
            // Forward again, then a reload renders the query on the server.
            page.forward().await?;
            page.wait(&summary_is("for “walnut lamp”")).await?;
            page.open(&format!("{url}?q=walnut+lamp")).await?;
            page.wait(&summary_is("for “walnut lamp”")).await?;
            assert_eq!(
                page.eval("document.querySelector('#search-input').value")
                    .await?,
                json!("walnut lamp")
            );
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

// ---------------------------------------------------------------------------
// Home and quick start
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_page_links_to_the_demos() {
    let server = TestDemo::start().await;
    let url = server.url("/");
    run("home", |page| async move {
        let result = async {
            page.open(&url).await?;
            let links: Value = page
                .eval(
                    "Array.from(document.querySelectorAll('.card'), (a) => a.getAttribute('href'))",
                )
                .await?;
            assert_eq!(
                links,
                json!(["/quickstart/", "/alerts/", "/snake/", "/search/"])
            );
            page.click(".card[href='/search/']").await?;
            page.wait("location.pathname === '/search/'").await?;
            page.wait_connected().await?;
            page.back().await?;
            page.wait("location.pathname === '/'").await?;
            page.wait_connected().await?;
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_quick_start_page_greets_and_notifies_every_page() {
    let server = TestDemo::start().await;
    let url = server.url("/quickstart/");
    run("quickstart", |ada| async move {
        let result = async {
            ada.open(&url).await?;
            let bob = ada.new_session().await?;
            bob.open(&url).await?;
            ada.type_text("input[name=name]", "Ada").await?;
            ada.click("button[data-liveview-function=say_hello]")
                .await?;
            ada.wait_for_text("#greeting", "Hello, Ada!").await?;
            assert_eq!(bob.text("#greeting").await?, "");
            ada.type_text("input[name=message]", "Deploy at 5 pm")
                .await?;
            ada.click("form[data-liveview-function=notify_all] button")
                .await?;
            for page in [&ada, &bob] {
                page.wait_for_text("#notifications .notification", "Deploy at 5 pm")
                    .await?;
            }
            bob.close().await?;
            Ok(())
        }
        .await;
        (ada, result)
    })
    .await;
}

// ---------------------------------------------------------------------------
// The HTTP transport
// ---------------------------------------------------------------------------

const TRANSPORT: &str = "document.documentElement.dataset.liveviewTransport";

/// A visitor whose browser has no WebSocket searches and shares alerts with
/// a visitor on a socket, both ways, over Server-Sent Events and POSTs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_and_alerts_work_over_the_http_transport() {
    let server = TestDemo::start().await;
    let search = server.url("/search/");
    let alerts = server.url("/alerts/");
    run("http-transport", |ada| async move {
        let result = async {
            ada.before_each_page("delete window.WebSocket;").await?;
            ada.open(&search).await?;
            assert_eq!(ada.eval(TRANSPORT).await?, json!("sse"));
            ada.type_text("#search-input", "walnut").await?;
            ada.wait("location.search === '?q=walnut'").await?;
            ada.wait(&summary_is("for “walnut”")).await?;
            ada.wait(&count(".result__name mark")).await?;

            ada.open(&alerts).await?;
            sign_in(&ada, "Ada").await?;
            assert_eq!(ada.eval(TRANSPORT).await?, json!("sse"));
            let bob = ada.new_session().await?;
            bob.open(&alerts).await?;
            assert_eq!(bob.eval(TRANSPORT).await?, json!("websocket"));
            publish(&ada, "warning", "Sent over the stream", "").await?;
            publish(&bob, "info", "Sent over the socket", "").await?;
            for page in [&ada, &bob] {
                page.wait(&alert_with_text("Sent over the stream")).await?;
                page.wait(&alert_with_text("Sent over the socket")).await?;
                page.wait(&text_has("#viewers", "2 watching")).await?;
            }
            bob.close().await?;
            Ok(())
        }
        .await;
        (ada, result)
    })
    .await;
}
