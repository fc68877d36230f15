//! [`Repo`] operations against a remote: push, fetch, pull, `status --remote`, remote gc.

use std::collections::HashSet;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::hash::Hash;
use crate::manifest::Manifest;
use crate::remote::Remote;
use crate::repo::{Change, CheckedOut, GcReport, PathStatus, Repo, Tracked};
use crate::transfer::{self, TransferOptions, TransferReport};

impl Repo {
    /// Opens remote `name`, or the default remote.
    ///
    /// # Errors
    /// Unknown remote, no default, invalid URL.
    pub fn open_remote(&self, name: Option<&str>) -> Result<Remote> {
        let (name, config) = self.config().remote(name)?;
        Remote::open(&name, config, self.root())
    }

    /// Objects of the selected tracked paths, deduplicated; manifests must be in the cache.
    fn objects_for(&self, tracked: &[Tracked]) -> Result<Vec<(Hash, u64)>> {
        let mut seen = HashSet::new();
        let mut out = Vec::new();
        for t in tracked {
            for (h, s) in self.objects_of(t)? {
                if seen.insert(h) {
                    out.push((h, s));
                }
            }
        }
        Ok(out)
    }

    /// Uploads the objects of the selected tracked paths (all when `filter` is empty) that the
    /// remote lacks.
    ///
    /// # Errors
    /// [`Error::MissingObject`] when something to push is not in the cache; remote errors.
    pub fn push(
        &self,
        filter: &[PathBuf],
        remote: &Remote,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let tracked = self.select(filter)?;
        let objects = self.objects_for(&tracked)?;
        self.push_objects(&objects, remote, options)
    }

    /// Uploads these objects (hash, size) where the remote lacks them.
    ///
    /// # Errors
    /// As [`Repo::push`].
    pub fn push_objects(
        &self,
        objects: &[(Hash, u64)],
        remote: &Remote,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let rt = transfer::runtime()?;
        let r = rt.block_on(transfer::upload(
            self.cache(),
            self.stats(),
            remote,
            objects,
            options,
        ));
        self.flush()?;
        r
    }

    /// Downloads into the cache the objects of the selected tracked paths that it lacks:
    /// directory manifests first (validated as untrusted), then their files.
    ///
    /// # Errors
    /// [`Error::Corrupt`] (the object is not kept); remote errors.
    pub fn fetch(
        &self,
        filter: &[PathBuf],
        remote: &Remote,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let tracked = self.select(filter)?;
        let rt = transfer::runtime()?;
        // Manifests first: a directory's entries are only known once its manifest is here.
        let manifests: Vec<(Hash, u64)> = tracked
            .iter()
            .filter(|t| t.pointer.files.is_some())
            .map(|t| (t.pointer.hash, 0))
            .collect();
        let mut report = rt.block_on(transfer::download(
            self.cache(),
            self.stats(),
            remote,
            &manifests,
            &TransferOptions {
                progress: None,
                ..options.clone()
            },
        ))?;
        let objects = self.objects_for(&tracked)?;
        let files: Vec<(Hash, u64)> = objects
            .into_iter()
            .filter(|(h, _)| !manifests.iter().any(|(m, _)| m == h))
            .collect();
        let r = rt.block_on(transfer::download(
            self.cache(),
            self.stats(),
            remote,
            &files,
            options,
        ))?;
        report.transferred += r.transferred;
        report.bytes += r.bytes;
        report.already_present += r.already_present;
        Ok(report)
    }

    /// Downloads these objects where the cache lacks them (no manifest expansion).
    ///
    /// # Errors
    /// As [`Repo::fetch`].
    pub fn fetch_objects(
        &self,
        objects: &[(Hash, u64)],
        remote: &Remote,
        options: &TransferOptions,
    ) -> Result<TransferReport> {
        let rt = transfer::runtime()?;
        rt.block_on(transfer::download(
            self.cache(),
            self.stats(),
            remote,
            objects,
            options,
        ))
    }

