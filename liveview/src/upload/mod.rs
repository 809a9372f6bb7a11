//! File uploads: chunked, resumable, validated before anything is stored.
//!
//! Declare each upload once, with its rules, and give the set to the
//! builder; the page's file input names it with `data-liveview-upload`,
//! and loads the upload script beside the client
//! ([`script_tag`], or `liveview_upload_script()` in minijinja):
//!
//! ```html
//! <form data-liveview-function="save_photo" data-action="submit->page#run">
//!   <input type="file" name="photo" data-liveview-upload="photo" multiple accept="image/*">
//!   <progress data-liveview-upload-progress="photo" value="0"></progress>
//!   <button>Send</button>
//! </form>
//! ```
//!
//! On submit the script announces the chosen files over the socket; the
//! server refuses those over the size or count limits or the quotas before
//! any byte is sent, and answers the others with a signed token each. The
//! bytes then go in chunks (64 KiB) to `/liveview/upload/{token}` over
//! plain HTTP, so they never queue in front of the socket's frames; the
//! first chunk's content decides the file's type, and a file of a type the
//! upload does not accept is refused at once and removed. A transfer cut
//! off (the network, a restart) resumes from the last acknowledged offset.
//! When every file arrived, the form's handler is called, with each
//! file's token in the form under the upload's name, and takes the files
//! with [`Consumer::uploads`]:
//!
//! ```
//! use liveview::upload::{FileType, Upload, Uploads};
//! use liveview::{liveview_handler, Consumer, Content, LiveView, Update};
//!
//! #[liveview_handler("save_photo")]
//! async fn save_photo(consumer: &Consumer, content: Content) -> liveview::Result {
//!     for file in consumer.uploads(&content, "photo").await? {
//!         let kind = file.file_type().map_or("file", |t| t.extension());
//!         let key = format!("photos/{}.{kind}", liveview::template::room_uuid());
//!         file.persist(&key).await?;
//!         consumer.send(Update::new("#saved").html(liveview::escape(&key)).append())?;
//!     }
//!     Ok(())
//! }
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let uploads = Uploads::new().upload(
//!     Upload::new("photo")
//!         .max_file_size(10 * 1024 * 1024)
//!         .max_files(5)
//!         .accept(FileType::IMAGES),
//! );
//! let live = LiveView::builder().uploads(uploads).build().unwrap();
//! let app: axum::Router = axum::Router::new().merge(live.router());
//! # drop(app);
//! # }
//! ```
//!
//! Files live in a [`Storage`]: [`LocalStorage`] by default (a directory
//! under the system's temporary directory unless you give one), or
//! [`S3Storage`] (feature `s3`). Names in storage are made by the server,
//! never taken from the client. Uploads nobody finished or claimed are
//! removed when their token expires (30 minutes by default).

mod announce;
mod magic;
mod route;
#[cfg(feature = "s3")]
mod s3;
mod service;
mod storage;
mod token;

use std::fmt;
use std::io;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::response::Response;
use axum::routing::get;

pub use magic::FileType;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use object_store;
#[cfg(feature = "s3")]
#[cfg_attr(docsrs, doc(cfg(feature = "s3")))]
pub use s3::S3Storage;
pub use storage::{LocalStorage, Storage, is_valid_key};

use crate::app::{LiveView, LiveViewBuilder};
use crate::call::content::Content;
use crate::consumer::Consumer;
use crate::update::Update;
use service::{Service, UploadService};
use token::Ticket;

/// Where chunks are sent: this prefix followed by the upload's token.
pub const ROUTE_PREFIX: &str = "/liveview/upload/";

/// The function the upload script calls to announce files.
pub const ANNOUNCE: &str = "liveview_upload";

/// The upload script's readable source.
pub const SCRIPT: &str = include_str!("../../assets/liveview-upload.js");

/// The minified upload script, built from [`SCRIPT`]: the one pages load.
pub const SCRIPT_MIN: &str = include_str!("../../assets/liveview-upload.min.js");

/// The path the readable source is served at.
pub const SCRIPT_PATH: &str = "/static/liveview/liveview-upload.js";

/// The path the minified upload script is served at.
pub const SCRIPT_PATH_MIN: &str = "/static/liveview/liveview-upload.min.js";

/// The `<script>` tag that loads the upload script (put it after the
/// client's, [`crate::template::script_tag`]).
///
/// ```
/// let tag = liveview::upload::script_tag();
/// assert!(tag.starts_with(r#"<script src="/static/liveview/liveview-upload.min.js?v="#));
/// ```
pub fn script_tag() -> String {
    format!(
        r#"<script src="{}" defer></script>"#,
        crate::escape(&format!("{SCRIPT_PATH_MIN}?v={}", script_hash(SCRIPT_MIN)))
    )
}

/// The hash of the minified or the readable upload script, made once.
fn script_hash(script: &'static str) -> &'static str {
    static MIN: OnceLock<String> = OnceLock::new();
    static SOURCE: OnceLock<String> = OnceLock::new();
    let cell = if std::ptr::eq(script, SCRIPT_MIN) {
        &MIN
    } else {
        &SOURCE
    };
    cell.get_or_init(|| crate::assets::hash_text(script))
}

/// One kind of upload a page may send, and its rules.
///
/// ```
/// use liveview::upload::{FileType, Upload};
///
/// let avatar = Upload::new("avatar")
///     .max_file_size(2 * 1024 * 1024)
///     .accept([FileType::Png, FileType::Jpeg]);
/// # drop(avatar);
/// ```
pub struct Upload {
    name: String,
    max_file_size: u64,
    max_files: usize,
    accept: Vec<FileType>,
    on_progress: Option<OnProgress>,
}

type OnProgress = Arc<dyn Fn(&Progress<'_>) -> Option<Update> + Send + Sync>;

impl fmt::Debug for Upload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Upload")
            .field("name", &self.name)
            .field("max_file_size", &self.max_file_size)
            .field("max_files", &self.max_files)
            .field("accept", &self.accept)
            .finish_non_exhaustive()
    }
}

impl Upload {
    /// An upload called `name` (the `data-liveview-upload` value of its
    /// input, and the form key its tokens arrive under): one file of up to
    /// 8 MB, of any type, by default.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            max_file_size: 8 * 1024 * 1024,
            max_files: 1,
            accept: Vec::new(),
            on_progress: None,
        }
    }

    /// The largest file accepted, in bytes; a larger one is refused when it
    /// is announced, before any byte is sent.
    pub fn max_file_size(mut self, bytes: u64) -> Self {
        self.max_file_size = bytes;
        self
    }

    /// How many files one submit may send.
    pub fn max_files(mut self, files: usize) -> Self {
        self.max_files = files.max(1);
        self
    }

    /// Accept only these types, recognised by the file's first bytes (not
    /// by its name or the browser's claim). Without it, any content.
    pub fn accept(mut self, types: impl IntoIterator<Item = FileType>) -> Self {
        self.accept = types.into_iter().collect();
        self
    }

    /// After each chunk, send the uploading page's room the update `f`
    /// makes from the progress (if any): a progress bar rendered by the
    /// server, seen by everyone in the room.
    ///
    /// ```
    /// use liveview::upload::Upload;
    /// use liveview::Update;
    ///
    /// let upload = Upload::new("video").on_progress(|p| {
    ///     Some(Update::new("#video-progress").html(format!("{}%", p.received * 100 / p.size)))
    /// });
    /// # drop(upload);
    /// ```
    pub fn on_progress<F>(mut self, f: F) -> Self
    where
        F: Fn(&Progress<'_>) -> Option<Update> + Send + Sync + 'static,
    {
        self.on_progress = Some(Arc::new(f));
        self
    }

    fn accepts(&self, detected: Option<FileType>) -> bool {
        self.accept.is_empty() || detected.is_some_and(|t| self.accept.contains(&t))
    }
}

