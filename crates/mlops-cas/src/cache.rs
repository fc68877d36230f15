//! The local object cache: `<root>/blake3/<2 hex>/<62 hex>`, every object read-only and verified
//! against its hash when it enters.
//!
//! **Architecture Invariant:** an object file at its final path always has the content its name
//! says. Objects arrive by an atomic operation (a link of the hashed workspace file or of a
//! verified unnamed file, or a rename of a verified temporary file), and
//! an object whose stamp differs from the one recorded when it was verified is re-hashed before
//! use ([`Cache::verify`]).

use std::collections::HashMap;
use std::os::fd::BorrowedFd;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, Mode};

use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, LinkKind};
use crate::hash::{Hash, hash_file_sized};
use crate::shards::{Listed, ShardDirs, object_name};
use crate::statcache::{Stamp, StatCache};
use crate::walk::{Source, stamp_of};

/// Linking an open file (`AT_EMPTY_PATH`) was refused here: link by name.
static LINK_OPEN_UNSUPPORTED: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Where temporary files being written into the cache live (cleaned by `gc`).
pub(crate) const TMP_DIR: &str = "tmp";

/// The local object cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
    /// The shard folders, made and opened once for `*at` calls ([`Cache::ingest_at`]) and listings.
    shards: ShardDirs,
}

/// How an object came to be in the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ingest {
    /// It was already there.
    Present,
    /// It was added by this kind of link or copy; `stamp` is the object's (verified) stamp.
    Added {
        /// How it was put into the cache.
        kind: LinkKind,
        /// The object's stamp right after it was added.
        stamp: Stamp,
    },
}

impl Cache {
    /// A cache rooted at `root` (created on first write).
    pub fn new(root: impl Into<PathBuf>) -> Self {
        let root = root.into();
        Self {
            shards: ShardDirs::new(root.clone()),
            root,
        }
    }

    /// The cache's root folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The path an object with this hash has in the cache.
    pub fn object_path(&self, hash: &Hash) -> PathBuf {
        self.shards.object_path(hash)
    }

    /// The cache's shard folders, opened once per process.
    pub(crate) fn shards(&self) -> &ShardDirs {
        &self.shards
    }

    /// Whether an object with this hash is present (not verified).
    pub fn contains(&self, hash: &Hash) -> bool {
        self.object_path(hash).is_file()
    }

    /// A folder for temporary files on the cache's file system.
    pub(crate) fn tmp_dir(&self) -> Result<PathBuf> {
        let d = self.root.join(TMP_DIR);
        std::fs::create_dir_all(&d).at(&d)?;
        Ok(d)
    }

