//! mlops-pipeline: stage specs, DAG, fingerprints, lock file, scheduler, executors, run-cache.

pub mod executor;

pub use executor::{CancelToken, DepInput, ExecError, ExecutionRecord, Executor, StageJob};
