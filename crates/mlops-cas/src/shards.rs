//! The `blake3/<2 hex>` folders of an object store on disk (the cache, a folder remote), opened
//! once per process, so that per-object system calls resolve one name relative to an open folder
//! instead of walking the whole object path; and shard listings, which answer "which of these
//! objects are here" for many objects with one `getdents` pass instead of one `stat` each.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use rustc_hash::FxHashMap;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
use rustix::fs::Dir;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::hash::Hash;

/// What a shard listing says of one object: its inode number and whether it is a regular file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Listed {
    pub(crate) inode: u64,
    pub(crate) is_file: bool,
}

/// The shard folders of the store rooted at `root` (which holds `blake3/`).
#[derive(Debug, Clone)]
pub(crate) struct ShardDirs {
    root: PathBuf,
    open: Arc<[OnceLock<OwnedFd>; 256]>,
}

impl ShardDirs {
    pub(crate) fn new(root: PathBuf) -> Self {
        reserve_descriptors();
        Self {
            root,
            open: Arc::new([const { OnceLock::new() }; 256]),
        }
    }

    /// The path of `hash`'s shard folder.
    pub(crate) fn path(&self, hash: &Hash) -> PathBuf {
        let mut hex = [0u8; 64];
        let hex = hash.hex_into(&mut hex);
        let mut p = PathBuf::with_capacity(self.root.as_os_str().len() + 80);
        p.push(&self.root);
        p.push("blake3");
        p.push(std::ffi::OsStr::new(
            std::str::from_utf8(&hex[..2]).unwrap_or("00"),
        ));
        p
    }

    /// The path of the object `hash` in this store.
    pub(crate) fn object_path(&self, hash: &Hash) -> PathBuf {
        let mut p = self.path(hash);
        p.push(object_name(hash, &mut [0u8; 64]));
        p
    }

    /// `hash`'s shard folder, opened once per process; with `create`, made first when missing.
    ///
    /// An existing folder is opened straight away; only a missing one is made (by whichever
    /// thread gets there first: a sibling's `mkdir` of the same folder is harmless).
    ///
    /// # Errors
    /// I/O errors naming the folder (not found, without `create`).
    pub(crate) fn get(&self, hash: &Hash, create: bool) -> Result<BorrowedFd<'_>> {
        let slot = &self.open[usize::from(hash.as_bytes()[0])];
        if let Some(fd) = slot.get() {
            return Ok(fd.as_fd());
        }
        let dir = self.path(hash);
        let fd = match open_dir(&dir) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. })
                if create && source.kind() == std::io::ErrorKind::NotFound =>
            {
                std::fs::create_dir_all(&dir).map_err(|e| Error::io(&dir, e))?;
                open_dir(&dir)?
            }
            Err(e) => return Err(e),
        };
        // Another thread may have opened it meanwhile: theirs is kept, this one closed.
        Ok(slot.get_or_init(|| fd).as_fd())
    }

    /// Every object in `hash`'s shard folder; an empty map when the folder does not exist.
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub(crate) fn list(&self, hash: &Hash) -> Result<FxHashMap<Hash, Listed>> {
        let dir = self.path(hash);
        let fd = match self.get(hash, false) {
            Ok(fd) => fd,
            Err(Error::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                return Ok(FxHashMap::default());
            }
            Err(e) => return Err(e),
        };
        // A second descriptor: reading a directory moves its offset, and `fd` is shared.
        let own = rustix::fs::openat(
            fd,
            ".",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| Error::io(&dir, e.into()))?;
        let mut out = FxHashMap::default();
        let mut digits = [0u8; 64];
        let mut prefix = [0u8; 64];
        digits[..2].copy_from_slice(&hash.hex_into(&mut prefix)[..2]);
        for_each_entry(own.as_fd(), |name, kind, inode| {
            if name.len() != 62 {
                return Ok(()); // `.`, `..`, temporary files
            }
            digits[2..].copy_from_slice(name);
            if let Some(h) = Hash::from_hex(&digits) {
                out.insert(
                    h,
                    Listed {
                        inode,
                        is_file: kind == FileType::RegularFile,
                    },
                );
            }
            Ok(())
        })
        .map_err(|e| Error::io(&dir, e))?;
        Ok(out)
    }

    /// The size of `hash`'s shard folder in bytes (its directory blocks); `None` when it does
    /// not exist or cannot be stat-ed.
    pub(crate) fn dir_size(&self, hash: &Hash) -> Option<u64> {
        std::fs::metadata(self.path(hash)).ok().map(|m| m.len())
    }
}

