//! [`K8sExecutor`]: the pipeline's [`Executor`] that runs each stage as a Job.
//!
//! **Rule for stages without a `[stages.NAME.k8s]` table:** they are refused with a message
//! saying how to fix it, unless `[k8s] without-k8s-table = "local"` is set *and* a local executor
//! was given with [`K8sExecutor::with_fallback`], in which case they run locally.

use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use mlops_pipeline::{CancelToken, ExecError, ExecutionRecord, Executor, StageJob};
use tracing::info;

use crate::cluster::{Cluster, ClusterOptions};
use crate::config::{JobSettings, K8sConfig, WithoutK8sTable};
use crate::error::{Error, Result};
use crate::manifest::{JobIdentity, StageInfo, build_job};
use crate::runner::{LogSink, RunOptions, RunOutcome, run_job};

/// Runs stages as Kubernetes Jobs. Owns a small Tokio runtime, so its methods are blocking and
/// may be called from several threads at once (independent stages run as parallel Jobs).
pub struct K8sExecutor {
    runtime: tokio::runtime::Runtime,
    cluster: Cluster,
    config: K8sConfig,
    fallback: Option<Box<dyn Executor>>,
    keep_on_failure: bool,
    follow: Option<LogSink>,
    outcomes: Mutex<Vec<(String, RunOutcome)>>,
}

impl std::fmt::Debug for K8sExecutor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("K8sExecutor")
            .field("cluster", &self.cluster)
            .finish_non_exhaustive()
    }
}

impl K8sExecutor {
    /// Loads the kubeconfig named by `options` and prepares a client. Does not contact the
    /// cluster yet.
    pub fn connect(config: K8sConfig, options: &ClusterOptions) -> Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("mlops-k8s")
            .enable_all()
            .build()
            .map_err(|source| Error::Io {
                path: PathBuf::from("<tokio runtime>"),
                source,
            })?;
        let cluster = runtime.block_on(Cluster::connect(options))?;
        Ok(Self {
            runtime,
            cluster,
            config,
            fallback: None,
            keep_on_failure: false,
            follow: None,
            outcomes: Mutex::new(Vec::new()),
        })
    }

    /// The executor for stages without a `k8s` table when `[k8s] without-k8s-table = "local"`.
    #[must_use]
    pub fn with_fallback(mut self, local: Box<dyn Executor>) -> Self {
        self.fallback = Some(local);
        self
    }

    /// Keeps failed Jobs in the cluster (in addition to `[k8s] keep-on-failure`).
    #[must_use]
    pub fn keep_on_failure(mut self, keep: bool) -> Self {
        self.keep_on_failure = keep;
        self
    }

    /// Streams every log line to `sink` while the Job runs.
    #[must_use]
    pub fn follow(mut self, sink: Option<LogSink>) -> Self {
        self.follow = sink;
        self
    }

    /// Every Job this executor ran to an end so far, as (stage, outcome), in finishing order.
    pub fn outcomes(&self) -> Vec<(String, RunOutcome)> {
        self.outcomes.lock().map(|o| o.clone()).unwrap_or_default()
    }

    /// The cluster this executor talks to.
    pub fn cluster(&self) -> &Cluster {
        &self.cluster
    }

    /// Runs one stage as a Job and waits for its end. `log_path` receives the container's log.
    pub fn run_stage(
        &self,
        stage: &StageInfo,
        settings: &JobSettings,
        root: &Path,
        log_path: &Path,
        cancel: &CancelToken,
    ) -> Result<RunOutcome> {
        let namespace = self.cluster.namespace_for(settings.namespace.as_deref());
        let id = JobIdentity::new(stage, namespace, run_suffix()).with_git_commit(git_commit(root));
        let job = build_job(stage, settings, &id);
        if let Some(data) = &settings.data {
            // The pod fetches the deps by hash: they must be in the remote before it starts.
            let repo = mlops_cas::Repo::discover(root).map_err(|source| Error::Data {
                context: format!("open the repository at {}", root.display()),
                source,
            })?;
            crate::pod::push_deps(&repo, &data.remote, &stage.deps)?;
        }
        let options = RunOptions::new(log_path)
            .with_settings(settings)
            .keep_on_failure(self.keep_on_failure || settings.keep_on_failure)
            .follow(self.follow.clone());
        info!(stage = %stage.name, job = %id.name, namespace = %id.namespace, "running stage as a job");
        let cancelled = || cancel.is_cancelled();
        let outcome = self.runtime.block_on(run_job(
            &self.cluster.client,
            &self.cluster.url,
            &job,
            &options,
            &cancelled,
        ))?;
        let mut outcome = outcome;
        if let Some(data) = settings
            .data
            .as_ref()
            .filter(|d| d.fetch_outs && outcome.succeeded)
        {
            let repo = mlops_cas::Repo::discover(root).map_err(|source| Error::Data {
                context: format!("open the repository at {}", root.display()),
                source,
            })?;
            let reported = crate::runner::reported_objects(outcome.termination_message.as_deref());
            crate::pod::fetch_outs(&repo, &data.remote, &reported)?;
            outcome.outs_fetched = true;
        }
        if let Ok(mut all) = self.outcomes.lock() {
            all.push((stage.name.clone(), outcome.clone()));
        }
        Ok(outcome)
    }
}

