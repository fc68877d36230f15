//! The hash cache: hashes keyed on (path, inode, size, mtime), so an unchanged file is
//! never read twice and a `status` on an unchanged tree only stats files.
//!
//! Stored at `.mlops/state/hashes` in a binary format built to be used as read, without
//! parsing it into a map: one `read` of the whole file, a checksum and a bounds check, and every
//! lookup is a binary search over the bytes (no per-entry allocation). All integers are
//! little-endian:
//!
//! | bytes              | content                                                          |
//! |--------------------|------------------------------------------------------------------|
//! | 8                  | magic `MLOPS-HC`                                                 |
//! | 4                  | format version, `u32` (1)                                        |
//! | 4                  | record count *n*, `u32`                                          |
//! | 72 × *n*           | records, in strictly ascending order of their paths' bytes       |
//! | Σ path lengths     | the paths' bytes, back to back in record order                   |
//! | 32                 | BLAKE3 of every byte before it                                   |
//!
//! A record is the file's hash (32 bytes), size (`u64`), mtime in nanoseconds since the epoch
//! (`i128`), inode (`u64`), then its path's offset into the path bytes (`u32`, equal to the sum
//! of the lengths before it) and length (`u32`, never 0). A path is the raw bytes it was
//! recorded under (absolute paths in practice); newlines, spaces or any other byte need no
//! escaping.
//!
//! A file that is not exactly this (an older text cache, a truncated or damaged file, a later
//! version) is ignored as a whole, with a `debug` event: the file is a cache, and losing it
//! only costs a re-hash. The next save rewrites it.

use std::cmp::Ordering as Order;
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

/// The first bytes of the file.
const MAGIC: [u8; 8] = *b"MLOPS-HC";
/// Bumped whenever the layout changes: a file of another version is ignored.
const VERSION: u32 = 1;
/// Magic, version, record count.
const HEADER: usize = 16;
/// Hash, size, mtime, inode, path offset, path length.
const RECORD: usize = 32 + 8 + 16 + 8 + 4 + 4;
/// The trailing BLAKE3 of everything before it.
const CHECKSUM: usize = 32;

/// One fixed-size record as stored.
type Record = [u8; RECORD];

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
/// The stored file is kept as read and searched in place (see the module doc): a `status` on
/// 20,000 files then pays for one read and one checksum instead of parsing 20,000 lines into
/// 20,000 allocations. It is read on a thread of its own from [`StatCache::load`] on, so that
/// this overlaps with whatever the command does before its first lookup (listing folders).
/// Hashes recorded by this process live in a hash map beside it until [`StatCache::save`].
#[derive(Debug, Default)]
pub struct StatCache {
    file: PathBuf,
    loaded: OnceLock<Loaded>,
    loading: Mutex<Option<std::thread::JoinHandle<Loaded>>>,
    /// Recorded by this process: consulted first by [`StatCache::get`], so an object downloaded
    /// and verified a moment ago is not hashed again when it is checked out.
    added: RwLock<Entries>,
    /// Something was recorded since the last save.
    dirty: AtomicBool,
}

/// Keys are the paths' bytes, with a fast non-cryptographic hasher (`Path`'s own `Hash` walks
/// components one by one).
type Entries = FxHashMap<Box<[u8]>, (Stamp, Hash)>;

impl StatCache {
    /// Starts loading the cache stored at `file` (empty when it does not exist, cannot be read
    /// or is not a valid cache file); the first lookup waits for it.
    pub fn load(file: &Path) -> Self {
        let cache = Self {
            file: file.to_owned(),
            ..Self::default()
        };
        let path = file.to_owned();
        match std::thread::Builder::new()
            .name("mlops-hash-cache".to_owned())
            .spawn(move || read_loaded(&path))
        {
            Ok(handle) => {
                if let Ok(mut slot) = cache.loading.lock() {
                    *slot = Some(handle);
                }
            }
            Err(_) => {
                let _ = cache.loaded.set(read_loaded(file));
            }
        }
        cache
    }

