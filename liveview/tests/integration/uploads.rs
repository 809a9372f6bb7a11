//! Uploads over real sockets: the announcement on the WebSocket, the chunk
//! route over HTTP (offsets, tokens, limits, refusals, cancel, expiry,
//! resume across a restart), and the handler that takes the files.

use std::path::{Path, PathBuf};
use std::time::Duration;

use liveview::testing::{TestServer, WsClient};
use liveview::upload::{FileType, LocalStorage, Upload, Uploads};
use liveview::{Consumer, Content, LiveView, Update, liveview_handler};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::support::{next, wait_until};

pub(crate) const CHUNK: usize = 64 * 1024;

/// Takes the files of upload `photo` (or `doc`), persists each under
/// `saved/`, and answers what it got, or the error.
#[liveview_handler("upload_save")]
async fn upload_save(consumer: &Consumer, content: Content) -> liveview::Result {
    let upload = content.data.str_or("upload", "photo").to_owned();
    match consumer.uploads(&content, &upload).await {
        Ok(files) => {
            let mut saved = Vec::new();
            for file in files {
                let key = format!(
                    "saved/{}.{}",
                    liveview::template::room_uuid(),
                    file.file_type().map_or("bin", |t| t.extension())
                );
                saved.push(json!({"key": key, "name": file.name(), "size": file.size(), "mime": file.mime()}));
                file.persist(&key).await?;
            }
            consumer.send(Update::empty().extra("saved", saved))?;
        }
        Err(err) => consumer.send(Update::empty().extra("refused", err.to_string()))?,
    }
    Ok(())
}

/// A fresh directory for one test's storage.
pub(crate) fn scratch() -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "liveview-upload-test-{}",
        liveview::template::room_uuid()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A PNG-looking file of `len` bytes (the signature, then a pattern).
pub(crate) fn png(len: usize) -> Vec<u8> {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.extend((0..len.saturating_sub(8)).map(|i| (i % 251) as u8));
    bytes.truncate(len);
    bytes
}

fn photos(dir: &Path) -> Uploads {
    Uploads::new()
        .storage(LocalStorage::new(dir).unwrap())
        .upload(
            Upload::new("photo")
                .max_file_size(1024 * 1024)
                .max_files(3)
                .accept(FileType::IMAGES),
        )
        .upload(Upload::new("doc"))
}

pub(crate) async fn start(uploads: Uploads) -> TestServer {
    TestServer::start(LiveView::builder().uploads(uploads), axum::Router::new())
        .await
        .expect("the test server starts")
}

/// Announce `files` (name, size) for `upload`; the answer per file.
pub(crate) async fn announce(
    client: &mut WsClient,
    upload: &str,
    files: &[(&str, u64)],
) -> Vec<Value> {
    let files: Vec<Value> = files
        .iter()
        .map(|(name, size)| json!({"name": name, "size": size, "type": "image/png"}))
        .collect();
    client
        .send_json(&json!({"function": "liveview_upload", "data": {"upload": upload, "id": "a1", "files": files}}))
        .await
        .unwrap();
    let frame = next(client).await;
    assert_eq!(frame["upload"]["id"], "a1", "{frame}");
    assert_eq!(frame["upload"]["chunk"], CHUNK);
    frame["upload"]["files"].as_array().unwrap().clone()
}

pub(crate) struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn offset(&self) -> Option<u64> {
        self.header("upload-offset").and_then(|v| v.parse().ok())
    }
}

