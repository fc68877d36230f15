//! Transfers to and from a folder remote with plain file operations on a thread pool: the same
//! atomic temporary-file-and-rename that `object_store`'s local store does, without an async hop
//! per system call (which cost more than the copies themselves on 20,000 small files).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::fd::BorrowedFd;
use std::path::Path;

use rayon::prelude::*;
use rustix::fs::{Mode, OFlags};

use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::hash::Hash;
use crate::shards::{NewObject, ShardDirs, object_name};
use crate::statcache::StatCache;

/// Objects read whole (rather than streamed) below this size.
const WHOLE_READ: u64 = 64 << 20;

fn pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::Invalid(format!("could not start transfer threads: {e}")))
}

/// The subset of `hashes` present in the folder remote at `root`: a few are stat-ed, many are
/// found by listing the shard folders they fall in (in parallel).
pub(crate) fn has(root: &Path, hashes: &[Hash]) -> Result<HashSet<Hash>> {
    let remote = ShardDirs::new(root.to_owned());
    if hashes.len() <= 64 {
        return Ok(hashes
            .iter()
            .filter(|h| remote.object_path(h).is_file())
            .copied()
            .collect());
    }
    let mut shards: Vec<Hash> = hashes.to_vec();
    shards.sort_unstable_by_key(|h| h.as_bytes()[0]);
    shards.dedup_by_key(|h| h.as_bytes()[0]);
    let listed = shards
        .par_iter()
        .map(|h| Ok((h.as_bytes()[0], remote.list(h)?)))
        .collect::<Result<std::collections::HashMap<_, _>>>()?;
    Ok(hashes
        .iter()
        .filter(|h| {
            listed
                .get(&h.as_bytes()[0])
                .and_then(|l| l.get(h))
                .is_some_and(|o| o.is_file)
        })
        .copied()
        .collect())
}

/// An object's open shard folder and name in a store, for `*at` calls.
fn object_at<'a>(
    shards: &'a ShardDirs,
    hash: &Hash,
    buf: &'a mut [u8; 64],
    create: bool,
) -> Result<(BorrowedFd<'a>, &'a str)> {
    Ok((shards.get(hash, create)?, object_name(hash, buf)))
}

/// Copies objects from the cache into the folder remote: each is read relative to its open
/// cache shard, written as a new unnamed file in the open remote shard (the bytes stay in the
/// kernel: `std::io::copy` between files uses `copy_file_range`) and then named.
pub(crate) fn upload(
    cache: &Cache,
    root: &Path,
    todo: &[(Hash, u64)],
    jobs: usize,
    done: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let remote = ShardDirs::new(root.to_owned());
    pool(jobs)?.install(|| {
        todo.par_iter()
            .with_max_len(crate::repo::PER_TASK)
            .try_for_each(|(hash, size)| {
                let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
                let (src_dir, name) = object_at(cache.shards(), hash, &mut a, false)?;
                let (dest_dir, _) = object_at(&remote, hash, &mut b, true)?;
                let dest = || remote.object_path(hash);
                let mut input = open_read(src_dir, name).at(&cache.object_path(hash))?;
                let mut out = NewObject::create(dest_dir, name).at(&dest())?;
                if let Err(e) = std::io::copy(&mut input, &mut out.file) {
                    out.discard();
                    return Err(Error::io(dest(), e));
                }
                out.publish(name).at(&dest())?;
                done(*size);
                Ok(())
            })
    })
}

/// Copies objects from the folder remote into the cache, hashing each on the way and keeping
/// only those whose content matches their name. Each is read relative to its open remote shard
/// and written as a new unnamed file in the open cache shard, named once verified.
pub(crate) fn download(
    cache: &Cache,
    stats: &StatCache,
    root: &Path,
    todo: &[(Hash, u64)],
    jobs: usize,
    done: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    let remote = ShardDirs::new(root.to_owned());
    let not_found = |hash: &Hash| {
        Error::Invalid(format!(
            "{hash}: not found in the remote {}",
            root.display()
        ))
    };
    pool(jobs)?.install(|| {
        todo.par_iter()
            .with_max_len(crate::repo::PER_TASK)
            .try_for_each(|(hash, _)| {
                let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
                let src = remote.object_path(hash);
                let (src_dir, name) = match object_at(&remote, hash, &mut a, false) {
                    Err(Error::Io { source, .. })
                        if source.kind() == std::io::ErrorKind::NotFound =>
                    {
                        return Err(not_found(hash));
                    }
                    other => other?,
                };
                let (dest_dir, _) = object_at(cache.shards(), hash, &mut b, true)?;
                let dest = cache.object_path(hash);
                let input = match open_read(src_dir, name) {
                    Ok(f) => f,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        return Err(not_found(hash));
                    }
                    Err(e) => return Err(Error::io(&src, e)),
                };
                let mut out = NewObject::create(dest_dir, name).at(&dest)?;
                let (actual, len) = match copy_verified(input, &src, &mut out.file, &dest) {
                    Ok(v) => v,
                    Err(e) => {
                        out.discard();
                        return Err(e);
                    }
                };
                if actual != *hash {
                    out.discard();
                    return Err(Error::Corrupt {
                        expected: hash.to_string(),
                        actual: actual.to_string(),
                        location: src.display().to_string(),
                    });
                }
                let stamp = out.stamp().at(&dest)?;
                out.publish(name).at(&dest)?;
                stats.record(stamp, *hash);
                done(len);
                Ok(())
            })
    })
}

