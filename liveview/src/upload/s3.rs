//! Uploads in S3 or any S3-compatible object store, through `object_store`.

use std::collections::HashMap;
use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use axum::body::Bytes;
use futures_util::future::BoxFuture;
use futures_util::{StreamExt, TryStreamExt};
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutPayload};
use tokio::io::AsyncWriteExt;

use super::storage::{Storage, check_key};

/// Uploads in an object store: S3, or anything `object_store` speaks.
///
/// Each chunk of an upload in progress is an object of its own under
/// `PREFIX/.incomplete/ID/` (so a chunk is never held in memory longer than
/// its request, and what arrived survives a restart); a handler's
/// [`persist`](crate::upload::UploadedFile::persist) joins them into
/// `PREFIX/KEY` with a multipart upload and removes them.
///
/// ```no_run
/// use liveview::upload::S3Storage;
/// use liveview::upload::object_store::aws::AmazonS3Builder;
///
/// let bucket = AmazonS3Builder::from_env().with_bucket_name("my-uploads");
/// let storage = S3Storage::new(bucket, "uploads").unwrap();
/// # drop(storage);
/// ```
#[derive(Debug, Clone)]
pub struct S3Storage {
    store: Arc<dyn ObjectStore>,
    prefix: String,
}

impl S3Storage {
    /// Store in the S3 bucket `bucket` describes, under `prefix` (`""` for
    /// the bucket's root).
    ///
    /// The S3 client speaks HTTPS with rustls, which needs a process-wide
    /// crypto provider: ring's is installed first when there is none.
    pub fn new(
        bucket: object_store::aws::AmazonS3Builder,
        prefix: &str,
    ) -> Result<Self, object_store::Error> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        Ok(Self::with_store(bucket.build()?, prefix))
    }

    /// Store in any object store (one built by hand, another cloud's, an
    /// in-memory one for tests), under `prefix`.
    pub fn with_store(store: impl ObjectStore, prefix: &str) -> Self {
        Self {
            store: Arc::new(store),
            prefix: prefix.trim_matches('/').to_owned(),
        }
    }

    /// The object store behind this storage.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// The object path of a persisted `key`.
    pub fn path(&self, key: &str) -> Path {
        Path::from(self.join(key))
    }

    fn join(&self, rest: &str) -> String {
        if self.prefix.is_empty() {
            rest.to_owned()
        } else {
            format!("{}/{rest}", self.prefix)
        }
    }

    fn incomplete(&self) -> Path {
        Path::from(self.join(".incomplete"))
    }

    fn dir(&self, id: &str) -> io::Result<Path> {
        if !super::token::is_id(id) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "invalid upload id",
            ));
        }
        Ok(Path::from(self.join(&format!(".incomplete/{id}"))))
    }

    /// The chunks of an upload, in order, with the offset each starts at.
    async fn chunks(&self, id: &str) -> io::Result<Vec<(u64, ObjectMeta)>> {
        let dir = self.dir(id)?;
        let mut chunks: Vec<(u64, ObjectMeta)> = self
            .store
            .list(Some(&dir))
            .map_err(io::Error::other)
            .try_filter_map(|meta| async move {
                let offset = meta.location.filename().and_then(|f| f.parse::<u64>().ok());
                Ok(offset.map(|offset| (offset, meta)))
            })
            .try_collect()
            .await?;
        chunks.sort_by_key(|(offset, _)| *offset);
        Ok(chunks)
    }
}

impl Storage for S3Storage {
    fn len(&self, id: &str) -> BoxFuture<'_, io::Result<u64>> {
        let id = id.to_owned();
        Box::pin(async move {
            let chunks = self.chunks(&id).await?;
            Ok(chunks.last().map_or(0, |(offset, meta)| offset + meta.size))
        })
    }

    fn append(&self, id: &str, offset: u64, chunk: Bytes) -> BoxFuture<'_, io::Result<()>> {
        let path = self
            .dir(id)
            .map(|dir| dir.clone().join(format!("{offset:020}").as_str()));
        Box::pin(async move {
            self.store
                .put(&path?, PutPayload::from_bytes(chunk))
                .await
                .map_err(io::Error::other)?;
            Ok(())
        })
    }

    fn read_at(&self, id: &str, offset: u64, max: usize) -> BoxFuture<'_, io::Result<Bytes>> {
        let id = id.to_owned();
        Box::pin(async move {
            let end = offset.saturating_add(max as u64);
            let mut out = Vec::new();
            for (start, meta) in self.chunks(&id).await? {
                let stop = start + meta.size;
                if stop <= offset || start >= end {
                    continue;
                }
                let range = offset.max(start) - start..end.min(stop) - start;
                let bytes = self
                    .store
                    .get_range(&meta.location, range)
                    .await
                    .map_err(io::Error::other)?;
                out.extend_from_slice(&bytes);
            }
            Ok(Bytes::from(out))
        })
    }

    fn persist(&self, id: &str, key: &str) -> BoxFuture<'_, io::Result<()>> {
        let id = id.to_owned();
        let key = check_key(key).map(|()| self.path(key));
        Box::pin(async move {
            let key = key?;
            let chunks = self.chunks(&id).await?;
            let mut writer = object_store::buffered::BufWriter::new(self.store.clone(), key);
            for (_, meta) in &chunks {
                let bytes = self
                    .store
                    .get(&meta.location)
                    .await
                    .map_err(io::Error::other)?
                    .bytes()
                    .await
                    .map_err(io::Error::other)?;
                writer.put(bytes).await.map_err(io::Error::other)?;
            }
            writer.shutdown().await?;
            for (_, meta) in chunks {
                self.store
                    .delete(&meta.location)
                    .await
                    .map_err(io::Error::other)?;
            }
            Ok(())
        })
    }

    fn remove(&self, id: &str) -> BoxFuture<'_, io::Result<()>> {
        let id = id.to_owned();
        Box::pin(async move {
            for (_, meta) in self.chunks(&id).await? {
                match self.store.delete(&meta.location).await {
                    Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                    Err(err) => return Err(io::Error::other(err)),
                }
            }
            Ok(())
        })
    }

    fn sweep(&self, before: SystemTime) -> BoxFuture<'_, io::Result<usize>> {
        Box::pin(async move {
            let root = self.incomplete();
            // An upload's age is that of its newest chunk.
            let mut uploads: HashMap<String, (SystemTime, Vec<Path>)> = HashMap::new();
            let mut listing = self.store.list(Some(&root));
            while let Some(meta) = listing.next().await {
                let meta = meta.map_err(io::Error::other)?;
                let Some(id) = meta
                    .location
                    .prefix_match(&root)
                    .and_then(|mut parts| parts.next())
                    .map(|part| part.as_ref().to_owned())
                else {
                    continue;
                };
                let modified = SystemTime::from(meta.last_modified);
                let entry = uploads.entry(id).or_insert((modified, Vec::new()));
                entry.0 = entry.0.max(modified);
                entry.1.push(meta.location);
            }
            let mut removed = 0;
            for (_, (modified, paths)) in uploads {
                if modified >= before {
                    continue;
                }
                for path in paths {
                    match self.store.delete(&path).await {
                        Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                        Err(err) => return Err(io::Error::other(err)),
                    }
                }
                removed += 1;
            }
            Ok(removed)
        })
    }
}
