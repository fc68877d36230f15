//! [`Repo`]: a folder with `.mlops/`: tracking paths (`add`), comparing the workspace with its
//! pointers (`status`), materialising payloads (`checkout`) and collecting garbage (`gc`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::os::fd::AsFd;
use std::path::{Component, Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rayon::prelude::*;
use rustc_hash::FxHashMap;
use serde::Serialize;

use crate::cache::{Cache, Ingest};
use crate::config::{Config, write_initial};
use crate::error::{Error, IoContext, Result};
use crate::fsutil::{self, LinkKind, write_atomic};
use crate::hash::Hash;
use crate::lock::RepoLock;
use crate::manifest::{Manifest, ManifestEntry};
use crate::object::Object;
use crate::pointer::Pointer;
use crate::statcache::{Stamp, StatCache};
use crate::threads;
use crate::walk;

/// The folder of mlops state inside a repository.
pub const STATE_DIR: &str = ".mlops";

/// A repository: its root, configuration, cache and hash cache.
#[derive(Debug)]
pub struct Repo {
    root: PathBuf,
    config: Config,
    cache: Cache,
    stats: StatCache,
    /// Directory manifests this process has read and verified, with their size in bytes: a
    /// `pull` needs each twice (to list what to fetch, then to check out), and a manifest of
    /// 20,000 entries is 2.6 MB to read, hash and parse.
    manifests: Mutex<HashMap<Hash, (Arc<Manifest>, u64)>>,
}

/// Options of [`Repo::init`].
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct InitOptions {
    /// Allow a folder that is not inside a Git work tree.
    pub no_git: bool,
}

impl InitOptions {
    /// Default options: a Git work tree is required.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets whether a Git work tree is optional.
    #[must_use]
    pub fn no_git(mut self, yes: bool) -> Self {
        self.no_git = yes;
        self
    }
}

/// A file or directory being tracked, as `add` found it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Added {
    /// The payload path, relative to the repository root.
    pub path: PathBuf,
    /// The pointer file written, relative to the repository root.
    pub pointer: PathBuf,
    /// What it hashed to.
    pub object: Object,
    /// How many objects were new to the cache.
    pub new_objects: u64,
}

/// One way a tracked path is out of sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Change {
    /// The workspace content differs from the pointer.
    Modified,
    /// The payload is not in the workspace.
    Missing,
    /// Some of its objects are not in the local cache.
    NotInCache,
    /// Some of its objects are in the cache but corrupt (content does not match the hash).
    Corrupt,
    /// Some of its objects are not in the remote (only with `--remote`).
    NotInRemote,
}

/// A tracked path that is out of sync, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct PathStatus {
    /// The payload, relative to the repository root.
    pub path: PathBuf,
    /// Its pointer file, relative to the repository root.
    pub pointer: PathBuf,
    /// The ways it differs, sorted.
    pub changes: Vec<Change>,
}

/// One payload checked out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CheckedOut {
    /// The payload, relative to the repository root.
    pub path: PathBuf,
    /// Files written.
    pub files: u64,
}

/// What `gc` found (and removed when asked).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct GcReport {
    /// Objects some pointer or lock file references.
    pub kept: u64,
    /// Unreferenced objects (removed unless a dry run).
    pub unreferenced: u64,
    /// Their total size.
    pub unreferenced_bytes: u64,
    /// Whether they were removed.
    pub removed: bool,
    /// Hash-cache entries of files that are gone or changed (dropped unless a dry run). Always
    /// 0 for a remote.
    pub stale_hash_entries: u64,
}

/// A tracked path and everything needed to move or check its objects.
#[derive(Debug, Clone)]
pub(crate) struct Tracked {
    pub(crate) payload: PathBuf,
    pub(crate) pointer_file: PathBuf,
    pub(crate) pointer: Pointer,
}

impl Repo {
    /// Creates `.mlops/` (config, ignore rules) in `root` and opens it. Running it again is
    /// harmless.
    ///
    /// # Errors
    /// [`Error::BadPath`] when `root` is not inside a Git work tree and `no_git` is not set;
    /// I/O errors.
    pub fn init(root: &Path, options: &InitOptions) -> Result<Self> {
        let root = root.canonicalize().at(root)?;
        if !options.no_git && find_up(&root, ".git").is_none() {
            return Err(Error::BadPath {
                path: root,
                reason:
                    "not inside a Git work tree; run `git init` first, or use `mlops init --no-git`"
                        .to_owned(),
            });
        }
        let state = root.join(STATE_DIR);
        std::fs::create_dir_all(&state).at(&state)?;
        write_initial(&root)?;
        let ignore = state.join(".gitignore");
        if !ignore.exists() {
            write_atomic(&ignore, b"# Per-machine state: never tracked.\n/cache/\n/state/\n/tmp/\n/logs/\n/runs/\n/lock\n/config.local.toml\n")?;
        }
        Self::open(&root)
    }

