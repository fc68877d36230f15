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
            .try_for_each(|(hash, size)| {
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
                let copied = copy_verified(input, hash, *size, &src, &mut out.file, &dest);
                let (actual, len) = match copied {
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
/// and length of what was copied: the content whose hash is `expected`, when the file holds it.
///
/// `size` is what the manifest or pointer says the object's size is (0 when unknown). Below
/// [`WHOLE_READ`], that many bytes are read, in one `read` as a rule, and when they hash to
/// `expected` they are the object: nothing more is asked of the file system (no `stat` for its
/// size, no read to find its end). Bytes beyond them would only be damage at the remote, which
/// the verified copy leaves behind. When they do not match (the size was wrong, or the object
/// is damaged), the rest of the file is read and the whole is what is hashed and copied.
fn copy_verified(
    mut input: std::fs::File,
    expected: &Hash,
    size: u64,
    src: &Path,
    out: &mut std::fs::File,
    dest: &Path,
) -> Result<(Hash, u64)> {
    if size == 0 || size >= WHOLE_READ {
        return copy_streaming(input, src, out, dest);
    }
    let wanted = usize::try_from(size).unwrap_or(0);
    let mut buf = vec![0u8; wanted];
    let filled = fill(&mut input, &mut buf).at(src)?;
    buf.truncate(filled);
    let mut hash = crate::hash::hash_bytes(&buf);
    // The size was too small, or the object is damaged: the whole file decides.
    if filled == wanted && hash != *expected && input.read_to_end(&mut buf).at(src)? > 0 {
        hash = crate::hash::hash_bytes(&buf);
    }
    out.write_all(&buf).at(dest)?;
    Ok((hash, buf.len() as u64))
}

/// Reads into `buf` until it is full or the file ends; how many bytes were read.
fn fill(input: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match input.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

/// Copies and hashes `input` to its end in large buffers: objects of unknown or large size.
fn copy_streaming(
    mut input: std::fs::File,
    src: &Path,
    out: &mut std::fs::File,
    dest: &Path,
) -> Result<(Hash, u64)> {
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

    fn copy_of(body: &[u8], size: u64) -> (Result<(Hash, u64)>, Vec<u8>) {
        let d = tempfile::tempdir().unwrap();
        let (src, dest) = (d.path().join("src"), d.path().join("dest"));
        std::fs::write(&src, body).unwrap();
        let mut out = std::fs::File::create(&dest).unwrap();
        let expected = crate::hash::hash_bytes(b"0123456789");
        let r = copy_verified(
            std::fs::File::open(&src).unwrap(),
            &expected,
            size,
            &src,
            &mut out,
            &dest,
        );
        (r, std::fs::read(&dest).unwrap())
    }

    #[test]
    fn an_object_is_copied_with_its_hash_and_length() {
        let right = (crate::hash::hash_bytes(b"0123456789"), 10);
        // With its size, with none, and with a size from a manifest that is wrong either way.
        for size in [10, 0, 4, 20] {
            let (r, copied) = copy_of(b"0123456789", size);
            assert_eq!(r.unwrap(), right, "size {size}");
            assert_eq!(copied, b"0123456789", "size {size}");
        }
    }

    #[test]
    fn damage_after_the_object_is_left_behind_and_damage_in_it_is_copied_as_found() {
        // Bytes appended at the remote: the object is the verified prefix.
        let (r, copied) = copy_of(b"0123456789junk", 10);
        assert_eq!(r.unwrap().0, crate::hash::hash_bytes(b"0123456789"));
        assert_eq!(copied, b"0123456789");
        // A flipped byte, a truncated object, extra bytes with no size known: what was read is
        // returned with its own hash, for the caller to refuse.
        for (body, size) in [
            (&b"0123X56789"[..], 10),
            (b"0123", 10),
            (b"0123456789junk", 0),
        ] {
            let (r, copied) = copy_of(body, size);
            let (hash, len) = r.unwrap();
            assert_eq!(hash, crate::hash::hash_bytes(body), "{body:?}");
            assert_eq!(len, body.len() as u64);
            assert_eq!(copied, body);
        }
    }

    #[test]
    fn an_unreadable_source_is_an_error_naming_it() {
        let d = tempfile::tempdir().unwrap();
        let mut out = std::fs::File::create(d.path().join("dest")).unwrap();
        // A folder opens but cannot be read.
        let e = copy_verified(
            std::fs::File::open(d.path()).unwrap(),
            &crate::hash::hash_bytes(b""),
            10,
            Path::new("remote/ab/cd"),
            &mut out,
            &d.path().join("dest"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("remote/ab/cd"), "{e}");
    }
}
