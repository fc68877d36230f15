//! The [`Executor`] trait: how one stage's command is run. The local executor runs it with `sh -c`
//! on this machine; `mlops-k8s` implements the same trait to run it as a Kubernetes Job.
//!
//! **API Boundary:** the scheduler decides *what* runs and *when*; an executor only runs one
//! prepared [`StageJob`] to completion and reports an [`ExecutionRecord`]. Executors never touch
//! `mlops.lock`: the scheduler records what they return.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// One stage, resolved and ready to run: every path absolute, every `${…}` substituted.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct StageJob {
    /// The stage name, e.g. `train` or `train@lr=0.01,depth=4`.
    pub name: String,
    /// The shell command, run with `sh -c`.
    pub cmd: String,
    /// The repository root (the folder holding `mlops.toml`).
    pub root: PathBuf,
    /// The folder the command runs in (the stage's `wdir`, absolute).
    pub wdir: PathBuf,
    /// Extra environment variables declared by the stage.
    pub env: BTreeMap<String, String>,
    /// Dependencies with the content hash (`blake3:…`) they had when the stage was scheduled.
    pub deps: Vec<DepInput>,
    /// Declared outputs, relative to `root`.
    pub outs: Vec<PathBuf>,
    /// Declared metric files, relative to `root`.
    pub metrics: Vec<PathBuf>,
    /// The stage fingerprint (`blake3:…`) this run is for.
    pub fingerprint: String,
    /// Where the executor saves the command's combined output.
    pub log_path: PathBuf,
    /// The stage's raw `[stages.NAME.k8s]` table, if any, for executors that need it.
    pub k8s: Option<toml::Table>,
    /// Whether several stages run at once (prefix streamed output with the stage name).
    pub parallel: bool,
}

/// A dependency as the scheduler hashed it before the run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DepInput {
    /// Path relative to the repository root.
    pub path: PathBuf,
    /// Content hash, `blake3:…` (of the file, or of the directory manifest).
    pub hash: String,
    /// Size in bytes (for a directory, the sum).
    pub size: u64,
}

/// What an executor reports about one finished run (success or not).
#[derive(Debug, Clone, PartialEq, Default)]
#[non_exhaustive]
pub struct ExecutionRecord {
    /// `local`, `k8s`, …
    pub executor: String,
    /// The command's exit code; `None` when it was killed or never started.
    pub exit_code: Option<i32>,
    /// Start time, RFC 3339.
    pub started: String,
    /// End time, RFC 3339.
    pub ended: String,
    /// Executor-specific facts recorded in the lock (job name, namespace, image digest, node,
    /// termination reason, …). Sorted for stable output.
    pub details: BTreeMap<String, String>,
    /// Outputs the executor already hashed and stored remotely (`path` → `blake3:…`), for
    /// executors that run away from the workspace; empty for the local executor.
    pub remote_outs: BTreeMap<PathBuf, String>,
}

impl ExecutionRecord {
    /// A record for `executor` with the given exit code and times, and no details.
    pub fn new(
        executor: impl Into<String>,
        exit_code: Option<i32>,
        started: String,
        ended: String,
    ) -> Self {
        Self {
            executor: executor.into(),
            exit_code,
            started,
            ended,
            ..Self::default()
        }
    }

    /// Whether the command succeeded (exit code 0).
    pub fn succeeded(&self) -> bool {
        self.exit_code == Some(0)
    }
}

/// Why an executor could not run a stage at all (as opposed to a command that ran and failed,
/// which is an [`ExecutionRecord`] with a non-zero exit code).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The stage cannot run on this executor (for example no `k8s` table), with the reason.
    #[error("stage {stage}: {reason}")]
    Refused {
        /// The stage name.
        stage: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// The run was cancelled (Ctrl-C); whatever ran was stopped.
    #[error("stage {stage}: cancelled")]
    Cancelled {
        /// The stage name.
        stage: String,
    },
    /// The run failed for a reason outside the command (I/O, network, cluster): exit 3.
    #[error("stage {stage}: {message}")]
    Runtime {
        /// The stage name.
        stage: String,
        /// What failed.
        message: String,
        /// The underlying error, if any.
        #[source]
        source: Option<Box<dyn std::error::Error + Send + Sync>>,
    },
}

/// Runs one stage's command somewhere. Implementations must be safe to call from several threads
/// at once (independent stages run in parallel) and must return promptly once `cancel` is set,
/// having stopped what they started.
pub trait Executor: Send + Sync {
    /// A short name recorded in the lock, e.g. `local` or `k8s`.
    fn name(&self) -> &str;

    /// Runs `job` to completion and reports what happened. A command that ran and exited non-zero
    /// is `Ok` with that exit code; `Err` is for runs that could not happen or were cancelled.
    fn run(&self, job: &StageJob, cancel: &CancelToken) -> Result<ExecutionRecord, ExecError>;
}

/// A cheap, clonable flag set once when the user interrupts (Ctrl-C) or a fail-fast stop begins.
#[derive(Debug, Clone, Default)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    /// A token that is not cancelled.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the flag; every clone sees it.
    pub fn cancel(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    /// Whether [`cancel`](Self::cancel) was called on any clone.
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}
