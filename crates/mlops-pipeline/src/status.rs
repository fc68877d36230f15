//! Whether each stage is up to date, and why not: the current hashes of its deps and outs and the
//! values of its params, compared with what `mlops.lock` recorded for its last run.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use mlops_cas::Repo;
use serde::Serialize;

use crate::dag::Dag;
use crate::error::{Error, Result};
use crate::lock::{LockEntry, LockFile, LockedPath};
use crate::spec::{Spec, Stage, slash};
use crate::values;

/// Why a stage must run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Reason {
    /// No successful run is recorded in the lock.
    NeverRun,
    /// `--force`.
    Forced,
    /// The stage is declared `always_changed`.
    AlwaysChanged,
    /// The command text changed (short hashes of the old and new command).
    CommandChanged {
        /// Short hash of the recorded command.
        old: String,
        /// Short hash of the declared command.
        new: String,
    },
    /// The declared environment, out list or metric list changed.
    DeclarationChanged {
        /// Which field: `env`, `outs`, `metrics`, `deps` or `params`.
        field: String,
    },
    /// A dependency's content changed (short hashes; `old` is absent for a new dep).
    DepChanged {
        /// The dep, relative to the root.
        path: String,
        /// Short hash recorded in the lock.
        old: Option<String>,
        /// Short hash now.
        new: String,
    },
    /// A parameter value changed (canonical JSON values).
    ParamChanged {
        /// `file:key`.
        param: String,
        /// Recorded value.
        old: Option<String>,
        /// Value now.
        new: String,
    },
    /// An out or metric file is missing from the workspace.
    OutMissing {
        /// The out, relative to the root.
        path: String,
    },
    /// An out or metric file was modified after the run (short hashes).
    OutModified {
        /// The out, relative to the root.
        path: String,
        /// Short hash recorded in the lock.
        old: String,
        /// Short hash now.
        new: String,
    },
    /// A dependency does not exist and no stage produces it (status and dry run; `repro` stops
    /// with an error).
    DepMissing {
        /// The dep, relative to the root.
        path: String,
    },
    /// A stage this one depends on will run first (dry run and status only).
    UpstreamChanged {
        /// The upstream stage.
        stage: String,
    },
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NeverRun => write!(f, "never run"),
            Self::Forced => write!(f, "forced"),
            Self::AlwaysChanged => write!(f, "always changed"),
            Self::CommandChanged { old, new } => write!(f, "command changed ({old} -> {new})"),
            Self::DeclarationChanged { field } => write!(f, "declared {field} changed"),
            Self::DepChanged {
                path,
                old: Some(old),
                new,
            } => write!(f, "dep {path} changed ({old} -> {new})"),
            Self::DepChanged {
                path,
                old: None,
                new,
            } => write!(f, "dep {path} added ({new})"),
            Self::ParamChanged {
                param,
                old: Some(old),
                new,
            } => write!(f, "param {param} changed ({old} -> {new})"),
            Self::ParamChanged {
                param,
                old: None,
                new,
            } => write!(f, "param {param} added ({new})"),
            Self::OutMissing { path } => write!(f, "out {path} missing"),
            Self::OutModified { path, old, new } => {
                write!(f, "out {path} modified ({old} -> {new})")
            }
            Self::DepMissing { path } => {
                write!(f, "dep {path} does not exist and no stage produces it")
            }
            Self::UpstreamChanged { stage } => write!(f, "upstream stage {stage} will run"),
        }
    }
}

/// The state of one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum State {
    /// Nothing it declared changed since its last run.
    UpToDate,
    /// It would run; see the reasons.
    OutOfDate,
    /// Declared `frozen`: never runs.
    Frozen,
}

/// One stage's status: its state and, when out of date, every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct StageStatus {
    /// The stage name.
    pub name: String,
    /// Up to date, out of date or frozen.
    pub state: State,
    /// Why it would run (empty unless out of date).
    pub reasons: Vec<Reason>,
}

/// The short form of a `blake3:…` hash string (8 hex digits).
pub(crate) fn short(hash: &str) -> String {
    let hex = hash.strip_prefix("blake3:").unwrap_or(hash);
    hex.chars().take(8).collect()
}

/// A parsed params file with the size and mtime it had when read.
type ParsedParams = (u64, Option<std::time::SystemTime>, Arc<serde_json::Value>);

/// Parsed params files, re-read only when their size or mtime changes.
#[derive(Debug, Default)]
pub(crate) struct ParamsCache {
    files: Mutex<HashMap<PathBuf, ParsedParams>>,
}

