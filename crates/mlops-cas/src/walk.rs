//! Listing a tracked folder: every file under it with its stamp, in manifest order.
//!
//! Each folder is opened once and read with `getdents`; its files are stat-ed relative to the
//! open folder, so the kernel resolves one name per file instead of walking the whole absolute
//! path again (path walks were about a sixth of `status`'s kernel time). [`walk_files`] hands
//! each file to a visitor together with its open folder ([`At`]), so that `add` opens, reads and
//! links it with `*at` calls in the same task. Sub-folders are walked in parallel, and a folder
//! with many files visits them in parallel chunks. Only the folders on the current stack of each
//! worker are open at once, so a tree with thousands of folders does not run out of file
//! descriptors.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use rayon::prelude::*;
use rustix::fs::{AtFlags, FileType, Mode, OFlags};

use crate::error::{Error, Result};
use crate::shards::for_each_entry;
use crate::statcache::Stamp;

/// A regular file, or a symbolic link to one, under a listed folder.
#[derive(Debug, Clone)]
pub(crate) struct FoundFile {
    /// Path relative to the listed folder, `/`-separated.
    pub(crate) rel: String,
    /// Size, modification time and inode (of the link's target for a symbolic link).
    pub(crate) stamp: Stamp,
    /// Any execute bit is set.
    pub(crate) exec: bool,
    /// The directory entry is a symbolic link (to a file).
    pub(crate) link: bool,
}

/// Folders with more files than this stat them in parallel chunks of this size.
const STAT_CHUNK: usize = 512;

/// Every file under `dir` (recursively; symbolic links to files are followed, links to folders
/// are an error), sorted by relative path bytes, which is manifest order (`a-c` before `a/b`).
/// Sockets, fifos and devices are skipped: they are not data.
///
/// # Errors
/// [`Error::BadPath`] for a name that is not UTF-8 or a link to a folder; I/O errors naming the
/// path.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<FoundFile>> {
    Ok(walk_files(dir, &|_, _| false, &|_, _, _| Ok(()))?
        .into_iter()
        .map(|(f, ())| f)
        .collect())
}

/// A file's place for `*at` system calls: its open folder and its name there.
#[derive(Debug, Clone, Copy)]
pub(crate) struct At<'a> {
    /// The open folder.
    pub(crate) dir: BorrowedFd<'a>,
    /// The file's name in it (one component).
    pub(crate) name: &'a str,
    /// The folder's path, for messages and for what goes by path.
    pub(crate) folder: &'a Path,
}

/// A workspace file to put into the cache: where it is, and the file itself when it is still
/// open from being hashed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Source<'a> {
    /// Its open folder and name.
    pub(crate) at: At<'a>,
    /// The file as read for hashing, if still open.
    pub(crate) open: Option<&'a std::fs::File>,
    /// The directory entry is a symbolic link (to a file).
    pub(crate) link: bool,
}

impl At<'_> {
    /// The file's path (built on demand: most files never need it).
    pub(crate) fn path(&self) -> PathBuf {
        self.folder.join(self.name)
    }

    /// Opens the file for reading, following a symbolic link, without updating its access time
    /// where the system allows it (saves an inode write per file read).
    ///
    /// # Errors
    /// The open's error.
    pub(crate) fn open_read(self) -> std::io::Result<std::fs::File> {
        self.open_with(OFlags::empty())
    }

    /// Like [`At::open_read`], with `extra` flags (such as `O_NOFOLLOW`). `O_NONBLOCK` (no effect
    /// on a regular file) keeps a file swapped for a fifo since it was listed or stat-ed from
    /// blocking the open; the `fstat` after it then refuses it.
    fn open_with(self, extra: OFlags) -> std::io::Result<std::fs::File> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK | extra;
        #[cfg(any(target_os = "linux", target_os = "android"))]
        {
            // O_NOATIME is refused (EPERM) for files the caller does not own.
            match rustix::fs::openat(self.dir, self.name, flags | OFlags::NOATIME, Mode::empty()) {
                Ok(fd) => return Ok(fd.into()),
                Err(rustix::io::Errno::PERM) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(rustix::fs::openat(self.dir, self.name, flags, Mode::empty())?.into())
    }
}

