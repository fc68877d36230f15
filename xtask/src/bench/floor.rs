//! The kernel floor of `add` on a hard-link cache: what any tool with mlops's cache layout must
//! ask of the file system to add a folder of new files, and nothing else. Each file is opened,
//! read to the end and closed (its content has to be hashed), and hard-linked into the cache
//! under a 62-character name in one of 256 shard folders; the shard folders are made as they are
//! first needed. No hashing, no manifest, no hash cache, no pointer: the time this takes bounds
//! from below the time of any such `add`, so DVC's time divided by it is the highest ratio any
//! tool could reach on this machine.
//!
//! It runs as its own process (`xtask add-floor SRC CACHE`), timed like the tools, with as many
//! threads as mlops's file pool (two per core), each taking whole folders, every call relative
//! to an open folder.

use std::io::Read;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use anyhow::Context;
use rustix::fs::{AtFlags, Mode, OFlags};

/// Arguments of the hidden `xtask add-floor`.
#[derive(Debug, clap::Args)]
pub(crate) struct FloorArgs {
    /// The folder to add (its files, at any depth).
    src: PathBuf,
    /// The cache folder to link them into (made when missing).
    cache: PathBuf,
}

pub(crate) fn run(args: &FloorArgs) -> anyhow::Result<()> {
    let files = add_floor(&args.src, &args.cache, threads())?;
    eprintln!("linked {files} files");
    Ok(())
}

/// mlops's file pool size: two threads per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get) * 2
}

/// Reads and links every file under `src` into `cache`; returns how many.
pub(crate) fn add_floor(src: &Path, cache: &Path, threads: usize) -> anyhow::Result<u64> {
    let cache_fd = {
        std::fs::create_dir_all(cache).with_context(|| cache.display().to_string())?;
        open_dir(rustix::fs::CWD, cache)?
    };
    let shards: Vec<OnceLock<OwnedFd>> = (0..256).map(|_| OnceLock::new()).collect();
    let work = Work {
        queue: Mutex::new(Queue {
            folders: vec![src.to_owned()],
            busy: 0,
            failure: None,
        }),
        changed: Condvar::new(),
    };
    let linked = AtomicU64::new(0);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 16];
                while let Some(dir) = work.take() {
                    let done = one_folder(&dir, &cache_fd, &shards, &linked, &mut buf, |sub| {
                        work.add(sub);
                    });
                    work.finish(done.err());
                }
            });
        }
    });
    let queue = work
        .queue
        .into_inner()
        .unwrap_or_else(PoisonError::into_inner);
    match queue.failure {
        Some(e) => Err(e),
        None => Ok(linked.into_inner()),
    }
}

/// The folders still to read, shared by the threads.
struct Work {
    queue: Mutex<Queue>,
    /// Signalled when a folder is added or finished.
    changed: Condvar,
}

struct Queue {
    folders: Vec<PathBuf>,
    /// Folders taken and not yet finished: they may still add more.
    busy: usize,
    /// The first error; once set, no more folders are handed out.
    failure: Option<anyhow::Error>,
}