impl ParamsCache {
    fn get(&self, root: &Path, stage: &str, file: &Path) -> Result<Arc<serde_json::Value>> {
        let abs = root.join(file);
        let meta = match std::fs::metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(Error::MissingDep {
                    stage: stage.to_owned(),
                    path: file.to_owned(),
                });
            }
            Err(e) => return Err(Error::io(file, e)),
        };
        let stamp = (meta.len(), meta.modified().ok());
        if let Ok(files) = self.files.lock()
            && let Some((len, mtime, value)) = files.get(file)
            && (*len, *mtime) == stamp
        {
            return Ok(value.clone());
        }
        let value = Arc::new(values::load(&abs, file)?);
        if let Ok(mut files) = self.files.lock() {
            files.insert(file.to_owned(), (stamp.0, stamp.1, value.clone()));
        }
        Ok(value)
    }
}

/// What a stage's inputs are now: dep hashes and param values.
#[derive(Debug, Clone, Default)]
pub(crate) struct Observation {
    pub(crate) deps: Vec<LockedPath>,
    pub(crate) params: BTreeMap<String, String>,
    /// Deps not hashed because an upstream stage will rewrite them (dry run only).
    pub(crate) pending: Vec<Reason>,
}

pub(crate) fn locked(path: &Path, object: &mlops_cas::Object) -> LockedPath {
    LockedPath {
        path: slash(path),
        hash: object.hash.to_string(),
        size: object.size,
        files: object.files,
    }
}

/// Hashes `stage`'s deps and reads its params. `will_run(path)` names the upstream stage that will
/// rewrite a dep before this stage runs (dry run); such deps are not hashed.
pub(crate) fn observe(
    repo: &Repo,
    root: &Path,
    stage: &Stage,
    params: &ParamsCache,
    will_run: &dyn Fn(&Path) -> Option<String>,
) -> Result<Observation> {
    let mut obs = Observation::default();
    for dep in &stage.deps {
        if let Some(upstream) = will_run(dep) {
            let reason = Reason::UpstreamChanged { stage: upstream };
            if !obs.pending.contains(&reason) {
                obs.pending.push(reason);
            }
            continue;
        }
        let abs = root.join(dep);
        if std::fs::symlink_metadata(&abs).is_err() {
            return Err(Error::MissingDep {
                stage: stage.name.clone(),
                path: dep.clone(),
            });
        }
        let object = repo.hash_path(&abs)?;
        obs.deps.push(locked(dep, &object));
    }
    for p in &stage.params {
        if let Some(upstream) = will_run(&p.file) {
            let reason = Reason::UpstreamChanged { stage: upstream };
            if !obs.pending.contains(&reason) {
                obs.pending.push(reason);
            }
            continue;
        }
        let value = params.get(root, &stage.name, &p.file)?;
        let Some(found) = values::lookup(&value, &p.key) else {
            return Err(Error::ParamKey {
                file: p.file.clone(),
                key: p.key.clone(),
                stage: stage.name.clone(),
            });
        };
        obs.params.insert(p.to_string(), values::canonical(found));
    }
    Ok(obs)
}

/// The stage fingerprint: BLAKE3 over the command, wdir, each dep's path and hash, the param
/// values in canonical form, the out and metric paths and the declared env.
pub(crate) fn fingerprint(stage: &Stage, obs: &Observation) -> String {
    let mut h = blake3::Hasher::new();
    let mut field = |tag: &str, value: &str| {
        h.update(tag.as_bytes());
        h.update(&(value.len() as u64).to_le_bytes());
        h.update(value.as_bytes());
    };
    field("mlops-stage-v1", "");
    field("cmd", &stage.cmd);
    field("wdir", &slash(&stage.wdir));
    for d in &obs.deps {
        field("dep", &d.path);
        field("hash", &d.hash);
    }
    for (k, v) in &obs.params {
        field("param", k);
        field("value", v);
    }
    for o in &stage.outs {
        field("out", &slash(o));
    }
    for m in &stage.metrics {
        field("metric", &slash(m));
    }
    for (k, v) in &stage.env {
        field("env", k);
        field("value", v);
    }
    format!("blake3:{}", h.finalize().to_hex())
}

