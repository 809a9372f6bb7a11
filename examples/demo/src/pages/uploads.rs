//! The photo wall: pictures uploaded by any visitor appear on every open
//! `/uploads/` page.
//!
//! - The form's file input is the library's upload `photo`: PNG, JPEG, GIF
//!   or WebP (recognised by content, not by name), up to 10 MB each, ten
//!   at a time. The upload add-on shows a row per file with its progress;
//!   a file that is too big or not an image is refused with a message in
//!   its row, before (size) or as soon as (content) its bytes are sent.
//! - When the files arrived, `uploads_save` takes them, makes a thumbnail
//!   of each with the `image` crate (on the blocking pool), moves the
//!   original into the storage (`photos/ID.EXT`) and appends the thumbnail
//!   to the wall of every page in the room [`ROOM`].
//! - Thumbnails are served from `/uploads/thumbs/ID.jpg`; the wall keeps
//!   the last [`WALL_SIZE`] photos in memory.
//!
//! Files live next to the database (`demo.uploads/` beside
//! `demo.sqlite3`), in progress under `.incomplete/`.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path as UrlPath, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use liveview::upload::{FileType, LocalStorage, Upload, UploadedFile, Uploads};
use liveview::{Consumer, Content, Update, liveview_handler};
use minijinja::context;
use minijinja::value::Serde;
use serde::Serialize;

use super::{FlashKind, Visitor, flash};
use crate::Demo;

/// The room of every photo wall page.
pub const ROOM: &str = "uploads";

/// The largest photo accepted.
pub const MAX_PHOTO_BYTES: u64 = 10 * 1024 * 1024;

/// How many photos the wall keeps.
pub const WALL_SIZE: usize = 60;

/// The longest side of a thumbnail, in pixels.
const THUMB: u32 = 240;

/// One photo on the wall.
#[derive(Debug, Clone, Serialize)]
pub struct Photo {
    /// The server's id of the photo (32 hex digits).
    pub id: String,
    /// The file name the visitor's browser gave (shown escaped).
    pub name: String,
    /// The thumbnail's size.
    pub width: u32,
    /// The thumbnail's height.
    pub height: u32,
}

/// The wall: the newest photos, and where files go.
#[derive(Debug)]
pub struct Wall {
    dir: PathBuf,
    storage: LocalStorage,
    photos: Mutex<VecDeque<Photo>>,
}

impl Wall {
    /// A wall whose files live in `dir` (created if missing).
    pub fn open(dir: impl Into<PathBuf>) -> std::io::Result<Arc<Self>> {
        let dir = dir.into();
        let storage = LocalStorage::new(&dir)?;
        std::fs::create_dir_all(dir.join("thumbs"))?;
        Ok(Arc::new(Self {
            dir,
            storage,
            photos: Mutex::default(),
        }))
    }

    /// Where uploads and thumbnails are stored.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn thumb(&self, id: &str) -> PathBuf {
        self.dir.join("thumbs").join(format!("{id}.jpg"))
    }

    /// The photos, oldest first.
    pub fn photos(&self) -> Vec<Photo> {
        self.lock().iter().cloned().collect()
    }

    fn add(&self, photo: Photo) {
        let mut photos = self.lock();
        photos.push_back(photo);
        while photos.len() > WALL_SIZE {
            photos.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Photo>> {
        self.photos.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The upload rules of the wall, with its storage; tokens are signed with
/// a key made from `secret` (the session secret) when there is one, so
/// uploads resume across restarts.
pub fn uploads(wall: &Wall, secret: Option<&[u8]>) -> Uploads {
    let uploads = Uploads::new().storage(wall.storage.clone()).upload(
        Upload::new("photo")
            .max_file_size(MAX_PHOTO_BYTES)
            .max_files(10)
            .accept(FileType::IMAGES),
    );
    match secret {
        Some(secret) => uploads.secret(&[b"demo uploads:".as_slice(), secret].concat()),
        None => uploads,
    }
}

/// `GET /uploads/` and the thumbnails.
pub fn routes() -> Router<Demo> {
    Router::new()
        .route("/uploads/", get(page))
        .route("/uploads/thumbs/{file}", get(thumbnail))
}

async fn page(State(demo): State<Demo>, visitor: Visitor) -> Response {
    super::page(
        &demo,
        &visitor,
        "uploads/page.html",
        context! {
            nav => "uploads",
            room => ROOM,
            photos => Serde(demo.wall().photos()),
            max_mb => MAX_PHOTO_BYTES / (1024 * 1024),
        },
    )
}

async fn thumbnail(State(demo): State<Demo>, UrlPath(file): UrlPath<String>) -> Response {
    let Some(id) = file.strip_suffix(".jpg").filter(|id| is_id(id)) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    match tokio::fs::read(demo.wall().thumb(id)).await {
        Ok(bytes) => (
            [
                (header::CONTENT_TYPE, "image/jpeg"),
                (header::CACHE_CONTROL, "public, max-age=31536000, immutable"),
            ],
            bytes,
        )
            .into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}

fn is_id(id: &str) -> bool {
    id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Take the uploaded photos, make their thumbnails, keep the originals and
/// show them on every wall.
#[liveview_handler("uploads_save")]
async fn save(consumer: &Consumer, content: Content) -> liveview::Result {
    let demo = Demo::of(consumer)?;
    let files = consumer.uploads(&content, "photo").await?;
    let mut added = 0;
    for file in files {
        match add_photo(demo, file).await {
            Ok(photo) => {
                let html = demo
                    .templates()
                    .render("uploads/photo.html", context! { photo => Serde(&photo) })?;
                demo.wall().add(photo);
                consumer
                    .send_to_room(ROOM, Update::new("#photo-wall").html(html).append())
                    .await?;
                added += 1;
            }
            Err((name, err)) => {
                tracing::warn!(error = %err, "an uploaded photo could not be read");
                let message = format!("{name} could not be read as an image.");
                consumer.send(flash(demo, FlashKind::Error, &message)?)?;
            }
        }
    }
    if added > 0 {
        let message = match added {
            1 => "1 photo added to the wall.".to_owned(),
            n => format!("{n} photos added to the wall."),
        };
        consumer.send(flash(demo, FlashKind::Success, &message)?)?;
    }
    Ok(())
}

/// Thumbnail and keep one photo; on failure, its name and why.
async fn add_photo(demo: &Demo, file: UploadedFile) -> Result<Photo, (String, liveview::Error)> {
    let name = file.name().to_owned();
    let fail = |err: liveview::Error| (name.clone(), err);
    let bytes = file.bytes().await.map_err(|e| fail(e.into()))?;
    let id = uuid::Uuid::new_v4().simple().to_string();
    let thumb_path = demo.wall().thumb(&id);
    let (width, height) = tokio::task::spawn_blocking(move || thumbnail_of(&bytes, &thumb_path))
        .await
        .map_err(|e| fail(e.into()))?
        .map_err(fail)?;
    let extension = file.file_type().map_or("bin", FileType::extension);
    file.persist(&format!("photos/{id}.{extension}"))
        .await
        .map_err(|e| fail(e.into()))?;
    Ok(Photo {
        id,
        name: name.clone(),
        width,
        height,
    })
}

/// Decode an image, and write its thumbnail (JPEG) to `path`.
fn thumbnail_of(bytes: &[u8], path: &Path) -> liveview::Result<(u32, u32)> {
    let image = image::load_from_memory(bytes)?;
    let thumb = image.thumbnail(THUMB, THUMB).to_rgb8();
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    thumb.save_with_format(path, image::ImageFormat::Jpeg)?;
    Ok(thumb.dimensions())
}
