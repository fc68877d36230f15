//! Metric and parameter values: the metric files the stages declare and the params they read,
//! now and at a Git revision, and what changed between the two.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde::Serialize;
use serde_json::Value;

use crate::error::{Error, Result};
use crate::lock::{LOCK_FILE, LockFile};
use crate::spec::{Spec, slash};
use crate::values;

/// One value: `file`, dotted `key`, and the value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct MetricValue {
    /// The file, relative to the root.
    pub file: String,
    /// Dotted key path inside it.
    pub key: String,
    /// The value (number, string or boolean).
    pub value: Value,
}

/// A value that differs between a revision and the workspace.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct ValueChange {
    /// The file, relative to the root.
    pub file: String,
    /// Dotted key path inside it.
    pub key: String,
    /// The value at the revision (`None`: absent there).
    pub old: Option<Value>,
    /// The value now (`None`: absent now).
    pub new: Option<Value>,
    /// `new - old` when both are numbers.
    pub change: Option<f64>,
}

/// Every declared metric file (sorted, each once).
pub fn metric_files(spec: &Spec) -> Vec<PathBuf> {
    let set: BTreeSet<&PathBuf> = spec.stages.iter().flat_map(|s| &s.metrics).collect();
    set.into_iter().cloned().collect()
}

/// The values in every declared metric file in the workspace. Missing files are skipped (they are
/// listed in the second element), malformed ones are errors naming file, line and column.
pub fn show(spec: &Spec) -> Result<(Vec<MetricValue>, Vec<String>)> {
    let mut values_out = Vec::new();
    let mut missing = Vec::new();
    for file in metric_files(spec) {
        let abs = spec.root.join(&file);
        if !abs.exists() {
            missing.push(slash(&file));
            continue;
        }
        let value = values::load(&abs, &file)?;
        for (key, value) in values::flatten(&value) {
            values_out.push(MetricValue {
                file: slash(&file),
                key,
                value,
            });
        }
    }
    Ok((values_out, missing))
}

