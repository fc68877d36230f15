//! The hash cache: hashes keyed on (path, inode, size, mtime), so an unchanged file is
//! never read twice and a `status` on an unchanged tree only stats files.
//!
//! Stored at `.mlops/state/hashes` as one line per file:
//! `<64 hex> <size> <mtime ns> <inode> <absolute path>`. Malformed lines are ignored:
//! the file is a cache, and losing an entry only costs a re-hash.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

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
#[derive(Debug, Default)]
pub struct StatCache {
    file: PathBuf,
    entries: HashMap<PathBuf, (Stamp, Hash)>,
    added: Mutex<Vec<(PathBuf, Stamp, Hash)>>,
}

impl StatCache {
    /// Loads the cache stored at `file` (empty when it does not exist or cannot be read).
    pub fn load(file: &Path) -> Self {
        let mut entries = HashMap::new();
        if let Ok(text) = std::fs::read_to_string(file) {
            entries.reserve(text.len() / 120);
            for line in text.lines() {
                if let Some((path, stamp, hash)) = parse_line(line) {
                    entries.insert(path, (stamp, hash));
                }
            }
        }
        Self {
            file: file.to_owned(),
            entries,
            added: Mutex::new(Vec::new()),
        }
    }

    /// The recorded hash of `path` if its stamp still matches.
    pub fn get(&self, path: &Path, stamp: &Stamp) -> Option<Hash> {
        match self.entries.get(path) {
            Some((s, h)) if s == stamp => Some(*h),
            _ => None,
        }
    }

    /// Records a freshly computed hash (safe to call from many threads).
    pub fn record(&self, path: PathBuf, stamp: Stamp, hash: Hash) {
        if let Ok(mut added) = self.added.lock() {
            added.push((path, stamp, hash));
        }
    }

    /// Writes the cache back if anything was recorded. Entries for files that no longer exist are
    /// dropped when the file is rewritten.
    ///
    /// # Errors
    /// I/O errors writing the state file.
    pub fn save(&self) -> Result<()> {
        let added = match self.added.lock() {
            Ok(mut a) => std::mem::take(&mut *a),
            Err(p) => std::mem::take(&mut *p.into_inner()),
        };
        if added.is_empty() {
            return Ok(());
        }
        let mut merged: HashMap<&Path, (Stamp, Hash)> = self
            .entries
            .iter()
            .map(|(p, v)| (p.as_path(), *v))
            .collect();
        for (p, s, h) in &added {
            merged.insert(p.as_path(), (*s, *h));
        }
        let mut out = String::with_capacity(merged.len() * 130);
        for (path, (s, h)) in &merged {
            let Some(p) = path.to_str() else { continue };
            if p.contains('\n') {
                continue;
            }
            out.push_str(&format!(
                "{} {} {} {} {}\n",
                h.to_hex(),
                s.size,
                s.mtime_ns,
                s.inode,
                p
            ));
        }
        write_atomic_unsynced(&self.file, out.as_bytes())
    }
}

fn parse_line(line: &str) -> Option<(PathBuf, Stamp, Hash)> {
    let mut parts = line.splitn(5, ' ');
    let hex = parts.next()?;
    let mut bytes = [0u8; 32];
    hex::decode_to_slice(hex, &mut bytes).ok()?;
    let size = parts.next()?.parse().ok()?;
    let mtime_ns = parts.next()?.parse().ok()?;
    let inode = parts.next()?.parse().ok()?;
    let path = PathBuf::from(parts.next()?);
    Some((
        path,
        Stamp {
            size,
            mtime_ns,
            inode,
        },
        Hash::from_bytes(bytes),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_bytes;
    use proptest::prelude::*;

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
        assert!(StatCache::load(&f).entries.is_empty());
    }

    proptest! {
        #[test]
        fn parse_line_never_panics(s in "\\PC{0,200}") {
            let _ = parse_line(&s);
        }
    }
}