    /// Puts the workspace file `src`, already hashed as `hash` with stamp `stamp`, into the cache.
    /// Linking is tried in `order`; a hard-linked source becomes read-only too (it is the
    /// object). Fails if `src` changed since it was hashed.
    ///
    /// # Errors
    /// I/O errors; [`Error::Invalid`] when the file changed while being added.
    pub fn ingest(
        &self,
        src: &Path,
        hash: &Hash,
        stamp: &Stamp,
        order: &[LinkKind],
    ) -> Result<Ingest> {
        let dest = self.object_path(hash);
        self.ensure_shard(hash)?;
        // Hard links are atomic and land at the final name directly (EEXIST = already there);
        // other kinds go through a temporary name so a crash never leaves a partial object.
        let kind = if fsutil::first_usable(order) == Some(LinkKind::Hardlink) {
            match fsutil::hard_link_following(src, &dest) {
                Ok(()) => LinkKind::Hardlink,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    return Ok(Ingest::Present);
                }
                Err(_) => self.ingest_via_temp(src, &dest, hash, order)?,
            }
        } else {
            if dest.is_file() {
                return Ok(Ingest::Present);
            }
            self.ingest_via_temp(src, &dest, hash, order)?
        };
        // The source must not have changed between hashing and linking (for a hard link it is the
        // object itself).
        let meta = std::fs::metadata(src).at(src)?;
        let now = Stamp::of(&meta);
        if now.size != stamp.size || now.mtime_ns != stamp.mtime_ns {
            let _ = std::fs::remove_file(&dest);
            return Err(Error::Invalid(format!(
                "{} changed while it was being added; add it again",
                src.display()
            )));
        }
        let object_stamp = if kind == LinkKind::Hardlink {
            fsutil::set_readonly_mode(&dest, &meta)?;
            now
        } else {
            fsutil::set_readonly(&dest)?;
            Stamp::of(&std::fs::metadata(&dest).at(&dest)?)
        };
        Ok(Ingest::Added {
            kind,
            stamp: object_stamp,
        })
    }

    /// [`Cache::ingest`] for a workspace file named relative to its open folder. When hard links
    /// come first in `order` (once reflinks are known not to work here), that is one `linkat`
    /// into the open shard folder and one `stat`, with no path walked: of the open file itself
    /// when `src` has it (so exactly the inode that was hashed becomes the object), else by name
    /// followed by a check that the name still is that inode. Anything else goes through
    /// [`Cache::ingest`] with the file's path.
    ///
    /// # Errors
    /// As [`Cache::ingest`].
    pub(crate) fn ingest_at(
        &self,
        src: &Source<'_>,
        hash: &Hash,
        stamp: &Stamp,
        order: &[LinkKind],
    ) -> Result<Ingest> {
        if fsutil::first_usable(order) != Some(LinkKind::Hardlink) {
            return self.ingest(&src.at.path(), hash, stamp, order);
        }
        let shard = self.shards.get(hash, true)?;
        let mut buf = [0u8; 64];
        let name = object_name(hash, &mut buf);
        let dest = || self.object_path(hash);
        let linked_open = match src.open {
            Some(file) if !LINK_OPEN_UNSUPPORTED.load(std::sync::atomic::Ordering::Relaxed) => {
                match crate::shards::link_open(file, shard, name) {
                    Ok(()) => Some(file),
                    Err(rustix::io::Errno::EXIST) => return Ok(Ingest::Present),
                    Err(_) => {
                        LINK_OPEN_UNSUPPORTED.store(true, std::sync::atomic::Ordering::Relaxed);
                        None
                    }
                }
            }
            _ => None,
        };
        if linked_open.is_none() {
            let follow = if src.link {
                AtFlags::SYMLINK_FOLLOW
            } else {
                AtFlags::empty()
            };
            match rustix::fs::linkat(src.at.dir, src.at.name, shard, name, follow) {
                Ok(()) => {}
                Err(rustix::io::Errno::EXIST) => return Ok(Ingest::Present),
                Err(e) => {
                    fsutil::note_link_failure(LinkKind::Hardlink, &e.into());
                    return self.ingest(&src.at.path(), hash, stamp, order);
                }
            }
        }
        // The object is the workspace file itself: it must be the very inode that was hashed,
        // unchanged since.
        let st = match linked_open {
            Some(file) => rustix::fs::fstat(file),
            None => rustix::fs::statat(shard, name, AtFlags::SYMLINK_NOFOLLOW),
        }
        .map_err(|e| Error::io(dest(), e.into()))?;
        let now = stamp_of(&st);
        if now != *stamp {
            let _ = rustix::fs::unlinkat(shard, name, AtFlags::empty());
            return Err(Error::Invalid(format!(
                "{} changed while it was being added; add it again",
                src.at.path().display()
            )));
        }
        if st.st_mode & 0o222 != 0 {
            let mode = Mode::from_raw_mode(st.st_mode & 0o7555);
            match linked_open {
                Some(file) => rustix::fs::fchmod(file, mode),
                None => rustix::fs::chmodat(shard, name, mode, AtFlags::empty()),
            }
            .map_err(|e| Error::io(dest(), e.into()))?;
        }
        Ok(Ingest::Added {
            kind: LinkKind::Hardlink,
            stamp: now,
        })
    }

    /// Puts the object `hash` at the workspace path `dest` (whose folder exists), like
    /// [`fsutil::place`], with the hard link made relative to the open shard folder when `dest`
    /// does not exist and hard links are the first usable kind; relative to `folder` too, when
    /// the caller has `dest`'s folder open, with no walk of `dest`'s whole path.
    ///
    /// # Errors
    /// I/O errors naming `dest`.
    pub(crate) fn place(
        &self,
        hash: &Hash,
        folder: Option<BorrowedFd<'_>>,
        dest: &Path,
        order: &[LinkKind],
        exec: bool,
        dest_exists: bool,
    ) -> Result<LinkKind> {
        if !dest_exists && fsutil::first_usable(order) == Some(LinkKind::Hardlink) {
            let shard = self.shards.get(hash, false)?;
            let mut buf = [0u8; 64];
            let name = object_name(hash, &mut buf);
            let linked = match (folder, dest.file_name()) {
                (Some(dir), Some(file)) => {
                    rustix::fs::linkat(shard, name, dir, file, AtFlags::empty())
                }
                _ => rustix::fs::linkat(shard, name, rustix::fs::CWD, dest, AtFlags::empty()),
            };
            match linked {
                Ok(()) => return Ok(LinkKind::Hardlink),
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => {
                    let e = std::io::Error::from(e);
                    fsutil::note_link_failure(LinkKind::Hardlink, &e);
                    // Unless that ruled hard links out here, it is a real error.
                    if fsutil::first_usable(order) == Some(LinkKind::Hardlink) {
                        return Err(Error::io(dest, e));
                    }
                }
            }
        }
        fsutil::place(&self.object_path(hash), dest, order, exec, dest_exists)
    }

    /// Creates the shard folder of `hash` once per process (cheap after the first call).
    pub(crate) fn ensure_shard(&self, hash: &Hash) -> Result<()> {
        self.shards.get(hash, true).map(drop)
    }

    fn ingest_via_temp(
        &self,
        src: &Path,
        dest: &Path,
        hash: &Hash,
        order: &[LinkKind],
    ) -> Result<LinkKind> {
        let tmp = fsutil::temp_sibling(dest);
        let kind = fsutil::link_or_copy(src, &tmp, order)?;
        if kind == LinkKind::Copy {
            // A copy is new bytes: verify them before they become the object.
            let (actual, _) = hash_file_sized(&tmp)?;
            if actual != *hash {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::Invalid(format!(
                    "{} changed while it was being added; add it again",
                    src.display()
                )));
            }
        }
        if let Err(e) = std::fs::rename(&tmp, dest) {
            let _ = std::fs::remove_file(&tmp);
            return Err(Error::io(dest, e));
        }
        Ok(kind)
    }

    /// Stores `bytes` (for example a manifest) as an object and returns its hash.
    ///
    /// # Errors
    /// I/O errors.
    pub fn insert_bytes(&self, bytes: &[u8]) -> Result<Hash> {
        self.insert_bytes_new(bytes).map(|(hash, _)| hash)
    }

    /// [`Cache::insert_bytes`], also saying whether the object was new.
    pub(crate) fn insert_bytes_new(&self, bytes: &[u8]) -> Result<(Hash, bool)> {
        let hash = crate::hash::hash_bytes(bytes);
        let dest = self.object_path(&hash);
        if dest.is_file() {
            return Ok((hash, false));
        }
        fsutil::write_atomic(&dest, bytes)?;
        fsutil::set_readonly(&dest)?;
        Ok((hash, true))
    }

    /// Moves a downloaded temporary file into the cache after checking it hashes to `expected`.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (and the temporary file is removed) when the content does not match.
    pub fn insert_verified_temp(
        &self,
        tmp: &Path,
        expected: &Hash,
        actual: &Hash,
        origin: &str,
    ) -> Result<()> {
        if actual != expected {
            let _ = std::fs::remove_file(tmp);
            return Err(Error::Corrupt {
                expected: expected.to_string(),
                actual: actual.to_string(),
                location: origin.to_owned(),
            });
        }
        let dest = self.object_path(expected);
        let dir = fsutil::parent_of(&dest);
        std::fs::create_dir_all(dir).at(dir)?;
        fsutil::set_readonly(tmp)?;
        std::fs::rename(tmp, &dest).at(&dest)?;
        Ok(())
    }

    /// Reads an object whole (for manifests), verifying it.
    ///
    /// # Errors
    /// [`Error::MissingObject`] when absent, [`Error::Corrupt`] when its content does not match.
    pub fn read_verified(&self, hash: &Hash, for_path: &Path) -> Result<Vec<u8>> {
        let p = self.object_path(hash);
        let bytes = match std::fs::read(&p) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingObject {
                    hash: hash.to_string(),
                    path: for_path.to_owned(),
                });
            }
            Err(e) => return Err(Error::io(&p, e)),
        };
        let actual = crate::hash::hash_bytes(&bytes);
        if actual != *hash {
            return Err(self.quarantined(hash, &actual, &p));
        }
        Ok(bytes)
    }

    /// Checks that the object is present and uncorrupted. Uses `stats` to skip re-hashing an
    /// object whose stamp matches the one recorded when it was last verified.
    ///
    /// # Errors
    /// [`Error::MissingObject`] or [`Error::Corrupt`]; I/O errors.
    pub fn verify(&self, hash: &Hash, stats: &StatCache, for_path: &Path) -> Result<()> {
        let p = self.object_path(hash);
        let stamp = match self.stamp_of_object(hash) {
            Ok(stamp) => stamp,
            // A shard folder opened earlier may have been replaced since: ask by path.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => match std::fs::metadata(&p) {
                Ok(meta) => Stamp::of(&meta),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    return Err(Error::MissingObject {
                        hash: hash.to_string(),
                        path: for_path.to_owned(),
                    });
                }
                Err(e) => return Err(Error::io(&p, e)),
            },
            Err(e) => return Err(Error::io(&p, e)),
        };
        if stats.get(&stamp) == Some(*hash) {
            return Ok(());
        }
        let (actual, _) = hash_file_sized(&p)?;
        if actual != *hash {
            return Err(self.quarantined(hash, &actual, &p));
        }
        stats.record(stamp, actual);
        Ok(())
    }

    /// [`Cache::verify`] for many objects at once, one result per hash, in order.
    ///
    /// `linked` maps hashes to the stamp of a workspace file that was just found to have that
    /// hash. When the cache's directory entry for such an object names that same inode (a hard
    /// link), the object *is* that file, already checked through its stamp, and it is not stat-ed
    /// again. Directory entries carry inode numbers, so a shard folder holding many wanted objects
    /// is listed once instead of stat-ing each, when its size says that is cheaper. Everything
    /// else goes through [`Cache::verify`].
    pub fn verify_many<S: std::hash::BuildHasher + Sync>(
        &self,
        hashes: &[Hash],
        linked: &HashMap<Hash, Stamp, S>,
        stats: &StatCache,
        for_path: &Path,
    ) -> Vec<Result<()>> {
        by_shard(hashes, |wanted| {
            let with_link = wanted.iter().filter(|h| linked.contains_key(h)).count();
            let listing = self
                .shard_listing_pays(&wanted[0], with_link)
                .then(|| self.shards.list(&wanted[0]).ok())
                .flatten();
            wanted
                .iter()
                .map(|h| match listing.as_ref().map(|l| l.get(h)) {
                    Some(None) => Err(Error::MissingObject {
                        hash: h.to_string(),
                        path: for_path.to_owned(),
                    }),
                    Some(Some(&Listed {
                        inode,
                        is_file: true,
                    })) if linked.get(h).is_some_and(|s| s.inode == inode) => Ok(()),
                    _ => self.verify(h, stats, for_path),
                })
                .collect()
        })
    }

    /// Which of `hashes` have a file in the cache (not verified), one answer per hash, in order:
    /// shard folders holding many of them are listed, the rest stat-ed, all in parallel.
    pub fn present(&self, hashes: &[Hash]) -> Vec<bool> {
        by_shard(hashes, |wanted| {
            match self
                .shard_listing_pays(&wanted[0], wanted.len())
                .then(|| self.shards.list(&wanted[0]).ok())
                .flatten()
            {
                Some(listing) => wanted
                    .iter()
                    .map(|h| listing.get(h).is_some_and(|l| l.is_file))
                    .collect(),
                None => wanted.iter().map(|h| self.contains(h)).collect(),
            }
        })
    }

    /// Whether listing `hash`'s shard folder is cheaper than stat-ing `wanted` objects in it: at
    /// least a few, and the folder not much larger than what is wanted from it (an ext4 entry for
    /// a 62-digit name takes about 72 bytes). A shard folder that does not exist lists as empty
    /// at the cost of one failed open.
    fn shard_listing_pays(&self, hash: &Hash, wanted: usize) -> bool {
        const MIN_WANTED: usize = 8;
        const ENTRY_BYTES: u64 = 72;
        const LISTED_PER_SAVED_STAT: u64 = 32;
        if wanted < MIN_WANTED {
            return false;
        }
        self.shards
            .dir_size(hash)
            .is_none_or(|size| size / ENTRY_BYTES <= LISTED_PER_SAVED_STAT * wanted as u64)
    }

    /// The object's stamp, stat-ed relative to its open shard folder (following a link, as
    /// reading it would).
    fn stamp_of_object(&self, hash: &Hash) -> std::io::Result<Stamp> {
        let dir = self.shards.get(hash, false).map_err(|e| match e {
            Error::Io { source, .. } => source,
            other => std::io::Error::other(other.to_string()),
        })?;
        let st = rustix::fs::statat(dir, object_name(hash, &mut [0u8; 64]), AtFlags::empty())?;
        Ok(stamp_of(&st))
    }

    /// The error for the object `hash` at `path` found to hold `actual` instead, after moving it
    /// out of the way ([`Cache::quarantine`]).
    fn quarantined(&self, hash: &Hash, actual: &Hash, path: &Path) -> Error {
        self.quarantine(hash);
        Error::Corrupt {
            expected: hash.to_string(),
            actual: actual.to_string(),
            location: path.display().to_string(),
        }
    }

    /// Moves a corrupt object out of the way (to `corrupt/`), so a later fetch can bring a good
    /// copy and nothing checks the bad one out. A hard-linked workspace file keeps its content:
    /// only the cache's name for it goes.
    fn quarantine(&self, hash: &Hash) {
        let from = self.object_path(hash);
        let dir = self.root.join("corrupt");
        let moved = std::fs::create_dir_all(&dir)
            .and_then(|()| std::fs::rename(&from, dir.join(hash.to_hex())));
        if let Err(e) = moved {
            tracing::warn!(object = %from.display(), error = %e, "could not quarantine a corrupt object");
            let _ = std::fs::remove_file(&from);
        } else {
            tracing::warn!(object = %hash, "corrupt object moved to the cache's corrupt/ folder");
        }
    }

    /// Every object hash in the cache (files whose names are not valid hashes are skipped).
    ///
    /// # Errors
    /// I/O errors reading the cache folders.
    pub fn list(&self) -> Result<Vec<Hash>> {
        let base = self.root.join("blake3");
        let mut out = Vec::new();
        let Ok(shards) = std::fs::read_dir(&base) else {
            return Ok(out);
        };
        for shard in shards {
            let shard = shard.at(&base)?;
            let prefix = shard.file_name().to_string_lossy().into_owned();
            if prefix.len() != 2 {
                continue;
            }
            let Ok(files) = std::fs::read_dir(shard.path()) else {
                continue;
            };
            for f in files {
                let f = f.at(&shard.path())?;
                let name = f.file_name().to_string_lossy().into_owned();
                if let Ok(h) = format!("blake3:{prefix}{name}").parse::<Hash>() {
                    out.push(h);
                }
            }
        }
        Ok(out)
    }

    /// Removes an object (for `gc`).
    ///
    /// # Errors
    /// I/O errors other than "not found".
    pub fn remove(&self, hash: &Hash) -> Result<()> {
        let p = self.object_path(hash);
        match std::fs::remove_file(&p) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(Error::io(&p, e)),
        }
    }

    /// Removes leftovers of interrupted writes: temporary files in the shard folders and `tmp/`.
    /// Returns how many were removed.
    pub fn remove_temporaries(&self) -> usize {
        let mut removed = 0;
        for entry in walkdir::WalkDir::new(&self.root)
            .min_depth(1)
            .into_iter()
            .filter_map(std::result::Result::ok)
        {
            if entry.file_type().is_file()
                && entry.file_name().to_string_lossy().contains(".tmp-")
                && std::fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

/// Runs `each` once per shard on the hashes of that shard (in parallel), and returns its answers
/// back in the order of `hashes`. `each` returns one answer per hash it was given, in order.
fn by_shard<T: Send>(hashes: &[Hash], each: impl Fn(&[Hash]) -> Vec<T> + Sync) -> Vec<T> {
    let mut groups: Vec<Vec<usize>> = vec![Vec::new(); 256];
    for (i, h) in hashes.iter().enumerate() {
        groups[usize::from(h.as_bytes()[0])].push(i);
    }
    let answers: Vec<(usize, T)> = groups
        .into_par_iter()
        .with_max_len(1)
        .filter(|group| !group.is_empty())
        .flat_map_iter(|group| {
            let wanted: Vec<Hash> = group.iter().map(|&i| hashes[i]).collect();
            group.into_iter().zip(each(&wanted))
        })
        .collect();
    // Each index comes back once: put each answer in its place (no sort of large answers).
    let mut placed: Vec<Option<T>> = std::iter::repeat_with(|| None).take(hashes.len()).collect();
    for (i, a) in answers {
        placed[i] = Some(a);
    }
    placed.into_iter().flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hash::hash_bytes;

    /// `present` answers the same whether it lists a shard (many wanted there) or stats each
    /// object (few), and whether or not the shard folder exists.
    #[test]
    fn present_agrees_with_contains_for_listed_and_stat_ed_shards() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::new(dir.path().join("cache"));
        let hashes: Vec<Hash> = (0..3000)
            .map(|i| hash_bytes(format!("object {i}").as_bytes()))
            .collect();
        assert!(cache.present(&hashes).iter().all(|p| !p), "empty cache");
        let stored: Vec<Hash> = hashes
            .iter()
            .step_by(3)
            .map(|h| {
                let body: Vec<u8> = h.as_bytes().to_vec();
                let got = cache.insert_bytes(&body).unwrap();
                // Store under the wanted names: content does not matter to `present`.
                let p = cache.object_path(h);
                std::fs::create_dir_all(p.parent().unwrap()).unwrap();
                std::fs::rename(cache.object_path(&got), &p).unwrap();
                *h
            })
            .collect();
        // A folder where an object should be is not an object.
        let folder = hashes[1];
        std::fs::create_dir_all(cache.object_path(&folder)).unwrap();
        let want: Vec<bool> = hashes.iter().map(|h| cache.contains(h)).collect();
        assert_eq!(want.iter().filter(|p| **p).count(), stored.len());
        assert!(!want[1]);
        assert_eq!(cache.present(&hashes), want, "many per shard: listed");
        let few = &hashes[..40];
        assert_eq!(
            cache.present(few),
            want[..40].to_vec(),
            "few per shard: stat-ed"
        );
    }
}
