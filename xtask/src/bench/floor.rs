//! The kernel floor of `add` on a hard-link cache: what any tool with mlops's cache layout must
//! ask of the file system to add a folder of new files, and nothing else. Each file is opened,
//! read to the end and closed (its content has to be hashed), and hard-linked into the cache
//! under a 62-character name in one of 256 shard folders; the shard folders are made as they are
//! first needed. No hashing, no manifest, no hash cache, no pointer: the time this takes bounds
//! from below the time of any such `add`, so DVC's time divided by it is the highest ratio any
//! tool could reach on this machine.
//!
//! The floor of `pull` from a folder remote is measured the same way: each object is read and
//! written into the cache as a new unnamed file that is then linked into place, and each is
//! hard-linked into a workspace of 100 folders; no hashing, no manifest.
//!
//! Each runs as its own process (`xtask add-floor SRC CACHE`, `xtask pull-floor REMOTE CACHE
//! WORKSPACE`), timed like the tools, with as many threads as mlops's file pool (two per core),
//! each taking whole folders, every call relative to an open folder.

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

/// Arguments of the hidden `xtask pull-floor`.
#[derive(Debug, clap::Args)]
pub(crate) struct PullFloorArgs {
    /// A folder remote: objects in two-hex-digit shard folders (`blake3/` of mlops's layout).
    remote: PathBuf,
    /// The cache folder to copy them into (made when missing).
    cache: PathBuf,
    /// The workspace folder to link them into (made when missing).
    workspace: PathBuf,
}

pub(crate) fn run_pull(args: &PullFloorArgs) -> anyhow::Result<()> {
    let files = pull_floor(&args.remote, &args.cache, &args.workspace, threads())?;
    eprintln!("copied and linked {files} files");
    Ok(())
}

/// mlops's file pool size: two threads per core.
fn threads() -> usize {
    std::thread::available_parallelism().map_or(1, std::num::NonZero::get) * 2
}

/// Reads and links every file under `src` into `cache`; returns how many.
pub(crate) fn add_floor(src: &Path, cache: &Path, threads: usize) -> anyhow::Result<u64> {
    let cache_fd = make_dir(rustix::fs::CWD, cache)?;
    let shards: Vec<OnceLock<OwnedFd>> = (0..256).map(|_| OnceLock::new()).collect();
    let linked = AtomicU64::new(0);
    each_folder(vec![src.to_owned()], threads, &|dir, buf, found| {
        one_folder(dir, &cache_fd, &shards, &linked, buf, found)
    })?;
    Ok(linked.into_inner())
}