/// Whether the walk should open the file with this (device, inode) from its listing instead of
/// stat-ing it: when the caller will read it anyway, an open and an `fstat` of the open file
/// replace a `stat` by name and the open, which saves a name lookup per file.
pub(crate) type OpenFirst<'a> = dyn Fn(u64, u64) -> bool + Sync + 'a;

/// Like [`list_files`], calling `visit` on each file (in parallel, in no particular order) while
/// its folder is open, and returning what it returned beside each file, in manifest order.
/// A regular file for which `open_first(device, inode from the listing)` is true is opened
/// rather than stat-ed, and handed to `visit` open; its stamp is that of the open file.
///
/// # Errors
/// As [`list_files`], and the first error `visit` returns.
pub(crate) fn walk_files<T, V>(
    dir: &Path,
    open_first: &OpenFirst<'_>,
    visit: &V,
) -> Result<Vec<(FoundFile, T)>>
where
    T: Send,
    V: Fn(&FoundFile, At<'_>, Option<std::fs::File>) -> Result<T> + Sync,
{
    // The tracked folder itself may be a link to a folder; nothing under it is followed.
    let fd = open_dir(rustix::fs::CWD, dir, dir, true)?;
    walk_dir(fd, dir, "", open_first, visit)
}

/// A file found in a listing, not yet stat-ed.
struct Pending {
    rel: String,
    /// Where the file's own name starts in `rel`.
    name_at: usize,
    link: bool,
    /// The inode number the listing gave.
    ino: u64,
}

/// One folder's files and sub-folders, in manifest order. Sorting each folder's own entries
/// (a sub-folder `d` as `d/`, which is where its files fall in byte order) and concatenating
/// gives the order of the whole tree, with no sort of all files at the end.
fn walk_dir<T, V>(
    fd: OwnedFd,
    abs: &Path,
    prefix: &str,
    open_first: &OpenFirst<'_>,
    visit: &V,
) -> Result<Vec<(FoundFile, T)>>
where
    T: Send,
    V: Fn(&FoundFile, At<'_>, Option<std::fs::File>) -> Result<T> + Sync,
{
    let fd = fd.as_fd();
    let mut pending = Vec::new();
    // Sub-folders as `rel/`, the key they sort under among the files.
    let mut folders: Vec<String> = Vec::new();
    let mut failure = None;
    for_each_entry(fd, |raw, kind, ino| {
        if raw == b"." || raw == b".." {
            return Ok(());
        }
        let Ok(name) = std::str::from_utf8(raw) else {
            failure = Some(Error::BadPath {
                path: abs.join(std::ffi::OsStr::from_bytes(raw)),
                reason: "has a name that is not valid UTF-8".to_owned(),
            });
            return Err(std::io::ErrorKind::InvalidData.into());
        };
        let kind = match kind {
            // Some file systems leave the type out of the listing.
            FileType::Unknown => match rustix::fs::statat(fd, name, AtFlags::SYMLINK_NOFOLLOW) {
                Ok(st) => FileType::from_raw_mode(st.st_mode),
                Err(e) => {
                    failure = Some(Error::io(abs.join(name), e.into()));
                    return Err(std::io::ErrorKind::Other.into());
                }
            },
            known => known,
        };
        let mut rel = String::with_capacity(prefix.len() + name.len() + 2);
        if !prefix.is_empty() {
            rel.push_str(prefix);
            rel.push('/');
        }
        rel.push_str(name);
        match kind {
            FileType::Directory => {
                rel.push('/');
                folders.push(rel);
            }
            FileType::RegularFile | FileType::Symlink => pending.push(Pending {
                name_at: rel.len() - name.len(),
                rel,
                link: kind == FileType::Symlink,
                ino,
            }),
            _ => {}
        }
        Ok(())
    })
    .map_err(|e| failure.take().unwrap_or_else(|| Error::io(abs, e)))?;
    if pending.len() > STAT_CHUNK {
        pending.par_sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    } else {
        pending.sort_unstable_by(|a, b| a.rel.as_bytes().cmp(b.rel.as_bytes()));
    }
    folders.sort_unstable();
    // The device of every file listed here (a mount point inside would be a folder).
    let dev = if pending.is_empty() {
        0
    } else {
        dev_of(&rustix::fs::fstat(fd).map_err(|e| Error::io(abs, e.into()))?)
    };
    let one = |p: Pending| -> Result<(FoundFile, T)> {
        let opened = if !p.link && open_first(dev, p.ino) {
            // A file that became a link or went away since the listing: the stat below says so.
            At {
                dir: fd,
                name: &p.rel[p.name_at..],
                folder: abs,
            }
            .open_with(OFlags::NOFOLLOW)
            .ok()
        } else {
            None
        };
        let name_at = p.name_at;
        let found = match &opened {
            Some(file) => {
                let st = rustix::fs::fstat(file)
                    .map_err(|e| Error::io(abs.join(&p.rel[p.name_at..]), e.into()))?;
                found_from(p, &st, abs)?
            }
            None => stat_at(fd, p, abs)?,
        };
        let out = visit(
            &found,
            At {
                dir: fd,
                name: &found.rel[name_at..],
                folder: abs,
            },
            opened,
        )?;
        Ok((found, out))
    };
    let files: Vec<(FoundFile, T)> = if pending.len() > STAT_CHUNK {
        pending
            .into_par_iter()
            .with_min_len(STAT_CHUNK)
            .with_max_len(STAT_CHUNK)
            .map(one)
            .collect::<Result<_>>()?
    } else {
        pending.into_iter().map(one).collect::<Result<_>>()?
    };
    // One folder per task: a folder is a lot of work, and rayon's adaptive splitting would
    // otherwise leave one thread with a run of folders at the end while the other idles.
    let nested: Vec<Vec<(FoundFile, T)>> = folders
        .par_iter()
        .with_max_len(1)
        .map(|key| {
            let rel = &key[..key.len() - 1];
            let name = &rel[rel.rfind('/').map_or(0, |i| i + 1)..];
            let path = abs.join(name);
            let sub = open_dir(fd, name, &path, false)?;
            walk_dir(sub, &path, rel, open_first, visit)
        })
        .collect::<Result<_>>()?;
    if nested.is_empty() {
        return Ok(files);
    }
    // Merge: files and folders are each sorted; a folder's files go where `name/` sorts.
    let total = files.len() + nested.iter().map(Vec::len).sum::<usize>();
    let mut out = Vec::with_capacity(total);
    let mut files = files.into_iter().peekable();
    for (key, sub) in folders.iter().zip(nested) {
        while let Some(f) = files.next_if(|f| f.0.rel.as_bytes() < key.as_bytes()) {
            out.push(f);
        }
        out.extend(sub);
    }
    out.extend(files);
    Ok(out)
}

fn open_dir<P: rustix::path::Arg>(
    at: impl AsFd,
    name: P,
    shown: &Path,
    follow: bool,
) -> Result<OwnedFd> {
    let mut flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    if !follow {
        flags |= OFlags::NOFOLLOW;
    }
    rustix::fs::openat(at, name, flags, Mode::empty()).map_err(|e| Error::io(shown, e.into()))
}

/// The stamp in a `stat` result (the same fields [`Stamp::of`] reads from `std`'s metadata).
#[allow(
    clippy::cast_possible_wrap,
    clippy::cast_sign_loss,
    clippy::unnecessary_cast,
    reason = "the field types of `struct stat` differ between platforms; these are the casts std makes"
)]
pub(crate) fn stamp_of(st: &rustix::fs::Stat) -> Stamp {
    Stamp {
        size: st.st_size as u64,
        mtime_ns: i128::from(st.st_mtime as i64) * 1_000_000_000
            + i128::from(st.st_mtime_nsec as i64),
        inode: st.st_ino as u64,
        dev: st.st_dev as u64,
    }
}

