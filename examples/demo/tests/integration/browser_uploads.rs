//! The photo wall in headless Chromium: upload and broadcast to a second
//! page, refusals (too big, not an image) with a message next to the file,
//! resume after every connection is cut at half the file, and cancel by
//! removing the file. Faults come from a TCP proxy between the browser and
//! the server that cuts or stalls the connections at a set byte count.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use liveview_testing::browser::{Browser, js_string};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use liveview::LiveView;

use crate::support::{TempDir, TestDemo, config};

type Result<T = (), E = Box<dyn std::error::Error>> = std::result::Result<T, E>;

static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn run<F, Fut>(name: &str, test: F)
where
    F: FnOnce(Browser) -> Fut,
    Fut: Future<Output = (Browser, Result)>,
{
    let _turn = ONE_AT_A_TIME.lock().await;
    let browser = Browser::builder()
        .window_size(1280, 800)
        .start()
        .await
        .expect("chromedriver and Chromium start (scripts/ensure-chromium.sh)");
    let (browser, result) = test(browser).await;
    let shot = browser.save_screenshot(&format!("demo-{name}")).await;
    if let Err(err) = result {
        panic!("{name} in the browser: {err}");
    }
    shot.expect("the screenshot is saved");
}

/// What the proxy does once `after` bytes went from browsers to the server.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// Close every connection open at that moment (new ones work).
    Cut,
    /// Stop forwarding what the browser sends on the connection that
    /// carried the byte (the others work).
    Stall,
}

/// A TCP proxy in front of the demo that injects one fault.
struct Proxy {
    addr: SocketAddr,
    upstream: Arc<AtomicU64>,
    fired: Arc<AtomicBool>,
}

/// The demo behind a proxy: the server allows the proxy's origin.
async fn demo_behind_proxy(dir: &TempDir) -> (TestDemo, TcpListener) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let origin = format!("http://{}", listener.local_addr().unwrap());
    let server =
        TestDemo::start_with(config(dir), LiveView::builder().allowed_origins([origin])).await;
    (server, listener)
}

impl Proxy {
    fn start(listener: TcpListener, target: SocketAddr, fault: Fault, after: u64) -> Proxy {
        let addr = listener.local_addr().unwrap();
        let upstream = Arc::new(AtomicU64::new(0));
        let fired = Arc::new(AtomicBool::new(false));
        // Incremented when the fault fires: connections from before it obey.
        let (generation, _) = watch::channel(0u64);
        let generation = Arc::new(generation);
        let (counter, flag) = (upstream.clone(), fired.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(target).await else {
                    continue;
                };
                let born = *generation.borrow();
                let changes = generation.subscribe();
                let (counter, flag, generation) =
                    (counter.clone(), flag.clone(), generation.clone());
                tokio::spawn(async move {
                    let (mut client_read, mut client_write) = client.into_split();
                    let (mut server_read, mut server_write) = server.into_split();
                    let mut down_changes = changes.clone();
                    let up = async move {
                        let mut changes = changes;
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            if *changes.borrow() != born {
                                return;
                            }
                            let n = tokio::select! {
                                read = client_read.read(&mut buf) => match read { Ok(0) | Err(_) => return, Ok(n) => n },
                                _ = changes.changed() => continue,
                            };
                            if server_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                            let total = counter.fetch_add(n as u64, Ordering::SeqCst) + n as u64;
                            if total >= after && !flag.swap(true, Ordering::SeqCst) {
                                match fault {
                                    Fault::Cut => generation.send_modify(|g| *g += 1),
                                    Fault::Stall => std::future::pending::<()>().await,
                                }
                            }
                        }
                    };
                    let down = async move {
                        let mut buf = vec![0u8; 16 * 1024];
                        loop {
                            let n = tokio::select! {
                                read = server_read.read(&mut buf) => match read { Ok(0) | Err(_) => return, Ok(n) => n },
                                _ = down_changes.changed(), if fault == Fault::Cut => {
                                    if *down_changes.borrow() != born { return; }
                                    continue;
                                }
                            };
                            if client_write.write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    };
                    // A cut ends both directions at once; otherwise each ends
                    // when its side closes.
                    tokio::select! {
                        _ = up => {}
                        _ = down => {}
                    }
                });
            }
        });
        Proxy {
            addr,
            upstream,
            fired,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }
}