/// One HTTP/1.1 request over a fresh socket.
pub(crate) async fn request(
    addr: std::net::SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> Answer {
    let headers: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (status, headers, body) =
        crate::support::http_request(addr, method, path, &headers, body).await;
    Answer {
        status,
        headers,
        body,
    }
}

pub(crate) async fn patch(server: &TestServer, url: &str, offset: u64, chunk: &[u8]) -> Answer {
    request(
        server.addr(),
        "PATCH",
        url,
        &[("Upload-Offset", offset.to_string())],
        chunk,
    )
    .await
}

/// Send `bytes` from `from` in chunks; the final offset.
pub(crate) async fn send_all(server: &TestServer, url: &str, bytes: &[u8], from: usize) -> u64 {
    let mut offset = from;
    while offset < bytes.len() {
        let end = (offset + CHUNK).min(bytes.len());
        let answer = patch(server, url, offset as u64, &bytes[offset..end]).await;
        assert_eq!(answer.status, 204, "chunk at {offset}: {}", answer.body);
        assert_eq!(answer.offset(), Some(end as u64));
        offset = end;
    }
    offset as u64
}

fn url_of(answer: &Value) -> String {
    answer["url"]
        .as_str()
        .unwrap_or_else(|| panic!("not accepted: {answer}"))
        .to_owned()
}

fn token_of(answer: &Value) -> String {
    answer["token"].as_str().unwrap().to_owned()
}

/// Files in progress in a local storage.
pub(crate) fn incomplete(dir: &Path) -> usize {
    std::fs::read_dir(dir.join(".incomplete")).map_or(0, |d| d.count())
}

/// Call `upload_save` with these tokens; its answer frame.
pub(crate) async fn save(client: &mut WsClient, upload: &str, tokens: &[String]) -> Value {
    client
        .send_json(&json!({"function": "upload_save", "form": {upload: tokens}, "data": {"upload": upload}}))
        .await
        .unwrap();
    next(client).await
}

#[tokio::test]
async fn announcements_over_the_limits_are_refused_before_any_byte() {
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let answers = announce(
        &mut client,
        "photo",
        &[
            ("a.png", 1000),
            ("big.png", 2 * 1024 * 1024),
            ("b.png", 10),
            ("c.png", 10),
            ("empty.png", 0),
        ],
    )
    .await;
    assert!(answers[0]["token"].is_string(), "{answers:?}");
    assert_eq!(answers[1]["error"], "File too large (at most 1 MB)");
    assert!(answers[2]["token"].is_string());
    assert_eq!(answers[3]["error"], "Too many files (at most 3)");
    assert_eq!(answers[4]["error"], "Too many files (at most 3)");
    let unknown = announce(&mut client, "video", &[("v.mp4", 10)]).await;
    assert_eq!(unknown[0]["error"], "Uploads are not accepted here");
    assert_eq!(incomplete(&dir), 0, "nothing is stored on announcement");
    assert_eq!(server.live().upload_stats().unwrap().bytes_received, 0);
}

#[tokio::test]
async fn chunks_go_at_the_acknowledged_offset_and_the_handler_gets_the_file() {
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(3 * CHUNK + 100);
    let answers = announce(&mut client, "photo", &[("cat.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);

    let head = request(server.addr(), "HEAD", &url, &[], b"").await;
    assert_eq!((head.status, head.offset()), (204, Some(0)));
    assert_eq!(
        head.header("upload-length"),
        Some(bytes.len().to_string().as_str())
    );

    let first = patch(&server, &url, 0, &bytes[..CHUNK]).await;
    assert_eq!((first.status, first.offset()), (204, Some(CHUNK as u64)));
    // The same chunk again (its answer was lost): a conflict that says where to go on.
    let again = patch(&server, &url, 0, &bytes[..CHUNK]).await;
    assert_eq!((again.status, again.offset()), (409, Some(CHUNK as u64)));
    // More than a chunk at once is refused, and nothing of it is kept.
    let too_big = patch(&server, &url, CHUNK as u64, &bytes[CHUNK..3 * CHUNK]).await;
    assert_eq!(too_big.status, 413);
    let head = request(server.addr(), "HEAD", &url, &[], b"").await;
    assert_eq!(head.offset(), Some(CHUNK as u64));

    // The handler refuses what is not complete yet.
    let early = save(&mut client, "photo", &[token_of(&answers[0])]).await;
    assert_eq!(early["refused"], "the upload is incomplete");

    assert_eq!(
        send_all(&server, &url, &bytes, CHUNK).await,
        bytes.len() as u64
    );
    // Past the end nothing more is taken.
    let past = patch(&server, &url, bytes.len() as u64, b"more").await;
    assert_eq!(
        (past.status, past.offset()),
        (413, Some(bytes.len() as u64))
    );

    let saved = save(&mut client, "photo", &[token_of(&answers[0])]).await;
    let file = &saved["saved"][0];
    assert_eq!(file["name"], "cat.png");
    assert_eq!(file["mime"], "image/png");
    assert_eq!(file["size"], bytes.len());
    let key = file["key"].as_str().unwrap();
    assert_eq!(std::fs::read(dir.join(key)).unwrap(), bytes);
    assert_eq!(incomplete(&dir), 0);
    assert_eq!(
        server.live().upload_stats().unwrap().bytes_received,
        bytes.len() as u64
    );

    // A file is handed out once; its token is spent.
    let twice = save(&mut client, "photo", &[token_of(&answers[0])]).await;
    assert_eq!(
        twice["refused"],
        "the upload was already taken, cancelled or refused"
    );
    let after = patch(&server, &url, 0, &bytes[..CHUNK]).await;
    assert_eq!(after.status, 410);
}

#[tokio::test]
async fn a_first_chunk_of_another_type_is_refused_and_nothing_is_kept() {
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let text = b"This is plain text, whatever its name says.".repeat(100);
    let answers = announce(&mut client, "photo", &[("notes.png", text.len() as u64)]).await;
    let url = url_of(&answers[0]);
    let refused = patch(&server, &url, 0, &text[..CHUNK.min(text.len())]).await;
    assert_eq!(refused.status, 415);
    assert!(
        refused.body.contains("File type not accepted"),
        "{}",
        refused.body
    );
    assert_eq!(incomplete(&dir), 0);
    assert_eq!(
        request(server.addr(), "HEAD", &url, &[], b"").await.status,
        410
    );
    assert_eq!(
        patch(&server, &url, 0, &png(100)).await.status,
        410,
        "a refused token cannot start again"
    );
    // An upload that accepts any type takes the same text.
    let doc = announce(&mut client, "doc", &[("notes.txt", text.len() as u64)]).await;
    send_all(&server, &url_of(&doc[0]), &text, 0).await;
    let saved = save(&mut client, "doc", &[token_of(&doc[0])]).await;
    assert_eq!(saved["saved"][0]["mime"], "application/octet-stream");
}

#[tokio::test]
async fn tokens_are_signed_and_bound_to_their_room_and_upload() {
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(500);
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let token = token_of(&answers[0]);
    // A changed token is unknown.
    let (payload, signature) = token.split_once('.').unwrap();
    let forged = format!("{}x.{signature}", payload);
    assert_eq!(
        patch(&server, &format!("/liveview/upload/{forged}"), 0, &bytes)
            .await
            .status,
        404
    );
    assert_eq!(
        request(server.addr(), "HEAD", "/liveview/upload/nonsense", &[], b"")
            .await
            .status,
        404
    );
    send_all(&server, &url_of(&answers[0]), &bytes, 0).await;
    // Another room cannot take it, nor another upload name.
    let mut other = server.connect("elsewhere").await.unwrap();
    assert_eq!(
        save(&mut other, "photo", std::slice::from_ref(&token)).await["refused"],
        "invalid upload token (not ours, or for another room or upload)"
    );
    assert_eq!(
        save(&mut client, "doc", std::slice::from_ref(&token)).await["refused"],
        "invalid upload token (not ours, or for another room or upload)"
    );
    // The page's own room can.
    assert_eq!(
        save(&mut client, "photo", &[token]).await["saved"][0]["size"],
        500
    );
}

#[tokio::test]
async fn quotas_bound_uploads_per_connection_and_per_address() {
    let dir = scratch();
    let uploads = photos(&dir)
        .max_uploads_per_connection(2)
        .max_bytes_per_address(3000);
    let server = start(uploads).await;
    let mut first = server.connect("lobby").await.unwrap();
    let answers = announce(
        &mut first,
        "photo",
        &[("a.png", 1000), ("b.png", 1000), ("c.png", 10)],
    )
    .await;
    assert!(answers[0]["token"].is_string() && answers[1]["token"].is_string());
    assert_eq!(answers[2]["error"], "Too many uploads at once");
    // A second connection from the same address shares the address's bytes.
    let mut second = server.connect("lobby").await.unwrap();
    let answers = announce(&mut second, "photo", &[("d.png", 900), ("e.png", 200)]).await;
    assert!(answers[0]["token"].is_string(), "{answers:?}");
    assert_eq!(answers[1]["error"], "Upload quota exceeded");
    // Cancelling frees the quota.
    let cancelled = request(server.addr(), "DELETE", &url_of(&answers[0]), &[], b"").await;
    assert_eq!(cancelled.status, 204);
    let answers = announce(&mut second, "photo", &[("e.png", 200)]).await;
    assert!(answers[0]["token"].is_string(), "{answers:?}");
}

#[tokio::test]
async fn cancel_removes_what_arrived_and_ends_the_upload() {
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(2 * CHUNK);
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);
    assert_eq!(patch(&server, &url, 0, &bytes[..CHUNK]).await.status, 204);
    assert_eq!(incomplete(&dir), 1);
    assert_eq!(
        request(server.addr(), "DELETE", &url, &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(incomplete(&dir), 0);
    assert_eq!(server.live().upload_stats().unwrap().active, 0);
    assert_eq!(
        patch(&server, &url, CHUNK as u64, &bytes[CHUNK..])
            .await
            .status,
        410
    );
}

#[tokio::test]
async fn unfinished_uploads_expire_and_are_removed() {
    let dir = scratch();
    let server = start(photos(&dir).expire_after(Duration::from_secs(1))).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(2 * CHUNK);
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);
    assert_eq!(patch(&server, &url, 0, &bytes[..CHUNK]).await.status, 204);
    assert_eq!(incomplete(&dir), 1);
    // The sweeper (every 250 ms with this lifetime) removes it once expired.
    wait_until("the expired upload is removed", || {
        incomplete(&dir) == 0 && server.live().upload_stats().unwrap().active == 0
    })
    .await;
    let late = patch(&server, &url, CHUNK as u64, &bytes[CHUNK..]).await;
    assert_eq!(late.status, 410);
    assert!(late.body.contains("Upload expired"));
}

#[tokio::test]
async fn an_upload_resumes_after_a_server_restart() {
    let dir = scratch();
    let secret = b"an upload secret of at least 32 bytes!";
    let server = start(photos(&dir).secret(secret)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(4 * CHUNK + 7);
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);
    send_all(&server, &url, &bytes[..2 * CHUNK], 0).await;
    let addr = server.addr();
    server.kill();

    let server = TestServer::start_on(
        LiveView::builder().uploads(photos(&dir).secret(secret)),
        axum::Router::new(),
        addr,
    )
    .await
    .unwrap();
    let head = request(server.addr(), "HEAD", &url, &[], b"").await;
    assert_eq!((head.status, head.offset()), (204, Some(2 * CHUNK as u64)));
    send_all(&server, &url, &bytes, 2 * CHUNK).await;
    let received = server.live().upload_stats().unwrap().bytes_received;
    assert_eq!(
        received,
        (bytes.len() - 2 * CHUNK) as u64,
        "nothing is sent twice"
    );
    let mut client = server.connect("lobby").await.unwrap();
    let saved = save(&mut client, "photo", &[token_of(&answers[0])]).await;
    let key = saved["saved"][0]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{saved}"));
    assert_eq!(std::fs::read(dir.join(key)).unwrap(), bytes);
}

/// A chunk request whose body stops after `sent` of `announced` bytes.
async fn stalled_chunk(
    server: &TestServer,
    url: &str,
    announced: usize,
    sent: &[u8],
) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(server.addr()).await.unwrap();
    let head = format!(
        "PATCH {url} HTTP/1.1\r\nHost: {}\r\nUpload-Offset: 0\r\nContent-Length: {announced}\r\n\r\n",
        server.addr()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(sent).await.unwrap();
    stream
}

#[tokio::test]
async fn a_stalled_chunk_is_cut_off_and_does_not_hold_up_a_cancel() {
    let dir = scratch();
    let server = start(photos(&dir).chunk_timeout(Duration::from_millis(300))).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(CHUNK);
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);
    let mut stalled = stalled_chunk(&server, &url, CHUNK, &bytes[..100]).await;
    let mut raw = Vec::new();
    stalled.read_to_end(&mut raw).await.unwrap();
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("upload-offset: 0"),
        "{text}"
    );
    assert_eq!(incomplete(&dir), 0, "nothing of a cut-off chunk is kept");

    // With a long timeout, a cancel is answered while the chunk still hangs.
    let dir = scratch();
    let server = start(photos(&dir)).await;
    let mut client = server.connect("lobby").await.unwrap();
    let answers = announce(&mut client, "photo", &[("a.png", bytes.len() as u64)]).await;
    let url = url_of(&answers[0]);
    let stalled = stalled_chunk(&server, &url, CHUNK, &bytes[..100]).await;
    wait_until("the chunk is being received", || {
        server.live().upload_stats().unwrap().receiving == 1
    })
    .await;
    assert_eq!(
        request(server.addr(), "DELETE", &url, &[], b"")
            .await
            .status,
        204
    );
    let mut probe = [0u8; 1];
    assert!(
        matches!(stalled.try_read(&mut probe), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        "the stalled chunk is still unanswered"
    );
    assert_eq!(server.live().upload_stats().unwrap().active, 0);
    assert_eq!(patch(&server, &url, 0, &bytes).await.status, 410);
}

#[tokio::test]
async fn progress_callbacks_reach_the_uploading_page_room() {
    let dir = scratch();
    let uploads = photos(&dir).upload(Upload::new("video").on_progress(|p| {
        Some(Update::new("#video-progress").html(format!("{} {}/{}", p.name, p.received, p.size)))
    }));
    let server = start(uploads).await;
    let mut uploader = server.connect("studio").await.unwrap();
    let mut watcher = server.connect("studio").await.unwrap();
    let bytes = png(CHUNK + 10);
    let answers = announce(&mut uploader, "video", &[("clip.mp4", bytes.len() as u64)]).await;
    send_all(&server, &url_of(&answers[0]), &bytes, 0).await;
    for expected in [
        format!("clip.mp4 {CHUNK}/{}", bytes.len()),
        format!("clip.mp4 {0}/{0}", bytes.len()),
    ] {
        let frame = next(&mut watcher).await;
        assert_eq!(frame["target"], "#video-progress", "{frame}");
        assert_eq!(frame["html"], expected);
    }
}
