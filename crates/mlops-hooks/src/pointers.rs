//! `stale-pointers`: data edited without `mlops add`, and pointers whose object is not in the
//! local cache. Skipped where there is no `.mlops/` folder.

use std::path::{Path, PathBuf};

use mlops_cas::{Pointer, Repo};
use rayon::prelude::*;

use crate::check::{CheckId, Finding};
use crate::config::Excludes;
use crate::error::{Error, Result};

/// A pointer file to look at.
#[derive(Debug)]
pub(crate) struct PointerFile {
    /// Repository-relative path of the `.mlops` file.
    pub(crate) path: String,
    /// Its content as checked (index or commit blob); `None` reads the working file.
    pub(crate) content: Option<Vec<u8>>,
    /// Whether it is among the selected files (then its object must be in the cache).
    pub(crate) selected: bool,
}

/// What the check did.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran and found these.
    Ran(Vec<Finding>),
    /// It could not run here, and why.
    Skipped(String),
}

/// Whether a repository-relative path names a pointer file.
pub(crate) fn is_pointer(path: &str) -> bool {
    Pointer::is_pointer_file(Path::new(path))
}

/// Checks the pointers: each payload present in the working tree must hash to its pointer;
/// a selected pointer's object must be in the cache.
pub(crate) fn check(
    root: &Path,
    pointers: &[PointerFile],
    excludes: Option<&Excludes>,
) -> Result<Outcome> {
    if !root.join(mlops_cas::STATE_DIR).is_dir() {
        return Ok(Outcome::Skipped(
            "no .mlops/ folder here (`mlops init` starts tracking data)".into(),
        ));
    }
    let repo = Repo::open(root)?;
    let findings: Vec<Vec<Finding>> = pointers
        .par_iter()
        .filter(|p| !excludes.is_some_and(|e| e.matches(&p.path)))
        .map(|p| check_one(&repo, root, p))
        .collect::<Result<_>>()?;
    if let Err(e) = repo.flush() {
        tracing::warn!("could not save the hash cache: {e}");
    }
    Ok(Outcome::Ran(findings.into_iter().flatten().collect()))
}

fn check_one(repo: &Repo, root: &Path, p: &PointerFile) -> Result<Vec<Finding>> {
    let file = root.join(&p.path);
    let parsed = match &p.content {
        Some(bytes) => Pointer::parse(&String::from_utf8_lossy(bytes), Path::new(&p.path)),
        None => match Pointer::read(&file) {
            Err(mlops_cas::Error::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(Vec::new());
            }
            other => other,
        },
    };
    let pointer = match parsed {
        Ok(ptr) => ptr,
        Err(e) => {
            return Ok(vec![Finding::new(
                CheckId::StalePointers,
                &p.path,
                None,
                format!("malformed pointer file: {e}"),
                "restore it from Git or write it again with `mlops add`",
            )]);
        }
    };
    let dir = Path::new(&p.path).parent().unwrap_or(Path::new(""));
    let payload: PathBuf = dir.join(&pointer.path);
    let shown = payload.to_string_lossy().replace('\\', "/");
    let mut out = Vec::new();
    if root.join(&payload).exists() {
        match repo.hash_path(&payload) {
            Ok(now) if now.hash != pointer.hash => out.push(Finding::new(
                CheckId::StalePointers,
                &p.path,
                None,
                format!(
                    "`{shown}` changed since its pointer was written ({} now, {} in the pointer)",
                    now.hash.short(),
                    pointer.hash.short()
                ),
                format!("run `mlops add {shown}` and stage `{}`", p.path),
            )),
            Ok(_) => {}
            Err(e) if e.is_usage() => out.push(Finding::new(
                CheckId::StalePointers,
                &p.path,
                None,
                format!("pointer names a path mlops cannot track: {e}"),
                "fix the `path` in the pointer file",
            )),
            Err(e) => return Err(Error::Cas(e)),
        }
    }
    if p.selected && !repo.has_object(&pointer.object())? {
        out.push(Finding::new(
            CheckId::StalePointers,
            &p.path,
            None,
            format!("the object of `{shown}` ({}) is not in the local cache", pointer.hash.short()),
            format!("run `mlops add {shown}` (or `mlops fetch` if it came from elsewhere) before committing the pointer"),
        ));
    }
    Ok(out)
}
