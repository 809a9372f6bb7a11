//! Handlers used by the tests, registered like an application's.

use std::time::Duration;

use liveview::{Consumer, Content, Update, liveview_handler};
use serde::Deserialize;
use serde_json::json;

#[liveview_handler("echo")]
async fn echo(consumer: &Consumer, content: Content) -> liveview::Result {
    consumer.send(json!({
        "function": content.function(),
        "form": content.form.as_map(),
        "data": content.data.as_map(),
        "lang": content.lang(),
        "room": content.room(),
    }))?;
    Ok(())
}

#[liveview_handler("fail")]
async fn fail(_consumer: &Consumer, _content: Content) -> liveview::Result {
    Err(liveview::Error::msg(
        "secret database password in /srv/app/db.rs",
    ))
}

#[liveview_handler("explode")]
async fn explode(_consumer: &Consumer, _content: Content) {
    panic!("secret panic text from src/handlers.rs");
}

#[liveview_handler("explode_sync")]
fn explode_sync(_consumer: &Consumer, _content: Content) {
    panic!("secret panic text from a blocking handler");
}

#[liveview_handler("sleep_then_reply")]
async fn sleep_then_reply(consumer: &Consumer, content: Content) -> liveview::Result {
    let ms = content.data.i64("ms").unwrap_or(0) as u64;
    tokio::time::sleep(Duration::from_millis(ms)).await;
    consumer.send(Update::new("#slept").html(content.data.str_or("label", "done")))?;
    Ok(())
}

/// A plain function: runs on the blocking pool.
#[liveview_handler("blocking_work")]
fn blocking_work(consumer: &Consumer, content: Content) -> liveview::Result {
    std::thread::sleep(Duration::from_millis(20));
    let on_runtime_worker = tokio::runtime::Handle::try_current().is_ok()
        && std::thread::current()
            .name()
            .is_some_and(|n| n.contains("worker"));
    consumer.send(json!({
        "target": "#blocking",
        "html": content.form.str_or("text", ""),
        "on_worker": on_runtime_worker,
    }))?;
    Ok(())
}

#[liveview_handler("room_say")]
async fn room_say(consumer: &Consumer, content: Content) -> liveview::Result {
    let room = content.data.str_or("to", consumer.room()).to_owned();
    let text = liveview::escape(content.form.str_or("text", "")).into_owned();
    consumer
        .send_to_room(&room, Update::new("#room").html(text))
        .await?;
    Ok(())
}

#[liveview_handler("shout")]
async fn shout(consumer: &Consumer, content: Content) -> liveview::Result {
    let text = liveview::escape(content.form.str_or("text", "")).into_owned();
    consumer
        .broadcast(Update::new("#all").html(text).append())
        .await?;
    Ok(())
}

/// The background-thread example of Django LiveView's documentation:
/// broadcast from a plain thread, then remove the notification after a
/// delay.
#[liveview_handler("thread_notify")]
pub(crate) async fn thread_notify(consumer: &Consumer, content: Content) -> liveview::Result {
    let id = content.data.str_or("id", "1").to_owned();
    let remove_after =
        Duration::from_millis(content.data.i64("remove_after_ms").unwrap_or(5000) as u64);
    let consumer = consumer.clone();
    std::thread::spawn(move || {
        let html = format!(r#"<div id="notification-{id}">New update available!</div>"#);
        let _ = consumer.broadcast_blocking(Update::new("#notifications").html(html).append());
        std::thread::sleep(remove_after);
        let _ = consumer.broadcast_blocking(Update::new(format!("#notification-{id}")).remove());
    });
    Ok(())
}

/// Consumers kept past their call, by the key of the call that kept them.
static KEPT: std::sync::Mutex<Vec<(String, Consumer)>> = std::sync::Mutex::new(Vec::new());

/// Keeps a clone of its consumer under `data.key`, as a task that answers
/// later would, and answers `#kept`.
#[liveview_handler("keep_consumer")]
async fn keep_consumer(consumer: &Consumer, content: Content) -> liveview::Result {
    let key = content.data.str_or("key", "").to_owned();
    KEPT.lock().unwrap().push((key, consumer.clone()));
    consumer.send(Update::new("#kept"))?;
    Ok(())
}

/// Sends `#from-kept` with the consumer kept under `data.key`, then
/// `#from-call` with its own.
#[liveview_handler("send_kept")]
async fn send_kept(consumer: &Consumer, content: Content) -> liveview::Result {
    let key = content.data.str_or("key", "");
    let kept = KEPT
        .lock()
        .unwrap()
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, kept)| kept.clone())
        .ok_or_else(|| liveview::Error::msg("nothing kept"))?;
    kept.send(Update::new("#from-kept"))?;
    consumer.send(Update::new("#from-call"))?;
    Ok(())
}

#[derive(Debug, Deserialize)]
struct Signup {
    email: String,
    age: u8,
    newsletter: bool,
}

#[liveview_handler("signup")]
pub(crate) async fn signup(consumer: &Consumer, content: Content) -> liveview::Result {
    match content.form.deserialize::<Signup>() {
        Ok(signup) => consumer.send(json!({
            "target": "#signup",
            "html": format!("{} {} {}", signup.email, signup.age, signup.newsletter),
        }))?,
        Err(err) => consumer.send(json!({"target": "#signup-error", "html": err.to_string()}))?,
    }
    Ok(())
}

#[derive(Clone, Default)]
struct Counter(u32);