    fn loaded(&self) -> &Loaded {
        self.loaded.get_or_init(|| {
            let handle = match self.loading.lock() {
                Ok(mut slot) => slot.take(),
                Err(p) => p.into_inner().take(),
            };
            // A loader thread that panicked leaves an empty cache: it only costs re-hashing.
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
        match recent.or_else(|| self.loaded().get(key)) {
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

    /// Writes the cache back if anything was recorded: the loaded entries, each replaced by
    /// the one recorded since for the same path, plus the new ones. (Entries of files that no
    /// longer exist are kept: telling them apart would cost a stat each.)
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
        let mut recent: Vec<(&[u8], Stamp, Hash)> =
            added.iter().map(|(p, (s, h))| (&**p, *s, *h)).collect();
        recent.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let loaded = self.loaded();
        let bytes = encode(
            merge(loaded.iter(), recent.iter().copied()),
            loaded.records().len() + recent.len(),
            loaded.blob().len(),
        );
        write_atomic_unsynced(&self.file, &bytes)
    }
}

/// Two sequences of entries, each strictly ascending by path, as one; on equal paths the entry
/// of `new` wins.
fn merge<'a>(
    old: impl Iterator<Item = (&'a [u8], Stamp, Hash)>,
    new: impl Iterator<Item = (&'a [u8], Stamp, Hash)>,
) -> impl Iterator<Item = (&'a [u8], Stamp, Hash)> {
    let mut old = old.peekable();
    let mut new = new.peekable();
    std::iter::from_fn(move || match (old.peek(), new.peek()) {
        (Some(o), Some(n)) => match o.0.cmp(n.0) {
            Order::Less => old.next(),
            Order::Greater => new.next(),
            Order::Equal => {
                old.next();
                new.next()
            }
        },
        (Some(_), None) => old.next(),
        (None, _) => new.next(),
    })
}

/// The file's bytes for `entries`, which must be strictly ascending by path. Empty paths are
/// left out, and so is whatever would not fit the format's 32-bit counts and offsets (4 GiB of
/// paths; the cache then only misses those). `count` and `path_bytes` size the buffer.
fn encode<'a>(
    entries: impl Iterator<Item = (&'a [u8], Stamp, Hash)>,
    count: usize,
    path_bytes: usize,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + count * RECORD + path_bytes + CHECKSUM);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut blob = Vec::with_capacity(path_bytes);
    let mut n: u32 = 0;
    for (path, stamp, hash) in entries {
        let (Ok(offset), Ok(len), Some(next)) = (
            u32::try_from(blob.len()),
            u32::try_from(path.len()),
            n.checked_add(1),
        ) else {
            break;
        };
        if len == 0 || offset.checked_add(len).is_none() {
            continue;
        }
        out.extend_from_slice(hash.as_bytes());
        out.extend_from_slice(&stamp.size.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(&stamp.inode.to_le_bytes());
        out.extend_from_slice(&offset.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        blob.extend_from_slice(path);
        n = next;
    }
    out[12..HEADER].copy_from_slice(&n.to_le_bytes());
    out.extend_from_slice(&blob);
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

/// The cache file as read, checked once by [`Loaded::check`] and then searched in place.
#[derive(Default)]
struct Loaded {
    bytes: Vec<u8>,
    /// `bytes[records_start..records_end]` are the records, `bytes[records_end..blob_end]` the
    /// path bytes (all zero for an empty cache).
    records_start: usize,
    records_end: usize,
    blob_end: usize,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("entries", &self.records().len())
            .field("bytes", &self.bytes.len())
            .finish()
    }
}

impl Loaded {
    /// `bytes` if they are a well-formed cache file, else why not.
    fn check(bytes: Vec<u8>) -> std::result::Result<Self, &'static str> {
        if bytes.get(..MAGIC.len()) != Some(&MAGIC[..]) {
            return Err("not a binary hash cache (an older text one?)");
        }
        if bytes.len() < HEADER + CHECKSUM {
            return Err("truncated header");
        }
        if u32::from_le_bytes(field(&bytes, 8)) != VERSION {
            return Err("unknown format version");
        }
        let count = u32::from_le_bytes(field(&bytes, 12)) as usize;
        let blob_end = bytes.len() - CHECKSUM;
        let records_end = match count.checked_mul(RECORD).map(|n| n + HEADER) {
            Some(end) if end <= blob_end => end,
            _ => return Err("truncated records"),
        };
        if blake3::hash(&bytes[..blob_end]).as_bytes()[..] != bytes[blob_end..] {
            return Err("checksum mismatch");
        }
        let loaded = Self {
            bytes,
            records_start: HEADER,
            records_end,
            blob_end,
        };
        let blob = loaded.blob();
        let mut next = 0usize;
        let mut previous: &[u8] = &[];
        for record in loaded.records() {
            let (offset, len) = path_span(record);
            if offset != next || len == 0 {
                return Err("path offsets not back to back");
            }
            next = offset + len;
            let Some(path) = blob.get(offset..next) else {
                return Err("path out of bounds");
            };
            if path <= previous {
                return Err("paths not strictly ascending");
            }
            previous = path;
        }
        if next != blob.len() {
            return Err("unused path bytes");
        }
        Ok(loaded)
    }

    fn records(&self) -> &[Record] {
        self.bytes[self.records_start..self.records_end]
            .as_chunks()
            .0
    }

    fn blob(&self) -> &[u8] {
        &self.bytes[self.records_end..self.blob_end]
    }

    /// The entry stored for `key`, by binary search over the records.
    fn get(&self, key: &[u8]) -> Option<(Stamp, Hash)> {
        let blob = self.blob();
        let records = self.records();
        let i = records
            .binary_search_by(|r| path_in(blob, r).cmp(key))
            .ok()?;
        records.get(i).map(entry)
    }

    /// Every entry, in ascending order of path.
    fn iter(&self) -> impl Iterator<Item = (&[u8], Stamp, Hash)> {
        let blob = self.blob();
        self.records().iter().map(move |r| {
            let (stamp, hash) = entry(r);
            (path_in(blob, r), stamp, hash)
        })
    }
}

/// The `N` bytes at `at` (the caller checked that they are there).
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

/// A record's path offset and length.
fn path_span(r: &Record) -> (usize, usize) {
    let offset = u32::from_le_bytes(field(r, 64));
    let len = u32::from_le_bytes(field(r, 68));
    (offset as usize, len as usize)
}

/// A record's path (empty if out of bounds, which [`Loaded::check`] rules out).
fn path_in<'a>(blob: &'a [u8], r: &Record) -> &'a [u8] {
    let (offset, len) = path_span(r);
    blob.get(offset..offset + len).unwrap_or_default()
}

/// A record's stamp and hash.
fn entry(r: &Record) -> (Stamp, Hash) {
    (
        Stamp {
            size: u64::from_le_bytes(field(r, 32)),
            mtime_ns: i128::from_le_bytes(field(r, 40)),
            inode: u64::from_le_bytes(field(r, 56)),
        },
        Hash::from_bytes(field(r, 0)),
    )
}

/// The cache stored at `file`, empty when there is none or it is unreadable or invalid.
fn read_loaded(file: &Path) -> Loaded {
    let bytes = match std::fs::read(file) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
        Err(e) => {
            tracing::debug!(file = %file.display(), error = %e, "hash cache unreadable, starting empty");
            return Loaded::default();
        }
    };
    match Loaded::check(bytes) {
        Ok(loaded) => loaded,
        Err(reason) => {
            tracing::debug!(file = %file.display(), reason, "hash cache ignored, starting empty");
            Loaded::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_bytes;
    use proptest::prelude::*;
    use std::ffi::OsString;

    fn stamp(n: u64) -> Stamp {
        Stamp {
            size: n,
            mtime_ns: 1_700_000_000_000_000_000 + i128::from(n),
            inode: n + 100,
        }
    }

    fn path(bytes: &[u8]) -> PathBuf {
        PathBuf::from(OsString::from_vec(bytes.to_vec()))
    }

    /// The file for three entries `/a`, `/b b`, `/c\n`, as `save` writes it.
    fn three(f: &Path) -> Vec<u8> {
        let c = StatCache::load(f);
        for (i, p) in [&b"/c\n"[..], b"/a", b"/b b"].into_iter().enumerate() {
            c.record(path(p), stamp(i as u64), hash_bytes(p));
        }
        c.save().unwrap();
        std::fs::read(f).unwrap()
    }

    fn three_paths() -> [&'static [u8]; 3] {
        [b"/a", b"/b b", b"/c\n"]
    }

    /// Writes `bytes` as the cache file and loads it: true when it held nothing usable (and no
    /// lookup finds anything).
    fn loads_empty(f: &Path, bytes: &[u8]) -> bool {
        std::fs::write(f, bytes).unwrap();
        let c = StatCache::load(f);
        let empty = c.loaded().records().is_empty();
        for (i, p) in three_paths().into_iter().enumerate() {
            assert_eq!(c.get(&path(p), &stamp(i as u64)), None);
        }
        empty
    }

    /// `body` with a correct checksum appended.
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        out.extend_from_slice(blake3::hash(body).as_bytes());
        out
    }

    fn body(file: &[u8]) -> &[u8] {
        &file[..file.len() - CHECKSUM]
    }

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
        assert_eq!(c.loaded().records().len(), 3);
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
        c.record("/a b/c/d".into(), stamp, hash_bytes(b"y"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.get(Path::new("/a b/c"), &stamp), Some(hash_bytes(b"x")));
        assert_eq!(c.get(Path::new("/a b/c/d"), &stamp), Some(hash_bytes(b"y")));
        for other in [
            Stamp { size: 4, ..stamp },
            Stamp {
                mtime_ns: 1,
                ..stamp
            },
            Stamp { inode: 43, ..stamp },
        ] {
            assert_eq!(c.get(Path::new("/a b/c"), &other), None);
        }
        for missing in ["/other", "/a b", "/a b/", "/a b/c/", "/a b/c/d/e", "/"] {
            assert_eq!(c.get(Path::new(missing), &stamp), None, "{missing}");
        }
    }

    #[test]
    fn the_file_has_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let file = three(&f);
        let paths = b"/a/b b/c\n";
        assert_eq!(file.len(), HEADER + 3 * RECORD + paths.len() + CHECKSUM);
        assert_eq!(&file[..8], b"MLOPS-HC");
        assert_eq!(file[8..16], [1, 0, 0, 0, 3, 0, 0, 0]);
        let first = &file[HEADER..HEADER + RECORD];
        assert_eq!(&first[..32], hash_bytes(b"/a").as_bytes());
        assert_eq!(first[32..40], 1u64.to_le_bytes());
        assert_eq!(first[40..56], stamp(1).mtime_ns.to_le_bytes());
        assert_eq!(first[56..64], 101u64.to_le_bytes());
        assert_eq!(first[64..72], [0, 0, 0, 0, 2, 0, 0, 0]);
        let third = &file[HEADER + 2 * RECORD..HEADER + 3 * RECORD];
        assert_eq!(third[64..72], [6, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&file[HEADER + 3 * RECORD..][..paths.len()], paths);
        assert_eq!(file, sealed(body(&file)));
    }

    #[test]
    fn nothing_is_written_until_something_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        StatCache::load(&f).save().unwrap();
        assert!(!f.exists());
        three(&f);
        let inode = std::fs::metadata(&f).unwrap().ino();
        let c = StatCache::load(&f);
        assert!(c.get(Path::new("/a"), &stamp(1)).is_some());
        c.save().unwrap();
        assert_eq!(std::fs::metadata(&f).unwrap().ino(), inode);
    }

    #[test]
    fn empty_paths_are_not_saved() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let c = StatCache::load(&f);
        c.record(PathBuf::new(), stamp(0), hash_bytes(b""));
        c.record("/x".into(), stamp(1), hash_bytes(b"x"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.loaded().records().len(), 1);
        assert_eq!(c.get(Path::new(""), &stamp(0)), None);
        assert_eq!(c.get(Path::new("/x"), &stamp(1)), Some(hash_bytes(b"x")));
    }

    #[test]
    fn a_flipped_bit_anywhere_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = three(&f);
        assert!(!loads_empty(&f, &good));
        for i in 0..good.len() {
            for bit in [0x01, 0x80] {
                let mut bad = good.clone();
                bad[i] ^= bit;
                assert!(loads_empty(&f, &bad), "byte {i} bit {bit:#x}");
            }
        }
    }

