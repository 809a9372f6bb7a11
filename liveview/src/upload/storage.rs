//! Where uploaded bytes go: a temporary area while they arrive, then the
//! place the handler moves them to.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use axum::body::Bytes;
use futures_util::future::BoxFuture;
use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

/// Storage for uploads: the bytes of each upload in progress (named by an
/// id the server made, never by the client), and the final place a handler
/// moves a finished file to.
///
/// Implementations: [`LocalStorage`] (the default, a directory) and
/// [`S3Storage`](crate::upload::S3Storage) (feature `s3`). Every method
/// takes at most one chunk of memory.
pub trait Storage: fmt::Debug + Send + Sync + 'static {
    /// How many bytes of upload `id` are stored (0 when there is none).
    fn len(&self, id: &str) -> BoxFuture<'_, io::Result<u64>>;

    /// Store `chunk` at `offset`, which is the upload's current length.
    fn append(&self, id: &str, offset: u64, chunk: Bytes) -> BoxFuture<'_, io::Result<()>>;

    /// Up to `max` bytes of upload `id` from `offset` (fewer at its end).
    fn read_at(&self, id: &str, offset: u64, max: usize) -> BoxFuture<'_, io::Result<Bytes>>;

    /// Move the finished upload `id` to `key`, a relative path made of
    /// `[A-Za-z0-9._-]` segments chosen by the application.
    fn persist(&self, id: &str, key: &str) -> BoxFuture<'_, io::Result<()>>;

    /// Forget upload `id` (no error when it is already gone).
    fn remove(&self, id: &str) -> BoxFuture<'_, io::Result<()>>;

    /// Remove every upload in progress last written before `before`;
    /// returns how many were removed.
    fn sweep(&self, before: SystemTime) -> BoxFuture<'_, io::Result<usize>>;
}

/// Whether `key` is a safe relative storage key: `/`-separated segments of
/// `[A-Za-z0-9._-]`, none empty, `.` or `..`.
///
/// ```
/// use liveview::upload::is_valid_key;
///
/// assert!(is_valid_key("photos/2026/a1b2.png"));
/// assert!(!is_valid_key("../etc/passwd"));
/// assert!(!is_valid_key("/abs"));
/// ```
pub fn is_valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 512
        && key.split('/').all(|segment| {
            !segment.is_empty()
                && segment != "."
                && segment != ".."
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        })
}

pub(crate) fn check_key(key: &str) -> io::Result<()> {
    if is_valid_key(key) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("invalid storage key {key:?}: use `/`-separated segments of [A-Za-z0-9._-]"),
        ))
    }
}

fn check_id(id: &str) -> io::Result<()> {
    if super::token::is_id(id) {
        Ok(())
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "invalid upload id",
        ))
    }
}

/// Uploads on the local disk: files in progress in `ROOT/.incomplete/`,
/// finished files moved by the handler to `ROOT/KEY`.
///
/// ```no_run
/// use liveview::upload::LocalStorage;
///
/// let storage = LocalStorage::new("/var/lib/myapp/uploads").unwrap();
/// assert_eq!(storage.path("photos/a.png"), std::path::Path::new("/var/lib/myapp/uploads/photos/a.png"));
/// ```
#[derive(Debug, Clone)]
pub struct LocalStorage {
    root: PathBuf,
    incomplete: PathBuf,
}

impl LocalStorage {
    /// Store under `root` (created if missing).
    pub fn new(root: impl Into<PathBuf>) -> io::Result<Self> {
        let root = root.into();
        let incomplete = root.join(".incomplete");
        std::fs::create_dir_all(&incomplete)?;
        Ok(Self { root, incomplete })
    }

    /// Like [`new`](Self::new), without creating anything yet: the
    /// directories are made by the first write.
    pub(crate) fn unchecked(root: PathBuf) -> Self {
        let incomplete = root.join(".incomplete");
        Self { root, incomplete }
    }

    /// Where a persisted `key` is on disk.
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The directory of uploads in progress.
    pub fn incomplete_dir(&self) -> &Path {
        &self.incomplete
    }

    fn temp(&self, id: &str) -> io::Result<PathBuf> {
        check_id(id)?;
        Ok(self.incomplete.join(id))
    }
}

impl Storage for LocalStorage {
    fn len(&self, id: &str) -> BoxFuture<'_, io::Result<u64>> {
        let path = self.temp(id);
        Box::pin(async move {
            match tokio::fs::metadata(path?).await {
                Ok(meta) => Ok(meta.len()),
                Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(0),
                Err(err) => Err(err),
            }
        })
    }

    fn append(&self, id: &str, offset: u64, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        let path = self.temp(id);
        Box::pin(async move {
            let path = path?;
            let mut options = tokio::fs::OpenOptions::new();
            options.create(true).append(true);
            let mut file = match options.open(&path).await {
                Err(err) if err.kind() == io::ErrorKind::NotFound => {
                    tokio::fs::create_dir_all(&self.incomplete).await?;
                    options.open(&path).await?
                }
                file => file?,
            };
            let len = file.metadata().await?.len();
            if len != offset {
                return Err(io::Error::other(format!(
                    "upload is at {len} bytes, not {offset}"
                )));
            }
            file.write_all(&chunk).await?;
            file.flush().await
        })
    }

    fn read_at(&self, id: &str, offset: u64, max: usize) -> BoxFuture<'_, io::Result<Bytes>> {
        let path = self.temp(id);
        Box::pin(async move {
            let mut file = tokio::fs::File::open(path?).await?;
            file.seek(io::SeekFrom::Start(offset)).await?;
            let mut buf = Vec::with_capacity(max.min(1 << 20));
            file.take(max as u64).read_to_end(&mut buf).await?;
            Ok(Bytes::from(buf))
        })
    }

    fn persist(&self, id: &str, key: &str) -> BoxFuture<'_, io::Result<()>> {
        let from = self.temp(id);
        let to = check_key(key).map(|()| self.root.join(key));
        Box::pin(async move {
            let (from, to) = (from?, to?);
            if let Some(dir) = to.parent() {
                tokio::fs::create_dir_all(dir).await?;
            }
            tokio::fs::rename(from, to).await
        })
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, io::Result<()>> {
        let path = self.temp(id);
        Box::pin(async move {
            match tokio::fs::remove_file(path?).await {
                Err(err) if err.kind() != io::ErrorKind::NotFound => Err(err),
                _ => Ok(()),
            }
        })
    }

    fn sweep(&self, before: SystemTime) -> BoxFuture<'_, io::Result<usize>> {
        Box::pin(async move {
            let mut removed = 0;
            let mut dir = match tokio::fs::read_dir(&self.incomplete).await {
                Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(0),
                dir => dir?,
            };
            while let Some(entry) = dir.next_entry().await? {
                let Ok(meta) = entry.metadata().await else {
                    continue;
                };
                let old = meta.modified().is_ok_and(|t| t < before);
                let ours = entry.file_name().to_str().is_some_and(super::token::is_id);
                if old && ours && tokio::fs::remove_file(entry.path()).await.is_ok() {
                    removed += 1;
                }
            }
            Ok(removed)
        })
    }
}