/// A PNG of `side`×`side` pixels of noise (so it does not compress):
/// about 3 × side² bytes.
fn noise_png(dir: &Path, name: &str, side: u32) -> PathBuf {
    let mut seed: u32 = 0x9E37_79B9 ^ side;
    let image = image::RgbImage::from_fn(side, side, |_, _| {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let [r, g, b, _] = seed.to_le_bytes();
        image::Rgb([r, g, b])
    });
    let path = dir.join(name);
    image
        .save_with_format(&path, image::ImageFormat::Png)
        .unwrap();
    path
}

fn small_jpeg(dir: &Path, name: &str) -> PathBuf {
    let image = image::RgbImage::from_fn(320, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 128])
    });
    let path = dir.join(name);
    image
        .save_with_format(&path, image::ImageFormat::Jpeg)
        .unwrap();
    path
}

fn count(selector: &str) -> String {
    format!("document.querySelectorAll({}).length", js_string(selector))
}

/// The error shown in the row of the file named `name`.
fn row_error_is(name: &str, message: &str) -> String {
    format!(
        "Array.from(document.querySelectorAll('#photo-files .liveview-upload-file')).some((row) => \
         row.querySelector('.liveview-upload-name').textContent === {} && \
         row.querySelector('.liveview-upload-error').textContent === {})",
        js_string(name),
        js_string(message)
    )
}

async fn choose(page: &Browser, files: &[&Path]) -> Result {
    let paths: Vec<String> = files.iter().map(|p| p.display().to_string()).collect();
    Ok(page.type_text("#photo-input", &paths.join("\n")).await?)
}

