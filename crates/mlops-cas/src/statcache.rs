//! The hash cache: hashes keyed on (path, inode, size, mtime), so an unchanged file is
//! never read twice and a `status` on an unchanged tree only stats files.
//!
//! Stored at `.mlops/state/hashes` as one line per file:
//! `<64 hex> <size> <mtime ns> <inode> <absolute path>`. Malformed lines are ignored:
//! the file is a cache, and losing an entry only costs a re-hash.

use std::os::unix::ffi::OsStrExt;
use std::os::unix::ffi::OsStringExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, RwLock};

use rustc_hash::FxHashMap;

use crate::error::Result;
use crate::fsutil::write_atomic_unsynced;
use crate::hash::Hash;

/// What identifies a file's content version without reading it. (ctime is deliberately left
/// out: linking a file into the cache or making it read-only changes it, content does not.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
}

impl Stamp {
    /// The stamp of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
        }
    }
}

/// The in-memory hash cache, loaded once per command and saved when it changed.
///
/// Keys are the paths' bytes in a hash map with a fast non-cryptographic hasher: a `status` on
/// 20,000 files looks up 40,000 paths, and `Path`'s own `Hash` walks components one by one.
/// The file is parsed on a thread of its own from [`StatCache::load`] on, so that parsing
/// overlaps with whatever the command does before its first lookup (listing folders).
#[derive(Debug, Default)]
pub struct StatCache {
    file: PathBuf,
    entries: OnceLock<Entries>,
    loading: Mutex<Option<std::thread::JoinHandle<Entries>>>,
    /// Recorded by this process: consulted first by [`StatCache::get`], so an object downloaded
    /// and verified a moment ago is not hashed again when it is checked out.
    added: RwLock<Entries>,
    /// Something was recorded since the last save.
    dirty: AtomicBool,
}

type Entries = FxHashMap<Box<[u8]>, (Stamp, Hash)>;

impl StatCache {
    /// Starts loading the cache stored at `file` (empty when it does not exist or cannot be
    /// read); the first lookup waits for it.
    pub fn load(file: &Path) -> Self {
        let cache = Self {
            file: file.to_owned(),
            ..Self::default()
        };
        let path = file.to_owned();
        match std::thread::Builder::new()
            .name("mlops-hash-cache".to_owned())
            .spawn(move || read_entries(&path))
        {
            Ok(handle) => {
                if let Ok(mut slot) = cache.loading.lock() {
                    *slot = Some(handle);
                }
            }
            Err(_) => {
                let _ = cache.entries.set(read_entries(file));
            }
        }
        cache
    }

    fn entries(&self) -> &Entries {
        self.entries.get_or_init(|| {
            let handle = match self.loading.lock() {
                Ok(mut slot) => slot.take(),
                Err(p) => p.into_inner().take(),
            };
            // A parser thread that panicked leaves an empty cache: it only costs re-hashing.
            handle.and_then(|h| h.join().ok()).unwrap_or_default()
        })
    }

    /// The recorded hash of `path` if its stamp still matches.
    pub fn get(&self, path: &Path, stamp: &Stamp) -> Option<Hash> {
        let key = path.as_os_str().as_bytes();
        let recent = match self.added.read() {
            Ok(added) => added.get(key).copied(),
            Err(p) => p.into_inner().get(key).copied(),
        };
        match recent.or_else(|| self.entries().get(key).copied()) {
            Some((s, h)) if s == *stamp => Some(h),
            _ => None,
        }
    }

    /// Records a freshly computed hash (safe to call from many threads).
    pub fn record(&self, path: PathBuf, stamp: Stamp, hash: Hash) {
        let key = path.into_os_string().into_vec().into_boxed_slice();
        match self.added.write() {
            Ok(mut added) => added.insert(key, (stamp, hash)),
            Err(p) => p.into_inner().insert(key, (stamp, hash)),
        };
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the cache back if anything was recorded. Entries for files that no longer exist are
    /// dropped when the file is rewritten.
    ///
    /// # Errors
    /// I/O errors writing the state file.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let added = match self.added.read() {
            Ok(a) => a,
            Err(p) => p.into_inner(),
        };
        let mut merged: FxHashMap<&[u8], (Stamp, Hash)> =
            self.entries().iter().map(|(p, v)| (&**p, *v)).collect();
        for (p, v) in added.iter() {
            merged.insert(p, *v);
        }
        let mut out = Vec::with_capacity(merged.len() * 130);
        let mut hex = [0u8; 64];
        for (path, (s, h)) in &merged {
            if path.contains(&b'\n') || path.is_empty() {
                continue;
            }
            out.extend_from_slice(h.hex_into(&mut hex));
            out.extend_from_slice(format!(" {} {} {} ", s.size, s.mtime_ns, s.inode).as_bytes());
            out.extend_from_slice(path);
            out.push(b'\n');
        }
        write_atomic_unsynced(&self.file, &out)
    }
}