/// How far one file's transfer is, for [`Upload::on_progress`].
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct Progress<'a> {
    /// The upload's name.
    pub upload: &'a str,
    /// The file's name as the browser gave it (escape it before showing it).
    pub name: &'a str,
    /// The room of the page that sends it.
    pub room: &'a str,
    /// Bytes received so far.
    pub received: u64,
    /// The file's size.
    pub size: u64,
}

#[derive(Debug, Clone)]
struct Limits {
    connection_files: usize,
    connection_bytes: u64,
    address_files: usize,
    address_bytes: u64,
}

/// The uploads of an app: their rules, the storage, quotas and lifetimes.
/// Give it to [`LiveViewBuilder::uploads`].
///
/// ```
/// use std::time::Duration;
/// use liveview::upload::{LocalStorage, Upload, Uploads};
///
/// let dir = std::env::temp_dir().join("docs-uploads");
/// let uploads = Uploads::new()
///     .storage(LocalStorage::new(&dir).unwrap())
///     .upload(Upload::new("document"))
///     .expire_after(Duration::from_secs(600))
///     .max_uploads_per_connection(4)
///     .max_bytes_per_address(512 * 1024 * 1024);
/// # drop(uploads);
/// ```
pub struct Uploads {
    rules: Vec<Upload>,
    storage: Option<Arc<dyn Storage>>,
    secret: Option<Vec<u8>>,
    expire_after: Duration,
    chunk_size: usize,
    chunk_timeout: Duration,
    max_transfers: usize,
    limits: Limits,
}

