//! `mlops.lock`: what the last successful run of each stage consumed and produced. TOML, one
//! `[stages.NAME]` table per stage, sorted by name; rewritten atomically (temporary file and
//! rename) each time a stage finishes, so an interrupted `repro` keeps what completed.
//!
//! Each stage's table is serialised once and kept as text, so recording one more stage costs one
//! concatenation and one write, not a re-serialisation of the whole file.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The name of the lock file, at the repository root.
pub const LOCK_FILE: &str = "mlops.lock";

/// The format version written in the file.
pub const LOCK_VERSION: u32 = 1;

const HEADER: &str = "# mlops.lock: what the last successful run of each stage consumed and produced.\n# Written by `mlops repro`; commit it, do not edit it.\n";

/// The whole lock file.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockFile {
    /// Format version ([`LOCK_VERSION`]).
    pub version: u32,
    /// One entry per stage, by name.
    #[serde(default)]
    pub stages: BTreeMap<String, LockEntry>,
}

/// What one run of a stage consumed and produced.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[non_exhaustive]
pub struct LockEntry {
    /// The command as run (after matrix substitution).
    pub cmd: String,
    /// The stage fingerprint (`blake3:…`) over command, deps, params, outs and env.
    pub fingerprint: String,
    /// Which executor ran it (`local`, `k8s`), or `run-cache` when outputs were restored.
    pub executor: String,
    /// The command's exit status (always 0: failed runs are never recorded).
    pub exit_code: i32,
    /// Start time, RFC 3339.
    pub started: String,
    /// End time, RFC 3339.
    pub ended: String,
    /// Wall time in milliseconds.
    pub duration_ms: u64,
    /// The declared environment.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Parameter values by `file:key`, in canonical JSON.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    /// Executor-specific facts (job name, node, image digest, …).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<String, String>,
    /// Dependencies as hashed before the run (and checked unchanged after it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deps: Vec<LockedPath>,
    /// Outputs as produced, cached by hash.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub outs: Vec<LockedPath>,
    /// Metric files with their values.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<LockedMetric>,
}

/// A file or folder with its content hash.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedPath {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    /// `blake3:…` of the bytes, or of the directory manifest.
    pub hash: String,
    /// Bytes (for a folder, the sum).
    pub size: u64,
    /// Number of files, for a folder.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
}

/// A metric file, its hash and its values (flattened to dotted keys).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedMetric {
    /// Relative to the repository root, `/`-separated.
    pub path: String,
    /// `blake3:…` of the file.
    pub hash: String,
    /// Bytes.
    pub size: u64,
    /// Scalar values by dotted key.
    #[serde(default)]
    pub values: BTreeMap<String, toml::Value>,
}

impl LockFile {
    /// Reads `ROOT/mlops.lock`; a missing file is an empty lock.
    ///
    /// Fails with [`Error::Syntax`] (line, column) when the file is malformed.
    pub fn load(root: &Path) -> Result<Self> {
        let path = root.join(LOCK_FILE);
        match std::fs::read_to_string(&path) {
            Ok(text) => Self::parse(Path::new(LOCK_FILE), &text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                version: LOCK_VERSION,
                ..Self::default()
            }),
            Err(e) => Err(Error::io(path, e)),
        }
    }

    /// Parses lock file text; `file` is used in messages.
    pub fn parse(file: &Path, text: &str) -> Result<Self> {
        let lock: Self = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            Error::at_offset(
                file,
                text,
                offset,
                format!(
                    "{}; delete the file to rebuild it with `mlops repro`",
                    e.message().trim()
                ),
            )
        })?;
        if lock.version != LOCK_VERSION {
            return Err(Error::Syntax {
                file: file.to_owned(),
                line: 1,
                column: 1,
                message: format!(
                    "lock version {} is not supported (this mlops writes {LOCK_VERSION})",
                    lock.version
                ),
            });
        }
        Ok(lock)
    }
}

/// Keeps the lock file's text per stage and rewrites the file atomically on every change.
#[derive(Debug)]
pub struct LockWriter {
    path: PathBuf,
    entries: BTreeMap<String, LockEntry>,
    /// Serialised tables; `None` until the first write needs it (a `repro` with nothing to do
    /// never serialises anything).
    chunks: std::cell::RefCell<BTreeMap<String, Option<String>>>,
    /// Entries recorded with [`record`](Self::record) but not yet written.
    dirty: bool,
    last_write: Option<std::time::Instant>,
}

