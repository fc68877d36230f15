//! Integration tests of mlops-k8s: manifests (snapshots), the runner against the in-process fake
//! API server (every scripted lifecycle), connection errors, and the fake server's own API shapes.

#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failures")]
mod fake_api;
mod pod;
mod render;
mod runner;

use std::path::Path;

use mlops_k8s::fake::FakeCluster;
use mlops_k8s::{ClusterOptions, K8sConfig};

/// Writes the fake cluster's kubeconfig into `dir` and returns options that use only it.
pub(crate) fn options_for(cluster: &FakeCluster, dir: &Path, namespace: &str) -> ClusterOptions {
    let path = dir.join("kubeconfig");
    std::fs::write(&path, cluster.kubeconfig_yaml(namespace)).unwrap();
    ClusterOptions::default().with_kubeconfig(Some(path))
}

/// Parses an `mlops.toml` text.
pub(crate) fn config(text: &str) -> K8sConfig {
    K8sConfig::parse(text, Path::new("mlops.toml")).unwrap()
}