/// The device in a `stat` result.
#[allow(
    clippy::unnecessary_cast,
    reason = "`st_dev` is u64 on some platforms and not on others"
)]
fn dev_of(st: &rustix::fs::Stat) -> u64 {
    st.st_dev as u64
}

/// Stats one listed file relative to its open folder (through the link for a symbolic link).
fn stat_at(dir: BorrowedFd<'_>, p: Pending, folder: &Path) -> Result<FoundFile> {
    let flags = if p.link {
        AtFlags::empty()
    } else {
        AtFlags::SYMLINK_NOFOLLOW
    };
    let st = rustix::fs::statat(dir, &p.rel[p.name_at..], flags)
        .map_err(|e| Error::io(folder.join(&p.rel[p.name_at..]), e.into()))?;
    found_from(p, &st, folder)
}

/// The found file for a listed one and what `stat` said of it: refused unless a regular file.
fn found_from(p: Pending, st: &rustix::fs::Stat, folder: &Path) -> Result<FoundFile> {
    let kind = FileType::from_raw_mode(st.st_mode);
    if kind != FileType::RegularFile {
        return Err(Error::BadPath {
            path: folder.join(&p.rel[p.name_at..]),
            reason: match (p.link, kind) {
                (true, FileType::Directory) => "is a link to a folder; mlops tracks files, link targets are not followed into folders",
                (true, _) => "is a link to something that is not a regular file",
                (false, _) => "changed from a file to something else while it was being listed",
            }
            .to_owned(),
        });
    }
    Ok(FoundFile {
        stamp: stamp_of(st),
        exec: st.st_mode & 0o111 != 0,
        link: p.link,
        rel: p.rel,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::{MetadataExt, PermissionsExt};

    #[test]
    fn lists_in_manifest_order_with_the_same_stamps_as_std() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for rel in ["a/b", "a-c", "z", "a/d/e", "m/n/o/p"] {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, rel).unwrap();
        }
        std::fs::set_permissions(root.join("z"), std::fs::Permissions::from_mode(0o755)).unwrap();
        std::fs::create_dir(root.join("empty")).unwrap();
        let found = list_files(root).unwrap();
        let rels: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
        assert_eq!(rels, ["a-c", "a/b", "a/d/e", "m/n/o/p", "z"]);
        for f in &found {
            let meta = std::fs::symlink_metadata(root.join(&f.rel)).unwrap();
            assert_eq!(f.stamp, Stamp::of(&meta));
            assert_eq!(f.exec, meta.mode() & 0o111 != 0, "{}", f.rel);
        }
        assert!(found.iter().find(|f| f.rel == "z").unwrap().exec);
    }

    #[test]
    fn folders_merge_with_files_in_byte_order_at_every_depth() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        // '.' (0x2e) < '/' (0x2f) < '0' (0x30): `a.x` comes before `a/...`, `a0` after it.
        let rels = [
            "a.x", "a/0", "a/b.c", "a/b/c", "a/b0", "a0", "b", "b-/x", "b./y", "b0/z", "c/d/e/f",
        ];
        for rel in rels {
            let p = root.join(rel);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, rel).unwrap();
        }
        let found = list_files(root).unwrap();
        let got: Vec<&str> = found.iter().map(|f| f.rel.as_str()).collect();
        let mut want = rels.to_vec();
        want.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
        assert_eq!(got, want);
    }

    #[test]
    fn files_opened_first_have_the_stamp_of_a_stat_and_reach_the_visitor_open() {
        use std::io::Read;
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::create_dir(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/plain"), "plain").unwrap();
        std::fs::write(root.join("known"), "known").unwrap();
        std::os::unix::fs::symlink(root.join("known"), root.join("link")).unwrap();
        let known_ino = std::fs::metadata(root.join("known")).unwrap().ino();
        // Every file but `known` is "unknown" and so opened by the walk; links never are.
        let asked = std::sync::Mutex::new(Vec::new());
        let open_first = |_dev: u64, ino: u64| {
            asked.lock().unwrap().push(ino);
            ino != known_ino
        };
        let found = walk_files(root, &open_first, &|f, at, opened| {
            let content = match opened {
                Some(mut file) => {
                    let mut s = String::new();
                    file.read_to_string(&mut s).unwrap();
                    Some(s)
                }
                None => None,
            };
            assert_eq!(at.path(), root.join(&f.rel));
            Ok(content)
        })
        .unwrap();
        let seen: Vec<(&str, Option<&str>)> = found
            .iter()
            .map(|(f, c)| (f.rel.as_str(), c.as_deref()))
            .collect();
        assert_eq!(
            seen,
            [
                ("known", None),
                ("link", None),
                ("sub/plain", Some("plain"))
            ]
        );
        for (f, _) in &found {
            let meta = std::fs::metadata(root.join(&f.rel)).unwrap();
            assert_eq!(f.stamp, Stamp::of(&meta), "{}", f.rel);
        }
        assert_eq!(asked.lock().unwrap().len(), 2, "links are not offered");
    }

    #[test]
    fn a_large_folder_is_stat_ed_in_chunks_without_losing_files() {
        let dir = tempfile::tempdir().unwrap();
        let n = STAT_CHUNK * 3 + 7;
        for i in 0..n {
            std::fs::write(dir.path().join(format!("f{i:05}")), i.to_string()).unwrap();
        }
        let found = list_files(dir.path()).unwrap();
        assert_eq!(found.len(), n);
        for (i, f) in found.iter().enumerate() {
            assert_eq!(f.rel, format!("f{i:05}"));
            assert_eq!(f.stamp.size, i.to_string().len() as u64);
        }
    }

    #[test]
    fn links_to_files_are_followed_and_links_to_folders_refused() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(dir.path().join("outside"), "12345").unwrap();
        std::os::unix::fs::symlink(dir.path().join("outside"), root.join("link")).unwrap();
        let found = list_files(&root).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rel, "link");
        assert_eq!(found[0].stamp.size, 5);
        assert_eq!(
            found[0].stamp.inode,
            std::fs::metadata(dir.path().join("outside")).unwrap().ino()
        );

        std::os::unix::fs::symlink(root.join("sub"), root.join("dirlink")).unwrap();
        let err = list_files(&root).unwrap_err().to_string();
        assert!(
            err.contains("dirlink") && err.contains("link to a folder"),
            "{err}"
        );

        std::fs::remove_file(root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink(root.join("nowhere"), root.join("dangling")).unwrap();
        let err = list_files(&root).unwrap_err().to_string();
        assert!(err.contains("dangling"), "{err}");
    }

    #[test]
    fn a_tracked_folder_may_itself_be_a_link_to_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("real/sub")).unwrap();
        std::fs::write(dir.path().join("real/sub/f"), "x").unwrap();
        std::os::unix::fs::symlink(dir.path().join("real"), dir.path().join("data")).unwrap();
        let found = list_files(&dir.path().join("data")).unwrap();
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].rel, "sub/f");
    }

    #[test]
    fn opening_a_file_that_became_a_fifo_does_not_wait_for_a_writer() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_owned();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            root.join("pipe"),
            FileType::Fifo,
            Mode::from_raw_mode(0o600),
            0,
        )
        .unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let fd = open_dir(rustix::fs::CWD, &root, &root, true).unwrap();
            let at = At {
                dir: fd.as_fd(),
                name: "pipe",
                folder: &root,
            };
            let kinds = [at.open_read(), at.open_with(OFlags::NOFOLLOW)].map(|opened| {
                FileType::from_raw_mode(rustix::fs::fstat(opened.unwrap()).unwrap().st_mode)
            });
            let _ = tx.send(kinds);
        });
        let kinds = rx
            .recv_timeout(std::time::Duration::from_secs(10))
            .expect("opening a fifo blocked");
        assert_eq!(kinds, [FileType::Fifo, FileType::Fifo]);
    }

    #[test]
    fn a_name_that_is_not_utf8_is_refused_with_its_path() {
        use std::os::unix::ffi::OsStrExt;
        let dir = tempfile::tempdir().unwrap();
        let name = std::ffi::OsStr::from_bytes(b"bad\xffname");
        std::fs::write(dir.path().join(name), "x").unwrap();
        let err = list_files(dir.path()).unwrap_err().to_string();
        assert!(err.contains("not valid UTF-8"), "{err}");
    }

    #[test]
    fn a_missing_folder_is_an_io_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("gone");
        let err = list_files(&gone).unwrap_err().to_string();
        assert!(err.contains("gone"), "{err}");
    }
}