fn read_entries(file: &Path) -> Entries {
    let mut entries = Entries::default();
    if let Ok(bytes) = std::fs::read(file) {
        entries.reserve(bytes.len() / 120);
        for line in bytes.split(|b| *b == b'\n') {
            if let Some((path, stamp, hash)) = parse_line(line) {
                entries.insert(Box::from(path), (stamp, hash));
            }
        }
    }
    entries
}

/// One line: `<64 hex> <size> <mtime ns> <inode> <path bytes>`.
fn parse_line(line: &[u8]) -> Option<(&[u8], Stamp, Hash)> {
    let mut parts = line.splitn(5, |b| *b == b' ');
    let hash = Hash::from_hex(parts.next()?)?;
    let size = number(parts.next()?)?;
    let mtime_ns = number(parts.next()?)?;
    let inode = number(parts.next()?)?;
    let path = parts.next().filter(|p| !p.is_empty())?;
    Some((
        path,
        Stamp {
            size,
            mtime_ns,
            inode,
        },
        hash,
    ))
}

/// A decimal number, optionally negative (mtimes before 1970); `None` on anything else,
/// including overflow.
fn number<T: TryFrom<i128>>(field: &[u8]) -> Option<T> {
    let (negative, digits) = match field {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, field),
    };
    if digits.is_empty() || digits.len() > 38 {
        return None;
    }
    let mut n: i128 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(i128::from(c - b'0'))?;
    }
    T::try_from(if negative { -n } else { n }).ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_bytes;
    use proptest::prelude::*;

    #[test]
    fn a_recorded_hash_is_seen_at_once_and_newer_than_the_loaded_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let stamp = Stamp {
            size: 1,
            mtime_ns: 5,
            inode: 7,
        };
        let c = StatCache::load(&f);
        c.record("/p".into(), stamp, hash_bytes(b"old"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.get(Path::new("/p"), &stamp), Some(hash_bytes(b"old")));
        c.record("/p".into(), stamp, hash_bytes(b"new"));
        c.record("/q".into(), stamp, hash_bytes(b"q"));
        assert_eq!(c.get(Path::new("/p"), &stamp), Some(hash_bytes(b"new")));
        c.save().unwrap();
        // Still there after a save, and a later record is saved too.
        assert_eq!(c.get(Path::new("/q"), &stamp), Some(hash_bytes(b"q")));
        c.record("/r".into(), stamp, hash_bytes(b"r"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        for (p, h) in [("/p", "new"), ("/q", "q"), ("/r", "r")] {
            assert_eq!(c.get(Path::new(p), &stamp), Some(hash_bytes(h.as_bytes())));
        }
    }

    #[test]
    fn save_load_roundtrip_and_stamp_mismatch() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let stamp = Stamp {
            size: 3,
            mtime_ns: 1_700_000_000_123_456_789,
            inode: 42,
        };
        let c = StatCache::load(&f);
        c.record("/a b/c".into(), stamp, hash_bytes(b"x"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.get(Path::new("/a b/c"), &stamp), Some(hash_bytes(b"x")));
        assert_eq!(
            c.get(Path::new("/a b/c"), &Stamp { size: 4, ..stamp }),
            None
        );
        assert_eq!(
            c.get(
                Path::new("/a b/c"),
                &Stamp {
                    mtime_ns: 1,
                    ..stamp
                }
            ),
            None
        );
        assert_eq!(c.get(Path::new("/other"), &stamp), None);
    }

    #[test]
    fn garbage_lines_are_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        std::fs::write(&f, "nonsense\nzz 1 2 3 /p\n").unwrap();
        assert!(StatCache::load(&f).entries().is_empty());
    }

    proptest! {
        #[test]
        fn parse_line_never_panics(s in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse_line(&s);
        }

        #[test]
        fn numbers_parse_like_the_standard_library(n in any::<i64>(), junk in "[^0-9]?") {
            let text = n.to_string();
            prop_assert_eq!(number::<i128>(text.as_bytes()), Some(i128::from(n)));
            prop_assert_eq!(number::<u64>(text.as_bytes()), u64::try_from(n).ok());
            let bad = format!("{text}{junk}");
            prop_assert_eq!(number::<i128>(bad.as_bytes()), bad.parse::<i128>().ok().filter(|_| !bad.starts_with('+')));
        }

        #[test]
        fn any_recorded_path_survives_save_and_load(
            name in proptest::collection::vec(any::<u8>().prop_filter("no NUL, slash or newline", |b| *b != 0 && *b != b'/' && *b != b'\n'), 1..40),
            size in any::<u64>(),
            mtime_ns in any::<i64>(),
            inode in any::<u64>(),
        ) {
            use std::os::unix::ffi::OsStrExt;
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            let path = dir.path().join(std::ffi::OsStr::from_bytes(&name));
            let stamp = Stamp { size, mtime_ns: i128::from(mtime_ns), inode };
            let c = StatCache::load(&f);
            c.record(path.clone(), stamp, hash_bytes(&name));
            c.save().unwrap();
            prop_assert_eq!(StatCache::load(&f).get(&path, &stamp), Some(hash_bytes(&name)));
        }
    }
}
