//! The blob store: artifacts' bytes, named by their SHA-256, through the `object_store` crate
//! — a directory by default, an S3-compatible bucket with the `s3` feature. An upload streams
//! to a unique name under `uploads/` while it is hashed and counted, and only a complete body
//! of the declared digest within its limit is moved to `sha256/{ab}/{digest}`; anything else is
//! deleted at once (or, after a crash, found old by the sweeper). The store decides nothing
//! about who keeps a blob: that is the artifacts' records in the key-value store.

use std::fmt::Display;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::stream::BoxStream;
use futures_util::{Stream, StreamExt, TryStreamExt};
use gigafactory_core::artifact::blob_path;
use gigafactory_core::job::Millis;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, WriteMultipart};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// Blob store parts written at once during one upload: bounds an upload's memory.
const UPLOAD_PARTS_IN_FLIGHT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// The body passed the limit; nothing was kept.
    #[error("the file passes its limit of {limit_bytes} bytes")]
    TooLarge { limit_bytes: u64 },
    /// The bytes are not those the uploader named; nothing was kept.
    #[error("the body's sha256 is {actual}, not the declared {declared}")]
    DigestMismatch { declared: String, actual: String },
    /// The uploader's body stopped before its end; nothing was kept.
    #[error("the upload's body failed: {0}")]
    Body(String),
    #[error("no blob {0}")]
    NotFound(String),
    /// The configured location cannot be used.
    #[error("blob store: {0}")]
    Config(String),
    /// The backend (disk, bucket) failed; retry later.
    #[error("blob store: {0}")]
    Backend(String),
}

impl From<object_store::Error> for BlobError {
    fn from(e: object_store::Error) -> Self {
        match e {
            object_store::Error::NotFound { path, .. } => BlobError::NotFound(path),
            e => BlobError::Backend(e.to_string()),
        }
    }
}

/// A blob's bytes as they are read.
pub type BlobStream = BoxStream<'static, Result<Bytes, BlobError>>;

#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    /// Where it is, for logs and `/v1/status`-like views (no credentials: those come from the
    /// environment).
    pub location: String,
}

impl BlobStore {
    /// Opens `url`: `file:///abs/dir` or an absolute path (created if missing), `memory:` (for
    /// tests: gone with the process), or `s3://bucket/prefix` (feature `s3`; credentials,
    /// region and endpoint from the `AWS_*` environment variables).
    pub fn open(url: &str) -> Result<Self, BlobError> {
        let inner: Arc<dyn ObjectStore> = if url == "memory:" {
            Arc::new(object_store::memory::InMemory::new())
        } else if let Some(rest) = url.strip_prefix("s3://") {
            s3(rest)?
        } else {
            let dir = url.strip_prefix("file://").unwrap_or(url);
            if !dir.starts_with('/') {
                return Err(BlobError::Config(format!(
                    "{url:?}: give an absolute directory, file:///dir, s3://bucket/prefix or memory:"
                )));
            }
            std::fs::create_dir_all(dir)
                .map_err(|e| BlobError::Config(format!("cannot create {dir}: {e}")))?;
            Arc::new(object_store::local::LocalFileSystem::new_with_prefix(dir)?)
        };
        Ok(BlobStore {
            inner,
            location: url.to_owned(),
        })
    }

    /// A store in memory, for tests.
    pub fn in_memory() -> Self {
        Self::open("memory:").expect("an in-memory store always opens")
    }

    /// Streams `body` into the blob `sha256`: kept only if it is all there, at most
    /// `max_bytes`, and of that digest. Returns its size.
    pub async fn put<S, E>(&self, sha256: &str, body: S, max_bytes: u64) -> Result<u64, BlobError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
        E: Display,
    {
        let upload = Path::from(format!("uploads/{}", Uuid::now_v7()));
        let mut writer = WriteMultipart::new(self.inner.put_multipart(&upload).await?);
        let outcome = stream_into(&mut writer, body, max_bytes).await;
        let (size, actual) = match outcome {
            Ok(done) => done,
            Err(e) => {
                // Nothing of a refused body is kept; a failed abort leaves it to the sweeper.
                let _ = writer.abort().await;
                return Err(e);
            }
        };
        writer.finish().await?;
        if actual != sha256 {
            let _ = self.inner.delete(&upload).await;
            return Err(BlobError::DigestMismatch {
                declared: sha256.to_owned(),
                actual,
            });
        }
        self.inner
            .rename(&upload, &Path::from(blob_path(sha256)))
            .await?;
        Ok(size)
    }

    /// The blob's size and bytes.
    pub async fn get(&self, sha256: &str) -> Result<(u64, BlobStream), BlobError> {
        let got = self.inner.get(&Path::from(blob_path(sha256))).await?;
        let size = got.meta.size;
        Ok((size, got.into_stream().map_err(BlobError::from).boxed()))
    }