impl Work {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The next folder, waiting while other threads may still find some; `None` when all is done.
    fn take(&self) -> Option<PathBuf> {
        let mut q = self.lock();
        loop {
            if q.failure.is_some() {
                return None;
            }
            if let Some(dir) = q.folders.pop() {
                q.busy += 1;
                return Some(dir);
            }
            if q.busy == 0 {
                return None;
            }
            q = self.changed.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn add(&self, dir: PathBuf) {
        self.lock().folders.push(dir);
        self.changed.notify_one();
    }

    fn finish(&self, failure: Option<anyhow::Error>) {
        let mut q = self.lock();
        q.busy -= 1;
        if let Some(e) = failure {
            q.failure.get_or_insert(e);
        }
        drop(q);
        self.changed.notify_all();
    }
}

/// Reads and links the files of `dir`, handing its sub-folders to `found`.
fn one_folder(
    dir: &Path,
    cache: &OwnedFd,
    shards: &[OnceLock<OwnedFd>],
    linked: &AtomicU64,
    buf: &mut [u8],
    mut found: impl FnMut(PathBuf),
) -> anyhow::Result<()> {
    let fd = open_dir(rustix::fs::CWD, dir)?;
    for entry in std::fs::read_dir(dir).with_context(|| dir.display().to_string())? {
        let entry = entry.with_context(|| dir.display().to_string())?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            found(entry.path());
            continue;
        }
        if !kind.is_file() {
            continue;
        }
        let name = entry.file_name();
        let file: std::fs::File = rustix::fs::openat(
            &fd,
            name.as_os_str(),
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::empty(),
        )
        .with_context(|| entry.path().display().to_string())?
        .into();
        let mut reader = &file;
        while reader.read(buf)? > 0 {}
        let n = linked.fetch_add(1, Ordering::Relaxed);
        let (first, object) = object_name(n);
        let object = std::str::from_utf8(&object).context("hex digits")?;
        rustix::fs::linkat(
            &fd,
            name.as_os_str(),
            shard(cache, shards, first)?,
            object,
            AtFlags::empty(),
        )
        .with_context(|| entry.path().display().to_string())?;
    }
    Ok(())
}

/// The shard (0-255, spread like a hash's first byte) and the 62 hex digits of file `n`'s
/// object name, distinct for every `n`.
fn object_name(n: u64) -> (usize, [u8; 62]) {
    let shard = (n.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 56) as usize;
    let mut name = [b'0'; 62];
    let mut x = n;
    for digit in name.iter_mut().rev() {
        *digit = b"0123456789abcdef"[(x & 15) as usize];
        x >>= 4;
        if x == 0 {
            break;
        }
    }
    (shard, name)
}

/// Shard folder `first` (0-255, named by two hex digits), made and opened by whichever thread
/// needs it first.
fn shard<'a>(
    cache: &OwnedFd,
    shards: &'a [OnceLock<OwnedFd>],
    first: usize,
) -> anyhow::Result<impl AsFd + 'a> {
    let slot = &shards[first % shards.len()];
    if let Some(fd) = slot.get() {
        return Ok(fd.as_fd());
    }
    let name = format!("{:02x}", first % shards.len());
    match rustix::fs::mkdirat(cache, name.as_str(), Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(std::io::Error::from(e)).context(name),
    }
    let fd = open_dir(cache, Path::new(&name))?;
    Ok(slot.get_or_init(|| fd).as_fd())
}

fn open_dir(at: impl AsFd, path: &Path) -> anyhow::Result<OwnedFd> {
    rustix::fs::openat(
        at,
        path,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| path.display().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_every_file_at_every_depth_under_distinct_names() {
        let src = tempfile::tempdir().unwrap();
        let cache = tempfile::tempdir().unwrap();
        for i in 0..300 {
            let dir = src.path().join(format!("d{}/e{}", i % 3, i % 5));
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join(format!("f{i}")), vec![7u8; i]).unwrap();
        }
        let n = add_floor(src.path(), &cache.path().join("c"), 3).unwrap();
        assert_eq!(n, 300);
        let mut linked = 0;
        for shard in std::fs::read_dir(cache.path().join("c")).unwrap() {
            let shard = shard.unwrap();
            assert_eq!(shard.file_name().len(), 2);
            for object in std::fs::read_dir(shard.path()).unwrap() {
                let object = object.unwrap();
                assert_eq!(object.file_name().len(), 62);
                linked += 1;
            }
        }
        assert_eq!(linked, 300, "one link per file, no name used twice");
    }

    #[test]
    fn a_missing_source_is_an_error_naming_it() {
        let cache = tempfile::tempdir().unwrap();
        let err = add_floor(Path::new("/no/such/folder"), cache.path(), 2).unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/folder"), "{err:#}");
    }
}