/// A new object file being written in a shard folder before it gets its name. It is unnamed
/// (`O_TMPFILE`) where the system allows, so a write that is interrupted leaves nothing behind
/// and naming it is one `linkat` (no temporary directory entry to add and rename away);
/// elsewhere it has a temporary name (`.<62 hex>.tmp-<pid>-<n>`, which `gc` cleans up) and is
/// renamed. Created read-only: the descriptor is the only way to write it.
#[derive(Debug)]
pub(crate) struct NewObject<'a> {
    /// The file, open for writing.
    pub(crate) file: std::fs::File,
    dir: BorrowedFd<'a>,
    temp_name: Option<String>,
}

/// `O_TMPFILE` files could not be created or named here: use temporary names.
static UNNAMED_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

impl<'a> NewObject<'a> {
    /// A new, empty object file in the open shard folder `dir`, for the object `name`.
    ///
    /// # Errors
    /// The error of creating the file.
    pub(crate) fn create(dir: BorrowedFd<'a>, name: &str) -> std::io::Result<Self> {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        if !UNNAMED_UNSUPPORTED.load(Ordering::Relaxed) {
            match rustix::fs::openat(
                dir,
                ".",
                OFlags::TMPFILE | OFlags::RDWR | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o444),
            ) {
                Ok(fd) => {
                    return Ok(Self {
                        file: fd.into(),
                        dir,
                        temp_name: None,
                    });
                }
                // Not supported by this file system or kernel (EOPNOTSUPP, EISDIR, EINVAL).
                Err(_) => UNNAMED_UNSUPPORTED.store(true, Ordering::Relaxed),
            }
        }
        Self::create_named(dir, name)
    }

    /// [`NewObject::create`] under a temporary name.
    fn create_named(dir: BorrowedFd<'a>, name: &str) -> std::io::Result<Self> {
        let temp = temp_name(name);
        let fd = rustix::fs::openat(
            dir,
            temp.as_str(),
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o444),
        )?;
        Ok(Self {
            file: fd.into(),
            dir,
            temp_name: Some(temp),
        })
    }

    /// The file's stamp as written (naming it changes only its ctime).
    ///
    /// # Errors
    /// The `fstat` error.
    pub(crate) fn stamp(&self) -> std::io::Result<crate::statcache::Stamp> {
        Ok(crate::walk::stamp_of(&rustix::fs::fstat(&self.file)?))
    }

    /// Gives the written file the object name `name` in its folder, replacing a file already
    /// there (this one holds verified content).
    ///
    /// # Errors
    /// The error of linking or renaming; nothing is left behind under a temporary name.
    pub(crate) fn publish(self, name: &str) -> std::io::Result<()> {
        let Some(temp) = &self.temp_name else {
            match link_open(&self.file, self.dir, name) {
                Ok(()) => return Ok(()),
                Err(rustix::io::Errno::EXIST) => {}
                Err(_) => {
                    // Linking unnamed files does not work here after all: copy into a named one.
                    UNNAMED_UNSUPPORTED.store(true, Ordering::Relaxed);
                    return self.republish_named(name);
                }
            }
            // Something is already at the name: link under a temporary name and rename over it.
            let temp = temp_name(name);
            link_open(&self.file, self.dir, &temp)?;
            return rename_or_remove(self.dir, &temp, name);
        };
        rename_or_remove(self.dir, temp, name)
    }

    /// Removes whatever this left behind (nothing for an unnamed file).
    pub(crate) fn discard(self) {
        if let Some(temp) = &self.temp_name {
            let _ = rustix::fs::unlinkat(self.dir, temp.as_str(), AtFlags::empty());
        }
    }

    fn republish_named(self, name: &str) -> std::io::Result<()> {
        use std::io::Seek;
        // Unnamed files are opened for reading too, for this.
        let mut from = &self.file;
        from.rewind()?;
        let mut named = Self::create_named(self.dir, name)?;
        if let Err(e) = std::io::copy(&mut from, &mut named.file) {
            named.discard();
            return Err(e);
        }
        named.publish(name)
    }
}