    #[test]
    fn a_truncated_file_empties_the_cache_at_every_length() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = three(&f);
        for len in 0..good.len() {
            assert!(loads_empty(&f, &good[..len]), "cut at {len}");
            // Even with a correct checksum for what is left.
            if len < good.len() - CHECKSUM {
                assert!(
                    loads_empty(&f, &sealed(&good[..len])),
                    "sealed cut at {len}"
                );
            }
        }
        let mut longer = body(&good).to_vec();
        longer.push(b'x');
        assert!(loads_empty(&f, &sealed(&longer)));
    }

    #[test]
    fn a_well_sealed_file_with_a_bad_structure_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = body(&three(&f)).to_vec();
        fn len_at(record: usize) -> usize {
            HEADER + record * RECORD + 68
        }
        fn off_at(record: usize) -> usize {
            HEADER + record * RECORD + 64
        }
        /// What is wrong, and how to make a good file so.
        type Edit = (&'static str, fn(&mut Vec<u8>));
        let edits: [Edit; 11] = [
            ("version 2", |b| b[8] = 2),
            ("version 0", |b| b[8] = 0),
            ("count too big", |b| b[12] = 4),
            ("count too small", |b| b[12] = 2),
            ("count huge", |b| b[12..16].copy_from_slice(&[255; 4])),
            ("gap", |b| b[off_at(1)] += 1),
            ("overlap", |b| b[off_at(2)] -= 1),
            ("path past the end", |b| b[len_at(2)] += 1),
            ("unused path byte", |b| b[len_at(2)] -= 1),
            ("huge length", |b| b[len_at(2) + 3] = 255),
            ("records swapped", |b| {
                let (first, second) = b[HEADER..HEADER + 2 * RECORD].split_at_mut(RECORD);
                first.swap_with_slice(second);
            }),
        ];
        for (what, edit) in edits {
            let mut bad = good.clone();
            edit(&mut bad);
            assert!(loads_empty(&f, &sealed(&bad)), "{what}");
        }
        // Out of order or repeated paths, offsets otherwise fine (what `encode` writes for
        // such input).
        let h = hash_bytes(b"");
        let unsorted = [(&b"/b"[..], stamp(0), h), (b"/a", stamp(0), h)];
        assert!(loads_empty(&f, &encode(unsorted.into_iter(), 2, 4)));
        let repeated = [(&b"/a"[..], stamp(0), h), (b"/a", stamp(0), h)];
        assert!(loads_empty(&f, &encode(repeated.into_iter(), 2, 4)));
        let sorted = [(&b"/x"[..], stamp(0), h), (b"/y", stamp(0), h)];
        assert!(!loads_empty(&f, &encode(sorted.into_iter(), 2, 4)));
        // Each path in bounds, in order, all path bytes used, but not back to back: "/y" and
        // "x/y" out of "/x/y".
        let mut crossed = encode(sorted.into_iter(), 2, 4);
        crossed[off_at(0)] = 2;
        crossed[off_at(1)] = 1;
        crossed[len_at(1)] = 3;
        assert!(loads_empty(&f, &sealed(body(&crossed))));
        // An empty path, with the other offsets adjusted to match.
        let mut empty_path = good.clone();
        empty_path[len_at(0)] = 0;
        empty_path[off_at(1)] = 0;
        empty_path[off_at(2)] -= 2;
        empty_path.drain(HEADER + 3 * RECORD..HEADER + 3 * RECORD + 2);
        assert!(loads_empty(&f, &sealed(&empty_path)));
    }

    #[test]
    fn an_old_text_cache_is_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let h = hash_bytes(b"/a");
        let s = stamp(1);
        let line = format!("{} {} {} {} /a\n", h.to_hex(), s.size, s.mtime_ns, s.inode);
        std::fs::write(&f, line.repeat(3)).unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.get(Path::new("/a"), &s), None);
        c.record("/a".into(), s, h);
        c.save().unwrap();
        assert_eq!(StatCache::load(&f).get(Path::new("/a"), &s), Some(h));
        assert!(loads_empty(&f, b""));
        assert!(loads_empty(&f, b"nonsense\nzz 1 2 3 /p\n"));
    }

    fn entry_strategy() -> impl Strategy<Value = (Stamp, Hash)> {
        (any::<u64>(), any::<i128>(), any::<u64>(), any::<[u8; 32]>()).prop_map(
            |(size, mtime_ns, inode, h)| {
                (
                    Stamp {
                        size,
                        mtime_ns,
                        inode,
                    },
                    Hash::from_bytes(h),
                )
            },
        )
    }

    /// Path bytes, short and over a small alphabet so that prefixes and near misses are common.
    fn path_strategy() -> impl Strategy<Value = Vec<u8>> {
        proptest::collection::vec(
            prop_oneof![
                Just(b'/'),
                Just(b'\n'),
                Just(b' '),
                Just(b'a'),
                Just(b'b'),
                Just(0xff),
                any::<u8>()
            ],
            1..12,
        )
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            count in 0u32..6,
            framed in any::<bool>(),
            key in path_strategy(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            // Raw, or behind a valid header and sealed, so that the structural checks run.
            let bytes = if framed {
                let mut body = MAGIC.to_vec();
                body.extend_from_slice(&VERSION.to_le_bytes());
                body.extend_from_slice(&count.to_le_bytes());
                body.extend_from_slice(&junk);
                sealed(&body)
            } else {
                junk
            };
            std::fs::write(&f, &bytes).unwrap();
            let c = StatCache::load(&f);
            let _ = c.get(&path(&key), &stamp(0));
            let _ = c.loaded().iter().count();
            c.record(path(&key), stamp(1), hash_bytes(&key));
            c.save().unwrap();
            prop_assert_eq!(StatCache::load(&f).get(&path(&key), &stamp(1)), Some(hash_bytes(&key)));
        }

        #[test]
        fn any_entries_survive_save_and_load(
            entries in proptest::collection::btree_map(path_strategy(), entry_strategy(), 0..40),
            absent in proptest::collection::vec(path_strategy(), 0..20),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            let c = StatCache::load(&f);
            for (p, (s, h)) in &entries {
                c.record(path(p), *s, *h);
            }
            c.save().unwrap();
            let c = StatCache::load(&f);
            prop_assert_eq!(c.loaded().records().len(), entries.len());
            for (p, (s, h)) in &entries {
                prop_assert_eq!(c.get(&path(p), s), Some(*h));
                let other = Stamp { size: s.size.wrapping_add(1), ..*s };
                prop_assert_eq!(c.get(&path(p), &other), None);
            }
            for p in absent.iter().filter(|p| !entries.contains_key(*p)) {
                prop_assert_eq!(c.get(&path(p), &stamp(0)), None);
                prop_assert_eq!(c.loaded().get(p), None);
            }
        }

        #[test]
        fn a_save_merges_what_was_loaded_with_what_was_recorded(
            generations in proptest::collection::btree_map(
                path_strategy(),
                (proptest::option::of(entry_strategy()), proptest::option::of(entry_strategy())),
                0..40,
            ),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            let c = StatCache::load(&f);
            for (p, (first, _)) in &generations {
                if let Some((s, h)) = first {
                    c.record(path(p), *s, *h);
                }
            }
            c.save().unwrap();
            let c = StatCache::load(&f);
            for (p, (_, second)) in &generations {
                if let Some((s, h)) = second {
                    c.record(path(p), *s, *h);
                }
            }
            c.save().unwrap();
            let c = StatCache::load(&f);
            let mut expected = 0;
            for (p, (first, second)) in &generations {
                let want = second.or(*first);
                expected += usize::from(want.is_some());
                prop_assert_eq!(c.loaded().get(p), want);
                if let Some((s, h)) = want {
                    prop_assert_eq!(c.get(&path(p), &s), Some(h));
                }
            }
            prop_assert_eq!(c.loaded().records().len(), expected);
        }
    }
}
