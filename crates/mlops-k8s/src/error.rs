//! The crate's error type. Messages are lowercase, name the file, line and column (or the
//! configuration key) and say how to fix the problem.

use std::path::PathBuf;

/// Everything that can go wrong while rendering or running a Job.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A malformed or invalid value in `mlops.toml`, located by file, line and column.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Config {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// An invalid value in a configuration table that has no source text (for example a
    /// `[stages.NAME.k8s]` table handed over by the pipeline), named by its key.
    #[error("{key}: {message}")]
    Invalid {
        /// The dotted key, e.g. `stages.train.k8s.memory`.
        key: String,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// The stage named on the command line is not declared in `mlops.toml`.
    #[error("unknown stage `{stage}` in {}{}", file.display(), known_hint(known))]
    UnknownStage {
        /// The name asked for.
        stage: String,
        /// The configuration file searched.
        file: PathBuf,
        /// The declared stage names.
        known: Vec<String>,
    },
    /// The stage has no `[stages.NAME.k8s]` table, or no image anywhere.
    #[error("stage `{stage}`: {reason}")]
    NotRunnable {
        /// The stage name.
        stage: String,
        /// Why, and how to fix it.
        reason: String,
    },
    /// No kubeconfig file exists in any of the places looked at.
    #[error(
        "no kubeconfig found (looked at {looked}); set KUBECONFIG, pass --kubeconfig, or create ~/.kube/config (for example with `kind create cluster`)"
    )]
    NoKubeconfig {
        /// The places looked at, in order.
        looked: String,
    },
    /// No kubeconfig, and the pod's in-cluster service account configuration is unusable.
    #[error(
        "no kubeconfig found (looked at {looked}) and the in-cluster configuration failed: {source}"
    )]
    InCluster {
        /// The places looked at.
        looked: String,
        /// The underlying error.
        #[source]
        source: kube::config::InClusterError,
    },
    /// A kubeconfig exists but cannot be used.
    #[error("kubeconfig {}: {source}", path.display())]
    Kubeconfig {
        /// The kubeconfig file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: kube::config::KubeconfigError,
    },
    /// The cluster's API server did not answer (connection refused, timeout, TLS).
    #[error("cluster at {url} is unreachable: {}", describe(error))]
    Unreachable {
        /// The API server URL.
        url: String,
        /// The client's error. Not exposed as `source()`: the message already says it readably
        /// (kube's own text embeds debug output).
        error: kube::Error,
    },
    /// The API server refused a request for lack of permission (RBAC).
    #[error(
        "forbidden: cannot {verb} {resource} in namespace `{namespace}` (RBAC); ask the cluster admin for a Role granting `{verb}` on `{resource}`: {message}"
    )]
    Forbidden {
        /// The verb: `create`, `patch`, `get`, `list`, `watch`, `delete`.
        verb: String,
        /// The resource, e.g. `jobs.batch` or `pods/log`.
        resource: String,
        /// The namespace.
        namespace: String,
        /// The API server's message.
        message: String,
    },
    /// Any other failed API call, naming what was attempted.
    #[error("{action}: {}", describe(error))]
    Api {
        /// What was being done, e.g. `apply job mlops-train-1a2b3c4d`.
        action: String,
        /// The client's error (not exposed as `source()`, see [`Error::Unreachable`]).
        error: kube::Error,
    },
    /// A local file could not be read or written.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// Storing, fetching or pushing data for the pod failed.
    #[error("{context}: {source}")]
    Data {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: mlops_cas::Error,
    },
    /// A manifest could not be serialised.
    #[error("cannot render the job manifest: {0}")]
    Render(#[from] serde_yaml::Error),
    /// The run was cancelled; the Job was deleted.
    #[error("cancelled")]
    Cancelled,
}

/// A readable account of a client error: the API server's `Status` message and code, a body that
/// is not a `Status` (not an API server), or the transport's cause chain without repeats.
pub(crate) fn describe(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) if status.reason == "Failed to parse error data" => format!(
            "HTTP {} with a body that is not a Kubernetes Status; is the kubeconfig's server a Kubernetes API server?",
            status.code
        ),
        kube::Error::Api(status) => {
            let mut text = status.message.clone();
            if !text.is_empty() {
                text.push(' ');
            }
            text.push_str(&format!("(HTTP {}", status.code));
            if !status.reason.is_empty() {
                text.push(' ');
                text.push_str(&status.reason);
            }
            text.push(')');
            text
        }
        other => {
            let mut parts: Vec<String> = Vec::new();
            let mut next: Option<&dyn std::error::Error> = Some(other);
            while let Some(e) = next {
                let text = e.to_string();
                if !parts.iter().any(|p| p.contains(&text)) {
                    parts.push(text);
                }
                next = e.source();
            }
            parts.join(": ")
        }
    }
}

fn known_hint(known: &[String]) -> String {
    if known.is_empty() {
        "; no stages are declared".to_owned()
    } else {
        format!("; declared stages: {}", known.join(", "))
    }
}

impl Error {
    /// Whether the error is the user's input or configuration (exit 2) rather than a runtime
    /// failure (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Config { .. }
                | Self::Invalid { .. }
                | Self::UnknownStage { .. }
                | Self::NotRunnable { .. }
                | Self::NoKubeconfig { .. }
                | Self::InCluster { .. }
                | Self::Kubeconfig { .. }
        )
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use kube::core::Status;

    use super::*;

    #[test]
    fn api_errors_read_well() {
        let status = Status::failure("jobs.batch \"x\" not found", "NotFound").with_code(404);
        let err = Error::Api {
            action: "get job x".into(),
            error: kube::Error::Api(status.boxed()),
        };
        assert_eq!(
            err.to_string(),
            "get job x: jobs.batch \"x\" not found (HTTP 404 NotFound)"
        );

        let garbage = Status::failure("", "Failed to parse error data").with_code(404);
        let err = Error::Api {
            action: "apply job x".into(),
            error: kube::Error::Api(garbage.boxed()),
        };
        assert_eq!(
            err.to_string(),
            "apply job x: HTTP 404 with a body that is not a Kubernetes Status; is the kubeconfig's server a Kubernetes API server?"
        );
    }

    #[test]
    fn transport_errors_list_their_causes_once() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "connection refused");
        let err = Error::Unreachable {
            url: "https://k:6443/".into(),
            error: kube::Error::ReadEvents(io),
        };
        let text = err.to_string();
        assert!(
            text.starts_with("cluster at https://k:6443/ is unreachable: "),
            "{text}"
        );
        assert_eq!(text.matches("connection refused").count(), 1, "{text}");
        assert!(!err.is_usage());
    }
}
