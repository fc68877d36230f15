//! File-system primitives every write goes through: atomic replace, read-only objects, and
//! materialising a cache object into the workspace by reflink, hardlink or copy.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Writes `bytes` to `path` atomically: a temporary file in the same folder, then a rename.
///
/// # Errors
/// I/O errors naming `path`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(path)?;
    tmp.as_file().sync_data().at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// Like [`write_atomic`] without the `fsync`: for caches, where losing the newest content on a
/// power cut costs only a re-hash.
pub(crate) fn write_atomic_unsynced(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = parent_of(path);
    std::fs::create_dir_all(dir).at(dir)?;
    let mut tmp = tempfile::Builder::new()
        .prefix(".tmp-")
        .tempfile_in(dir)
        .at(dir)?;
    tmp.write_all(bytes).at(path)?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

/// The folder holding `path` (`.` for a bare file name).
pub(crate) fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Removes write permission from `path` for everyone.
pub(crate) fn set_readonly(path: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).at(path)?;
    let mode = meta.permissions().mode();
    if mode & 0o222 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222)).at(path)?;
    }
    Ok(())
}

/// Like [`set_readonly`], with the metadata already at hand (saves a `stat`).
pub(crate) fn set_readonly_mode(path: &Path, meta: &std::fs::Metadata) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode();
    if mode & 0o222 != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & !0o222)).at(path)?;
    }
    Ok(())
}

/// How a cache object is put into the workspace.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LinkKind {
    /// A copy-on-write clone: instant, and edits never reach the cache.
    Reflink,
    /// A hard link: instant; the file is read-only (it *is* the cache object).
    Hardlink,
    /// A plain copy: slow for large files, always safe.
    Copy,
}

impl LinkKind {
    /// The default order: reflink, then hardlink, then copy.
    pub const DEFAULT_ORDER: [LinkKind; 3] =
        [LinkKind::Reflink, LinkKind::Hardlink, LinkKind::Copy];
}

impl std::str::FromStr for LinkKind {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "reflink" => Ok(Self::Reflink),
            "hardlink" => Ok(Self::Hardlink),
            "copy" => Ok(Self::Copy),
            other => Err(Error::Invalid(format!(
                "unknown link kind `{other}`; use reflink, hardlink or copy"
            ))),
        }
    }
}

/// Remembers, per process, that reflinks are unsupported so 20,000 files do not each try.
static REFLINK_UNSUPPORTED: AtomicBool = AtomicBool::new(false);
/// The same for hard links (cache and workspace on different file systems).
static HARDLINK_UNSUPPORTED: AtomicBool = AtomicBool::new(false);

/// Remembers that `kind` is unsupported here when `e` says so (see [`first_usable`]).
pub(crate) fn note_link_failure(kind: LinkKind, e: &std::io::Error) {
    if is_unsupported(e) {
        match kind {
            LinkKind::Reflink => REFLINK_UNSUPPORTED.store(true, Ordering::Relaxed),
            LinkKind::Hardlink => HARDLINK_UNSUPPORTED.store(true, Ordering::Relaxed),
            LinkKind::Copy => {}
        }
    }
}

/// The first kind in `order` not yet known to be unsupported on this machine.
pub(crate) fn first_usable(order: &[LinkKind]) -> Option<LinkKind> {
    order.iter().copied().find(|k| match k {
        LinkKind::Reflink => !REFLINK_UNSUPPORTED.load(Ordering::Relaxed),
        LinkKind::Hardlink => !HARDLINK_UNSUPPORTED.load(Ordering::Relaxed),
        LinkKind::Copy => true,
    })
}

/// Creates `dest` (which must not exist) with the content of `src`, trying each kind of `order`
/// in turn. Returns the kind used. A copy is made writable; links keep the source's mode.
///
/// # Errors
/// The last attempt's error, naming `dest`.
pub(crate) fn link_or_copy(src: &Path, dest: &Path, order: &[LinkKind]) -> Result<LinkKind> {
    let mut last = None;
    for kind in order {
        let attempt = match kind {
            LinkKind::Reflink if REFLINK_UNSUPPORTED.load(Ordering::Relaxed) => continue,
            LinkKind::Hardlink if HARDLINK_UNSUPPORTED.load(Ordering::Relaxed) => continue,
            LinkKind::Reflink => reflink_copy::reflink(src, dest),
            LinkKind::Hardlink => hard_link_following(src, dest),
            LinkKind::Copy => copy_writable(src, dest),
        };
        match attempt {
            Ok(()) => return Ok(*kind),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                return Err(Error::io(dest, e));
            }
            Err(e) => {
                note_link_failure(*kind, &e);
                tracing::trace!(?kind, dest = %dest.display(), error = %e, "link attempt failed");
                last = Some(e);
            }
        }
    }
    Err(Error::io(
        dest,
        last.unwrap_or_else(|| {
            std::io::Error::other("no link kind configured (cache.link is empty)")
        }),
    ))
}