/// Copies every object of the folder remote `remote` into `cache` (new unnamed files, linked
/// into place once written), then links each into one of 100 folders of `workspace`; returns
/// how many.
pub(crate) fn pull_floor(
    remote: &Path,
    cache: &Path,
    workspace: &Path,
    threads: usize,
) -> anyhow::Result<u64> {
    let shard_names = |root: &Path| -> anyhow::Result<Vec<PathBuf>> {
        let mut v = Vec::new();
        for e in std::fs::read_dir(root).with_context(|| root.display().to_string())? {
            let e = e.with_context(|| root.display().to_string())?;
            if e.file_type()?.is_dir() {
                v.push(PathBuf::from(e.file_name()));
            }
        }
        Ok(v)
    };
    let cache_fd = make_dir(rustix::fs::CWD, cache)?;
    let copied = AtomicU64::new(0);
    each_folder(shard_names(remote)?, threads, &|shard, buf, _| {
        let from = open_dir(rustix::fs::CWD, &remote.join(shard))?;
        let to = make_dir(&cache_fd, shard)?;
        for name in names_in(&remote.join(shard))? {
            copy_object(&from, &to, &name, buf)
                .with_context(|| remote.join(shard).join(&name).display().to_string())?;
            copied.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    })?;
    let workspace_fd = make_dir(rustix::fs::CWD, workspace)?;
    let folders = (0..100)
        .map(|i| make_dir(&workspace_fd, Path::new(&format!("part-{i:03}"))))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let linked = AtomicU64::new(0);
    each_folder(shard_names(cache)?, threads, &|shard, _, _| {
        let from = open_dir(&cache_fd, shard)?;
        for name in names_in(&cache.join(shard))? {
            let n = linked.fetch_add(1, Ordering::Relaxed);
            let folder = &folders[(n % 100) as usize];
            rustix::fs::linkat(
                &from,
                name.as_os_str(),
                folder,
                format!("sample-{n:05}.bin").as_str(),
                AtFlags::empty(),
            )
            .with_context(|| cache.join(shard).join(&name).display().to_string())?;
        }
        Ok(())
    })?;
    let (copied, linked) = (copied.into_inner(), linked.into_inner());
    anyhow::ensure!(
        copied == linked,
        "copied {copied} objects but linked {linked}"
    );
    Ok(linked)
}

/// The names in folder `dir`.
fn names_in(dir: &Path) -> anyhow::Result<Vec<std::ffi::OsString>> {
    std::fs::read_dir(dir)
        .and_then(|d| d.map(|e| e.map(|e| e.file_name())).collect())
        .with_context(|| dir.display().to_string())
}

/// Copies `name` from folder `from` to a new file of the same name in folder `to`, written
/// unnamed and linked into place as mlops-cas does.
fn copy_object(
    from: &OwnedFd,
    to: &OwnedFd,
    name: &std::ffi::OsStr,
    buf: &mut [u8],
) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let input: std::fs::File =
        rustix::fs::openat(from, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?.into();
    let mut output: std::fs::File = rustix::fs::openat(
        to,
        ".",
        OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o444),
    )?
    .into();
    let mut reader = &input;
    loop {
        let n = reader.read(buf)?;
        if n == 0 {
            break;
        }
        output.write_all(&buf[..n])?;
    }
    match rustix::fs::linkat(&output, "", to, name, AtFlags::EMPTY_PATH) {
        Ok(()) => Ok(()),
        // Without CAP_DAC_READ_SEARCH: name it through /proc, as mlops-cas does.
        Err(rustix::io::Errno::NOENT | rustix::io::Errno::PERM) => {
            let proc = format!("/proc/self/fd/{}", output.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc.as_str(),
                to,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )?;
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// What [`each_folder`] does with one folder, given a buffer and where to hand sub-folders.
type FolderVisit<'a> =
    dyn Fn(&Path, &mut [u8], &mut dyn FnMut(PathBuf)) -> anyhow::Result<()> + Sync + 'a;

/// Runs `visit` on every folder of `roots` and every folder it hands back, on `threads`
/// threads, each with its own 64 KiB buffer; the first error stops the rest.
fn each_folder(roots: Vec<PathBuf>, threads: usize, visit: &FolderVisit<'_>) -> anyhow::Result<()> {
    let work = Work {
        queue: Mutex::new(Queue {
            folders: roots,
            busy: 0,
            failure: None,
        }),
        changed: Condvar::new(),
    };
    std::thread::scope(|s| {
        for _ in 0..threads.max(1) {
            s.spawn(|| {
                let mut buf = vec![0u8; 1 << 16];
                while let Some(dir) = work.take() {
                    let done = visit(&dir, &mut buf, &mut |sub| work.add(sub));
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
        None => Ok(()),
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
    found: &mut dyn FnMut(PathBuf),
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

/// Makes folder `path` (relative to `at`) when missing, and opens it.
fn make_dir(at: impl AsFd, path: &Path) -> anyhow::Result<OwnedFd> {
    match rustix::fs::mkdirat(&at, path, Mode::from_raw_mode(0o755)) {
        Ok(()) | Err(rustix::io::Errno::EXIST) => open_dir(at, path),
        Err(e) => Err(std::io::Error::from(e)).with_context(|| path.display().to_string()),
    }
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
    fn a_pull_copies_every_object_and_links_each_into_the_workspace() {
        let remote = tempfile::tempdir().unwrap();
        let out = tempfile::tempdir().unwrap();
        for i in 0..120u32 {
            let shard = remote.path().join(format!("{:02x}", i % 7));
            std::fs::create_dir_all(&shard).unwrap();
            std::fs::write(
                shard.join(format!("{i:062x}")),
                i.to_le_bytes().repeat(i as usize),
            )
            .unwrap();
        }
        let (cache, ws) = (out.path().join("cache"), out.path().join("ws"));
        assert_eq!(pull_floor(remote.path(), &cache, &ws, 3).unwrap(), 120);
        for i in 0..120u32 {
            let object = cache.join(format!("{:02x}/{i:062x}", i % 7));
            let meta = std::fs::metadata(&object).unwrap();
            assert_eq!(
                std::fs::read(&object).unwrap(),
                i.to_le_bytes().repeat(i as usize)
            );
            assert!(meta.permissions().readonly(), "objects are read-only");
            assert_eq!(
                std::os::unix::fs::MetadataExt::nlink(&meta),
                2,
                "linked once"
            );
        }
        let linked: usize = (0..100)
            .map(|i| {
                std::fs::read_dir(ws.join(format!("part-{i:03}")))
                    .unwrap()
                    .count()
            })
            .sum();
        assert_eq!(linked, 120);
    }

    #[test]
    fn a_missing_source_is_an_error_naming_it() {
        let cache = tempfile::tempdir().unwrap();
        let err = add_floor(Path::new("/no/such/folder"), cache.path(), 2).unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/folder"), "{err:#}");
        let err = pull_floor(
            Path::new("/no/such/remote"),
            &cache.path().join("c"),
            &cache.path().join("w"),
            2,
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("/no/such/remote"), "{err:#}");
    }
}