impl fmt::Debug for Uploads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Uploads")
            .field("rules", &self.rules)
            .field("storage", &self.storage)
            .field("expire_after", &self.expire_after)
            .field("chunk_size", &self.chunk_size)
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

impl Default for Uploads {
    fn default() -> Self {
        Self::new()
    }
}

impl Uploads {
    /// No upload declared yet; local storage under the system's temporary
    /// directory; tokens valid 30 minutes; 64 KiB chunks; at most 8 uploads
    /// at once and 256 MB in flight per connection, 32 and 1 GB per client
    /// address; 64 chunks being received at once in the process.
    pub fn new() -> Self {
        Self {
            rules: Vec::new(),
            storage: None,
            secret: None,
            expire_after: Duration::from_secs(30 * 60),
            chunk_size: 64 * 1024,
            chunk_timeout: Duration::from_secs(30),
            max_transfers: 64,
            limits: Limits {
                connection_files: 8,
                connection_bytes: 256 * 1024 * 1024,
                address_files: 32,
                address_bytes: 1024 * 1024 * 1024,
            },
        }
    }

    /// Declare an upload (a second one with the same name replaces it).
    pub fn upload(mut self, upload: Upload) -> Self {
        self.rules.retain(|rule| rule.name != upload.name);
        self.rules.push(upload);
        self
    }

    /// Where files go (default: [`LocalStorage`] in
    /// `$TMPDIR/liveview-uploads`).
    pub fn storage(mut self, storage: impl Storage) -> Self {
        self.storage = Some(Arc::new(storage));
        self
    }

    /// The key that signs upload tokens (32 bytes or more). Without it a
    /// random key is made at start: tokens then die with the process, and
    /// uploads cannot resume across a restart or another process.
    pub fn secret(mut self, key: &[u8]) -> Self {
        self.secret = Some(key.to_vec());
        self
    }

    /// How long an upload may take from its announcement to its handler
    /// (default 30 minutes); what is left after that is removed.
    pub fn expire_after(mut self, lifetime: Duration) -> Self {
        self.expire_after = lifetime;
        self
    }

    /// The largest chunk accepted (default 64 KiB): the memory one
    /// transfer may hold.
    pub fn chunk_size(mut self, bytes: usize) -> Self {
        self.chunk_size = bytes.max(FileType::HEAD);
        self
    }

    /// How long one chunk may take to arrive (default 30 s); a stalled one
    /// is answered 408 and frees its memory.
    pub fn chunk_timeout(mut self, timeout: Duration) -> Self {
        self.chunk_timeout = timeout;
        self
    }

    /// How many chunks the process receives at once (default 64); more
    /// wait, unread, for their turn.
    pub fn max_transfers(mut self, transfers: usize) -> Self {
        self.max_transfers = transfers.max(1);
        self
    }

    /// Unfinished uploads one connection may have at once (default 8).
    pub fn max_uploads_per_connection(mut self, files: usize) -> Self {
        self.limits.connection_files = files;
        self
    }

    /// Bytes one connection may have announced and not yet handed to a
    /// handler (default 256 MB).
    pub fn max_bytes_per_connection(mut self, bytes: u64) -> Self {
        self.limits.connection_bytes = bytes;
        self
    }

