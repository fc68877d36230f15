//! Transfers to and from a folder remote with plain file operations on a thread pool: the same
//! atomic temporary-file-and-rename that `object_store`'s local store does, without an async hop
//! per system call (which cost more than the copies themselves on 20,000 small files).

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;

use crate::cache::Cache;
use crate::error::{Error, IoContext, Result};
use crate::hash::Hash;
use crate::statcache::{Stamp, StatCache};

/// Objects read whole (rather than streamed) below this size.
const WHOLE_READ: u64 = 64 << 20;

fn object_path(root: &Path, hash: &Hash) -> PathBuf {
    let h = hash.to_hex();
    root.join("blake3").join(&h[..2]).join(&h[2..])
}

fn pool(jobs: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(jobs.max(1))
        .build()
        .map_err(|e| Error::Invalid(format!("could not start transfer threads: {e}")))
}

/// The subset of `hashes` present in the folder remote at `root`.
pub(crate) fn has(root: &Path, hashes: &[Hash]) -> Result<HashSet<Hash>> {
    if hashes.len() <= 64 {
        return Ok(hashes
            .iter()
            .filter(|h| object_path(root, h).is_file())
            .copied()
            .collect());
    }
    let base = root.join("blake3");
    let mut found = HashSet::new();
    let Ok(shards) = std::fs::read_dir(&base) else {
        return Ok(found);
    };
    for shard in shards {
        let shard = shard.at(&base)?;
        let prefix = shard.file_name().to_string_lossy().into_owned();
        let Ok(files) = std::fs::read_dir(shard.path()) else {
            continue;
        };
        for f in files {
            let f = f.at(&shard.path())?;
            if let Ok(h) = format!("blake3:{prefix}{}", f.file_name().to_string_lossy()).parse() {
                found.insert(h);
            }
        }
    }
    let wanted: HashSet<&Hash> = hashes.iter().collect();
    found.retain(|h| wanted.contains(h));
    Ok(found)
}

fn make_shards(root: &Path, todo: &[(Hash, u64)]) -> Result<()> {
    let mut shards: Vec<u8> = todo.iter().map(|(h, _)| h.as_bytes()[0]).collect();
    shards.sort_unstable();
    shards.dedup();
    for s in shards {
        let d = root.join("blake3").join(format!("{s:02x}"));
        std::fs::create_dir_all(&d).at(&d)?;
    }
    Ok(())
}

fn tmp_name(dest: &Path) -> PathBuf {
    crate::fsutil::temp_sibling(dest)
}

/// Copies objects from the cache into the folder remote.
pub(crate) fn upload(
    cache: &Cache,
    root: &Path,
    todo: &[(Hash, u64)],
    jobs: usize,
    done: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    make_shards(root, todo)?;
    pool(jobs)?.install(|| {
        todo.par_iter().try_for_each(|(hash, size)| {
            let src = cache.object_path(hash);
            let dest = object_path(root, hash);
            let tmp = tmp_name(&dest);
            if let Err(e) = copy_readonly(&src, &tmp) {
                let _ = std::fs::remove_file(&tmp);
                return Err(e);
            }
            if let Err(e) = std::fs::rename(&tmp, &dest) {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::io(&dest, e));
            }
            done(*size);
            Ok(())
        })
    })
}

/// Copies objects from the folder remote into the cache, hashing each on the way and keeping
/// only those whose content matches their name.
pub(crate) fn download(
    cache: &Cache,
    stats: &StatCache,
    root: &Path,
    todo: &[(Hash, u64)],
    jobs: usize,
    done: &(dyn Fn(u64) + Sync),
) -> Result<()> {
    for (h, _) in todo {
        cache.ensure_shard(h)?;
    }
    pool(jobs)?.install(|| {
        todo.par_iter().try_for_each(|(hash, _)| {
            let src = object_path(root, hash);
            let dest = cache.object_path(hash);
            let tmp = tmp_name(&dest);
            let result = copy_verified(&src, &tmp);
            let (actual, len) = match result {
                Ok(v) => v,
                Err(e) => {
                    let _ = std::fs::remove_file(&tmp);
                    return Err(match e {
                        Error::Io { source, .. }
                            if source.kind() == std::io::ErrorKind::NotFound =>
                        {
                            Error::Invalid(format!(
                                "{hash}: not found in the remote {}",
                                root.display()
                            ))
                        }
                        other => other,
                    });
                }
            };
            if actual != *hash {
                let _ = std::fs::remove_file(&tmp);
                return Err(Error::Corrupt {
                    expected: hash.to_string(),
                    actual: actual.to_string(),
                    location: src.display().to_string(),
                });
            }
            std::fs::rename(&tmp, &dest).at(&dest)?;
            if let Ok(m) = std::fs::metadata(&dest) {
                stats.record(dest, Stamp::of(&m), *hash);
            }
            done(len);
            Ok(())
        })
    })
}

/// Copies `src` to a new read-only file `tmp` (created with its final mode, so no `chmod`;
/// `std::io::copy` between files uses `copy_file_range`, so the bytes stay in the kernel).
fn copy_readonly(src: &Path, tmp: &Path) -> Result<()> {
    let (mut input, mut out) = open_pair(src, tmp)?;
    std::io::copy(&mut input, &mut out).at(tmp)?;
    Ok(())
}

/// `src` opened for reading and `tmp` created (it must not exist) read-only for writing.
fn open_pair(src: &Path, tmp: &Path) -> Result<(std::fs::File, std::fs::File)> {
    let input = std::fs::File::open(src).at(src)?;
    let out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o444)
        .open(tmp)
        .at(tmp)?;
    Ok((input, out))
}

/// Copies `src` to a new read-only file `tmp`, returning the hash and length of what was copied.
fn copy_verified(src: &Path, tmp: &Path) -> Result<(Hash, u64)> {
    let (mut input, mut out) = open_pair(src, tmp)?;
    let len = input.metadata().at(src)?.len();
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
        out.write_all(&buf).at(tmp)?;
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
        out.write_all(&buf[..n]).at(tmp)?;
        total += n as u64;
    }
    Ok((Hash::from_bytes(*hasher.finalize().as_bytes()), total))
}