/// A hard link at `dest` to the file `src` names, following `src` if it is a symbolic link
/// (`std::fs::hard_link` links the link itself on Linux).
pub(crate) fn hard_link_following(src: &Path, dest: &Path) -> std::io::Result<()> {
    use rustix::fs::{AtFlags, CWD};
    Ok(rustix::fs::linkat(
        CWD,
        src,
        CWD,
        dest,
        AtFlags::SYMLINK_FOLLOW,
    )?)
}

fn is_unsupported(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::EXDEV
                | libc::EOPNOTSUPP
                | libc::EINVAL
                | libc::ENOTTY
                | libc::EPERM
                | libc::EMLINK
        )
    ) || e.kind() == std::io::ErrorKind::Unsupported
}

fn copy_writable(src: &Path, dest: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // Create exclusively so a concurrent writer is never clobbered half-way.
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(dest)?;
    let mut input = std::fs::File::open(src)?;
    let result = std::io::copy(&mut input, &mut out).and_then(|_| {
        let mode = input.metadata()?.permissions().mode();
        out.set_permissions(std::fs::Permissions::from_mode((mode | 0o200) & 0o777))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(dest);
    }
    result
}

/// Puts `src`'s content at `dest` atomically, replacing whatever is there: materialised next to
/// `dest` under a temporary name, then renamed over it.
///
/// # Errors
/// I/O errors naming `dest`.
pub(crate) fn replace_with(
    src: &Path,
    dest: &Path,
    order: &[LinkKind],
    exec: bool,
) -> Result<LinkKind> {
    let dir = parent_of(dest);
    std::fs::create_dir_all(dir).at(dir)?;
    let tmp = temp_sibling(dest);
    let kind = link_or_copy(src, &tmp, order)?;
    if exec && kind == LinkKind::Copy {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o755));
    }
    if let Err(e) = std::fs::rename(&tmp, dest) {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(dest, e));
    }
    Ok(kind)
}

/// Puts `src`'s content at `dest` whose folder exists. When `dest` does not exist and hard links
/// are the first usable kind, links straight to the final name (a link appears whole, so it is
/// atomic); otherwise goes through a temporary name and a rename.
///
/// # Errors
/// I/O errors naming `dest`.
pub(crate) fn place(
    src: &Path,
    dest: &Path,
    order: &[LinkKind],
    exec: bool,
    dest_exists: bool,
) -> Result<LinkKind> {
    if !dest_exists && first_usable(order) == Some(LinkKind::Hardlink) {
        match std::fs::hard_link(src, dest) {
            Ok(()) => return Ok(LinkKind::Hardlink),
            Err(e) if is_unsupported(&e) => HARDLINK_UNSUPPORTED.store(true, Ordering::Relaxed),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(dest, e)),
        }
    }
    replace_with(src, dest, order, exec)
}

/// A unique temporary name beside `path`: `.<name>.tmp-<pid>-<n>`.
pub(crate) fn temp_sibling(path: &Path) -> PathBuf {
    use std::sync::atomic::AtomicU64;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // The process id, asked once: a push names 20,000 temporary files.
    static PID: std::sync::OnceLock<u32> = std::sync::OnceLock::new();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = *PID.get_or_init(std::process::id);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    parent_of(path).join(format!(".{name}.tmp-{pid}-{n}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn write_atomic_replaces_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/x.toml");
        write_atomic(&p, b"one").unwrap();
        write_atomic(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        let names: Vec<_> = std::fs::read_dir(dir.path().join("sub"))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
    }

    #[test]
    fn copy_is_writable_even_from_readonly_source() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"data").unwrap();
        set_readonly(&src).unwrap();
        let dest = dir.path().join("dest");
        assert_eq!(
            replace_with(&src, &dest, &[LinkKind::Copy], false).unwrap(),
            LinkKind::Copy
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
        assert_ne!(
            std::fs::metadata(&dest).unwrap().permissions().mode() & 0o200,
            0
        );
        assert_eq!(
            std::fs::metadata(&src).unwrap().permissions().mode() & 0o222,
            0
        );
    }

    #[test]
    fn falls_back_through_the_order() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"data").unwrap();
        let dest = dir.path().join("dest");
        let kind = replace_with(&src, &dest, &LinkKind::DEFAULT_ORDER, false).unwrap();
        assert!(
            matches!(kind, LinkKind::Reflink | LinkKind::Hardlink),
            "{kind:?}"
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"data");
    }

    #[test]
    fn empty_order_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, b"x").unwrap();
        let err = replace_with(&src, &dir.path().join("d"), &[], false)
            .unwrap_err()
            .to_string();
        assert!(err.contains("cache.link is empty"), "{err}");
    }
}