    /// Unfinished uploads all connections of one client address may have
    /// at once (default 32).
    pub fn max_uploads_per_address(mut self, files: usize) -> Self {
        self.limits.address_files = files;
        self
    }

    /// Bytes all connections of one client address may have in flight
    /// (default 1 GB).
    pub fn max_bytes_per_address(mut self, bytes: u64) -> Self {
        self.limits.address_bytes = bytes;
        self
    }
}

impl LiveViewBuilder {
    /// Accept file uploads with these rules: the announce function and the
    /// chunk route `/liveview/upload/{token}` (merged by
    /// [`LiveView::router`]). See [`crate::upload`].
    pub fn uploads(self, uploads: Uploads) -> Self {
        self.state(UploadService(Arc::new(Service::new(uploads))))
    }
}

/// Counters of the upload service.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct UploadStats {
    /// Bytes of chunks accepted since start.
    pub bytes_received: u64,
    /// Uploads announced and not yet finished, claimed, cancelled or
    /// expired.
    pub active: usize,
    /// Chunk requests being received right now.
    pub receiving: usize,
}

impl LiveView {
    /// The upload counters, when uploads are on.
    ///
    /// ```
    /// use liveview::upload::Uploads;
    ///
    /// # #[tokio::main(flavor = "current_thread")] async fn main() {
    /// let live = liveview::LiveView::builder().uploads(Uploads::new()).build().unwrap();
    /// assert_eq!(live.upload_stats().unwrap().bytes_received, 0);
    /// # }
    /// ```
    pub fn upload_stats(&self) -> Option<UploadStats> {
        let service = &self.state::<UploadService>()?.0;
        Some(UploadStats {
            bytes_received: service.received.load(Ordering::Relaxed),
            active: service.active(),
            receiving: service.max_transfers - service.transfers.available_permits(),
        })
    }

    /// Remove expired uploads now instead of at the sweeper's next turn;
    /// returns how many were removed.
    pub async fn sweep_uploads(&self) -> io::Result<usize> {
        match self.state::<UploadService>() {
            Some(service) => service.0.sweep().await,
            None => Ok(0),
        }
    }
}

/// The upload routes and script, merged by [`LiveView::router`].
pub(crate) fn router<S>(live: &LiveView) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    let scripts = Router::new()
        .route(SCRIPT_PATH, get(serve_script))
        .route(SCRIPT_PATH_MIN, get(serve_script));
    match live.state::<UploadService>() {
        Some(service) => scripts.merge(route::router(service.0.clone(), live.broadcaster())),
        None => scripts,
    }
}

async fn serve_script(
    uri: http::Uri,
    query: axum::extract::Query<crate::assets::Version>,
    headers: http::HeaderMap,
) -> Response {
    let body = if uri.path().ends_with(".min.js") {
        SCRIPT_MIN
    } else {
        SCRIPT
    };
    crate::assets::serve_text(body, script_hash(body), &query.0, &headers)
}

/// Why a handler cannot have an uploaded file.
#[derive(Debug)]
#[non_exhaustive]
pub enum UploadError {
    /// The app has no uploads ([`LiveViewBuilder::uploads`]).
    NotEnabled,
    /// The token is not one of ours, or for another room or upload.
    Invalid,
    /// The token expired.
    Expired,
    /// Not every byte arrived.
    Incomplete,
    /// Already taken, cancelled or refused.
    Gone,
    /// The storage failed.
    Storage(io::Error),
}

impl fmt::Display for UploadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UploadError::NotEnabled => {
                f.write_str("uploads are not enabled (LiveViewBuilder::uploads)")
            }
            UploadError::Invalid => {
                f.write_str("invalid upload token (not ours, or for another room or upload)")
            }
            UploadError::Expired => f.write_str("the upload expired"),
            UploadError::Incomplete => f.write_str("the upload is incomplete"),
            UploadError::Gone => f.write_str("the upload was already taken, cancelled or refused"),
            UploadError::Storage(err) => write!(f, "upload storage failed: {err}"),
        }
    }
}

impl std::error::Error for UploadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            UploadError::Storage(err) => Some(err),
            _ => None,
        }
    }
}