impl Executor for K8sExecutor {
    fn name(&self) -> &str {
        "k8s"
    }

    fn run(&self, job: &StageJob, cancel: &CancelToken) -> Result<ExecutionRecord, ExecError> {
        let Some(table) = &job.k8s else {
            return match (self.config.without_k8s_table(), &self.fallback) {
                (WithoutK8sTable::Local, Some(local)) => {
                    info!(stage = %job.name, "no k8s table: running locally");
                    local.run(job, cancel)
                }
                (WithoutK8sTable::Local, None) => Err(ExecError::Refused {
                    stage: job.name.clone(),
                    reason: "no [stages.NAME.k8s] table and no local executor to fall back to"
                        .to_owned(),
                }),
                (WithoutK8sTable::Refuse, _) => Err(ExecError::Refused {
                    stage: job.name.clone(),
                    reason: format!(
                        "no [stages.{}.k8s] table: add one with at least `image = \"…\"`, or set [k8s] without-k8s-table = \"local\" to run such stages here",
                        job.name
                    ),
                }),
            };
        };
        let settings =
            self.config
                .resolve_table(&job.name, table)
                .map_err(|e| ExecError::Refused {
                    stage: job.name.clone(),
                    reason: e.to_string(),
                })?;
        let stage = StageInfo::from(job);
        match self.run_stage(&stage, &settings, &job.root, &job.log_path, cancel) {
            Ok(outcome) => Ok(outcome.to_record()),
            Err(Error::Cancelled) => Err(ExecError::Cancelled {
                stage: job.name.clone(),
            }),
            Err(e) => Err(ExecError::Runtime {
                stage: job.name.clone(),
                message: e.to_string(),
                // The message is the whole account; a source would print it twice.
                source: None,
            }),
        }
    }
}

/// A short suffix unique per run in this process and across processes (time, pid, counter).
fn run_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| {
            u64::try_from(d.as_nanos() % u128::from(u64::MAX)).unwrap_or(0)
        });
    let mixed = nanos
        ^ (u64::from(std::process::id()) << 32)
        ^ COUNTER
            .fetch_add(1, Ordering::Relaxed)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let hash = blake_like(mixed);
    const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut x = hash;
    (0..6)
        .map(|_| {
            let c = ALPHABET[usize::try_from(x % 36).unwrap_or(0)] as char;
            x /= 36;
            c
        })
        .collect()
}

/// SplitMix64 finaliser: spreads nearby inputs over the whole range.
fn blake_like(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The workspace's Git commit, when `root` is in a Git repository.
pub fn git_commit(root: &Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["rev-parse", "HEAD"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_owned())
        .filter(|s| s.len() == 40)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_suffixes_are_labels_and_differ() {
        let a = run_suffix();
        let b = run_suffix();
        assert_ne!(a, b);
        assert_eq!(a.len(), 6);
        assert!(crate::values::check_dns_label(&a, "x").is_ok());
    }
}
