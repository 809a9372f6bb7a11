//! An upload in Chromium cancelled by leaving its page: the server frees
//! the upload (its entry, counted against the connection's and the
//! address's quotas, and its file in the storage's temporary area) and
//! nothing is persisted.
//!
//! The server holds the second chunk of the transfer until the test lets
//! it go, so the page is left while the upload is surely in progress: its
//! first chunk stored, the next one on its way.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{Html, Response};
use axum::routing::get;
use liveview::LiveView;
use liveview::upload::{FileType, LocalStorage, ROUTE_PREFIX, Upload, Uploads};
use liveview_testing::browser::Browser;
use tokio::sync::{Semaphore, mpsc};

use super::{TestResult, page_html};
use crate::support::wait_until;
use crate::uploads::{CHUNK, png, scratch};

/// Longest wait for the browser's requests to reach the server.
const LIMIT: Duration = Duration::from_secs(15);

/// The form calls `upload_save` (tests/integration/uploads.rs), which
/// persists what it gets under `saved/`.
const BODY: &str = r##"
<form id="photo-form" data-liveview-function="upload_save" data-action="submit->page#run">
  <input id="photo-input" type="file" data-liveview-upload="photo">
  <ul id="photo-files" data-liveview-upload-list="photo"></ul>
  <button type="submit">Send</button>
</form>
"##;

/// Holds every chunk after the first until released, and counts the
/// cancellations it let through.
struct Gate {
    chunks: AtomicUsize,
    deletes: AtomicUsize,
    release: Semaphore,
    /// A chunk is being held.
    held: mpsc::UnboundedSender<()>,
    /// A held chunk's request ended: answered, or dropped with its
    /// connection.
    ended: mpsc::UnboundedSender<()>,
}

/// Reports on drop that a held chunk's request ended, however it ended.
struct Ended(mpsc::UnboundedSender<()>);

impl Drop for Ended {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

async fn gate(State(gate): State<Arc<Gate>>, request: Request, next: Next) -> Response {
    if request.uri().path().starts_with(ROUTE_PREFIX) {
        if request.method() == Method::DELETE {
            gate.deletes.fetch_add(1, Ordering::SeqCst);
        } else if request.method() == Method::PATCH
            && gate.chunks.fetch_add(1, Ordering::SeqCst) > 0
        {
            let _ended = Ended(gate.ended.clone());
            let _ = gate.held.send(());
            let _permit = gate.release.acquire().await;
            return next.run(request).await;
        }
    }
    next.run(request).await
}

/// Every file under `dir`, as paths relative to it.
fn files_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(at) = todo.pop() {
        for entry in std::fs::read_dir(&at).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                todo.push(path);
            } else if let Ok(relative) = path.strip_prefix(dir) {
                found.push(relative.display().to_string());
            }
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaving_the_page_mid_upload_frees_the_upload_on_the_server() {
    let name = "leaving_the_page_mid_upload_frees_the_upload_on_the_server";
    let dir = scratch();
    let file = dir.join("outside-storage.png");
    std::fs::write(&file, png(4 * CHUNK)).unwrap();
    let storage = dir.join("storage");
    let incomplete = storage.join(".incomplete");
    let live = LiveView::builder()
        .uploads(
            Uploads::new()
                .storage(LocalStorage::new(&storage).unwrap())
                .upload(
                    Upload::new("photo")
                        .accept(FileType::IMAGES)
                        .max_file_size(1 << 20),
                ),
        )
        .build()
        .expect("the app builds");
    let (held_tx, mut held) = mpsc::unbounded_channel();
    let (ended_tx, mut ended) = mpsc::unbounded_channel();
    let gate_state = Arc::new(Gate {
        chunks: AtomicUsize::new(0),
        deletes: AtomicUsize::new(0),
        release: Semaphore::new(0),
        held: held_tx,
        ended: ended_tx,
    });
    let page = page_html(BODY, None).replace(
        "</body>",
        &format!("{}\n</body>", liveview::upload::script_tag()),
    );
    let router = Router::new()
        .route("/", get(move || async move { Html(page) }))
        .route(
            "/elsewhere",
            get(|| async { Html("<!doctype html><p>Elsewhere</p>") }),
        )
        .merge(live.router())
        .layer(from_fn_with_state(gate_state.clone(), gate));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(liveview::serve_until(
        listener,
        router,
        live.clone(),
        async move {
            let _ = stopped.await;
        },
    ));

    let browser = Browser::start()
        .await
        .expect("chromedriver and Chromium start");
    let result: TestResult = async {
        browser.open(&format!("http://{addr}/")).await?;
        browser
            .type_text("#photo-input", &file.display().to_string())
            .await?;
        browser.click("#photo-form button[type=submit]").await?;
        // The first chunk is stored and the second is on its way.
        tokio::time::timeout(LIMIT, held.recv())
            .await
            .expect("the second chunk reaches the server in time")
            .expect("the gate is up");
        let stats = live.upload_stats().expect("uploads are on");
        assert_eq!(stats.active, 1);
        assert_eq!(stats.bytes_received, CHUNK as u64);
        assert_eq!(
            files_under(&incomplete).len(),
            1,
            "the first chunk is stored"
        );
        let state = "document.querySelector('#photo-files .liveview-upload-file').dataset.state";
        assert_eq!(browser.eval(state).await?, "uploading");

        // Loaded when it returns: the upload's page is gone.
        browser.goto(&format!("http://{addr}/elsewhere")).await?;
        wait_until("the server frees the upload", || {
            live.upload_stats().is_some_and(|s| s.active == 0)
                && files_under(&incomplete).is_empty()
        })
        .await;
        assert_eq!(
            gate_state.deletes.load(Ordering::SeqCst),
            1,
            "the page cancelled its upload"
        );

        // The chunk held meanwhile stores nothing once let go.
        gate_state.release.add_permits(1);
        tokio::time::timeout(LIMIT, ended.recv())
            .await
            .expect("the held chunk's request ends in time")
            .expect("the gate is up");
        assert_eq!(
            files_under(&storage),
            Vec::<String>::new(),
            "nothing persisted"
        );
        assert_eq!(live.upload_stats().unwrap().active, 0);
        Ok(())
    }
    .await;
    let shot = browser.save_screenshot(name).await;
    let _ = stop.send(());
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(err) = result {
        panic!("{name} failed: {err}");
    }
    shot.expect("the screenshot is saved");
}
