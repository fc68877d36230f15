//! mlops-k8s: run pipeline stages as Kubernetes `batch/v1` Jobs that start, finish, report and
//! stop.
//!
//! - [`K8sConfig`] reads `[k8s]` and `[stages.NAME.k8s]` from `mlops.toml`, validates resource
//!   quantities, DNS names and deadlines (errors name the line and column), and merges them into
//!   [`JobSettings`].
//! - [`build_job`] and [`render_yaml`] make the Job manifest (deterministic YAML for
//!   `mlops k8s render`): `restartPolicy: Never`, `backoffLimit`, `activeDeadlineSeconds`,
//!   `ttlSecondsAfterFinished`, a `podFailurePolicy`, `mlops.dev/*` labels and annotations, and
//!   in data mode an init container that fetches the deps by hash.
//! - [`run_job`] applies it (server-side apply), watches the Job and its Pods, fails fast on pods
//!   that can never start, saves the log, records what ran ([`RunOutcome`]) and deletes the Job.
//! - [`K8sExecutor`] implements the pipeline's `Executor` on top of that (stages without a `k8s`
//!   table are refused, or run locally with `[k8s] without-k8s-table = "local"`).
//! - [`pod`]: data mode, the exact data version in the pod: deps pushed to the remote before the
//!   Job, fetched by hash in the init container (`mlops k8s pod-fetch`), outs pushed and reported
//!   by the main container (`mlops k8s pod-run`) and brought back into the workspace.
//! - [`fake`] (feature `test-support`) is an in-process fake API server for tests.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use std::path::Path;
//! use mlops_k8s::{build_job, render_yaml, JobIdentity, K8sConfig, StageInfo};
//!
//! let file = Path::new("mlops.toml");
//! let config = K8sConfig::parse(
//!     "[stages.train]\ncmd = \"python train.py\"\n[stages.train.k8s]\nimage = \"python:3.12-slim\"\nmemory = \"512Mi\"\n",
//!     file,
//! )?;
//! let settings = config.resolve("train", file)?;
//! let stage = StageInfo::new("train", "python train.py", "blake3:9f2c0a1b");
//! let job = build_job(&stage, &settings, &JobIdentity::new(&stage, "default", ""));
//! let yaml = render_yaml(&job)?;
//! assert!(yaml.contains("restartPolicy: Never"));
//! assert!(yaml.contains("name: mlops-train-9f2c0a1b"));
//! # Ok(()) }
//! ```

pub mod cluster;
pub mod config;
mod error;
pub mod executor;
#[cfg(feature = "test-support")]
pub mod fake;
pub mod manifest;
pub mod pod;
pub mod runner;
pub mod values;

pub use cluster::{Cluster, ClusterOptions};
pub use config::{DataSettings, JobSettings, K8sConfig, WithoutK8sTable};
pub use error::{Error, Result};
pub use executor::{K8sExecutor, git_commit};
pub use manifest::{JobIdentity, StageInfo, build_job, render_yaml};
pub use runner::{LogSink, RunOptions, RunOutcome, run_job};