/// Gives an open file (an unnamed `O_TMPFILE` one, or any other) the name `name` in `dir`:
/// `linkat` with `AT_EMPTY_PATH`, which needs a capability on kernels before 6.10, else through
/// `/proc/self/fd`.
///
/// # Errors
/// The link's error (`EEXIST` when the name is taken).
#[cfg(any(target_os = "linux", target_os = "android"))]
pub(crate) fn link_open(
    file: &std::fs::File,
    dir: BorrowedFd<'_>,
    name: &str,
) -> rustix::io::Result<()> {
    match rustix::fs::linkat(file, "", dir, name, AtFlags::EMPTY_PATH) {
        Err(rustix::io::Errno::PERM | rustix::io::Errno::NOENT | rustix::io::Errno::INVAL) => {
            let proc = format!("/proc/self/fd/{}", file.as_raw_fd());
            rustix::fs::linkat(
                rustix::fs::CWD,
                proc.as_str(),
                dir,
                name,
                AtFlags::SYMLINK_FOLLOW,
            )
        }
        other => other,
    }
}

/// Elsewhere open files are linked by name instead.
#[cfg(not(any(target_os = "linux", target_os = "android")))]
pub(crate) fn link_open(_: &std::fs::File, _: BorrowedFd<'_>, _: &str) -> rustix::io::Result<()> {
    Err(rustix::io::Errno::NOTSUP)
}

fn rename_or_remove(dir: BorrowedFd<'_>, from: &str, to: &str) -> std::io::Result<()> {
    rustix::fs::renameat(dir, from, dir, to).map_err(|e| {
        let _ = rustix::fs::unlinkat(dir, from, AtFlags::empty());
        e.into()
    })
}

/// `.<name>.tmp-<pid>-<n>`, unique in this process.
fn temp_name(name: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static PID: OnceLock<u32> = OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(".{name}.tmp-{}-{n}", PID.get_or_init(std::process::id))
}

/// Calls `each` with the name, type and inode number of every entry of the open folder `dir`
/// (`.` and `..` included), reading from its current offset. Entries are read in 32 KiB
/// `getdents` batches straight from the kernel's buffer, with no allocation per entry.
///
/// # Errors
/// The listing's error, or the first one `each` returns.
pub(crate) fn for_each_entry(
    dir: BorrowedFd<'_>,
    mut each: impl FnMut(&[u8], FileType, u64) -> std::io::Result<()>,
) -> std::io::Result<()> {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let mut buf = Vec::with_capacity(32 << 10);
        let mut entries = rustix::fs::RawDir::new(dir, buf.spare_capacity_mut());
        while let Some(entry) = entries.next() {
            let entry = entry?;
            each(entry.file_name().to_bytes(), entry.file_type(), entry.ino())?;
        }
    }
    #[cfg(not(any(target_os = "linux", target_os = "android")))]
    {
        let mut entries = Dir::read_from(dir)?;
        while let Some(entry) = entries.read() {
            let entry = entry?;
            each(entry.file_name().to_bytes(), entry.file_type(), entry.ino())?;
        }
    }
    Ok(())
}

/// The descriptor number that [`reserve_descriptors`] makes room for: the 256 shard folders
/// of the cache and as many of a folder remote, plus the files and folders in flight.
const RESERVED_DESCRIPTORS: i32 = 640;

/// Grows this process's descriptor table once, to hold [`RESERVED_DESCRIPTORS`], while that is
/// cheap. Linux grows the table as descriptors 64, 128, 256 and 512 are first used, and when
/// more than one thread is running each growth waits for an RCU grace period: `status` stalled
/// 5-15 ms on opening its 256th shard folder, both threads at once. Growing it before any
/// thread starts (the first store opened) costs one allocation; later growth never waits. A
/// soft descriptor limit below the reservation leaves the table as it is.
pub(crate) fn reserve_descriptors() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Ok(probe) = rustix::fs::openat(
            rustix::fs::CWD,
            "/",
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        ) else {
            return;
        };
        // The lowest free descriptor at or above the reservation: the table grows to hold it,
        // and keeps that size after it is closed.
        let _ = rustix::io::fcntl_dupfd_cloexec(&probe, RESERVED_DESCRIPTORS);
    });
}

/// An object's file name in its shard folder: the last 62 hex digits.
pub(crate) fn object_name<'a>(hash: &Hash, buf: &'a mut [u8; 64]) -> &'a str {
    std::str::from_utf8(&hash.hex_into(buf)[2..]).unwrap_or_default()
}

