//! The scheduler behind `mlops repro`: runs what is out of date in dependency order, independent
//! stages at the same time (up to `jobs`), restores outputs from the run-cache when the same
//! fingerprint ran before, and records each finished stage in `mlops.lock` as it finishes.
//!
//! **Architecture Invariant:** only the coordinating thread writes `mlops.lock`; workers hash,
//! run and store, then hand back a [`LockEntry`]. A failed or interrupted stage never gets an
//! entry, and its outputs are never recorded.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::Instant;

use mlops_cas::{Hash, Object, Repo};
use serde::Serialize;

use crate::dag::Dag;
use crate::error::{Error, Result};
use crate::executor::{CancelToken, DepInput, ExecError, Executor, StageJob};
use crate::local::now_rfc3339;
use crate::lock::{LockEntry, LockFile, LockWriter, LockedMetric, LockedPath, write_atomic};
use crate::spec::{Spec, Stage, slash};
use crate::status::{self, Observation, ParamsCache, Reason, StageStatus, State, locked, short};
use crate::values;

/// Options of one `repro`.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ReproOptions {
    /// Stages to bring up to date (with everything they depend on); empty for all.
    pub targets: Vec<String>,
    /// Stages run at once (at least 1).
    pub jobs: usize,
    /// Only report what would run and why.
    pub dry_run: bool,
    /// Run the selected stages even if nothing changed (frozen stages still do not run).
    pub force: bool,
    /// After a failure, keep running stages that do not depend on it.
    pub keep_going: bool,
    /// Restore outputs of a fingerprint seen before instead of running.
    pub run_cache: bool,
}

impl Default for ReproOptions {
    fn default() -> Self {
        Self {
            targets: Vec::new(),
            jobs: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
            dry_run: false,
            force: false,
            keep_going: false,
            run_cache: true,
        }
    }
}

impl ReproOptions {
    /// Defaults: all stages, one job per core, run-cache on, fail-fast.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only these stages (and what they depend on).
    #[must_use]
    pub fn targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }

    /// At most `jobs` stages at once.
    #[must_use]
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Report only.
    #[must_use]
    pub fn dry_run(mut self, yes: bool) -> Self {
        self.dry_run = yes;
        self
    }

    /// Run even if up to date.
    #[must_use]
    pub fn force(mut self, yes: bool) -> Self {
        self.force = yes;
        self
    }

    /// Continue independent stages after a failure.
    #[must_use]
    pub fn keep_going(mut self, yes: bool) -> Self {
        self.keep_going = yes;
        self
    }

    /// Use the run-cache.
    #[must_use]
    pub fn run_cache(mut self, yes: bool) -> Self {
        self.run_cache = yes;
        self
    }
}

/// What happened to one stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Action {
    /// Nothing changed; not run.
    UpToDate,
    /// Frozen; not run.
    Frozen,
    /// Ran and was recorded.
    Ran,
    /// Outputs restored from the run-cache; recorded without running.
    Restored,
    /// Would run (dry run).
    WouldRun,
    /// Ran and failed, or could not be recorded; see the failure.
    Failed,
    /// Not run because a stage it depends on failed, or the run stopped first.
    NotRun,
}

/// One stage in a [`ReproReport`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageReport {
    /// The stage name.
    pub name: String,
    /// What happened.
    pub action: Action,
    /// Why it ran (or would run).
    pub reasons: Vec<Reason>,
    /// Wall time of running or restoring it.
    pub duration_ms: u64,
}

/// A stage that failed: the command exited non-zero, an out was not produced, or a dep changed
/// while it ran.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[non_exhaustive]
pub struct StageFailure {
    /// The stage name.
    pub stage: String,
    /// The command's exit code (`None` when killed by a signal or when the command succeeded but
    /// the run could not be recorded).
    pub exit_code: Option<i32>,
    /// What went wrong.
    pub message: String,
    /// The stage's log file.
    pub log: PathBuf,
    /// Its last lines.
    pub log_tail: Vec<String>,
}

/// The outcome of a `repro`: every selected stage in the order handled, and the failures.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
#[non_exhaustive]
pub struct ReproReport {
    /// Stages in the order they finished (dependency order for a dry run).
    pub stages: Vec<StageReport>,
    /// Failed stages.
    pub failures: Vec<StageFailure>,
}

impl ReproReport {
    /// Whether no stage failed.
    pub fn succeeded(&self) -> bool {
        self.failures.is_empty()
    }
}