#[liveview_handler("count")]
async fn count(consumer: &Consumer, _content: Content) -> liveview::Result {
    let n = consumer.with(|c: &mut Counter| {
        c.0 += 1;
        c.0
    });
    consumer.send(Update::new("#count").html(n.to_string()))?;
    Ok(())
}

#[liveview_handler("whoami")]
async fn whoami(consumer: &Consumer, _content: Content) -> liveview::Result {
    let scope = consumer.scope();
    consumer.send(json!({
        "user": consumer.user().map(|u| u.name.clone()),
        "cookie": scope.cookie("session"),
        "query": scope.query("tab"),
        "path": scope.path(),
        "peer": scope.peer_addr().map(|a| a.ip().to_string()),
        "room": consumer.room(),
    }))?;
    Ok(())
}

#[liveview_handler("protected")]
async fn protected(consumer: &Consumer, _content: Content) -> liveview::Result {
    consumer.send(Update::new("#secret").html("the secret"))?;
    Ok(())
}

#[liveview_handler("flood_self")]
async fn flood_self(consumer: &Consumer, content: Content) -> liveview::Result {
    let n = content.data.i64("n").unwrap_or(10);
    for i in 0..n {
        if consumer
            .send(Update::new("#flood").html(i.to_string()))
            .is_err()
        {
            break;
        }
    }
    Ok(())
}

/// Application state shared through the builder.
#[derive(Clone)]
pub(crate) struct Greeting(pub &'static str);

#[liveview_handler("app_greeting")]
async fn app_greeting(consumer: &Consumer, _content: Content) -> liveview::Result {
    let greeting = consumer.app_state::<Greeting>().map_or("(none)", |g| g.0);
    consumer.send(Update::new("#greeting").html(greeting))?;
    Ok(())
}

/// Named gates that hold a handler until the test opens them, so a test
/// decides when a call finishes instead of guessing with a sleep, and can
/// tell whether a call was abandoned (its future dropped before it finished).
pub(crate) mod gate {
    use std::collections::HashMap;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock, Mutex};

    use tokio::sync::watch;

    /// One gate: closed until [`Gate::open`], counting the calls that
    /// waited on it and how each ended.
    #[derive(Debug)]
    pub(crate) struct Gate {
        open: watch::Sender<bool>,
        entered: AtomicUsize,
        finished: AtomicUsize,
        abandoned: AtomicUsize,
    }

    static GATES: LazyLock<Mutex<HashMap<String, Arc<Gate>>>> = LazyLock::new(Default::default);

    /// The gate called `name` (created closed on first use). Each test uses
    /// names of its own.
    pub(crate) fn gate(name: &str) -> Arc<Gate> {
        let mut gates = GATES.lock().unwrap();
        gates
            .entry(name.to_owned())
            .or_insert_with(|| {
                Arc::new(Gate {
                    open: watch::channel(false).0,
                    entered: AtomicUsize::new(0),
                    finished: AtomicUsize::new(0),
                    abandoned: AtomicUsize::new(0),
                })
            })
            .clone()
    }

    impl Gate {
        /// Let every waiting call (and any later one) through.
        pub(crate) fn open(&self) {
            self.open.send_replace(true);
        }

        /// Calls that reached the gate.
        pub(crate) fn entered(&self) -> usize {
            self.entered.load(Ordering::SeqCst)
        }

        /// Calls that went through the open gate and replied.
        pub(crate) fn finished(&self) -> usize {
            self.finished.load(Ordering::SeqCst)
        }

        /// Calls dropped while waiting: the runtime gave up on them.
        pub(crate) fn abandoned(&self) -> usize {
            self.abandoned.load(Ordering::SeqCst)
        }

        /// Wait until the gate is open.
        pub(crate) async fn pass(self: &Arc<Self>) -> Passage {
            self.entered.fetch_add(1, Ordering::SeqCst);
            let passage = Passage {
                gate: self.clone(),
                done: false,
            };
            let mut open = self.open.subscribe();
            // The sender lives in the gate, which the passage keeps alive.
            let _ = open.wait_for(|open| *open).await;
            passage
        }
    }

    /// A call on its way through a gate: counted as abandoned when dropped
    /// before [`Passage::finish`].
    pub(crate) struct Passage {
        gate: Arc<Gate>,
        done: bool,
    }

    impl Passage {
        pub(crate) fn finish(mut self) {
            self.done = true;
            self.gate.finished.fetch_add(1, Ordering::SeqCst);
        }
    }

    impl Drop for Passage {
        fn drop(&mut self) {
            if !self.done {
                self.gate.abandoned.fetch_add(1, Ordering::SeqCst);
            }
        }
    }
}

/// Waits at gate `data.gate` until the test opens it, then replies
/// `data.label` in `#gate`.
#[liveview_handler("wait_at_gate")]
async fn wait_at_gate(consumer: &Consumer, content: Content) -> liveview::Result {
    let gate = gate::gate(content.data.str_or("gate", ""));
    let passage = gate.pass().await;
    consumer.send(Update::new("#gate").html(content.data.str_or("label", "passed")))?;
    passage.finish();
    Ok(())
}

/// Opens gate `data.gate` and says so in `#opened`.
#[liveview_handler("open_gate")]
async fn open_gate(consumer: &Consumer, content: Content) -> liveview::Result {
    gate::gate(content.data.str_or("gate", "")).open();
    consumer.send(Update::new("#opened").html(content.data.str_or("gate", "")))?;
    Ok(())
}