/// Every reason `stage` must run given what it consumes now (`obs`) and its last recorded run.
pub(crate) fn reasons(
    repo: &Repo,
    root: &Path,
    stage: &Stage,
    obs: &Observation,
    entry: Option<&LockEntry>,
) -> Result<Vec<Reason>> {
    let mut reasons = obs.pending.clone();
    if stage.always_changed {
        reasons.push(Reason::AlwaysChanged);
    }
    let Some(entry) = entry else {
        reasons.insert(0, Reason::NeverRun);
        return Ok(reasons);
    };
    if entry.cmd != stage.cmd {
        let hash = |s: &str| blake3::hash(s.as_bytes()).to_hex()[..8].to_owned();
        reasons.push(Reason::CommandChanged {
            old: hash(&entry.cmd),
            new: hash(&stage.cmd),
        });
    }
    if entry.env != stage.env {
        reasons.push(Reason::DeclarationChanged {
            field: "env".into(),
        });
    }
    let recorded: HashMap<&str, &LockedPath> =
        entry.deps.iter().map(|d| (d.path.as_str(), d)).collect();
    for dep in &obs.deps {
        match recorded.get(dep.path.as_str()) {
            Some(old) if old.hash == dep.hash => {}
            old => reasons.push(Reason::DepChanged {
                path: dep.path.clone(),
                old: old.map(|o| short(&o.hash)),
                new: short(&dep.hash),
            }),
        }
    }
    if obs.pending.is_empty() && entry.deps.len() != obs.deps.len() {
        reasons.push(Reason::DeclarationChanged {
            field: "deps".into(),
        });
    }
    for (param, value) in &obs.params {
        match entry.params.get(param) {
            Some(old) if old == value => {}
            old => reasons.push(Reason::ParamChanged {
                param: param.clone(),
                old: old.cloned(),
                new: value.clone(),
            }),
        }
    }
    if obs.pending.is_empty() && entry.params.len() != obs.params.len() {
        reasons.push(Reason::DeclarationChanged {
            field: "params".into(),
        });
    }
    let outs: Vec<String> = stage.outs.iter().map(|p| slash(p)).collect();
    let recorded_outs: Vec<&str> = entry.outs.iter().map(|o| o.path.as_str()).collect();
    if outs
        .iter()
        .map(String::as_str)
        .ne(recorded_outs.iter().copied())
    {
        reasons.push(Reason::DeclarationChanged {
            field: "outs".into(),
        });
    }
    let metrics: Vec<String> = stage.metrics.iter().map(|p| slash(p)).collect();
    if metrics
        .iter()
        .map(String::as_str)
        .ne(entry.metrics.iter().map(|m| m.path.as_str()))
    {
        reasons.push(Reason::DeclarationChanged {
            field: "metrics".into(),
        });
    }
    let produced = entry
        .outs
        .iter()
        .map(|o| (&o.path, &o.hash))
        .chain(entry.metrics.iter().map(|m| (&m.path, &m.hash)));
    for (path, old) in produced {
        let abs = root.join(path);
        if std::fs::symlink_metadata(&abs).is_err() {
            reasons.push(Reason::OutMissing { path: path.clone() });
            continue;
        }
        let now = repo.hash_path(&abs)?.hash.to_string();
        if &now != old {
            reasons.push(Reason::OutModified {
                path: path.clone(),
                old: short(old),
                new: short(&now),
            });
        }
    }
    Ok(reasons)
}

/// The status of the stages in `mask` (all when `None`), in dependency order, as a dry run of
/// `repro` would see it: a stage downstream of one that will run is out of date too.
pub(crate) fn plan(
    repo: &Repo,
    spec: &Spec,
    dag: &Dag,
    lock: &LockFile,
    mask: Option<&[bool]>,
    force: bool,
) -> Result<Vec<StageStatus>> {
    let params = ParamsCache::default();
    let mut will_run = vec![false; spec.stages.len()];
    let mut out = Vec::new();
    for &i in dag.order() {
        if mask.is_some_and(|m| !m[i]) {
            continue;
        }
        let stage = &spec.stages[i];
        if stage.frozen {
            out.push(StageStatus {
                name: stage.name.clone(),
                state: State::Frozen,
                reasons: Vec::new(),
            });
            continue;
        }
        let pending = |path: &Path| {
            dag.producer_of(path)
                .filter(|&j| will_run[j])
                .map(|j| spec.stages[j].name.clone())
        };
        let obs = match observe(repo, &spec.root, stage, &params, &pending) {
            Ok(obs) => obs,
            Err(Error::MissingDep { path, .. }) => {
                let reasons = vec![Reason::DepMissing { path: slash(&path) }];
                will_run[i] = true;
                out.push(StageStatus {
                    name: stage.name.clone(),
                    state: State::OutOfDate,
                    reasons,
                });
                continue;
            }
            Err(e) => return Err(e),
        };
        let mut reasons = reasons(repo, &spec.root, stage, &obs, lock.stages.get(&stage.name))?;
        if force && !reasons.contains(&Reason::Forced) {
            reasons.insert(0, Reason::Forced);
        }
        let state = if reasons.is_empty() {
            State::UpToDate
        } else {
            State::OutOfDate
        };
        will_run[i] = state == State::OutOfDate;
        out.push(StageStatus {
            name: stage.name.clone(),
            state,
            reasons,
        });
    }
    Ok(out)
}
