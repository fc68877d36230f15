//! The hash cache: hashes keyed on the file's identity, (device, inode), and checked against
//! its size and modification time, so an unchanged file is never read twice and a `status` on
//! an unchanged tree only stats files.
//!
//! Keying on the inode rather than the path (as DVC's state does) means a hard-linked workspace
//! file and its cache object share one entry, and a lookup needs no path at all: the stamp that
//! a `stat` returns is the key. A file replaced by another one gets a new inode (or, for an
//! inode number reused after a delete, almost surely another size or mtime).
//!
//! Stored at `.mlops/state/hashes` in a binary format built to be used as read, without
//! parsing it into a map: one `read` of the whole file, a checksum and an order check, and an
//! index from key to record number (no per-entry allocation). All integers are
//! little-endian:
//!
//! | bytes     | content                                                             |
//! |-----------|---------------------------------------------------------------------|
//! | 8         | magic `MLOPS-HC`                                                    |
//! | 4         | format version, `u32` (2)                                           |
//! | 4         | record count *n*, `u32`                                             |
//! | 72 × *n*  | records, in strictly ascending order of (device, inode)             |
//! | 32        | BLAKE3 of every byte before it                                      |
//!
//! A record is the device (`u64`), inode (`u64`), size (`u64`), mtime in nanoseconds since
//! the epoch (`i128`) and the content's hash (32 bytes).
//!
//! A file that is not exactly this (an older cache, a truncated or damaged file, a later
//! version) is ignored as a whole, with a `debug` event: the file is a cache, and losing it
//! only costs a re-hash. The next save rewrites it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock, PoisonError, RwLock};

use rayon::slice::ParallelSliceMut;
use rustc_hash::FxHashMap;

use crate::error::Result;
use crate::fsutil::write_atomic_unsynced;
use crate::hash::Hash;

/// The first bytes of the file.
const MAGIC: [u8; 8] = *b"MLOPS-HC";
/// Bumped whenever the layout changes: a file of another version is ignored.
const VERSION: u32 = 2;
/// Magic, version, record count.
const HEADER: usize = 16;
/// Device, inode, size, mtime, hash.
const RECORD: usize = 8 + 8 + 8 + 16 + 32;
/// The trailing BLAKE3 of everything before it.
const CHECKSUM: usize = 32;

/// One fixed-size record as stored.
type Record = [u8; RECORD];

/// What identifies a file's content version without reading it: which file (device and
/// inode) and its size and modification time. (ctime is deliberately left out: linking a file
/// into the cache or making it read-only changes it, content does not.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Size in bytes.
    pub size: u64,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i128,
    /// Inode number.
    pub inode: u64,
    /// Device (file system) the inode number belongs to.
    pub dev: u64,
}

impl Stamp {
    /// The stamp of `meta`.
    pub fn of(meta: &std::fs::Metadata) -> Self {
        Self {
            size: meta.len(),
            mtime_ns: i128::from(meta.mtime()) * 1_000_000_000 + i128::from(meta.mtime_nsec()),
            inode: meta.ino(),
            dev: meta.dev(),
        }
    }

    /// The file's identity: what the cache is keyed on.
    fn key(&self) -> Key {
        (self.dev, self.inode)
    }
}

/// (device, inode).
type Key = (u64, u64);

/// The in-memory hash cache, loaded once per command and saved when it changed.
///
/// The stored file is kept as read and searched in place (see the module doc). It is read on a
/// thread of its own from [`StatCache::load`] on, so that this overlaps with whatever the
/// command does before its first lookup (listing folders). Hashes recorded by this process live
/// in a hash map beside it until [`StatCache::save`].
#[derive(Debug, Default)]
pub struct StatCache {
    file: PathBuf,
    loaded: OnceLock<Loaded>,
    loading: Mutex<Option<std::thread::JoinHandle<Loaded>>>,
    /// Recorded by this process: consulted first by [`StatCache::get`], so an object downloaded
    /// and verified a moment ago is not hashed again when it is checked out.
    added: Recorded,
    /// Something was recorded since the last save.
    dirty: AtomicBool,
    /// Something was ever recorded: until then lookups skip `added`'s lock (a `status` makes
    /// 20,000 lookups from all threads, and the lock's counter is one contended cache line).
    any_added: AtomicBool,
}