/// [`LockWriter::record`] rewrites the file at most this often; [`LockWriter::finish`] writes the rest.
const WRITE_INTERVAL: std::time::Duration = std::time::Duration::from_millis(50);

#[derive(Serialize)]
struct OneStage<'a> {
    stages: BTreeMap<&'a str, &'a LockEntry>,
}

fn chunk(name: &str, entry: &LockEntry) -> Result<String> {
    let one = OneStage {
        stages: BTreeMap::from([(name, entry)]),
    };
    toml::to_string(&one).map_err(|e| Error::Syntax {
        file: LOCK_FILE.into(),
        line: 1,
        column: 1,
        message: format!("cannot write stage {name}: {e}"),
    })
}

impl LockWriter {
    /// A writer for `ROOT/mlops.lock` starting from `lock` (entries of stages no longer declared
    /// should be dropped by the caller first).
    pub fn new(root: &Path, lock: LockFile) -> Result<Self> {
        let chunks = lock
            .stages
            .keys()
            .map(|name| (name.clone(), None))
            .collect();
        Ok(Self {
            path: root.join(LOCK_FILE),
            entries: lock.stages,
            chunks: std::cell::RefCell::new(chunks),
            dirty: false,
            last_write: None,
        })
    }

    /// The current entries.
    pub fn entries(&self) -> &BTreeMap<String, LockEntry> {
        &self.entries
    }

    /// Records `entry` for stage `name` and rewrites the file.
    pub fn set(&mut self, name: &str, entry: LockEntry) -> Result<()> {
        self.chunks
            .get_mut()
            .insert(name.to_owned(), Some(chunk(name, &entry)?));
        self.entries.insert(name.to_owned(), entry);
        self.write()
    }

    /// Records `entry` for stage `name`, rewriting the file if the last write is more than 50 ms
    /// old. Long pipelines of short stages thus rewrite the file a few times a second rather than
    /// once per stage; [`finish`](Self::finish) writes what is left. (A crash in between loses
    /// at most those 50 ms of records, and the run-cache still has them.)
    pub fn record(&mut self, name: &str, entry: LockEntry) -> Result<()> {
        self.chunks
            .get_mut()
            .insert(name.to_owned(), Some(chunk(name, &entry)?));
        self.entries.insert(name.to_owned(), entry);
        self.dirty = true;
        if self
            .last_write
            .is_none_or(|t| t.elapsed() >= WRITE_INTERVAL)
        {
            self.write_now()?;
        }
        Ok(())
    }

    /// Writes entries recorded since the last write, if any.
    pub fn finish(&mut self) -> Result<()> {
        if self.dirty { self.write_now() } else { Ok(()) }
    }

    fn write_now(&mut self) -> Result<()> {
        self.write()?;
        self.dirty = false;
        self.last_write = Some(std::time::Instant::now());
        Ok(())
    }

    /// Forgets stage `name` (its last run is no longer valid) and rewrites the file if it changed.
    pub fn remove(&mut self, name: &str) -> Result<()> {
        self.entries.remove(name);
        if self.chunks.get_mut().remove(name).is_some() {
            self.write()
        } else {
            Ok(())
        }
    }

    /// Writes the file: a temporary file beside it, then a rename.
    pub fn write(&self) -> Result<()> {
        let mut chunks = self.chunks.borrow_mut();
        for (name, c) in chunks.iter_mut() {
            if c.is_none()
                && let Some(entry) = self.entries.get(name)
            {
                *c = Some(chunk(name, entry)?);
            }
        }
        let size = HEADER.len()
            + 16
            + chunks
                .values()
                .flatten()
                .map(|c| c.len() + 1)
                .sum::<usize>();
        let mut text = String::with_capacity(size);
        text.push_str(HEADER);
        text.push_str(&format!("version = {LOCK_VERSION}\n"));
        for c in chunks.values().flatten() {
            text.push('\n');
            text.push_str(c);
        }
        write_atomic(&self.path, text.as_bytes())
    }
}