fn open_read(dir: BorrowedFd<'_>, name: &str) -> std::io::Result<std::fs::File> {
    Ok(rustix::fs::openat(dir, name, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())?.into())
}

/// Copies `input` (the file at `src`) into `out` (the new file for `dest`), returning the hash
/// and length of what was copied.
fn copy_verified(
    input: std::fs::File,
    src: &Path,
    out: &mut std::fs::File,
    dest: &Path,
) -> Result<(Hash, u64)> {
    let len = input.metadata().at(src)?.len();
    copy_verified_sized(input, len, src, out, dest)
}

/// [`copy_verified`] of an input stat-ed at `len` bytes: below [`WHOLE_READ`], exactly that
/// many are copied, and an input that turns out longer is refused.
fn copy_verified_sized(
    mut input: std::fs::File,
    len: u64,
    src: &Path,
    out: &mut std::fs::File,
    dest: &Path,
) -> Result<(Hash, u64)> {
    if len < WHOLE_READ {
        // Exactly the stat-ed length, then one read that must find the end (read_to_end would
        // stat and seek again for its own size hint).
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(0)];
        input.read_exact(&mut buf).at(src)?;
        let mut probe = [0u8; 1];
        if input.read(&mut probe).at(src)? != 0 {
            return Err(Error::Invalid(format!(
                "{} grew while it was being copied",
                src.display()
            )));
        }
        let h = crate::hash::hash_bytes(&buf);
        out.write_all(&buf).at(dest)?;
        return Ok((h, buf.len() as u64));
    }
    let mut hasher = blake3::Hasher::new();
    let mut buf = vec![0u8; 4 << 20];
    let mut total = 0u64;
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Error::io(src, e)),
        };
        hasher.update(&buf[..n]);
        out.write_all(&buf[..n]).at(dest)?;
        total += n as u64;
    }
    Ok((Hash::from_bytes(*hasher.finalize().as_bytes()), total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn copy_of(body: &[u8], len: u64) -> (Result<(Hash, u64)>, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let (src, dest) = (d.path().join("src"), d.path().join("dest"));
        std::fs::write(&src, body).unwrap();
        let mut out = std::fs::File::create(&dest).unwrap();
        let r = copy_verified_sized(
            std::fs::File::open(&src).unwrap(),
            len,
            &src,
            &mut out,
            &dest,
        );
        (r, std::fs::read(&dest).unwrap())
    }

    #[test]
    fn an_object_is_copied_with_its_hash_and_length() {
        let (r, copied) = copy_of(b"0123456789", 10);
        assert_eq!(r.unwrap(), (crate::hash::hash_bytes(b"0123456789"), 10));
        assert_eq!(copied, b"0123456789");
    }

    #[test]
    fn an_object_that_grew_after_its_stat_is_refused() {
        let (r, _) = copy_of(b"0123456789", 6);
        let e = r.unwrap_err().to_string();
        assert!(e.contains("grew while it was being copied"), "{e}");
        assert!(e.contains("src"), "{e}");
    }

    #[test]
    fn an_object_that_shrank_after_its_stat_is_an_error_naming_it() {
        let (r, _) = copy_of(b"0123", 10);
        let e = r.unwrap_err();
        assert!(
            matches!(&e, Error::Io { source, .. } if source.kind() == std::io::ErrorKind::UnexpectedEof),
            "{e:?}"
        );
        assert!(e.to_string().contains("src"), "{e}");
    }
}
