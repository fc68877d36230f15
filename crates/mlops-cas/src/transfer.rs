//! Moving objects between the cache and a remote: only what is missing on the other side moves,
//! with bounded concurrency, multipart uploads for large objects, retries with backoff, and every
//! downloaded object verified before it enters the cache.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use object_store::{ObjectStoreExt, PutPayload, WriteMultipart};
use tokio::io::AsyncWriteExt;

use crate::cache::Cache;
use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::remote::Remote;
use crate::statcache::StatCache;

/// Objects at least this large are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 64 << 20;
/// The part size of multipart uploads.
const PART_SIZE: usize = 16 << 20;
/// How many times one object is tried before the transfer counts as failed.
const ATTEMPTS: u32 = 4;
/// Above this many objects, one listing of the remote is cheaper than a HEAD per object.
const LIST_THRESHOLD: usize = 64;

/// Counters reported to the progress callback after every object.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Objects transferred so far.
    pub objects_done: u64,
    /// Objects to transfer.
    pub objects_total: u64,
    /// Bytes transferred so far.
    pub bytes_done: u64,
    /// Bytes to transfer.
    pub bytes_total: u64,
}

/// A progress callback; called from transfer tasks, so it must be cheap and thread-safe.
pub type ProgressFn = Arc<dyn Fn(&Progress) + Send + Sync>;

/// Options of push and fetch.
#[derive(Clone)]
#[non_exhaustive]
pub struct TransferOptions {
    /// Objects in flight at once.
    pub jobs: usize,
    /// Called after each object.
    pub progress: Option<ProgressFn>,
}

impl std::fmt::Debug for TransferOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TransferOptions")
            .field("jobs", &self.jobs)
            .finish_non_exhaustive()
    }
}

impl Default for TransferOptions {
    fn default() -> Self {
        Self {
            jobs: default_jobs(),
            progress: None,
        }
    }
}

impl TransferOptions {
    /// `jobs` objects in flight (at least 1).
    #[must_use]
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Reports progress to `f`.
    #[must_use]
    pub fn progress(mut self, f: ProgressFn) -> Self {
        self.progress = Some(f);
        self
    }
}

/// Four transfers per core: transfers wait on I/O far more than on the CPU.
pub fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(4, |n| n.get() * 4)
}

/// What a push or fetch did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TransferReport {
    /// Objects moved.
    pub transferred: u64,
    /// Bytes moved.
    pub bytes: u64,
    /// Objects that were already on the other side.
    pub already_present: u64,
}

/// A multi-threaded runtime for the synchronous API.
pub(crate) fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::io("tokio runtime", e))
}

