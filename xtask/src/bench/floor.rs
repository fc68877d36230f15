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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

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
    let folders = Mutex::new(vec![src.to_owned()]);
    // Folders found but not yet finished: a worker with nothing to take waits for these.
    let busy = AtomicUsize::new(1);
    let linked = AtomicU64::new(0);
    let failure: Mutex<Option<anyhow::Error>> = Mutex::new(None);
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 16];
                loop {
                    let next = folders.lock().map(|mut f| f.pop()).unwrap_or(None);
                    let Some(dir) = next else {
                        if busy.load(Ordering::Acquire) == 0 {
                            return;
                        }
                        std::thread::yield_now();
                        continue;
                    };
                    let done = one_folder(&dir, &cache_fd, &shards, &linked, &mut buf, |sub| {
                        busy.fetch_add(1, Ordering::AcqRel);
                        if let Ok(mut f) = folders.lock() {
                            f.push(sub);
                        }
                    });
                    if let Err(e) = done
                        && let Ok(mut slot) = failure.lock()
                    {
                        slot.get_or_insert(e);
                        // Stop everyone: drop the queue and mark it finished.
                        if let Ok(mut f) = folders.lock() {
                            f.clear();
                        }
                        busy.store(0, Ordering::Release);
                        return;
                    }
                    busy.fetch_sub(1, Ordering::AcqRel);
                }
            });
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    Ok(linked.into_inner())
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