/// The entries recorded by this process, in [`SHARDS`] maps by inode, each behind its own
/// lock: an `add` or `pull` records one entry per file from every thread, and with one lock
/// its counter was one cache line that every record and lookup of every thread wrote
/// (`record` and `recent` were 2.6% of an add's CPU).
#[derive(Debug, Default)]
struct Recorded([RwLock<FxHashMap<Key, (Stamp, Hash)>>; SHARDS]);

/// How many maps [`Recorded`] spreads entries over.
const SHARDS: usize = 16;

impl Recorded {
    fn shard(&self, key: Key) -> &RwLock<FxHashMap<Key, (Stamp, Hash)>> {
        // Consecutive inodes (files made one after another) land in different maps.
        &self.0[(key.1 ^ key.0) as usize % SHARDS]
    }

    fn get(&self, key: Key) -> Option<(Stamp, Hash)> {
        let map = self.shard(key).read();
        map.unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied()
    }

    fn insert(&self, stamp: Stamp, hash: Hash) {
        let map = self.shard(stamp.key()).write();
        map.unwrap_or_else(PoisonError::into_inner)
            .insert(stamp.key(), (stamp, hash));
    }

    /// Every entry, sorted by key.
    fn sorted(&self) -> Vec<(Stamp, Hash)> {
        let mut all = Vec::new();
        for map in &self.0 {
            let map = map.read().unwrap_or_else(PoisonError::into_inner);
            all.extend(map.values().copied());
        }
        all.par_sort_unstable_by_key(|(s, _)| s.key());
        all
    }
}

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

    /// The recorded hash of the file with this stamp, if its size and mtime still match.
    pub fn get(&self, stamp: &Stamp) -> Option<Hash> {
        let key = stamp.key();
        match self.recent(key).or_else(|| self.loaded().get(key)) {
            Some((s, h)) if s == *stamp => Some(h),
            _ => None,
        }
    }

    /// Whether any hash is known for the file with this device and inode, whatever its size
    /// and mtime were: when not, the file will have to be read.
    pub fn knows(&self, dev: u64, inode: u64) -> bool {
        let key = (dev, inode);
        self.recent(key).is_some() || self.loaded().index.contains_key(&key)
    }

    /// The entry this process recorded for `key`, if any (without touching the lock until
    /// something was recorded).
    fn recent(&self, key: Key) -> Option<(Stamp, Hash)> {
        if !self.any_added.load(Ordering::Acquire) {
            return None;
        }
        self.added.get(key)
    }

    /// Records a freshly computed hash of the file with this stamp (safe to call from many
    /// threads).
    pub fn record(&self, stamp: Stamp, hash: Hash) {
        self.added.insert(stamp, hash);
        self.any_added.store(true, Ordering::Release);
        self.dirty.store(true, Ordering::Relaxed);
    }

    /// Writes the cache back if anything was recorded: the loaded entries, each replaced by
    /// the one recorded since for the same file, plus the new ones. (Entries of files that no
    /// longer exist are kept: telling them apart would cost a stat each; [`StatCache::prune`]
    /// does that, for `gc`.)
    ///
    /// # Errors
    /// I/O errors writing the state file.
    pub fn save(&self) -> Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let recent = self.added.sorted();
        let loaded = self.loaded();
        let bytes = encode(
            merge(loaded.iter(), recent.iter().copied()),
            loaded.records().len() + recent.len(),
        );
        write_atomic_unsynced(&self.file, &bytes)
    }

    /// Counts the entries (loaded or recorded) whose stamp is not in `current`, the stamps of
    /// every file that still matters, and with `write` rewrites the cache without them. An entry
    /// is stale when its file is gone, or changed since (its size or mtime no longer match, so
    /// it can never answer again). The entries in memory stay as loaded: a later
    /// [`StatCache::save`] after new records would write the dropped ones back (harmless, they
    /// only take space), so `gc` prunes last.
    ///
    /// # Errors
    /// I/O errors writing the state file.
    pub fn prune(&self, current: &std::collections::HashSet<Stamp>, write: bool) -> Result<u64> {
        let recent = self.added.sorted();
        let loaded = self.loaded();
        let mut kept = Vec::new();
        let mut stale = 0u64;
        for (stamp, hash) in merge(loaded.iter(), recent.into_iter()) {
            if current.contains(&stamp) {
                kept.push((stamp, hash));
            } else {
                stale += 1;
            }
        }
        if write && (stale > 0 || self.dirty.load(Ordering::Relaxed)) {
            self.dirty.store(false, Ordering::Relaxed);
            let bytes = encode(kept.iter().copied(), kept.len());
            write_atomic_unsynced(&self.file, &bytes)?;
        }
        Ok(stale)
    }
}