/// The bytes of `path` (relative to `root`) at Git revision `rev`, or `None` when it does not
/// exist there.
pub fn read_at_revision(root: &Path, rev: &str, path: &Path) -> Result<Option<Vec<u8>>> {
    let spec = format!("{rev}:./{}", slash(path));
    let out = Command::new("git")
        .arg("show")
        .arg(&spec)
        .current_dir(root)
        .output()
        .map_err(|e| Error::Git {
            args: format!("show {spec}"),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(Some(out.stdout))
    } else {
        Ok(None)
    }
}

/// Checks that `rev` names a commit.
pub fn check_revision(root: &Path, rev: &str) -> Result<()> {
    let args = [
        "rev-parse",
        "--verify",
        "--quiet",
        &format!("{rev}^{{commit}}"),
    ];
    let out = Command::new("git")
        .args(args)
        .current_dir(root)
        .output()
        .map_err(|e| Error::Git {
            args: args.join(" "),
            message: e.to_string(),
        })?;
    if out.status.success() {
        Ok(())
    } else {
        let err = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Err(Error::Git {
            args: format!("rev-parse {rev}"),
            message: if err.is_empty() {
                format!("unknown revision `{rev}` (or not a Git repository)")
            } else {
                err
            },
        })
    }
}

fn numeric_change(old: Option<&Value>, new: Option<&Value>) -> Option<f64> {
    Some(new?.as_f64()? - old?.as_f64()?)
}

fn changes(
    file: &str,
    old: &BTreeMap<String, Value>,
    new: &BTreeMap<String, Value>,
    all: bool,
    out: &mut Vec<ValueChange>,
) {
    let keys: BTreeSet<&String> = old.keys().chain(new.keys()).collect();
    for key in keys {
        let (o, n) = (old.get(key), new.get(key));
        if all || o != n {
            out.push(ValueChange {
                file: file.to_owned(),
                key: key.clone(),
                old: o.cloned(),
                new: n.cloned(),
                change: numeric_change(o, n),
            });
        }
    }
}

/// Metric values at `rev` against the workspace: changed ones, or all with `all`. A metric file
/// not committed at `rev` is read from the values recorded in `mlops.lock` at `rev`.
pub fn diff(spec: &Spec, rev: &str, all: bool) -> Result<Vec<ValueChange>> {
    check_revision(&spec.root, rev)?;
    let old_lock = match read_at_revision(&spec.root, rev, Path::new(LOCK_FILE))? {
        Some(bytes) => LockFile::parse(
            &PathBuf::from(format!("{rev}:{LOCK_FILE}")),
            &String::from_utf8_lossy(&bytes),
        )
        .ok(),
        None => None,
    };
    let mut out = Vec::new();
    for file in metric_files(spec) {
        let shown = slash(&file);
        let old = match read_at_revision(&spec.root, rev, &file)? {
            Some(bytes) => {
                let display = PathBuf::from(format!("{rev}:{shown}"));
                values::flatten(&values::parse(&display, &String::from_utf8_lossy(&bytes))?)
            }
            None => old_lock
                .as_ref()
                .and_then(|l| {
                    l.stages
                        .values()
                        .flat_map(|s| &s.metrics)
                        .find(|m| m.path == shown)
                })
                .map(|m| {
                    m.values
                        .iter()
                        .filter_map(|(k, v)| Some((k.clone(), serde_json::to_value(v).ok()?)))
                        .collect()
                })
                .unwrap_or_default(),
        };
        let abs = spec.root.join(&file);
        let new = if abs.exists() {
            values::flatten(&values::load(&abs, &file)?)
        } else {
            BTreeMap::new()
        };
        changes(&shown, &old, &new, all, &mut out);
    }
    Ok(out)
}

/// Param values each stage reads, at `rev` against the workspace: changed leaves, or all with
/// `all`. Keys are `KEY.SUBKEY` inside the params file.
pub fn params_diff(spec: &Spec, rev: &str, all: bool) -> Result<Vec<ValueChange>> {
    check_revision(&spec.root, rev)?;
    let refs: BTreeSet<(PathBuf, String)> = spec
        .stages
        .iter()
        .flat_map(|s| &s.params)
        .map(|p| (p.file.clone(), p.key.clone()))
        .collect();
    let mut old_files: BTreeMap<PathBuf, Option<Value>> = BTreeMap::new();
    let mut new_files: BTreeMap<PathBuf, Option<Value>> = BTreeMap::new();
    let mut out = Vec::new();
    for (file, key) in refs {
        if !old_files.contains_key(&file) {
            let v = match read_at_revision(&spec.root, rev, &file)? {
                Some(bytes) => Some(values::parse(
                    &PathBuf::from(format!("{rev}:{}", slash(&file))),
                    &String::from_utf8_lossy(&bytes),
                )?),
                None => None,
            };
            old_files.insert(file.clone(), v);
        }
        if !new_files.contains_key(&file) {
            let abs = spec.root.join(&file);
            let v = if abs.exists() {
                Some(values::load(&abs, &file)?)
            } else {
                None
            };
            new_files.insert(file.clone(), v);
        }
        let pick = |v: Option<&Option<Value>>| -> BTreeMap<String, Value> {
            let Some(Some(v)) = v else {
                return BTreeMap::new();
            };
            let Some(sub) = values::lookup(v, &key) else {
                return BTreeMap::new();
            };
            values::flatten(sub)
                .into_iter()
                .map(|(k, v)| {
                    let full = match (key.is_empty(), k.is_empty()) {
                        (true, _) => k,
                        (false, true) => key.clone(),
                        (false, false) => format!("{key}.{k}"),
                    };
                    (full, v)
                })
                .collect()
        };
        let old = pick(old_files.get(&file));
        let new = pick(new_files.get(&file));
        changes(&slash(&file), &old, &new, all, &mut out);
    }
    out.sort_by(|a, b| (&a.file, &a.key).cmp(&(&b.file, &b.key)));
    out.dedup_by(|a, b| a.file == b.file && a.key == b.key);
    Ok(out)
}