    /// Opens the repository whose root (the folder holding `.mlops/`) is `root`.
    ///
    /// # Errors
    /// [`Error::NotARepo`]; configuration errors.
    pub fn open(root: &Path) -> Result<Self> {
        if !root.join(STATE_DIR).is_dir() {
            return Err(Error::NotARepo {
                start: root.to_owned(),
            });
        }
        let root = root.canonicalize().at(root)?;
        let config = Config::load(&root)?;
        let cache = Cache::new(config.cache_dir.clone());
        let stats = StatCache::load(&root.join(STATE_DIR).join("state").join("hashes"));
        Ok(Self {
            root,
            config,
            cache,
            stats,
            manifests: Mutex::default(),
        })
    }

    /// Opens the repository containing `start` (searching parents for `.mlops/`).
    ///
    /// # Errors
    /// [`Error::NotARepo`]; configuration errors.
    pub fn discover(start: &Path) -> Result<Self> {
        let abs = std::path::absolute(start).at(start)?;
        match find_up(&abs, STATE_DIR) {
            Some(root) => Self::open(&root),
            None => Err(Error::NotARepo { start: abs }),
        }
    }

    /// The repository root.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The merged configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The local object cache.
    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The hash cache.
    pub fn stats(&self) -> &StatCache {
        &self.stats
    }

    /// Takes the repository lock for a mutating command.
    ///
    /// # Errors
    /// [`Error::Locked`] naming the process that holds it.
    pub fn lock(&self) -> Result<RepoLock> {
        RepoLock::acquire(&self.root.join(STATE_DIR).join("lock"))
    }

    /// Saves the hash cache (also done when the repository is dropped).
    ///
    /// # Errors
    /// I/O errors writing `.mlops/state/hashes`.
    pub fn flush(&self) -> Result<()> {
        self.stats.save()
    }

    /// `path` made absolute against the root, and checked to be inside it and outside `.mlops/`.
    ///
    /// # Errors
    /// [`Error::BadPath`] with the reason.
    pub fn resolve(&self, path: &Path) -> Result<PathBuf> {
        let joined = if path.is_absolute() {
            path.to_owned()
        } else {
            self.root.join(path)
        };
        let normal = normalize(&joined);
        // Resolve symlinks in the parent so `link/../x` and symlinked roots compare correctly.
        let resolved = match (normal.parent(), normal.file_name()) {
            (Some(parent), Some(name)) => match parent.canonicalize() {
                Ok(p) => p.join(name),
                Err(_) => normal.clone(),
            },
            _ => normal.clone(),
        };
        let Ok(rel) = resolved.strip_prefix(&self.root) else {
            return Err(Error::BadPath {
                path: path.to_owned(),
                reason: format!("is outside the repository {}", self.root.display()),
            });
        };
        let first = rel.components().next();
        match first {
            None => Err(Error::BadPath {
                path: path.to_owned(),
                reason: "is the repository root; name the files or folders to track".to_owned(),
            }),
            Some(Component::Normal(c)) if c == STATE_DIR => Err(Error::BadPath {
                path: path.to_owned(),
                reason: "is inside .mlops/, which mlops manages itself".to_owned(),
            }),
            Some(Component::Normal(c)) if c == ".git" => Err(Error::BadPath {
                path: path.to_owned(),
                reason: "is inside .git/".to_owned(),
            }),
            _ => Ok(resolved),
        }
    }