fn incomplete(server: &TestDemo) -> usize {
    std::fs::read_dir(server.demo.wall().dir().join(".incomplete")).map_or(0, |d| d.count())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_uploads_photos_and_every_wall_shows_them() {
    let server = TestDemo::start().await;
    let files = TempDir::new();
    let png = noise_png(files.path(), "noise.png", 400);
    let jpeg = small_jpeg(files.path(), "gradient.jpg");
    let url = server.url("/uploads/");
    let live = server.live.clone();
    run("uploads-wall", |ada| async move {
        let result = async {
            ada.open(&url).await?;
            let bob = ada.new_session().await?;
            bob.open(&url).await?;
            choose(&ada, &[&png, &jpeg]).await?;
            ada.wait(&count("#photo-files .liveview-upload-file")).await?;
            ada.click("#photo-form button[type=submit]").await?;
            for page in [&ada, &bob] {
                page.wait(&format!("{} === 2", count("#photo-wall .photo img"))).await?;
                // The thumbnails are served and decode.
                page.wait("Array.from(document.querySelectorAll('#photo-wall img')).every((i) => i.complete && i.naturalWidth > 0)").await?;
            }
            ada.wait_for_text("#flash", "2 photos added to the wall.").await?;
            let captions = bob.texts("#photo-wall figcaption").await?;
            assert!(captions.contains(&"noise.png".to_owned()) && captions.contains(&"gradient.jpg".to_owned()), "{captions:?}");
            // The progress bar went to the end; the sent files left the list.
            ada.wait("document.querySelector('#photo-progress').value === document.querySelector('#photo-progress').max").await?;
            ada.wait(&format!("{} === 0", count("#photo-files .liveview-upload-file"))).await?;
            let size = std::fs::metadata(&png)?.len() + std::fs::metadata(&jpeg)?.len();
            assert_eq!(live.upload_stats().unwrap().bytes_received, size);
            bob.close().await?;
            Ok(())
        }
        .await;
        (ada, result)
    })
    .await;
    let photos = std::fs::read_dir(server.demo.wall().dir().join("photos"))
        .unwrap()
        .count();
    assert_eq!(photos, 2, "the originals are kept");
    assert_eq!(incomplete(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refuses_a_photo_too_big_before_sending_it() {
    let server = TestDemo::start().await;
    let files = TempDir::new();
    let big = files.path().join("huge.png");
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(11 * 1024 * 1024, 7);
    std::fs::write(&big, &bytes).unwrap();
    let url = server.url("/uploads/");
    let live = server.live.clone();
    run("uploads-too-big", |page| async move {
        let result = async {
            page.open(&url).await?;
            choose(&page, &[&big]).await?;
            page.click("#photo-form button[type=submit]").await?;
            page.wait(&row_error_is("huge.png", "File too large (at most 10 MB)"))
                .await?;
            assert_eq!(
                live.upload_stats().unwrap().bytes_received,
                0,
                "not a byte was sent"
            );
            assert_eq!(page.eval(&count("#photo-wall .photo")).await?, 0);
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
    assert_eq!(incomplete(&server), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_refuses_a_text_file_named_png() {
    let server = TestDemo::start().await;
    let files = TempDir::new();
    let text = files.path().join("notes.png");
    std::fs::write(
        &text,
        "Not a picture, whatever the name says.\n".repeat(500),
    )
    .unwrap();
    let url = server.url("/uploads/");
    run("uploads-not-an-image", |page| async move {
        let result = async {
            page.open(&url).await?;
            choose(&page, &[&text]).await?;
            page.click("#photo-form button[type=submit]").await?;
            page.wait(&row_error_is("notes.png", "File type not accepted"))
                .await?;
            assert_eq!(page.eval(&count("#photo-wall .photo")).await?, 0);
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
    assert_eq!(incomplete(&server), 0, "nothing of a refused file remains");
    assert_eq!(server.live.upload_stats().unwrap().active, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_upload_resumes_after_the_connection_drops_at_half() {
    let files = TempDir::new();
    let (server, listener) = demo_behind_proxy(&files).await;
    let png = noise_png(files.path(), "big.png", 1100);
    let size = std::fs::metadata(&png).unwrap().len();
    // Every connection open when half the file went through is cut.
    let proxy = Proxy::start(listener, server.addr, Fault::Cut, size / 2);
    let url = proxy.url("/uploads/");
    let live = server.live.clone();
    let fired = proxy.fired.clone();
    run("uploads-resume", |page| async move {
        let result = async {
            page.open(&url).await?;
            choose(&page, &[&png]).await?;
            page.click("#photo-form button[type=submit]").await?;
            page.wait_for(
                &format!("{} === 1", count("#photo-wall .photo img")),
                Duration::from_secs(60),
            )
            .await?;
            assert!(fired.load(Ordering::SeqCst), "the connections were cut");
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
    let received = live.upload_stats().unwrap().bytes_received;
    assert!(
        received >= size,
        "every byte arrived ({received} of {size})"
    );
    assert!(
        (received as f64) < 1.1 * size as f64,
        "resent too much: {received} bytes for a file of {size}"
    );
    assert!(proxy.upstream.load(Ordering::SeqCst) > size / 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browser_removing_a_file_cancels_its_transfer() {
    let files = TempDir::new();
    let (server, listener) = demo_behind_proxy(&files).await;
    let png = noise_png(files.path(), "big.png", 1100);
    let size = std::fs::metadata(&png).unwrap().len();
    // The transfer hangs at a third of the file, until the file is removed.
    let proxy = Proxy::start(listener, server.addr, Fault::Stall, size / 3);
    let url = proxy.url("/uploads/");
    let live = server.live.clone();
    let fired = proxy.fired.clone();
    let dir = server.demo.wall().dir().join(".incomplete");
    run("uploads-cancel", |page| async move {
        let result = async {
            page.open(&url).await?;
            choose(&page, &[&png]).await?;
            page.click("#photo-form button[type=submit]").await?;
            page.wait("document.querySelector('#photo-files .liveview-upload-file').dataset.state === 'uploading'").await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
            while !fired.load(Ordering::SeqCst) {
                assert!(tokio::time::Instant::now() < deadline, "the transfer did not reach a third");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(std::fs::read_dir(&dir)?.count(), 1, "part of the file arrived");
            page.click("#photo-files .liveview-upload-remove").await?;
            page.wait(&format!("{} === 0", count("#photo-files .liveview-upload-file"))).await?;
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            while live.upload_stats().unwrap().active != 0 || std::fs::read_dir(&dir)?.count() != 0 {
                assert!(tokio::time::Instant::now() < deadline, "the server still holds the upload");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            assert_eq!(page.eval(&count("#photo-wall .photo")).await?, 0);
            assert_eq!(page.eval("document.querySelector('#photo-input').files.length").await?, 0);
            Ok(())
        }
        .await;
        (page, result)
    })
    .await;
}
