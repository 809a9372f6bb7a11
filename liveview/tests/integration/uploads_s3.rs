//! Upload storage in S3, against a real S3-compatible server: `moto_server`
//! (PyPI `moto[server]`, installed by scripts/test.sh), started by each
//! test on a free port and stopped when it ends.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use futures_util::TryStreamExt;
use liveview::upload::object_store::aws::AmazonS3Builder;
use liveview::upload::object_store::path::Path;
use liveview::upload::object_store::{ObjectStore, ObjectStoreExt};
use liveview::upload::{FileType, S3Storage, Upload, Uploads};

use crate::support::wait_until;
use crate::uploads::{CHUNK, announce, patch, png, request, save, send_all, start};

/// A moto S3 server of this test, killed when dropped.
struct Moto {
    child: Child,
    port: u16,
}

impl Moto {
    async fn start() -> Moto {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("moto_server")
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server runs (pip install 'moto[server]'; scripts/test.sh does it)");
        let moto = Moto { child, port };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(
                tokio::time::Instant::now() < deadline,
                "moto_server did not start"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        moto
    }

    /// A new bucket's name.
    async fn bucket(&self) -> String {
        let name = format!("uploads-{}", &liveview::template::room_uuid()[..12]);
        let made = request(
            std::net::SocketAddr::from(([127, 0, 0, 1], self.port)),
            "PUT",
            &format!("/{name}"),
            &[],
            b"",
        )
        .await;
        assert_eq!(made.status, 200, "bucket created: {}", made.body);
        name
    }

    /// A client of `bucket`.
    fn bucket_builder(&self, bucket: &str) -> AmazonS3Builder {
        AmazonS3Builder::new()
            .with_endpoint(format!("http://127.0.0.1:{}", self.port))
            .with_allow_http(true)
            .with_bucket_name(bucket)
            .with_region("us-east-1")
            .with_access_key_id("test")
            .with_secret_access_key("test")
    }

    /// The storage the server uses, under `app/`.
    fn storage(&self, bucket: &str) -> S3Storage {
        S3Storage::new(self.bucket_builder(bucket), "app").unwrap()
    }

    /// A client of our own, to look into the bucket.
    fn store(&self, bucket: &str) -> Arc<dyn ObjectStore> {
        self.storage(bucket).store().clone()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn objects(store: &dyn ObjectStore, prefix: &str) -> Vec<String> {
    let prefix = Path::from(prefix);
    let mut names: Vec<String> = store
        .list(Some(&prefix))
        .map_ok(|meta| meta.location.to_string())
        .try_collect()
        .await
        .unwrap();
    names.sort();
    names
}

fn uploads(storage: S3Storage) -> Uploads {
    Uploads::new().storage(storage).upload(
        Upload::new("photo")
            .max_file_size(4 * 1024 * 1024)
            .max_files(2)
            .accept(FileType::IMAGES),
    )
}

#[tokio::test]
async fn s3_storage_takes_chunks_resumes_and_persists() {
    let moto = Moto::start().await;
    let bucket = moto.bucket().await;
    let server = start(uploads(moto.storage(&bucket))).await;
    let mut client = server.connect("lobby").await.unwrap();
    let bytes = png(2 * CHUNK + CHUNK / 2);
    let answers = announce(&mut client, "photo", &[("cat.png", bytes.len() as u64)]).await;
    let url = answers[0]["url"].as_str().unwrap().to_owned();
    send_all(&server, &url, &bytes[..CHUNK], 0).await;
    let ours = moto.store(&bucket);
    assert_eq!(
        objects(ours.as_ref(), "app/.incomplete").await.len(),
        1,
        "one object per chunk"
    );
    // The acknowledged offset comes from the store.
    let head = request(server.addr(), "HEAD", &url, &[], b"").await;
    assert_eq!(head.offset(), Some(CHUNK as u64));
    let conflict = patch(&server, &url, 0, &bytes[..CHUNK]).await;
    assert_eq!(
        (conflict.status, conflict.offset()),
        (409, Some(CHUNK as u64))
    );
    send_all(&server, &url, &bytes, CHUNK).await;

    let saved = save(
        &mut client,
        "photo",
        &[answers[0]["token"].as_str().unwrap().to_owned()],
    )
    .await;
    let key = saved["saved"][0]["key"]
        .as_str()
        .unwrap_or_else(|| panic!("{saved}"));
    assert_eq!(saved["saved"][0]["mime"], "image/png");
    let stored = ours
        .get(&Path::from(format!("app/{key}")))
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap();
    assert_eq!(stored.as_ref(), bytes.as_slice());
    assert_eq!(
        objects(ours.as_ref(), "app/.incomplete").await,
        Vec::<String>::new()
    );
}

#[tokio::test]
async fn s3_refused_cancelled_and_expired_uploads_leave_nothing() {
    let moto = Moto::start().await;
    let bucket = moto.bucket().await;
    let server = start(uploads(moto.storage(&bucket)).expire_after(Duration::from_secs(1))).await;
    let ours = moto.store(&bucket);
    let mut client = server.connect("lobby").await.unwrap();
    let text = b"plain text named like a picture ".repeat(4000);
    let answers = announce(
        &mut client,
        "photo",
        &[
            ("notes.png", text.len() as u64),
            ("a.png", 3 * CHUNK as u64),
        ],
    )
    .await;
    let refused = patch(
        &server,
        answers[0]["url"].as_str().unwrap(),
        0,
        &text[..CHUNK],
    )
    .await;
    assert_eq!(refused.status, 415);
    let bytes = png(3 * CHUNK);
    let url = answers[1]["url"].as_str().unwrap().to_owned();
    send_all(&server, &url, &bytes[..2 * CHUNK], 0).await;
    assert_eq!(objects(ours.as_ref(), "app/.incomplete").await.len(), 2);
    // Expired after a second, then swept.
    let live = server.live().clone();
    let mut left = 2;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while left > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the expired upload stayed in the bucket"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        live.sweep_uploads().await.unwrap();
        left = objects(ours.as_ref(), "app/.incomplete").await.len();
    }
    wait_until("the upload is forgotten", || {
        live.upload_stats().unwrap().active == 0
    })
    .await;
    assert_eq!(
        patch(&server, &url, 2 * CHUNK as u64, &bytes[2 * CHUNK..])
            .await
            .status,
        410
    );
    // A cancelled one is removed at once.
    let answers = announce(&mut client, "photo", &[("b.png", 2 * CHUNK as u64)]).await;
    let url = answers[0]["url"].as_str().unwrap().to_owned();
    send_all(&server, &url, &bytes[..CHUNK], 0).await;
    assert_eq!(objects(ours.as_ref(), "app/.incomplete").await.len(), 1);
    assert_eq!(
        request(server.addr(), "DELETE", &url, &[], b"")
            .await
            .status,
        204
    );
    assert_eq!(
        objects(ours.as_ref(), "app/.incomplete").await,
        Vec::<String>::new()
    );
}