/// Two sequences of entries, each strictly ascending by key, as one; on equal keys the entry
/// of `new` wins.
fn merge(
    old: impl Iterator<Item = (Stamp, Hash)>,
    new: impl Iterator<Item = (Stamp, Hash)>,
) -> impl Iterator<Item = (Stamp, Hash)> {
    let mut old = old.peekable();
    let mut new = new.peekable();
    std::iter::from_fn(move || match (old.peek(), new.peek()) {
        (Some(o), Some(n)) => match o.0.key().cmp(&n.0.key()) {
            std::cmp::Ordering::Less => old.next(),
            std::cmp::Ordering::Greater => new.next(),
            std::cmp::Ordering::Equal => {
                old.next();
                new.next()
            }
        },
        (Some(_), None) => old.next(),
        (None, _) => new.next(),
    })
}

/// The file's bytes for `entries`, which must be strictly ascending by key; whatever would not
/// fit the format's 32-bit count is left out (the cache then only misses those). `count` sizes
/// the buffer.
fn encode(entries: impl Iterator<Item = (Stamp, Hash)>, count: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(HEADER + count * RECORD + CHECKSUM);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&VERSION.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    let mut n: u32 = 0;
    for (stamp, hash) in entries {
        let Some(next) = n.checked_add(1) else {
            break;
        };
        out.extend_from_slice(&stamp.dev.to_le_bytes());
        out.extend_from_slice(&stamp.inode.to_le_bytes());
        out.extend_from_slice(&stamp.size.to_le_bytes());
        out.extend_from_slice(&stamp.mtime_ns.to_le_bytes());
        out.extend_from_slice(hash.as_bytes());
        n = next;
    }
    out[12..HEADER].copy_from_slice(&n.to_le_bytes());
    let checksum = blake3::hash(&out);
    out.extend_from_slice(checksum.as_bytes());
    out
}

/// The cache file as read, checked once by [`Loaded::check`] and then searched in place.
#[derive(Default)]
struct Loaded {
    bytes: Vec<u8>,
    /// `bytes[HEADER..records_end]` are the records (nothing for an empty cache).
    records_end: usize,
    /// Record number by key, built by the loader thread while the command lists folders: a
    /// binary search over 20,000 records misses the processor's caches on most of its steps,
    /// and `status` makes one lookup per file.
    index: FxHashMap<Key, u32>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("entries", &self.records().len())
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
            return Err("another format version");
        }
        let count = u32::from_le_bytes(field(&bytes, 12)) as usize;
        let body_end = bytes.len() - CHECKSUM;
        match count.checked_mul(RECORD).map(|n| n + HEADER) {
            Some(end) if end == body_end => {}
            Some(end) if end < body_end => return Err("bytes after the records"),
            _ => return Err("truncated records"),
        }
        if blake3::hash(&bytes[..body_end]).as_bytes()[..] != bytes[body_end..] {
            return Err("checksum mismatch");
        }
        let mut loaded = Self {
            bytes,
            records_end: body_end,
            index: FxHashMap::default(),
        };
        if !loaded
            .records()
            .windows(2)
            .all(|w| key_of(&w[0]) < key_of(&w[1]))
        {
            return Err("keys not strictly ascending");
        }
        let index: FxHashMap<Key, u32> = (0u32..)
            .zip(loaded.records())
            .map(|(i, r)| (key_of(r), i))
            .collect();
        loaded.index = index;
        Ok(loaded)
    }

    fn records(&self) -> &[Record] {
        self.bytes
            .get(HEADER..self.records_end)
            .unwrap_or_default()
            .as_chunks()
            .0
    }

    /// The entry stored for `key`.
    fn get(&self, key: Key) -> Option<(Stamp, Hash)> {
        let i = *self.index.get(&key)?;
        self.records().get(i as usize).map(entry)
    }

    /// Every entry, in ascending order of key.
    fn iter(&self) -> impl Iterator<Item = (Stamp, Hash)> {
        self.records().iter().map(entry)
    }
}