    /// Fetch, then checkout.
    ///
    /// # Errors
    /// As [`Repo::fetch`] and [`Repo::checkout`].
    pub fn pull(
        &self,
        filter: &[PathBuf],
        remote: &Remote,
        options: &TransferOptions,
        force: bool,
    ) -> Result<(TransferReport, Vec<CheckedOut>)> {
        let report = self.fetch(filter, remote, options)?;
        let out = self.checkout(filter, force)?;
        Ok((report, out))
    }

    /// [`Repo::status`] plus [`Change::NotInRemote`] for paths some of whose objects the
    /// remote lacks.
    ///
    /// # Errors
    /// As [`Repo::status`], plus remote errors.
    pub fn status_with_remote(&self, remote: &Remote, jobs: usize) -> Result<Vec<PathStatus>> {
        let mut local = self.status()?;
        let tracked = self.tracked()?;
        let mut per_path = Vec::new();
        let mut all = Vec::new();
        for t in &tracked {
            // A directory whose manifest is not local: ask the remote for the manifest itself.
            let objects = match self.objects_of(t) {
                Ok(o) => o,
                Err(Error::MissingObject { .. } | Error::Corrupt { .. } | Error::Invalid(_)) => {
                    vec![(t.pointer.hash, 0)]
                }
                Err(e) => return Err(e),
            };
            all.extend(objects.iter().map(|(h, _)| *h));
            per_path.push((t, objects));
        }
        all.sort_unstable();
        all.dedup();
        let rt = transfer::runtime()?;
        let present = match remote.local_root() {
            Some(root) => crate::local_transfer::has(root, &all)?,
            None => rt.block_on(transfer::remote_has(remote, &all, jobs))?,
        };
        for (t, objects) in per_path {
            if objects.iter().all(|(h, _)| present.contains(h)) {
                continue;
            }
            let rel = t
                .payload
                .strip_prefix(self.root())
                .unwrap_or(&t.payload)
                .to_owned();
            match local.iter_mut().find(|s| s.path == rel) {
                Some(s) => {
                    s.changes.push(Change::NotInRemote);
                    s.changes.sort();
                }
                None => local.push(PathStatus {
                    path: rel,
                    pointer: t
                        .pointer_file
                        .strip_prefix(self.root())
                        .unwrap_or(&t.pointer_file)
                        .to_owned(),
                    changes: vec![Change::NotInRemote],
                }),
            }
        }
        local.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(local)
    }

    /// Finds remote objects nothing in the workspace references; deletes them when `force`.
    ///
    /// # Errors
    /// Remote errors.
    pub fn gc_remote(&self, remote: &Remote, force: bool, jobs: usize) -> Result<GcReport> {
        let keep = self.referenced_with_remote_manifests(remote)?;
        let rt = transfer::runtime()?;
        let all = rt.block_on(transfer::list(remote))?;
        let drop: Vec<Hash> = all.iter().filter(|h| !keep.contains(h)).copied().collect();
        if force {
            rt.block_on(transfer::delete(remote, &drop, jobs))?;
        }
        Ok(GcReport {
            kept: (all.len() - drop.len()) as u64,
            unreferenced: drop.len() as u64,
            unreferenced_bytes: 0,
            removed: force,
            stale_hash_entries: 0,
        })
    }

    /// Like [`Repo::referenced`], but fetches manifests the cache lacks so remote gc never
    /// drops the files of a directory whose manifest is only in the remote.
    fn referenced_with_remote_manifests(&self, remote: &Remote) -> Result<HashSet<Hash>> {
        let tracked = self.tracked()?;
        let mut keep = self.referenced_by(&tracked)?;
        let missing: Vec<(Hash, u64)> = tracked
            .iter()
            .filter(|t| t.pointer.files.is_some() && !self.cache().contains(&t.pointer.hash))
            .map(|t| (t.pointer.hash, 0))
            .collect();
        if !missing.is_empty() {
            self.fetch_objects(&missing, remote, &TransferOptions::default())?;
            for (h, _) in missing {
                let m = Manifest::from_bytes(&self.cache().read_verified(&h, self.root())?)?;
                keep.extend(m.entries.iter().map(|e| e.hash));
            }
        }
        Ok(keep)
    }
}