/// The subset of `hashes` present in `remote`.
///
/// # Errors
/// Remote errors (unreachable, forbidden).
pub async fn remote_has(remote: &Remote, hashes: &[Hash], jobs: usize) -> Result<HashSet<Hash>> {
    if hashes.len() > LIST_THRESHOLD {
        let prefix = remote.objects_prefix();
        let mut found = HashSet::new();
        let mut stream = remote.store().list(Some(&prefix));
        while let Some(item) = stream.next().await {
            match item {
                Ok(meta) => {
                    if let Some(h) = remote.hash_of(&meta.location) {
                        found.insert(h);
                    }
                }
                Err(object_store::Error::NotFound { .. }) => break,
                Err(e) => return Err(remote.err(e)),
            }
        }
        let wanted: HashSet<&Hash> = hashes.iter().collect();
        found.retain(|h| wanted.contains(h));
        return Ok(found);
    }
    let results: Vec<Option<Hash>> = futures::stream::iter(hashes.iter().copied())
        .map(|h| async move {
            match remote.store().head(&remote.object_path(&h)).await {
                Ok(_) => Ok(Some(h)),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(remote.err(e)),
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect()
        .await?;
    Ok(results.into_iter().flatten().collect())
}

struct Counter {
    done: AtomicU64,
    bytes: AtomicU64,
    total: u64,
    bytes_total: u64,
    progress: Option<ProgressFn>,
}

impl Counter {
    fn new(objects: &[(Hash, u64)], progress: Option<ProgressFn>) -> Self {
        Self {
            done: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            total: objects.len() as u64,
            bytes_total: objects.iter().map(|(_, s)| s).sum(),
            progress,
        }
    }

    fn finished(&self, size: u64) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        let bytes = self.bytes.fetch_add(size, Ordering::Relaxed) + size;
        if let Some(f) = &self.progress {
            f(&Progress {
                objects_done: done,
                objects_total: self.total,
                bytes_done: bytes,
                bytes_total: self.bytes_total,
            });
        }
    }
}

async fn with_retries<F, Fut>(what: &str, mut f: F) -> Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<()>>,
{
    let mut delay = Duration::from_millis(200);
    for attempt in 1..=ATTEMPTS {
        match f().await {
            Ok(()) => return Ok(()),
            // Retrying cannot fix a missing or corrupt object, or a local disk problem.
            Err(e @ (Error::Corrupt { .. } | Error::MissingObject { .. } | Error::Io { .. })) => {
                return Err(e);
            }
            Err(Error::Remote { source, .. })
                if matches!(*source, object_store::Error::NotFound { .. }) =>
            {
                return Err(Error::Invalid(format!("{what}: not found in the remote")));
            }
            Err(e) if attempt == ATTEMPTS => return Err(e),
            Err(e) => {
                tracing::debug!(%what, attempt, error = %e, "retrying");
                tokio::time::sleep(delay).await;
                delay *= 2;
            }
        }
    }
    Ok(())
}

fn summarize(results: Vec<Result<()>>) -> Result<()> {
    let total = results.len();
    let mut failed = 0;
    let mut first = None;
    for r in results {
        if let Err(e) = r {
            failed += 1;
            first.get_or_insert(e);
        }
    }
    match first {
        None => Ok(()),
        Some(e) if total == 1 => Err(e),
        Some(e) => Err(Error::Transfers {
            failed,
            total,
            first: e.to_string(),
        }),
    }
}

/// Uploads the objects the remote lacks. Every object is checked against its hash in the cache
/// first (a stamp check; re-hashed when the stamp changed), so corruption never spreads.
///
/// # Errors
/// [`Error::MissingObject`] when an object is not in the cache; remote errors after retries.
pub async fn upload(
    cache: &Cache,
    stats: &StatCache,
    remote: &Remote,
    objects: &[(Hash, u64)],
    options: &TransferOptions,
) -> Result<TransferReport> {
    let hashes: Vec<Hash> = objects.iter().map(|(h, _)| *h).collect();
    let present = match remote.local_root() {
        Some(root) => crate::local_transfer::has(root, &hashes)?,
        None => remote_has(remote, &hashes, options.jobs).await?,
    };
    let todo: Vec<(Hash, u64)> = objects
        .iter()
        .filter(|(h, _)| !present.contains(h))
        .copied()
        .collect();
    for (h, _) in &todo {
        cache.verify(h, stats, std::path::Path::new(&h.to_string()))?;
    }
    let counter = Counter::new(&todo, options.progress.clone());
    if let Some(root) = remote.local_root() {
        crate::local_transfer::upload(cache, root, &todo, options.jobs, &|size| {
            counter.finished(size);
        })?;
        return Ok(TransferReport {
            transferred: todo.len() as u64,
            bytes: todo.iter().map(|(_, s)| s).sum(),
            already_present: present.len() as u64,
        });
    }
    let results: Vec<Result<()>> = futures::stream::iter(todo.iter().copied())
        .map(|(hash, size)| {
            let counter = &counter;
            async move {
                let r =
                    with_retries(&hash.to_string(), || upload_one(cache, remote, hash, size)).await;
                if r.is_ok() {
                    counter.finished(size);
                }
                r
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    summarize(results)?;
    Ok(TransferReport {
        transferred: todo.len() as u64,
        bytes: todo.iter().map(|(_, s)| s).sum(),
        already_present: present.len() as u64,
    })
}

async fn upload_one(cache: &Cache, remote: &Remote, hash: Hash, size: u64) -> Result<()> {
    let src = cache.object_path(&hash);
    let dest = remote.object_path(&hash);
    if size < MULTIPART_THRESHOLD {
        let bytes = tokio::fs::read(&src)
            .await
            .map_err(|e| Error::io(&src, e))?;
        remote
            .store()
            .put(&dest, PutPayload::from(bytes))
            .await
            .map_err(|e| remote.err(e))?;
        return Ok(());
    }
    let upload = remote
        .store()
        .put_multipart(&dest)
        .await
        .map_err(|e| remote.err(e))?;
    let mut writer = WriteMultipart::new_with_chunk_size(upload, PART_SIZE);
    let mut file = tokio::fs::File::open(&src)
        .await
        .map_err(|e| Error::io(&src, e))?;
    let mut buf = vec![0u8; PART_SIZE];
    loop {
        use tokio::io::AsyncReadExt;
        let n = match file.read(&mut buf).await {
            Ok(n) => n,
            Err(e) => {
                writer.abort().await.ok();
                return Err(Error::io(&src, e));
            }
        };
        if n == 0 {
            break;
        }
        if let Err(e) = writer.wait_for_capacity(4).await {
            return Err(remote.err(e));
        }
        writer.write(&buf[..n]);
    }
    writer.finish().await.map_err(|e| remote.err(e))?;
    Ok(())
}

/// Downloads the objects the cache lacks, verifying each before it enters the cache.
///
/// # Errors
/// [`Error::Corrupt`] for an object whose content does not match its hash (it is not kept);
/// remote errors after retries.
pub async fn download(
    cache: &Cache,
    stats: &StatCache,
    remote: &Remote,
    objects: &[(Hash, u64)],
    options: &TransferOptions,
) -> Result<TransferReport> {
    let hashes: Vec<Hash> = objects.iter().map(|(h, _)| *h).collect();
    let todo: Vec<(Hash, u64)> = objects
        .iter()
        .zip(cache.present(&hashes))
        .filter(|(_, present)| !present)
        .map(|(o, _)| *o)
        .collect();
    let already = (objects.len() - todo.len()) as u64;
    if let Some(root) = remote.local_root() {
        let counter = Counter::new(&todo, options.progress.clone());
        crate::local_transfer::download(cache, stats, root, &todo, options.jobs, &|size| {
            counter.finished(size);
        })?;
        return Ok(TransferReport {
            transferred: todo.len() as u64,
            bytes: todo.iter().map(|(_, s)| s).sum(),
            already_present: already,
        });
    }
    let tmp_dir = cache.tmp_dir()?;
    let counter = Counter::new(&todo, options.progress.clone());
    let results: Vec<Result<()>> = futures::stream::iter(todo.iter().copied())
        .map(|(hash, size)| {
            let (counter, tmp_dir) = (&counter, &tmp_dir);
            async move {
                let r = with_retries(&hash.to_string(), || {
                    download_one(cache, remote, hash, tmp_dir)
                })
                .await;
                if r.is_ok() {
                    counter.finished(size);
                }
                r
            }
        })
        .buffer_unordered(options.jobs.max(1))
        .collect()
        .await;
    summarize(results)?;
    Ok(TransferReport {
        transferred: todo.len() as u64,
        bytes: todo.iter().map(|(_, s)| s).sum(),
        already_present: already,
    })
}

async fn download_one(
    cache: &Cache,
    remote: &Remote,
    hash: Hash,
    tmp_dir: &std::path::Path,
) -> Result<()> {
    let location = remote.object_path(&hash);
    let got = remote
        .store()
        .get(&location)
        .await
        .map_err(|e| remote.err(e))?;
    let tmp = tmp_dir.join(format!("{}.tmp-{}", hash.to_hex(), std::process::id()));
    let mut file = tokio::fs::File::create(&tmp)
        .await
        .map_err(|e| Error::io(&tmp, e))?;
    let mut hasher = blake3::Hasher::new();
    let mut stream = got.into_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = match chunk {
            Ok(c) => c,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(remote.err(e));
            }
        };
        hasher.update(&chunk);
        if let Err(e) = file.write_all(&chunk).await {
            let _ = tokio::fs::remove_file(&tmp).await;
            return Err(Error::io(&tmp, e));
        }
    }
    file.flush().await.map_err(|e| Error::io(&tmp, e))?;
    drop(file);
    let actual = Hash::from_bytes(*hasher.finalize().as_bytes());
    cache.insert_verified_temp(
        &tmp,
        &hash,
        &actual,
        &format!(
            "{}/{}",
            remote.url().trim_end_matches('/'),
            hash.object_key()
        ),
    )
}

/// Deletes objects from the remote.
///
/// # Errors
/// Remote errors.
pub async fn delete(remote: &Remote, hashes: &[Hash], jobs: usize) -> Result<()> {
    futures::stream::iter(hashes.iter().copied())
        .map(|h| async move {
            match remote.store().delete(&remote.object_path(&h)).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
                Err(e) => Err(remote.err(e)),
            }
        })
        .buffer_unordered(jobs.max(1))
        .try_collect::<Vec<()>>()
        .await?;
    Ok(())
}

/// Every object hash in the remote.
///
/// # Errors
/// Remote errors.
pub async fn list(remote: &Remote) -> Result<Vec<Hash>> {
    let prefix = remote.objects_prefix();
    let mut out = Vec::new();
    let mut stream = remote.store().list(Some(&prefix));
    while let Some(item) = stream.next().await {
        match item {
            Ok(meta) => out.extend(remote.hash_of(&meta.location)),
            Err(object_store::Error::NotFound { .. }) => break,
            Err(e) => return Err(remote.err(e)),
        }
    }
    Ok(out)
}