impl From<io::Error> for UploadError {
    fn from(err: io::Error) -> Self {
        UploadError::Storage(err)
    }
}

/// A file that arrived whole, handed to a handler by
/// [`Consumer::uploads`]. It is in the storage's temporary area: move it
/// into place with [`persist`](Self::persist); one dropped without is
/// removed.
pub struct UploadedFile {
    ticket: Ticket,
    detected: Option<FileType>,
    storage: Arc<dyn Storage>,
    done: bool,
}

impl fmt::Debug for UploadedFile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UploadedFile")
            .field("name", &self.ticket.name)
            .field("size", &self.ticket.size)
            .field("type", &self.detected)
            .finish_non_exhaustive()
    }
}

impl UploadedFile {
    fn new(ticket: Ticket, detected: Option<FileType>, storage: Arc<dyn Storage>) -> Self {
        Self {
            ticket,
            detected,
            storage,
            done: false,
        }
    }

    /// The file's name as the browser gave it: for display (escaped),
    /// never as a path.
    pub fn name(&self) -> &str {
        &self.ticket.name
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.ticket.size
    }

    /// The type its content was recognised as, if any.
    pub fn file_type(&self) -> Option<FileType> {
        self.detected
    }

    /// The MIME type of its content (`application/octet-stream` when not
    /// recognised).
    pub fn mime(&self) -> &'static str {
        self.detected
            .map_or("application/octet-stream", FileType::mime)
    }

    /// Up to `max` bytes from `offset`.
    pub async fn read_at(&self, offset: u64, max: usize) -> io::Result<Bytes> {
        self.storage.read_at(&self.ticket.id, offset, max).await
    }

    /// The whole content, in memory.
    pub async fn bytes(&self) -> io::Result<Vec<u8>> {
        let size = usize::try_from(self.ticket.size).map_err(io::Error::other)?;
        let mut out = Vec::with_capacity(size);
        while out.len() < size {
            let chunk = self.read_at(out.len() as u64, 1 << 20).await?;
            if chunk.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "upload shorter than announced",
                ));
            }
            out.extend_from_slice(&chunk);
        }
        Ok(out)
    }

    /// Move the file into place under `key` (see [`is_valid_key`]), e.g.
    /// `photos/<uuid>.png`; where that is depends on the storage
    /// ([`LocalStorage::path`]).
    pub async fn persist(mut self, key: &str) -> io::Result<()> {
        storage::check_key(key)?;
        self.done = true;
        self.storage.persist(&self.ticket.id, key).await
    }

    /// Remove the file now.
    pub async fn discard(mut self) -> io::Result<()> {
        self.done = true;
        self.storage.remove(&self.ticket.id).await
    }
}

impl Drop for UploadedFile {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let (storage, id) = (self.storage.clone(), self.ticket.id.clone());
            runtime.spawn(async move { storage.remove(&id).await });
        }
    }
}

impl Consumer {
    /// Take the files of upload `name` that arrived for this call: the
    /// tokens the upload script put in the form under `name`, checked
    /// (signed by this app, for this room and upload, complete), each
    /// handed out once.
    ///
    /// ```
    /// use liveview::{liveview_handler, Consumer, Content};
    ///
    /// #[liveview_handler("docs_upload")]
    /// async fn attach(consumer: &Consumer, content: Content) -> liveview::Result {
    ///     for file in consumer.uploads(&content, "attachment").await? {
    ///         tracing::info!(name = file.name(), size = file.size(), "received");
    ///         file.persist(&format!("attachments/{}", liveview::template::room_uuid())).await?;
    ///     }
    ///     Ok(())
    /// }
    /// ```
    pub async fn uploads(
        &self,
        content: &Content,
        name: &str,
    ) -> Result<Vec<UploadedFile>, UploadError> {
        let service = &self
            .app_state::<UploadService>()
            .ok_or(UploadError::NotEnabled)?
            .0;
        let tokens: Vec<&str> = match content.form.get(name) {
            Some(serde_json::Value::String(token)) => vec![token.as_str()],
            Some(_) => content.form.strings(name),
            None => Vec::new(),
        };
        let mut files = Vec::with_capacity(tokens.len());
        for token in tokens {
            files.push(service.claim(token, self.room(), name).await?);
        }
        Ok(files)
    }
}
