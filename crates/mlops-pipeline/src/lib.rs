//! mlops-pipeline: the steps that turn raw data into a model, run exactly when something they
//! declared changed.
//!
//! - [`Spec`]: the `[stages.NAME]` tables of `mlops.toml` (with `matrix` sweeps expanded).
//! - [`Dag`]: the `petgraph` graph from outs to deps; cycles and overlapping outs are errors.
//! - [`Pipeline::status`] / [`stage_status`]: which stages are out of date, and why.
//! - [`Pipeline::repro`]: runs what is out of date through an [`Executor`] ([`LocalExecutor`] here,
//!   Kubernetes in `mlops-k8s`), in parallel, restoring from the run-cache when it can, recording
//!   each finished stage in `mlops.lock` ([`LockFile`]).
//! - [`metrics`]: metric and param values, and their change against a Git revision.
//! - [`render`]: the graph as ASCII, DOT, Mermaid or JSON; [`edit`]: `mlops stage add`.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mlops_pipeline::{CancelToken, LocalExecutor, Pipeline, ReproOptions};
//! let dir = tempfile::tempdir()?;
//! let repo = mlops_cas::Repo::init(dir.path(), &mlops_cas::InitOptions::new().no_git(true))?;
//! std::fs::write(dir.path().join("mlops.toml"), r#"
//! [stages.hello]
//! cmd = "echo hello > greeting.txt"
//! outs = ["greeting.txt"]
//! "#)?;
//! let pipeline = Pipeline::load(repo.root())?;
//! let report = pipeline.repro(&repo, &LocalExecutor::new(), &ReproOptions::new(), &CancelToken::new(), &|_| {})?;
//! assert!(report.succeeded());
//! assert!(mlops_pipeline::stage_status(&repo)?.iter().all(|s| s.reasons.is_empty()));
//! # Ok(()) }
//! ```

pub mod dag;
pub mod edit;
pub mod error;
pub mod executor;
pub mod local;
pub mod lock;
pub mod metrics;
pub mod render;
pub mod repro;
pub mod spec;
pub mod status;
pub mod values;

use std::path::Path;

use mlops_cas::Repo;

pub use dag::Dag;
pub use error::{Error, Result};
pub use executor::{CancelToken, DepInput, ExecError, ExecutionRecord, Executor, StageJob};
pub use local::{LocalExecutor, OutputSink};
pub use lock::{LOCK_FILE, LockEntry, LockFile, LockedMetric, LockedPath};
pub use repro::{Action, Event, ReproOptions, ReproReport, StageFailure, StageReport};
pub use spec::{ParamRef, SPEC_FILE, Spec, Stage};
pub use status::{Reason, StageStatus, State};

/// A validated pipeline: the stages and their graph.
#[derive(Debug, Clone)]
pub struct Pipeline {
    spec: Spec,
    dag: Dag,
}

impl Pipeline {
    /// Reads and validates `ROOT/mlops.toml`.
    ///
    /// Fails with [`Error::NoSpec`], [`Error::Syntax`] (file, line, column) or [`Error::Graph`].
    pub fn load(root: &Path) -> Result<Self> {
        Self::new(Spec::load(root)?)
    }

    /// Validates `spec` (builds its graph).
    pub fn new(spec: Spec) -> Result<Self> {
        let dag = Dag::build(&spec)?;
        Ok(Self { spec, dag })
    }

    /// The stages.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The graph.
    pub fn dag(&self) -> &Dag {
        &self.dag
    }

    /// Every stage's state and reasons, in dependency order (what `repro --dry-run` would do).
    ///
    /// Fails when a dep or params file is missing, a param key does not exist, or the lock is
    /// malformed.
    pub fn status(&self, repo: &Repo) -> Result<Vec<StageStatus>> {
        let lock = LockFile::load(&self.spec.root)?;
        status::plan(repo, &self.spec, &self.dag, &lock, None, false)
    }

    /// Brings the pipeline up to date. A stage command that fails is a [`StageFailure`] in the
    /// report (exit 1), not an `Err`; `Err` is for configuration errors (unknown stage, missing
    /// dep, bad param key), runtime failures and [`Error::Cancelled`].
    pub fn repro(
        &self,
        repo: &Repo,
        executor: &dyn Executor,
        options: &ReproOptions,
        cancel: &CancelToken,
        events: &(dyn Fn(&Event<'_>) + Sync),
    ) -> Result<ReproReport> {
        let report = repro::repro(
            repo, &self.spec, &self.dag, executor, options, cancel, events,
        );
        if let Err(e) = repo.flush() {
            tracing::warn!(error = %e, "could not save the hash cache");
        }
        report
    }
}

/// Every stage's out-of-date state and reasons for the repository `repo` (empty when there is no
/// `mlops.toml`). This is what `mlops status` shows under "stages".
pub fn stage_status(repo: &Repo) -> Result<Vec<StageStatus>> {
    match Pipeline::load(repo.root()) {
        Ok(p) => p.status(repo),
        Err(Error::NoSpec { .. }) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

impl Pipeline {
    /// The job `repro` would hand an executor for stage `name` now: deps hashed (nothing is
    /// stored), params read, fingerprint computed. Runs nothing; `mlops k8s render` uses it.
    /// Fails on an unknown stage, a missing dep or a bad param key.
    pub fn stage_job(&self, repo: &Repo, name: &str) -> Result<StageJob> {
        let stage = &self.spec.stages[self.spec.index_of(name)?];
        let root = &self.spec.root;
        let obs = status::observe(repo, root, stage, &status::ParamsCache::default(), &|_| {
            None
        })?;
        let fingerprint = status::fingerprint(stage, &obs);
        Ok(StageJob {
            name: stage.name.clone(),
            cmd: stage.cmd.clone(),
            root: root.clone(),
            wdir: root.join(&stage.wdir),
            env: stage.env.clone(),
            deps: obs
                .deps
                .iter()
                .map(|d| DepInput {
                    path: std::path::PathBuf::from(&d.path),
                    hash: d.hash.clone(),
                    size: d.size,
                })
                .collect(),
            outs: stage.outs.clone(),
            metrics: stage.metrics.clone(),
            fingerprint,
            log_path: repro::log_path(root, &stage.name),
            k8s: stage.k8s.clone(),
            parallel: false,
        })
    }
}