/// The `N` bytes at `at` (the caller checked that they are there).
fn field<const N: usize>(bytes: &[u8], at: usize) -> [u8; N] {
    let mut out = [0u8; N];
    out.copy_from_slice(&bytes[at..at + N]);
    out
}

fn key_of(r: &Record) -> Key {
    (
        u64::from_le_bytes(field(r, 0)),
        u64::from_le_bytes(field(r, 8)),
    )
}

/// A record's stamp and hash.
fn entry(r: &Record) -> (Stamp, Hash) {
    (
        Stamp {
            dev: u64::from_le_bytes(field(r, 0)),
            inode: u64::from_le_bytes(field(r, 8)),
            size: u64::from_le_bytes(field(r, 16)),
            mtime_ns: i128::from_le_bytes(field(r, 24)),
        },
        Hash::from_bytes(field(r, 40)),
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

    fn stamp(n: u64) -> Stamp {
        Stamp {
            size: n,
            mtime_ns: 1_700_000_000_000_000_000 + i128::from(n),
            inode: n + 100,
            dev: 7,
        }
    }

    #[test]
    fn entries_recorded_from_many_threads_are_all_found_and_saved_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let c = StatCache::load(&f);
        std::thread::scope(|s| {
            for t in 0..4u64 {
                let c = &c;
                s.spawn(move || {
                    for i in (t..2000).step_by(4) {
                        c.record(stamp(i), hash_bytes(&i.to_le_bytes()));
                    }
                });
            }
        });
        for i in 0..2000 {
            assert_eq!(c.get(&stamp(i)), Some(hash_bytes(&i.to_le_bytes())), "{i}");
        }
        c.save().unwrap();
        // A file whose records are out of order would be ignored as a whole.
        let back = StatCache::load(&f);
        for i in 0..2000 {
            assert_eq!(
                back.get(&stamp(i)),
                Some(hash_bytes(&i.to_le_bytes())),
                "{i}"
            );
        }
    }

    /// The file for three entries, as `save` writes it.
    fn three(f: &Path) -> Vec<u8> {
        let c = StatCache::load(f);
        for i in [2, 0, 1] {
            c.record(stamp(i), hash_bytes(&[i as u8]));
        }
        c.save().unwrap();
        std::fs::read(f).unwrap()
    }

    /// Writes `bytes` as the cache file and loads it: true when it held nothing usable (and no
    /// lookup finds anything); false when all three entries of [`three`] are found.
    fn loads_empty(f: &Path, bytes: &[u8]) -> bool {
        std::fs::write(f, bytes).unwrap();
        let c = StatCache::load(f);
        let empty = c.loaded().records().is_empty();
        for i in 0..3 {
            let found = c.get(&stamp(i));
            assert_eq!(found.is_none(), empty, "entry {i}");
        }
        empty
    }

    /// `body` with a correct checksum appended.
    fn sealed(body: &[u8]) -> Vec<u8> {
        let mut out = body.to_vec();
        out.extend_from_slice(blake3::hash(body).as_bytes());
        out
    }

    #[test]
    fn a_recorded_hash_is_seen_at_once_and_newer_than_the_loaded_one() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let c = StatCache::load(&f);
        c.record(stamp(1), hash_bytes(b"old"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert_eq!(c.get(&stamp(1)), Some(hash_bytes(b"old")));
        c.record(stamp(1), hash_bytes(b"new"));
        c.record(stamp(2), hash_bytes(b"q"));
        assert_eq!(c.get(&stamp(1)), Some(hash_bytes(b"new")));
        c.save().unwrap();
        assert_eq!(c.get(&stamp(2)), Some(hash_bytes(b"q")));
        c.record(stamp(3), hash_bytes(b"r"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        for (i, h) in [(1, "new"), (2, "q"), (3, "r")] {
            assert_eq!(c.get(&stamp(i)), Some(hash_bytes(h.as_bytes())));
        }
    }

    #[test]
    fn a_changed_size_mtime_or_identity_misses() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let c = StatCache::load(&f);
        c.record(stamp(5), hash_bytes(b"x"));
        c.save().unwrap();
        let c = StatCache::load(&f);
        let s = stamp(5);
        assert_eq!(c.get(&s), Some(hash_bytes(b"x")));
        assert_eq!(c.get(&Stamp { size: 6, ..s }), None);
        assert_eq!(c.get(&Stamp { mtime_ns: 1, ..s }), None);
        assert_eq!(c.get(&Stamp { inode: 1, ..s }), None);
        assert_eq!(c.get(&Stamp { dev: 8, ..s }), None);
    }

    /// A hard-linked workspace file and its cache object are one file: recording either answers
    /// for both, whatever path they are looked up under.
    #[test]
    fn knows_a_file_by_identity_whatever_its_size_and_mtime() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let c = StatCache::load(&f);
        let s = stamp(5);
        assert!(!c.knows(s.dev, s.inode));
        c.record(s, hash_bytes(b"x"));
        assert!(c.knows(s.dev, s.inode), "recorded by this process");
        c.save().unwrap();
        let c = StatCache::load(&f);
        assert!(c.knows(s.dev, s.inode), "loaded from the file");
        assert!(!c.knows(s.dev, s.inode + 1));
        assert!(!c.knows(s.dev + 1, s.inode));
    }

    #[test]
    fn hard_links_share_their_entry() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a");
        std::fs::write(&a, b"content").unwrap();
        std::fs::hard_link(&a, dir.path().join("b")).unwrap();
        let c = StatCache::load(&dir.path().join("hashes"));
        c.record(
            Stamp::of(&std::fs::metadata(&a).unwrap()),
            hash_bytes(b"content"),
        );
        let b = Stamp::of(&std::fs::metadata(dir.path().join("b")).unwrap());
        assert_eq!(c.get(&b), Some(hash_bytes(b"content")));
    }

    #[test]
    fn prune_drops_entries_of_gone_or_changed_files_and_keeps_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        three(&f);
        let c = StatCache::load(&f);
        c.record(stamp(7), hash_bytes(b"recorded now"));
        let mut changed = stamp(1);
        changed.mtime_ns += 1;
        let current: std::collections::HashSet<Stamp> = [stamp(0), changed, stamp(7)].into();
        // A dry count writes nothing.
        let before = std::fs::read(&f).unwrap();
        assert_eq!(c.prune(&current, false).unwrap(), 2);
        assert_eq!(std::fs::read(&f).unwrap(), before);
        assert_eq!(c.prune(&current, true).unwrap(), 2);
        let again = StatCache::load(&f);
        assert_eq!(again.get(&stamp(0)), Some(hash_bytes(&[0])));
        assert_eq!(again.get(&stamp(7)), Some(hash_bytes(b"recorded now")));
        assert!(!again.knows(stamp(1).dev, stamp(1).inode));
        assert!(!again.knows(stamp(2).dev, stamp(2).inode));
        assert_eq!(again.loaded().records().len(), 2);
        // Nothing stale left: nothing to do.
        assert_eq!(again.prune(&current, true).unwrap(), 0);
    }

    #[test]
    fn the_file_has_the_documented_layout() {
        let dir = tempfile::tempdir().unwrap();
        let bytes = three(&dir.path().join("hashes"));
        assert_eq!(bytes.len(), HEADER + 3 * RECORD + CHECKSUM);
        assert_eq!(&bytes[..8], b"MLOPS-HC");
        assert_eq!(u32::from_le_bytes(field(&bytes, 8)), 2);
        assert_eq!(u32::from_le_bytes(field(&bytes, 12)), 3);
        for i in 0..3u64 {
            let r = HEADER + i as usize * RECORD;
            assert_eq!(u64::from_le_bytes(field(&bytes, r)), 7, "device");
            assert_eq!(
                u64::from_le_bytes(field(&bytes, r + 8)),
                i + 100,
                "inode, ascending"
            );
            assert_eq!(u64::from_le_bytes(field(&bytes, r + 16)), i, "size");
            assert_eq!(&bytes[r + 40..r + 72], hash_bytes(&[i as u8]).as_bytes());
        }
        let body = &bytes[..bytes.len() - CHECKSUM];
        assert_eq!(&bytes[body.len()..], blake3::hash(body).as_bytes());
    }

    #[test]
    fn nothing_is_written_until_something_is_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        StatCache::load(&f).save().unwrap();
        assert!(!f.exists());
    }

    #[test]
    fn a_flipped_bit_anywhere_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = three(&f);
        assert!(!loads_empty(&f, &good));
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0x10;
            assert!(loads_empty(&f, &bad), "flip at {i}");
        }
    }

    #[test]
    fn a_truncated_or_extended_file_empties_the_cache() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = three(&f);
        for len in 0..good.len() {
            assert!(loads_empty(&f, &good[..len]), "cut at {len}");
        }
        let body = &good[..good.len() - CHECKSUM];
        let mut longer = body.to_vec();
        longer.push(0);
        assert!(
            loads_empty(&f, &sealed(&longer)),
            "a byte after the records"
        );
    }

    #[test]
    fn a_well_sealed_file_with_unordered_or_duplicate_keys_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let good = three(&f);
        let body = &good[..good.len() - CHECKSUM];
        let record = |i: usize| body[HEADER + i * RECORD..HEADER + (i + 1) * RECORD].to_vec();
        for order in [[1, 0, 2], [0, 0, 2], [0, 2, 1]] {
            let mut bad = body[..HEADER].to_vec();
            for i in order {
                bad.extend(record(i));
            }
            assert!(loads_empty(&f, &sealed(&bad)), "{order:?}");
        }
        let mut other_version = body.to_vec();
        other_version[8] = 1;
        assert!(loads_empty(&f, &sealed(&other_version)));
    }

    #[test]
    fn older_caches_are_ignored_and_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("hashes");
        let text = format!("{} 1 2 3 /p\n", hash_bytes(b"p").to_hex());
        assert!(loads_empty(&f, text.as_bytes()));
        let c = StatCache::load(&f);
        c.record(stamp(1), hash_bytes(b"p"));
        c.save().unwrap();
        assert_eq!(StatCache::load(&f).get(&stamp(1)), Some(hash_bytes(b"p")));
    }

    fn stamp_strategy() -> impl Strategy<Value = Stamp> {
        (any::<u64>(), any::<i128>(), 0..50u64, 0..3u64).prop_map(|(size, mtime_ns, inode, dev)| {
            Stamp {
                size,
                mtime_ns,
                inode,
                dev,
            }
        })
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(
            junk in proptest::collection::vec(any::<u8>(), 0..600),
            with_header in any::<bool>(),
            s in stamp_strategy(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            let mut bytes = Vec::new();
            if with_header {
                bytes.extend_from_slice(&MAGIC);
                bytes.extend_from_slice(&VERSION.to_le_bytes());
                bytes.extend_from_slice(&u32::try_from(junk.len() / RECORD).unwrap().to_le_bytes());
            }
            bytes.extend_from_slice(&junk);
            std::fs::write(&f, sealed(&bytes)).unwrap();
            let c = StatCache::load(&f);
            let _ = c.get(&s);
            c.record(s, hash_bytes(b"x"));
            c.save().unwrap();
            prop_assert_eq!(StatCache::load(&f).get(&s), Some(hash_bytes(b"x")));
        }

        #[test]
        fn any_entries_survive_save_and_load(
            first in proptest::collection::vec((stamp_strategy(), any::<[u8; 32]>()), 0..40),
            second in proptest::collection::vec((stamp_strategy(), any::<[u8; 32]>()), 0..40),
            probe in stamp_strategy(),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let f = dir.path().join("hashes");
            // What the cache should hold: the last hash recorded for each file.
            let mut want: std::collections::BTreeMap<Key, (Stamp, Hash)> = Default::default();
            for batch in [&first, &second] {
                let c = StatCache::load(&f);
                for (s, h) in batch {
                    c.record(*s, Hash::from_bytes(*h));
                    want.insert(s.key(), (*s, Hash::from_bytes(*h)));
                }
                c.save().unwrap();
            }
            let c = StatCache::load(&f);
            for (s, h) in want.values() {
                prop_assert_eq!(c.get(s), Some(*h));
            }
            let expected = want.get(&probe.key()).filter(|(s, _)| *s == probe).map(|(_, h)| *h);
            prop_assert_eq!(c.get(&probe), expected);
        }
    }
}