/// Progress, reported as it happens.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A stage starts running (or restoring), with why.
    Started {
        /// The stage.
        stage: &'a str,
        /// Why it runs.
        reasons: &'a [Reason],
    },
    /// A stage is done (any [`Action`]).
    Finished(&'a StageReport),
    /// A stage failed.
    Failed(&'a StageFailure),
}

/// How many log lines a failure shows.
const TAIL_LINES: usize = 10;

/// `.mlops/logs/<stage>.log`, the name made safe for a file.
pub fn log_path(root: &Path, stage: &str) -> PathBuf {
    let safe: String = stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_-.@=,".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    root.join(mlops_cas::STATE_DIR)
        .join("logs")
        .join(format!("{safe}.log"))
}

fn run_cache_path(root: &Path, fingerprint: &str) -> PathBuf {
    let hex = fingerprint.strip_prefix("blake3:").unwrap_or(fingerprint);
    let (a, b) = hex.split_at(2.min(hex.len()));
    root.join(mlops_cas::STATE_DIR)
        .join("runs")
        .join(a)
        .join(format!("{b}.toml"))
}

fn tail(path: &Path) -> Vec<String> {
    let text = std::fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(TAIL_LINES)..]
        .iter()
        .map(|s| (*s).to_owned())
        .collect()
}

/// What a worker hands back.
enum Done {
    UpToDate,
    Frozen,
    Recorded {
        entry: Box<LockEntry>,
        reasons: Vec<Reason>,
        restored: bool,
        ms: u64,
    },
    Failed(StageFailure, Vec<Reason>),
    Cancelled,
    Error(Error),
}

struct Ctx<'a> {
    repo: &'a Repo,
    spec: &'a Spec,
    executor: &'a dyn Executor,
    opts: &'a ReproOptions,
    cancel: &'a CancelToken,
    params: ParamsCache,
    parallel: bool,
}