pub(crate) fn open_dir(dir: &Path) -> Result<OwnedFd> {
    rustix::fs::openat(
        rustix::fs::CWD,
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| Error::io(dir, e.into()))
}

#[cfg(test)]
mod tests {

    /// Linux shows the descriptor table's size as `FDSize` in `/proc/self/status`.
    #[cfg(target_os = "linux")]
    #[test]
    fn opening_a_store_grows_the_descriptor_table_at_once() {
        reserve_descriptors();
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let size: i32 = status
            .lines()
            .find_map(|l| l.strip_prefix("FDSize:"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(size > RESERVED_DESCRIPTORS, "FDSize {size}");
    }

    use super::*;
    use crate::hash::hash_bytes;

    #[test]
    fn lists_objects_of_a_shard_and_nothing_for_a_missing_one() {
        let dir = tempfile::tempdir().unwrap();
        let shards = ShardDirs::new(dir.path().to_owned());
        let h = hash_bytes(b"x");
        assert!(shards.list(&h).unwrap().is_empty());
        assert!(
            shards.get(&h, false).is_err(),
            "not created without `create`"
        );
        let fd = shards.get(&h, true).unwrap();
        let mut buf = [0u8; 64];
        let name = object_name(&h, &mut buf).to_owned();
        std::fs::write(shards.path(&h).join(&name), b"x").unwrap();
        std::fs::write(shards.path(&h).join(".tmp-123"), b"partial").unwrap();
        std::fs::create_dir(shards.path(&h).join("a".repeat(62))).unwrap();
        let folder: Hash = format!("blake3:{}{}", &h.to_hex()[..2], "a".repeat(62))
            .parse()
            .unwrap();
        let listed = shards.list(&h).unwrap();
        assert_eq!(listed.len(), 2, "{listed:?}");
        assert!(listed[&h].is_file);
        assert!(!listed[&folder].is_file);
        // Listing twice works (the shared descriptor's offset is not consumed).
        assert_eq!(shards.list(&h).unwrap(), listed);
        let st = rustix::fs::statat(fd, name.as_str(), rustix::fs::AtFlags::empty()).unwrap();
        assert_eq!(listed[&h].inode, st.st_ino);
    }

    fn names_in(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        v.sort();
        v
    }

    /// Every way of creating and naming a new object ends with exactly the object, read-only,
    /// holding what was written, and nothing else in the folder.
    #[test]
    fn new_objects_are_named_whole_and_leave_nothing_behind() {
        use std::io::Write;
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let fd = open_dir(dir.path()).unwrap();
        let fd = fd.as_fd();
        let check = |name: &str, body: &[u8]| {
            let p = dir.path().join(name);
            assert_eq!(std::fs::read(&p).unwrap(), body);
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o222, 0, "read-only");
            assert_eq!(names_in(dir.path()), [name.to_owned()]);
            std::fs::remove_file(&p).unwrap();
        };
        type Make<'a> = fn(BorrowedFd<'a>, &str) -> std::io::Result<NewObject<'a>>;
        for (how, make) in [
            ("unnamed", NewObject::create as Make<'_>),
            ("named", NewObject::create_named as Make<'_>),
        ] {
            // Fresh name.
            let mut o = make(fd, "obj").unwrap();
            o.file.write_all(how.as_bytes()).unwrap();
            let stamp = o.stamp().unwrap();
            o.publish("obj").unwrap();
            let meta = std::fs::metadata(dir.path().join("obj")).unwrap();
            assert_eq!(stamp, crate::statcache::Stamp::of(&meta), "{how}");
            check("obj", how.as_bytes());
            // A file already at the name is replaced.
            std::fs::write(dir.path().join("obj"), b"stale").unwrap();
            let mut o = make(fd, "obj").unwrap();
            o.file.write_all(b"fresh").unwrap();
            o.publish("obj").unwrap();
            check("obj", b"fresh");
            // Discarded: nothing left.
            let mut o = make(fd, "obj").unwrap();
            o.file.write_all(b"bad").unwrap();
            o.discard();
            assert!(names_in(dir.path()).is_empty(), "{how}");
        }
        // An unnamed file that cannot be linked is copied into a named one.
        let mut o = NewObject::create(fd, "obj").unwrap();
        o.file.write_all(b"copied over").unwrap();
        o.republish_named("obj").unwrap();
        check("obj", b"copied over");
    }
}