/// Writes `bytes` to a temporary file in `path`'s folder and renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::Builder::new()
        .prefix(".mlops-tmp-")
        .tempfile_in(dir)
        .map_err(|e| Error::io(dir, e))?;
    tmp.write_all(bytes)
        .map_err(|e| Error::io(tmp.path().to_owned(), e))?;
    tmp.persist(path).map_err(|e| Error::io(path, e.error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cmd: &str) -> LockEntry {
        LockEntry {
            cmd: cmd.into(),
            fingerprint: "blake3:00".into(),
            executor: "local".into(),
            started: "2026-01-01T00:00:00Z".into(),
            ended: "2026-01-01T00:00:01Z".into(),
            duration_ms: 1000,
            params: BTreeMap::from([("p.yaml:lr".into(), "0.1".into())]),
            deps: vec![LockedPath {
                path: "a".into(),
                hash: "blake3:aa".into(),
                size: 1,
                files: None,
            }],
            outs: vec![LockedPath {
                path: "d".into(),
                hash: "blake3:bb".into(),
                size: 2,
                files: Some(2),
            }],
            metrics: vec![LockedMetric {
                path: "m.json".into(),
                hash: "blake3:cc".into(),
                size: 3,
                values: BTreeMap::from([("acc".into(), toml::Value::Float(0.5))]),
            }],
            ..LockEntry::default()
        }
    }

    #[test]
    fn incremental_writes_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LockWriter::new(dir.path(), LockFile::load(dir.path()).unwrap()).unwrap();
        w.set("train", entry("python train.py")).unwrap();
        w.set("a.prepare", entry("python prepare.py")).unwrap();
        w.set("train", entry("python train.py --v2")).unwrap();
        let lock = LockFile::load(dir.path()).unwrap();
        assert_eq!(lock.stages.len(), 2);
        assert_eq!(lock.stages["train"], entry("python train.py --v2"));
        assert_eq!(lock.stages["a.prepare"], entry("python prepare.py"));
        w.remove("train").unwrap();
        let lock = LockFile::load(dir.path()).unwrap();
        assert_eq!(lock.stages.keys().collect::<Vec<_>>(), ["a.prepare"]);
        let text = std::fs::read_to_string(dir.path().join(LOCK_FILE)).unwrap();
        assert!(text.starts_with("# mlops.lock"), "{text}");
        // no temporary files left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn record_batches_writes_and_finish_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LockWriter::new(dir.path(), LockFile::default()).unwrap();
        w.record("a", entry("first")).unwrap();
        assert_eq!(
            LockFile::load(dir.path()).unwrap().stages.len(),
            1,
            "the first record writes at once"
        );
        w.record("b", entry("second")).unwrap();
        assert_eq!(
            LockFile::load(dir.path()).unwrap().stages.len(),
            1,
            "within 50 ms: deferred"
        );
        w.finish().unwrap();
        assert_eq!(LockFile::load(dir.path()).unwrap().stages.len(), 2);
        std::thread::sleep(WRITE_INTERVAL);
        w.record("c", entry("third")).unwrap();
        assert_eq!(
            LockFile::load(dir.path()).unwrap().stages.len(),
            3,
            "after 50 ms: written"
        );
    }

    #[test]
    fn matrix_names_round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = LockWriter::new(dir.path(), LockFile::default()).unwrap();
        w.set("train@lr=0.1,depth=4", entry("x")).unwrap();
        let lock = LockFile::load(dir.path()).unwrap();
        assert!(lock.stages.contains_key("train@lr=0.1,depth=4"));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        #[test]
        fn any_names_and_commands_round_trip(
            stages in proptest::collection::btree_map("[a-z][a-z0-9_.@=,-]{0,12}", "\\PC{0,40}", 1..6),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let mut w = LockWriter::new(dir.path(), LockFile::default()).unwrap();
            for (name, cmd) in &stages {
                w.set(name, entry(cmd)).unwrap();
            }
            let lock = LockFile::load(dir.path()).unwrap();
            proptest::prop_assert_eq!(lock.stages.len(), stages.len());
            for (name, cmd) in &stages {
                proptest::prop_assert_eq!(&lock.stages[name], &entry(cmd));
            }
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,200}") {
            let _ = LockFile::parse(Path::new("mlops.lock"), &text);
        }
    }

    #[test]
    fn malformed_lock_names_line_and_column() {
        let e = LockFile::parse(
            Path::new("mlops.lock"),
            "version = 1\n[stages.a]\ncmd = 3\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("mlops.lock:3:7:") && e.contains("delete the file"),
            "{e}"
        );
        let e = LockFile::parse(Path::new("mlops.lock"), "version = 9\n")
            .unwrap_err()
            .to_string();
        assert!(e.contains("lock version 9 is not supported"), "{e}");
    }
}