/// Runs [`ReproOptions`] over the pipeline. See the module docs; `events` sees progress.
pub(crate) fn repro(
    repo: &Repo,
    spec: &Spec,
    dag: &Dag,
    executor: &dyn Executor,
    opts: &ReproOptions,
    cancel: &CancelToken,
    events: &(dyn Fn(&Event<'_>) + Sync),
) -> Result<ReproReport> {
    let mut targets = Vec::new();
    for t in &opts.targets {
        targets.push(spec.index_of(t)?);
    }
    let mask = if targets.is_empty() {
        vec![true; spec.stages.len()]
    } else {
        dag.with_upstream(&targets)
    };
    let mut lock = LockFile::load(&spec.root)?;
    let before = lock.stages.len();
    lock.stages.retain(|name, _| spec.stage(name).is_some());
    let pruned = lock.stages.len() != before;

    if opts.dry_run {
        let statuses = status::plan(repo, spec, dag, &lock, Some(&mask), opts.force)?;
        let stages = statuses.into_iter().map(|s: StageStatus| StageReport {
            action: match s.state {
                State::UpToDate => Action::UpToDate,
                State::Frozen => Action::Frozen,
                State::OutOfDate => Action::WouldRun,
            },
            name: s.name,
            reasons: s.reasons,
            duration_ms: 0,
        });
        return Ok(ReproReport {
            stages: stages.collect(),
            failures: Vec::new(),
        });
    }

    let mut writer = LockWriter::new(&spec.root, lock)?;
    if pruned {
        writer.write()?;
    }
    let n = spec.stages.len();
    let mut waiting: Vec<usize> = (0..n)
        .map(|i| {
            if mask[i] {
                dag.upstream(i).filter(|&j| mask[j]).count()
            } else {
                0
            }
        })
        .collect();
    let mut ready: BinaryHeap<Reverse<usize>> = (0..n)
        .filter(|&i| mask[i] && waiting[i] == 0)
        .map(Reverse)
        .collect();
    let mut handled = vec![false; n];
    let selected = mask.iter().filter(|&&m| m).count();
    let ctx = Ctx {
        repo,
        spec,
        executor,
        opts,
        cancel,
        params: ParamsCache::default(),
        parallel: opts.jobs > 1 && selected > 1,
    };
    let mut report = ReproReport::default();
    let mut first_error: Option<Error> = None;
    let mut stop = false;
    let mut finished = 0usize;
    let mut stopped = 0usize;
    let (tx, rx) = mpsc::channel::<(usize, Done)>();

    std::thread::scope(|scope| -> Result<()> {
        let mut running = 0usize;
        loop {
            if cancel.is_cancelled() {
                stop = true;
            }
            while !stop && running < opts.jobs {
                let Some(Reverse(i)) = ready.pop() else { break };
                let entry = writer.entries().get(&spec.stages[i].name).cloned();
                let tx = tx.clone();
                let ctx = &ctx;
                running += 1;
                if running == 1 && ready.is_empty() {
                    // Nothing else can start until this stage is done (a chain): run it on this
                    // thread and save two thread hand-offs per stage.
                    let done = process(ctx, &spec.stages[i], entry.as_ref(), events);
                    let _ = tx.send((i, done));
                    break;
                }
                scope.spawn(move || {
                    let done = process(ctx, &spec.stages[i], entry.as_ref(), events);
                    let _ = tx.send((i, done));
                });
            }
            if running == 0 {
                break;
            }
            let Ok((i, done)) = rx.recv() else { break };
            running -= 1;
            handled[i] = true;
            let name = spec.stages[i].name.clone();
            let mut ok = true;
            let stage_report = match done {
                Done::UpToDate => StageReport {
                    name,
                    action: Action::UpToDate,
                    reasons: vec![],
                    duration_ms: 0,
                },
                Done::Frozen => StageReport {
                    name,
                    action: Action::Frozen,
                    reasons: vec![],
                    duration_ms: 0,
                },
                Done::Recorded {
                    entry,
                    reasons,
                    restored,
                    ms,
                } => {
                    if let Err(e) = writer.record(&name, *entry) {
                        // Stop cleanly; the error is reported at the end.
                        first_error.get_or_insert(e);
                        stop = true;
                    }
                    finished += 1;
                    let action = if restored {
                        Action::Restored
                    } else {
                        Action::Ran
                    };
                    StageReport {
                        name,
                        action,
                        reasons,
                        duration_ms: ms,
                    }
                }
                Done::Failed(failure, reasons) => {
                    ok = false;
                    events(&Event::Failed(&failure));
                    report.failures.push(failure);
                    StageReport {
                        name,
                        action: Action::Failed,
                        reasons,
                        duration_ms: 0,
                    }
                }
                Done::Cancelled => {
                    ok = false;
                    stopped += 1;
                    stop = true;
                    StageReport {
                        name,
                        action: Action::NotRun,
                        reasons: vec![],
                        duration_ms: 0,
                    }
                }
                Done::Error(e) => {
                    ok = false;
                    if first_error.is_none() {
                        first_error = Some(e);
                    }
                    StageReport {
                        name,
                        action: Action::Failed,
                        reasons: vec![],
                        duration_ms: 0,
                    }
                }
            };
            events(&Event::Finished(&stage_report));
            report.stages.push(stage_report);
            if ok {
                for j in dag.downstream(i) {
                    if mask[j] {
                        waiting[j] -= 1;
                        if waiting[j] == 0 {
                            ready.push(Reverse(j));
                        }
                    }
                }
            } else if !opts.keep_going {
                stop = true;
            }
        }
        Ok(())
    })?;
    writer.finish()?;

    for &i in dag.order() {
        if mask[i] && !handled[i] {
            report.stages.push(StageReport {
                name: spec.stages[i].name.clone(),
                action: Action::NotRun,
                reasons: vec![],
                duration_ms: 0,
            });
        }
    }
    if cancel.is_cancelled() {
        return Err(Error::Cancelled { finished, stopped });
    }
    if let Some(e) = first_error {
        return Err(e);
    }
    Ok(report)
}

/// One stage, on a worker thread: decide, then restore or run, then hash and store.
fn process(
    ctx: &Ctx<'_>,
    stage: &Stage,
    entry: Option<&LockEntry>,
    events: &(dyn Fn(&Event<'_>) + Sync),
) -> Done {
    if stage.frozen {
        return Done::Frozen;
    }
    let root = &ctx.spec.root;
    let decided = (|| -> Result<(Observation, Vec<Reason>)> {
        let obs = status::observe(ctx.repo, root, stage, &ctx.params, &|_| None)?;
        let mut reasons = status::reasons(ctx.repo, root, stage, &obs, entry)?;
        if ctx.opts.force {
            reasons.insert(0, Reason::Forced);
        }
        Ok((obs, reasons))
    })();
    let (obs, reasons) = match decided {
        Ok(d) => d,
        Err(e) => return Done::Error(e),
    };
    if reasons.is_empty() {
        return Done::UpToDate;
    }
    if ctx.cancel.is_cancelled() {
        return Done::Cancelled;
    }
    events(&Event::Started {
        stage: &stage.name,
        reasons: &reasons,
    });
    let fingerprint = status::fingerprint(stage, &obs);
    let start = Instant::now();
    if ctx.opts.run_cache && !ctx.opts.force && !stage.always_changed {
        match restore_from_run_cache(ctx, stage, &fingerprint) {
            Ok(Some(entry)) => {
                let ms = elapsed_ms(start);
                return Done::Recorded {
                    entry: Box::new(entry),
                    reasons,
                    restored: true,
                    ms,
                };
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(stage = %stage.name, error = %e, "run-cache entry not usable; running the stage")
            }
        }
    }
    match run(ctx, stage, &obs, &fingerprint) {
        Ok(Ok((entry, all_local))) => {
            let ms = elapsed_ms(start);
            // Outputs a remote executor stored elsewhere are not in the local cache: no entry.
            if !all_local {
            } else if let Err(e) = save_run_cache(root, &entry) {
                tracing::warn!(stage = %stage.name, error = %e, "could not save the run-cache entry");
            }
            Done::Recorded {
                entry: Box::new(entry),
                reasons,
                restored: false,
                ms,
            }
        }
        Ok(Err(failure)) => Done::Failed(failure, reasons),
        Err(Error::Exec(ExecError::Cancelled { .. })) => Done::Cancelled,
        Err(e) => Done::Error(e),
    }
}

fn elapsed_ms(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_millis()).unwrap_or(u64::MAX)
}

fn remove_path(path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => std::fs::remove_dir_all(path).map_err(|e| Error::io(path, e)),
        Ok(_) => std::fs::remove_file(path).map_err(|e| Error::io(path, e)),
        Err(_) => Ok(()),
    }
}

/// Runs the command; `Ok(Err(_))` is a stage failure (exit 1), `Err` an error (exit 2 or 3).
fn run(
    ctx: &Ctx<'_>,
    stage: &Stage,
    obs: &Observation,
    fingerprint: &str,
) -> Result<Result<(LockEntry, bool), StageFailure>> {
    let root = &ctx.spec.root;
    // Outputs may be links into the read-only cache: remove them so the command writes new files.
    for out in stage.outs.iter().chain(&stage.metrics) {
        let abs = root.join(out);
        remove_path(&abs)?;
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
    }
    let wdir = root.join(&stage.wdir);
    let job = StageJob {
        name: stage.name.clone(),
        cmd: stage.cmd.clone(),
        root: root.clone(),
        wdir,
        env: stage.env.clone(),
        deps: obs
            .deps
            .iter()
            .map(|d| DepInput {
                path: PathBuf::from(&d.path),
                hash: d.hash.clone(),
                size: d.size,
            })
            .collect(),
        outs: stage.outs.clone(),
        metrics: stage.metrics.clone(),
        fingerprint: fingerprint.to_owned(),
        log_path: log_path(root, &stage.name),
        k8s: stage.k8s.clone(),
        parallel: ctx.parallel,
    };
    let started_at = Instant::now();
    let record = ctx.executor.run(&job, ctx.cancel)?;
    let duration_ms = elapsed_ms(started_at);
    let fail = |exit_code: Option<i32>, message: String| {
        Ok(Err(StageFailure {
            stage: stage.name.clone(),
            exit_code,
            message,
            log: job.log_path.clone(),
            log_tail: tail(&job.log_path),
        }))
    };
    if !record.succeeded() {
        let how = match (record.exit_code, record.details.get("signal")) {
            (Some(code), _) => format!("exit status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            (None, None) => "no exit status".to_owned(),
        };
        return fail(record.exit_code, format!("command failed ({how})"));
    }
    // Deps must be what they were when the stage started, or the run does not describe them.
    for dep in &obs.deps {
        let abs = root.join(&dep.path);
        let now = if std::fs::symlink_metadata(&abs).is_ok() {
            ctx.repo.hash_path(&abs)?.hash.to_string()
        } else {
            "(deleted)".to_owned()
        };
        if now != dep.hash {
            return fail(
                record.exit_code,
                format!(
                    "dependency {} changed while the stage ran ({} -> {}); not recorded, run `mlops repro` again",
                    dep.path,
                    short(&dep.hash),
                    short(&now)
                ),
            );
        }
    }
    let mut outs = Vec::new();
    let all_local = record.remote_outs.is_empty();
    for out in &stage.outs {
        let shown = slash(out);
        if let Some(hash) = record.remote_outs.get(out) {
            outs.push(LockedPath {
                path: shown,
                hash: hash.clone(),
                size: 0,
                files: None,
            });
            continue;
        }
        let abs = root.join(out);
        if std::fs::symlink_metadata(&abs).is_err() {
            return fail(
                record.exit_code,
                format!("the command succeeded but did not write its out {shown}"),
            );
        }
        outs.push(locked(out, &ctx.repo.store_path(&abs)?));
    }
    let mut metrics = Vec::new();
    for m in &stage.metrics {
        let shown = slash(m);
        let abs = root.join(m);
        if std::fs::symlink_metadata(&abs).is_err() {
            return fail(
                record.exit_code,
                format!("the command succeeded but did not write its metrics file {shown}"),
            );
        }
        let value = match values::load(&abs, m) {
            Ok(v) => v,
            Err(e) => return fail(record.exit_code, format!("metrics file not readable: {e}")),
        };
        let object = ctx.repo.store_path(&abs)?;
        metrics.push(LockedMetric {
            path: shown,
            hash: object.hash.to_string(),
            size: object.size,
            values: metric_values(&value),
        });
    }
    let mut details = record.details.clone();
    details.retain(|k, _| k != "signal");
    let entry = LockEntry {
        cmd: stage.cmd.clone(),
        fingerprint: fingerprint.to_owned(),
        executor: record.executor.clone(),
        exit_code: record.exit_code.unwrap_or(0),
        started: record.started.clone(),
        ended: record.ended.clone(),
        duration_ms,
        env: stage.env.clone(),
        params: obs.params.clone(),
        details,
        deps: obs.deps.clone(),
        outs,
        metrics,
    };
    Ok(Ok((entry, all_local)))
}

/// Flattened scalar values as TOML values.
pub(crate) fn metric_values(value: &serde_json::Value) -> BTreeMap<String, toml::Value> {
    values::flatten(value)
        .into_iter()
        .filter_map(|(k, v)| {
            let t = match v {
                serde_json::Value::Bool(b) => toml::Value::Boolean(b),
                serde_json::Value::Number(n) => match n.as_i64() {
                    Some(i) => toml::Value::Integer(i),
                    None => toml::Value::Float(n.as_f64()?),
                },
                serde_json::Value::String(s) => toml::Value::String(s),
                _ => return None,
            };
            Some((k, t))
        })
        .collect()
}

fn object_of(hash: &str, size: u64, files: Option<u64>) -> Result<Object> {
    let hash: Hash = hash.parse()?;
    Ok(Object { hash, size, files })
}

fn save_run_cache(root: &Path, entry: &LockEntry) -> Result<()> {
    let path = run_cache_path(root, &entry.fingerprint);
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let text = toml::to_string(entry).map_err(|e| Error::Syntax {
        file: path.clone(),
        line: 1,
        column: 1,
        message: e.to_string(),
    })?;
    write_atomic(&path, text.as_bytes())
}

fn restore_from_run_cache(
    ctx: &Ctx<'_>,
    stage: &Stage,
    fingerprint: &str,
) -> Result<Option<LockEntry>> {
    let root = &ctx.spec.root;
    let path = run_cache_path(root, fingerprint);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(path, e)),
    };
    let mut entry: LockEntry = toml::from_str(&text).map_err(|e| Error::Syntax {
        file: path.clone(),
        line: 1,
        column: 1,
        message: e.message().to_owned(),
    })?;
    if entry.fingerprint != fingerprint || entry.cmd != stage.cmd {
        return Ok(None);
    }
    let mut objects = Vec::new();
    for o in &entry.outs {
        objects.push((o.path.clone(), object_of(&o.hash, o.size, o.files)?));
    }
    for m in &entry.metrics {
        objects.push((m.path.clone(), object_of(&m.hash, m.size, None)?));
    }
    for (_, object) in &objects {
        if !ctx.repo.has_object(object)? {
            return Ok(None);
        }
    }
    for (p, object) in &objects {
        let abs = root.join(p);
        remove_path(&abs)?;
        if let Some(parent) = abs.parent() {
            std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        }
        ctx.repo.restore(object, &abs)?;
    }
    entry
        .details
        .insert("restored_from_run_cache".into(), now_rfc3339());
    tracing::info!(stage = %stage.name, "restored from the run-cache");
    Ok(Some(entry))
}