    fn rel<'a>(&self, abs: &'a Path) -> &'a Path {
        abs.strip_prefix(&self.root).unwrap_or(abs)
    }

    // ---------------------------------------------------------------- hashing

    /// The hash of one workspace file, from the hash cache when its stamp is unchanged.
    fn hash_file_cached(&self, abs: &Path, stamp: Stamp) -> Result<(Hash, Stamp)> {
        if let Some(h) = self.stats.get(&stamp) {
            return Ok((h, stamp));
        }
        let h = crate::hash::hash_file_known_len(abs, stamp.size)?;
        self.stats.record(stamp, h);
        Ok((h, stamp))
    }

    /// Hashes a directory's files in parallel and builds its manifest. With `store`, each file is
    /// also put into the cache (linked per that order) as soon as it is hashed, in the same
    /// parallel pass: one stat, one read and one link per file, spread over all cores.
    fn hash_dir(&self, abs: &Path, store: Option<&[LinkKind]>) -> Result<DirScan> {
        let visit = |f: &walk::FoundFile,
                     at: walk::At<'_>,
                     opened: Option<std::fs::File>|
         -> Result<(Hash, u64)> {
            let (hash, open) = match self.stats.get(&f.stamp) {
                Some(h) => (h, opened),
                None => {
                    let (h, open) = crate::hash::hash_file_at(at, f.stamp.size, opened)?;
                    self.stats.record(f.stamp, h);
                    (h, open)
                }
            };
            let new = match store {
                Some(order) => {
                    let src = walk::Source {
                        at,
                        open: open.as_ref(),
                        link: f.link,
                    };
                    let ingest = self.cache.ingest_at(&src, &hash, &f.stamp, order)?;
                    self.note_ingested(&hash, ingest)
                }
                None => 0,
            };
            Ok((hash, new))
        };
        // A file the hash cache has never seen will be read: open it rather than stat it.
        let unknown = |dev: u64, inode: u64| !self.stats.knows(dev, inode);
        let done = walk::walk_files(abs, &unknown, &visit)?;
        let mut entries = Vec::with_capacity(done.len());
        let mut stamps = Vec::with_capacity(done.len());
        let mut new_objects = 0;
        for (f, (hash, new)) in done {
            stamps.push((hash, f.stamp));
            entries.push(ManifestEntry {
                path: f.rel,
                hash,
                size: f.stamp.size,
                exec: f.exec,
            });
            new_objects += new;
        }
        Ok(DirScan {
            manifest: Manifest::new(entries)?,
            stamps,
            new_objects,
        })
    }

    /// The object a workspace file or directory hashes to now. Uses the hash cache, so an
    /// unchanged file is only stat-ed. Stores nothing.
    ///
    /// # Errors
    /// [`Error::BadPath`] when the path does not exist or is outside the repository; I/O errors.
    pub fn hash_path(&self, path: &Path) -> Result<Object> {
        let abs = self.resolve(path)?;
        let meta = std::fs::metadata(&abs).map_err(|e| not_found_or_io(path, e))?;
        if meta.is_dir() {
            let m = self.hash_dir(&abs, None)?.manifest;
            Ok(Object {
                hash: m.hash(),
                size: m.total_size(),
                files: Some(m.entries.len() as u64),
            })
        } else {
            let (hash, _) = self.hash_file_cached(&abs, Stamp::of(&meta))?;
            Ok(Object {
                hash,
                size: meta.len(),
                files: None,
            })
        }
    }

    /// Hashes `path` and puts it into the cache (a directory: every file and the manifest),
    /// linking per `cache.link`. Writes no pointer.
    ///
    /// # Errors
    /// As [`Repo::hash_path`], plus cache I/O errors.
    pub fn store_path(&self, path: &Path) -> Result<Object> {
        self.store_abs(&self.resolve(path)?, path, false)
            .map(|(o, _)| o)
    }

    /// Stores one path. With `save_hashes`, the hash cache is written while a folder's manifest
    /// is serialised and stored (both are single-threaded), for the last path of an `add`.
    fn store_abs(&self, abs: &Path, shown: &Path, save_hashes: bool) -> Result<(Object, u64)> {
        let meta = std::fs::metadata(abs).map_err(|e| not_found_or_io(shown, e))?;
        let order = &self.config.link;
        if meta.is_dir() {
            let DirScan {
                manifest,
                new_objects: new,
                ..
            } = self.hash_dir(abs, Some(order))?;
            let (stored, saved) = rayon::join(
                || self.cache.insert_bytes_new(&manifest.to_bytes()),
                || {
                    if save_hashes {
                        self.stats.save()
                    } else {
                        Ok(())
                    }
                },
            );
            saved?;
            let (hash, added) = stored?;
            Ok((
                Object {
                    hash,
                    size: manifest.total_size(),
                    files: Some(manifest.entries.len() as u64),
                },
                new + u64::from(added),
            ))
        } else {
            let (hash, stamp) = self.hash_file_cached(abs, Stamp::of(&meta))?;
            let new = self.ingest_one(abs, &hash, &stamp, order)?;
            Ok((
                Object {
                    hash,
                    size: meta.len(),
                    files: None,
                },
                new,
            ))
        }
    }

    fn ingest_one(
        &self,
        path: &Path,
        hash: &Hash,
        stamp: &Stamp,
        order: &[LinkKind],
    ) -> Result<u64> {
        let ingest = self.cache.ingest(path, hash, stamp, order)?;
        Ok(self.note_ingested(hash, ingest))
    }

    /// Records a newly added object's stamp (it is verified content: later checks only stat it);
    /// 1 for a new object, 0 for one already there.
    fn note_ingested(&self, hash: &Hash, ingest: Ingest) -> u64 {
        match ingest {
            Ingest::Present => 0,
            // A hard link is the hashed workspace file itself: its entry answers for both.
            Ingest::Added {
                kind: LinkKind::Hardlink,
                ..
            } => 1,
            Ingest::Added { stamp, .. } => {
                self.stats.record(stamp, *hash);
                1
            }
        }
    }

    // ---------------------------------------------------------------- add

    /// Tracks each path: hashes it, stores it in the cache, writes `<path>.mlops` and adds the
    /// payload to the `.gitignore` beside it. All paths are checked before anything is written.
    ///
    /// # Errors
    /// [`Error::BadPath`] for a missing path, one outside the repository or inside `.mlops/`, or
    /// a pointer file; I/O errors.
    pub fn add(&self, paths: &[PathBuf]) -> Result<Vec<Added>> {
        threads::on_file_threads(|| self.add_on_this_pool(paths))
    }

    fn add_on_this_pool(&self, paths: &[PathBuf]) -> Result<Vec<Added>> {
        let mut resolved = Vec::new();
        for p in paths {
            let abs = self.resolve(p)?;
            std::fs::symlink_metadata(&abs).map_err(|e| not_found_or_io(p, e))?;
            if Pointer::is_pointer_file(&abs) {
                return Err(Error::BadPath {
                    path: p.clone(),
                    reason: "is a pointer file; add the payload it points to instead".to_owned(),
                });
            }
            resolved.push((abs, p.clone()));
        }
        let count = resolved.len();
        let mut out = Vec::new();
        for (abs, shown) in resolved {
            let last = out.len() + 1 == count;
            let (object, new_objects) = self.store_abs(&abs, &shown, last)?;
            let name = abs.file_name().map(PathBuf::from).unwrap_or_default();
            let pointer_file = Pointer::file_for(&abs);
            Pointer::new(&name, &object).write(&pointer_file)?;
            add_to_gitignore(
                fsutil::parent_of(&abs),
                &name.to_string_lossy(),
                object.is_dir(),
            )?;
            tracing::info!(path = %shown.display(), hash = %object.hash, new_objects, "tracked");
            out.push(Added {
                path: self.rel(&abs).to_owned(),
                pointer: self.rel(&pointer_file).to_owned(),
                object,
                new_objects,
            });
        }
        self.flush()?;
        Ok(out)
    }

    // ---------------------------------------------------------------- pointers

    /// Every pointer file in the workspace (respecting `.gitignore`, skipping `.git/` and
    /// `.mlops/`), parsed, sorted by path.
    ///
    /// # Errors
    /// A malformed pointer file (file, line, column); I/O errors.
    pub(crate) fn tracked(&self) -> Result<Vec<Tracked>> {
        let mut files = Vec::new();
        let walker = ignore::WalkBuilder::new(&self.root)
            .hidden(false)
            .require_git(false)
            .git_global(false)
            .filter_entry(|e| {
                let n = e.file_name();
                !(e.file_type().is_some_and(|t| t.is_dir()) && (n == ".git" || n == STATE_DIR))
            })
            .build();
        for entry in walker {
            let entry = match entry {
                Ok(e) => e,
                Err(e) => {
                    tracing::debug!(error = %e, "skipping unreadable entry");
                    continue;
                }
            };
            if entry.file_type().is_some_and(|t| t.is_file())
                && Pointer::is_pointer_file(entry.path())
            {
                files.push(entry.into_path());
            }
        }
        files.sort();
        files
            .into_iter()
            .map(|pointer_file| {
                let pointer = Pointer::read(&pointer_file)?;
                let payload = fsutil::parent_of(&pointer_file).join(&pointer.path);
                Ok(Tracked {
                    payload,
                    pointer_file,
                    pointer,
                })
            })
            .collect()
    }

    /// The tracked paths selected by `filter` (payload or pointer paths, or folders containing
    /// them); all when `filter` is empty.
    ///
    /// # Errors
    /// [`Error::BadPath`] for a filter path that matches nothing tracked.
    pub(crate) fn select(&self, filter: &[PathBuf]) -> Result<Vec<Tracked>> {
        let all = self.tracked()?;
        if filter.is_empty() {
            return Ok(all);
        }
        let mut chosen = Vec::new();
        let mut seen = HashSet::new();
        for f in filter {
            let abs = self.resolve(f)?;
            let mut matched = false;
            for (i, t) in all.iter().enumerate() {
                if t.payload.starts_with(&abs) || t.pointer_file == abs {
                    matched = true;
                    if seen.insert(i) {
                        chosen.push(t.clone());
                    }
                }
            }
            if !matched {
                return Err(Error::BadPath {
                    path: f.clone(),
                    reason: "is not tracked (no .mlops pointer for it or inside it)".to_owned(),
                });
            }
        }
        Ok(chosen)
    }

    /// The objects a tracked payload consists of: (hash, size) of the file, or of the manifest
    /// and every entry. Needs the manifest in the cache for directories.
    pub(crate) fn objects_of(&self, t: &Tracked) -> Result<Vec<(Hash, u64)>> {
        if t.pointer.files.is_none() {
            return Ok(vec![(t.pointer.hash, t.pointer.size)]);
        }
        let (manifest, bytes) = self.manifest_and_size(&t.pointer.hash, &t.payload)?;
        let mut v = vec![(t.pointer.hash, bytes)];
        v.extend(manifest.entries.iter().map(|e| (e.hash, e.size)));
        Ok(v)
    }

    /// Reads and validates a directory manifest from the cache (once per `Repo`).
    pub(crate) fn manifest(&self, hash: &Hash, for_path: &Path) -> Result<Arc<Manifest>> {
        self.manifest_and_size(hash, for_path).map(|(m, _)| m)
    }

    /// [`Repo::manifest`] and its size in bytes.
    fn manifest_and_size(&self, hash: &Hash, for_path: &Path) -> Result<(Arc<Manifest>, u64)> {
        let known = self
            .manifests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(hash)
            .cloned();
        if let Some(found) = known {
            return Ok(found);
        }
        let bytes = self.cache.read_verified(hash, for_path)?;
        let parsed = (Arc::new(Manifest::from_bytes(&bytes)?), bytes.len() as u64);
        self.manifests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(*hash, parsed.clone());
        Ok(parsed)
    }

    // ---------------------------------------------------------------- status

    /// Every tracked path that is out of sync with its pointer or the cache; empty when all is
    /// in sync. Unchanged files are only stat-ed.
    ///
    /// # Errors
    /// Malformed pointers; I/O errors.
    pub fn status(&self) -> Result<Vec<PathStatus>> {
        threads::on_file_threads(|| self.status_on_this_pool())
    }

    fn status_on_this_pool(&self) -> Result<Vec<PathStatus>> {
        let tracked = self.tracked()?;
        let out = tracked
            .par_iter()
            .map(|t| self.status_of(t))
            .collect::<Result<Vec<_>>>()?;
        self.flush()?;
        Ok(out.into_iter().flatten().collect())
    }

    fn status_of(&self, t: &Tracked) -> Result<Option<PathStatus>> {
        let mut changes = BTreeSet::new();
        // Workspace files just found to hash to an object, by hash: a hard-linked one *is* its
        // object, which then needs no stat of its own.
        let mut linked: FxHashMap<Hash, Stamp> = FxHashMap::default();
        // The check of the pointer's objects, when the workspace already showed what they are.
        let mut checked = None;
        match std::fs::metadata(&t.payload) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                changes.insert(Change::Missing);
            }
            Err(e) => return Err(Error::io(&t.payload, e)),
            Ok(meta) => {
                let now = if meta.is_dir() {
                    let scan = self.hash_dir(&t.payload, None)?;
                    linked.extend(scan.stamps.iter().copied());
                    // An unchanged folder's objects are its entries' hashes: check them while
                    // the manifest is hashed (both take a while on a large folder).
                    let objects: Vec<Hash> = std::iter::once(t.pointer.hash)
                        .chain(scan.manifest.entries.iter().map(|e| e.hash))
                        .collect();
                    let (hash, results) = rayon::join(
                        || scan.manifest.hash(),
                        || {
                            self.cache
                                .verify_many(&objects, &linked, &self.stats, &t.payload)
                        },
                    );
                    if hash == t.pointer.hash {
                        checked = Some(results);
                    }
                    hash
                } else {
                    let (hash, stamp) = self.hash_file_cached(&t.payload, Stamp::of(&meta))?;
                    linked.insert(hash, stamp);
                    hash
                };
                if now != t.pointer.hash {
                    changes.insert(Change::Modified);
                }
            }
        }
        let results = match checked {
            Some(results) => Ok(results),
            None => self.objects_of(t).map(|objects| {
                let hashes: Vec<Hash> = objects.into_iter().map(|(h, _)| h).collect();
                self.cache
                    .verify_many(&hashes, &linked, &self.stats, &t.payload)
            }),
        };
        match results {
            Ok(results) => {
                for r in results {
                    match r {
                        Ok(()) => {}
                        Err(Error::MissingObject { .. }) => {
                            changes.insert(Change::NotInCache);
                        }
                        Err(Error::Corrupt { .. }) => {
                            changes.insert(Change::Corrupt);
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(Error::MissingObject { .. }) => {
                changes.insert(Change::NotInCache);
            }
            Err(Error::Corrupt { .. } | Error::Invalid(_)) => {
                changes.insert(Change::Corrupt);
            }
            Err(e) => return Err(e),
        }
        Ok((!changes.is_empty()).then(|| PathStatus {
            path: self.rel(&t.payload).to_owned(),
            pointer: self.rel(&t.pointer_file).to_owned(),
            changes: changes.into_iter().collect(),
        }))
    }

    // ---------------------------------------------------------------- checkout

    /// Puts tracked payloads into the workspace from the cache (link order from the config).
    /// Payloads already in sync are left alone. A workspace file whose current content is not
    /// in the cache is not overwritten unless `force` (it would be lost).
    ///
    /// # Errors
    /// [`Error::MissingObject`] / [`Error::Corrupt`] (nothing corrupt is ever checked out);
    /// [`Error::BadPath`] for unsaved changes without `force`; I/O errors.
    pub fn checkout(&self, filter: &[PathBuf], force: bool) -> Result<Vec<CheckedOut>> {
        threads::on_file_threads(|| self.checkout_on_this_pool(filter, force))
    }

    fn checkout_on_this_pool(&self, filter: &[PathBuf], force: bool) -> Result<Vec<CheckedOut>> {
        let chosen = self.select(filter)?;
        let mut out = Vec::new();
        for t in &chosen {
            let files = self.checkout_one(t, force)?;
            if files > 0 {
                out.push(CheckedOut {
                    path: self.rel(&t.payload).to_owned(),
                    files,
                });
            }
        }
        self.flush()?;
        Ok(out)
    }

    /// Materialises one object at `dest` from the cache, verified. Returns the files written.
    ///
    /// # Errors
    /// As [`Repo::checkout`].
    pub fn restore(&self, object: &Object, dest: &Path) -> Result<u64> {
        let abs = self.resolve(dest)?;
        let t = Tracked {
            payload: abs.clone(),
            pointer_file: Pointer::file_for(&abs),
            pointer: Pointer::new(
                abs.file_name().map(PathBuf::from).unwrap_or_default(),
                object,
            ),
        };
        let n = self.checkout_one(&t, true)?;
        Ok(n)
    }

    /// Whether every object of `object` is present and intact in the cache.
    ///
    /// # Errors
    /// I/O errors.
    pub fn has_object(&self, object: &Object) -> Result<bool> {
        let t = Tracked {
            payload: self.root.clone(),
            pointer_file: self.root.clone(),
            pointer: Pointer::new("x", object),
        };
        let objects = match self.objects_of(&t) {
            Ok(o) => o,
            Err(Error::MissingObject { .. } | Error::Corrupt { .. } | Error::Invalid(_)) => {
                return Ok(false);
            }
            Err(e) => return Err(e),
        };
        for (hash, _) in objects {
            match self.cache.verify(&hash, &self.stats, &self.root) {
                Ok(()) => {}
                Err(Error::MissingObject { .. } | Error::Corrupt { .. }) => return Ok(false),
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    fn checkout_one(&self, t: &Tracked, force: bool) -> Result<u64> {
        let order = &self.config.link;
        if t.pointer.files.is_none() {
            if let Ok(meta) = std::fs::metadata(&t.payload) {
                if meta.is_file()
                    && self.hash_file_cached(&t.payload, Stamp::of(&meta))?.0 == t.pointer.hash
                {
                    return Ok(0);
                }
                self.guard_unsaved(&t.payload, meta.is_dir(), Stamp::of(&meta), force)?;
                if meta.is_dir() {
                    std::fs::remove_dir_all(&t.payload).at(&t.payload)?;
                }
            }
            self.cache
                .verify(&t.pointer.hash, &self.stats, &t.payload)?;
            let src = self.cache.object_path(&t.pointer.hash);
            fsutil::replace_with(&src, &t.payload, order, false)?;
            self.record_checked_out(&t.payload, &t.pointer.hash);
            return Ok(1);
        }
        let manifest = self.manifest(&t.pointer.hash, &t.payload)?;
        if let Ok(meta) = std::fs::metadata(&t.payload)
            && !meta.is_dir()
        {
            self.guard_unsaved(&t.payload, meta.is_dir(), Stamp::of(&meta), force)?;
            std::fs::remove_file(&t.payload).at(&t.payload)?;
        }
        // Verify every object before touching the workspace: nothing corrupt is checked out.
        manifest
            .entries
            .par_iter()
            .with_max_len(PER_TASK)
            .try_for_each(|e| {
                self.cache
                    .verify(&e.hash, &self.stats, &Manifest::join(&t.payload, e))
            })?;
        let wanted: HashSet<&str> = manifest.entries.iter().map(|e| e.path.as_str()).collect();
        // Files in the folder that the manifest does not list.
        let extra: Vec<walk::FoundFile> = if t.payload.is_dir() {
            walk::list_files(&t.payload)?
                .into_iter()
                .filter(|f| !wanted.contains(f.rel.as_str()))
                .collect()
        } else {
            Vec::new()
        };
        for f in &extra {
            self.guard_unsaved(&t.payload.join(&f.rel), false, f.stamp, force)?;
        }
        // A folder that is not there at all has no file to compare or guard: skip a stat per file.
        let fresh = matches!(std::fs::symlink_metadata(&t.payload), Err(e) if e.kind() == std::io::ErrorKind::NotFound);
        // Folders first, once each, so the per-file work is one link (or copy) and one rename.
        let mut dirs: Vec<PathBuf> = manifest
            .entries
            .iter()
            .filter_map(|e| {
                Manifest::join(&t.payload, e)
                    .parent()
                    .map(Path::to_path_buf)
            })
            .collect();
        dirs.sort_unstable();
        dirs.dedup();
        for d in &dirs {
            std::fs::create_dir_all(d).at(d)?;
        }
        let written: u64 = manifest
            .entries
            .par_iter()
            .with_max_len(PER_TASK)
            // The folder of the last file placed, open: entries come in path order, so a
            // task's files mostly share it, and each link is made relative to it.
            .map_init(
                || None::<(PathBuf, std::os::fd::OwnedFd)>,
                |folder, e| {
                    let dest = Manifest::join(&t.payload, e);
                    let exists = !fresh
                        && match std::fs::symlink_metadata(&dest) {
                            Ok(meta) => {
                                if meta.is_file()
                                    && self.hash_file_cached(&dest, Stamp::of(&meta))?.0 == e.hash
                                {
                                    return Ok(0);
                                }
                                self.guard_unsaved(&dest, meta.is_dir(), Stamp::of(&meta), force)?;
                                if meta.is_dir() {
                                    std::fs::remove_dir_all(&dest).at(&dest)?;
                                    false
                                } else {
                                    true
                                }
                            }
                            Err(_) => false,
                        };
                    // A file that is there is replaced by path: only new ones are linked here.
                    let at = if exists {
                        None
                    } else {
                        let parent = fsutil::parent_of(&dest);
                        if folder.as_ref().is_none_or(|(p, _)| p != parent) {
                            *folder = Some((parent.to_owned(), crate::shards::open_dir(parent)?));
                        }
                        folder.as_ref().map(|(_, fd)| fd.as_fd())
                    };
                    let kind = self
                        .cache
                        .place(&e.hash, at, &dest, order, e.exec, exists)?;
                    // A hard link is the verified object itself, whose stamp is recorded already.
                    if kind != LinkKind::Hardlink {
                        self.record_checked_out(&dest, &e.hash);
                    }
                    Ok(1)
                },
            )
            .try_reduce(|| 0, |a, b| Ok(a + b))?;
        for f in extra {
            let path = t.payload.join(&f.rel);
            std::fs::remove_file(&path).at(&path)?;
        }
        Ok(written)
    }

    /// Refuses to overwrite a workspace file whose content exists nowhere else.
    fn guard_unsaved(&self, path: &Path, is_dir: bool, stamp: Stamp, force: bool) -> Result<()> {
        if force {
            return Ok(());
        }
        if is_dir {
            return Err(Error::BadPath {
                path: self.rel(path).to_owned(),
                reason: "is a folder where a tracked file belongs; move it away or use --force"
                    .to_owned(),
            });
        }
        let (hash, _) = self.hash_file_cached(path, stamp)?;
        if self.cache.contains(&hash) {
            return Ok(());
        }
        Err(Error::BadPath {
            path: self.rel(path).to_owned(),
            reason: "has changes that are not in the cache and would be lost; `mlops add` it first, or use --force".to_owned(),
        })
    }

    fn record_checked_out(&self, dest: &Path, hash: &Hash) {
        if let Ok(m) = std::fs::metadata(dest) {
            self.stats.record(Stamp::of(&m), *hash);
        }
    }

    // ---------------------------------------------------------------- gc

    /// Every object referenced by a pointer in the workspace or by a hash in `mlops.lock`
    /// (directory manifests expand to their entries when the manifest is in the cache).
    ///
    /// # Errors
    /// Malformed pointers; I/O errors.
    pub fn referenced(&self) -> Result<HashSet<Hash>> {
        self.referenced_by(&self.tracked()?)
    }

    /// [`Repo::referenced`] for the pointers `tracked`, already read.
    pub(crate) fn referenced_by(&self, tracked: &[Tracked]) -> Result<HashSet<Hash>> {
        let mut hashes: Vec<Hash> = tracked.iter().map(|t| t.pointer.hash).collect();
        if let Ok(lock) = std::fs::read_to_string(self.root.join("mlops.lock")) {
            hashes.extend(hashes_in_text(&lock));
        }
        let mut set = HashSet::new();
        for h in hashes {
            if !set.insert(h) {
                continue;
            }
            if let Ok(bytes) = self.cache.read_verified(&h, &self.root)
                && let Ok(m) = Manifest::from_bytes(&bytes)
            {
                set.extend(m.entries.iter().map(|e| e.hash));
            }
        }
        Ok(set)
    }

    /// Finds cache objects nothing references; removes them (and leftovers of interrupted
    /// writes) when `force`, else only reports.
    ///
    /// # Errors
    /// I/O errors.
    pub fn gc(&self, force: bool) -> Result<GcReport> {
        let tracked = self.tracked()?;
        let keep = self.referenced_by(&tracked)?;
        let mut report = GcReport {
            removed: force,
            ..GcReport::default()
        };
        let mut kept = Vec::with_capacity(keep.len());
        for h in self.cache.list()? {
            if keep.contains(&h) {
                kept.push(h);
                continue;
            }
            report.unreferenced += 1;
            report.unreferenced_bytes += std::fs::metadata(self.cache.object_path(&h))
                .map(|m| m.len())
                .unwrap_or(0);
            if force {
                self.cache.remove(&h)?;
            }
        }
        report.kept = kept.len() as u64;
        if force {
            self.cache.remove_temporaries();
        }
        if let Some(current) = self.current_stamps(&kept, &tracked) {
            report.stale_hash_entries = self.stats.prune(&current, force)?;
        }
        Ok(report)
    }

    /// The stamps of every file whose hash-cache entry can still answer: the `kept` cache
    /// objects, every file in the workspace (pipeline dependencies are hashed through the same
    /// cache without being tracked), and every file under a tracked path that is a link to
    /// somewhere else. `None` when some folder could not be listed: its files' entries cannot
    /// be told from stale ones, and dropping them would cost a re-hash.
    fn current_stamps(&self, kept: &[Hash], tracked: &[Tracked]) -> Option<HashSet<Stamp>> {
        let mut current: HashSet<Stamp> = kept
            .par_iter()
            .filter_map(|h| std::fs::symlink_metadata(self.cache.object_path(h)).ok())
            .map(|m| Stamp::of(&m))
            .collect();
        // `.git` holds nothing mlops hashes; `.mlops` holds the cache, done above.
        let workspace = walkdir::WalkDir::new(&self.root)
            .into_iter()
            .filter_entry(|e| {
                e.depth() != 1 || !matches!(e.file_name().to_str(), Some(".git" | ".mlops"))
            });
        for entry in workspace {
            let meta = match entry.and_then(|e| {
                if e.file_type().is_file() {
                    e.metadata().map(Some)
                } else if e.file_type().is_symlink() {
                    // A link to a file is hashed (and its entry kept) as the file it points to.
                    Ok(std::fs::metadata(e.path())
                        .ok()
                        .filter(std::fs::Metadata::is_file))
                } else {
                    Ok(None)
                }
            }) {
                Ok(Some(meta)) => meta,
                Ok(None) => continue,
                // Gone since it was listed: nothing to keep.
                Err(e)
                    if e.io_error().map(std::io::Error::kind)
                        == Some(std::io::ErrorKind::NotFound) =>
                {
                    continue;
                }
                Err(e) => {
                    tracing::warn!(error = %e,
                        "could not list the whole workspace; the hash cache is left as it is");
                    return None;
                }
            };
            current.insert(Stamp::of(&meta));
        }
        for t in tracked {
            // A tracked path inside the workspace was walked above, unless it is a link.
            if !std::fs::symlink_metadata(&t.payload).is_ok_and(|m| m.is_symlink()) {
                continue;
            }
            let Ok(meta) = std::fs::metadata(&t.payload) else {
                continue;
            };
            if !meta.is_dir() {
                current.insert(Stamp::of(&meta));
                continue;
            }
            match walk::walk_files(&t.payload, &|_, _| false, &|_, _, _| Ok(())) {
                Ok(files) => current.extend(files.into_iter().map(|(f, ())| f.stamp)),
                Err(e) => {
                    tracing::warn!(path = %t.payload.display(), error = %e,
                        "could not list a tracked folder; the hash cache is left as it is");
                    return None;
                }
            }
        }
        Some(current)
    }
}

impl Drop for Repo {
    fn drop(&mut self) {
        if let Err(e) = self.stats.save() {
            tracing::warn!(error = %e, "could not save the hash cache");
        }
    }
}

/// Files per parallel task when each file is a few system calls: small enough that no thread is
/// left with a long run of them at the end (rayon's adaptive splitting hands out quarters).
pub(crate) const PER_TASK: usize = 64;

/// What hashing a tracked folder found.
struct DirScan {
    /// The folder's manifest as it is now.
    manifest: Manifest,
    /// For each entry (manifest order), its hash and the stamp of the workspace file.
    stamps: Vec<(Hash, Stamp)>,
    /// Objects that were new to the cache (when storing).
    new_objects: u64,
}

/// Every `blake3:<64 hex>` in `text`.
pub(crate) fn hashes_in_text(text: &str) -> Vec<Hash> {
    let mut out = Vec::new();
    let mut rest = text;
    while let Some(i) = rest.find(Hash::PREFIX) {
        let cand = &rest[i..];
        if let Some(s) = cand.get(..Hash::PREFIX.len() + 64)
            && let Ok(h) = s.parse()
        {
            out.push(h);
        }
        rest = &rest[i + Hash::PREFIX.len()..];
    }
    out
}

fn not_found_or_io(shown: &Path, e: std::io::Error) -> Error {
    if e.kind() == std::io::ErrorKind::NotFound {
        Error::BadPath {
            path: shown.to_owned(),
            reason: "no such file or directory".to_owned(),
        }
    } else {
        Error::io(shown, e)
    }
}

/// Lexically removes `.` and `..` components.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn find_up(start: &Path, name: &str) -> Option<PathBuf> {
    let mut cur = Some(start);
    while let Some(dir) = cur {
        if dir.join(name).exists() {
            return Some(dir.to_owned());
        }
        cur = dir.parent();
    }
    None
}

/// Adds `/<name>` (or `/<name>/` for folders) to `<dir>/.gitignore` unless an identical line exists.
fn add_to_gitignore(dir: &Path, name: &str, is_dir: bool) -> Result<()> {
    let file = dir.join(".gitignore");
    let line = if is_dir {
        format!("/{name}/")
    } else {
        format!("/{name}")
    };
    let existing = match std::fs::read_to_string(&file) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(Error::io(&file, e)),
    };
    if existing
        .lines()
        .any(|l| l.trim() == line || l.trim() == format!("/{name}"))
    {
        return Ok(());
    }
    let mut text = existing;
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    text.push_str(&line);
    text.push('\n');
    write_atomic(&file, text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_hashes_in_lock_text() {
        let h = crate::hash::hash_bytes(b"a");
        let text = format!("x = \"{h}\"\ny = \"blake3:short\"\nz = [\"{h}\"]");
        assert_eq!(hashes_in_text(&text), vec![h, h]);
    }

    #[test]
    fn normalize_removes_dots() {
        assert_eq!(normalize(Path::new("/a/./b/../c")), PathBuf::from("/a/c"));
    }
}