    /// Deletes the blob; one already gone is no error.
    pub async fn delete(&self, sha256: &str) -> Result<(), BlobError> {
        match self.inner.delete(&Path::from(blob_path(sha256))).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Digests of blobs last written before `before`, at most `limit`.
    pub async fn blobs_before(
        &self,
        before: Millis,
        limit: usize,
    ) -> Result<Vec<String>, BlobError> {
        let old = self.older_than("sha256", before, limit).await?;
        Ok(old
            .into_iter()
            .filter_map(|p| p.filename().map(str::to_owned))
            .collect())
    }

    /// Deletes uploads begun before `before` that never finished (their uploader died): at
    /// most `limit`. Returns how many.
    pub async fn delete_uploads_before(
        &self,
        before: Millis,
        limit: usize,
    ) -> Result<usize, BlobError> {
        let old = self.older_than("uploads", before, limit).await?;
        for path in &old {
            match self.inner.delete(path).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(old.len())
    }

    async fn older_than(
        &self,
        prefix: &str,
        before: Millis,
        limit: usize,
    ) -> Result<Vec<Path>, BlobError> {
        let mut listed = self.inner.list(Some(&Path::from(prefix)));
        let mut out = Vec::new();
        while let Some(meta) = listed.next().await {
            let meta = meta?;
            let written = u64::try_from(meta.last_modified.timestamp_millis()).unwrap_or(0);
            if written < before {
                out.push(meta.location);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
    }
}

/// Writes `body` into `writer`, hashing and counting: its size and hex digest.
async fn stream_into<S, E>(
    writer: &mut WriteMultipart,
    mut body: S,
    max_bytes: u64,
) -> Result<(u64, String), BlobError>
where
    S: Stream<Item = Result<Bytes, E>> + Send + Unpin,
    E: Display,
{
    let mut hasher = Sha256::new();
    let mut size = 0u64;
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| BlobError::Body(e.to_string()))?;
        size += chunk.len() as u64;
        if size > max_bytes {
            return Err(BlobError::TooLarge {
                limit_bytes: max_bytes,
            });
        }
        hasher.update(&chunk);
        writer.wait_for_capacity(UPLOAD_PARTS_IN_FLIGHT).await?;
        writer.put(chunk);
    }
    let digest = hasher.finalize();
    Ok((size, gigafactory_core::wire::hex(&digest)))
}

#[cfg(feature = "s3")]
fn s3(bucket_and_prefix: &str) -> Result<Arc<dyn ObjectStore>, BlobError> {
    let (bucket, prefix) = bucket_and_prefix
        .split_once('/')
        .unwrap_or((bucket_and_prefix, ""));
    let store = object_store::aws::AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .build()
        .map_err(|e| BlobError::Config(e.to_string()))?;
    Ok(if prefix.is_empty() {
        Arc::new(store)
    } else {
        Arc::new(object_store::prefix::PrefixStore::new(store, prefix))
    })
}

#[cfg(not(feature = "s3"))]
fn s3(_: &str) -> Result<Arc<dyn ObjectStore>, BlobError> {
    Err(BlobError::Config(
        "s3:// needs a build with the s3 feature (cargo build --features s3)".into(),
    ))
}

#[cfg(test)]
mod tests {
    use std::convert::Infallible;

    use futures_util::stream;

    use super::*;

    fn sha(bytes: &[u8]) -> String {
        gigafactory_core::wire::hex(&Sha256::digest(bytes))
    }

    fn chunks(bytes: &[u8]) -> impl Stream<Item = Result<Bytes, Infallible>> + Unpin + Send {
        let parts: Vec<_> = bytes
            .chunks(100_003)
            .map(|c| Ok(Bytes::copy_from_slice(c)))
            .collect();
        stream::iter(parts)
    }

    async fn read(store: &BlobStore, digest: &str) -> Vec<u8> {
        let (_, mut s) = store.get(digest).await.unwrap();
        let mut out = Vec::new();
        while let Some(c) = s.next().await {
            out.extend_from_slice(&c.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn a_blob_reads_back_byte_for_byte_from_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(dir.path().to_str().unwrap()).unwrap();
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let digest = sha(&bytes);
        let size = store.put(&digest, chunks(&bytes), 4 << 20).await.unwrap();
        assert_eq!(size, bytes.len() as u64);
        assert_eq!(read(&store, &digest).await, bytes);
        assert_eq!(
            store.blobs_before(u64::MAX, 10).await.unwrap(),
            vec![digest.clone()]
        );
        store.delete(&digest).await.unwrap();
        store.delete(&digest).await.unwrap();
        assert!(matches!(
            store.get(&digest).await,
            Err(BlobError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn a_body_past_its_limit_or_of_another_digest_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = BlobStore::open(&format!("file://{}", dir.path().display())).unwrap();
        let bytes = vec![7u8; 1_000];
        let refused = store.put(&sha(&bytes), chunks(&bytes), 999).await;
        assert!(matches!(
            refused,
            Err(BlobError::TooLarge { limit_bytes: 999 })
        ));
        let wrong = store.put(&sha(b"other"), chunks(&bytes), 1_000).await;
        assert!(matches!(wrong, Err(BlobError::DigestMismatch { .. })));
        let failing = stream::iter(vec![Ok(Bytes::from_static(b"abc")), Err("reset")]);
        let cut = store.put(&sha(b"abc"), failing, 1_000).await;
        assert!(matches!(cut, Err(BlobError::Body(_))));
        assert!(store.blobs_before(u64::MAX, 10).await.unwrap().is_empty());
        assert_eq!(store.delete_uploads_before(u64::MAX, 10).await.unwrap(), 0);
    }

    #[test]
    fn a_relative_directory_is_refused() {
        assert!(matches!(
            BlobStore::open("artifacts"),
            Err(BlobError::Config(_))
        ));
    }
}
