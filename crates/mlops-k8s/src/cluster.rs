//! Connecting to a cluster: which kubeconfig, which context and namespace, and a client with a
//! short connect timeout so an unreachable cluster fails in seconds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, Result};

/// How long to wait for a TCP/TLS connection to the API server before calling it unreachable.
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where and how to connect. The default reads `KUBECONFIG` or `~/.kube/config` and uses the
/// current context and its namespace.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ClusterOptions {
    /// An explicit kubeconfig file (`--kubeconfig`), instead of `KUBECONFIG`/`~/.kube/config`.
    pub kubeconfig: Option<PathBuf>,
    /// A context other than the current one.
    pub context: Option<String>,
    /// A namespace overriding the context's (and `[k8s] namespace`).
    pub namespace: Option<String>,
    /// The connect timeout.
    pub connect_timeout: Duration,
    /// The value of `KUBECONFIG` (taken from the environment by [`ClusterOptions::from_env`]).
    pub kubeconfig_env: Option<String>,
    /// The home folder, for `~/.kube/config`.
    pub home: Option<PathBuf>,
    /// Running in a pod (`KUBERNETES_SERVICE_HOST` set): without a kubeconfig, use the pod's
    /// service account.
    pub in_cluster: bool,
}

impl Default for ClusterOptions {
    fn default() -> Self {
        Self {
            kubeconfig: None,
            context: None,
            namespace: None,
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            kubeconfig_env: None,
            home: None,
            in_cluster: false,
        }
    }
}

impl ClusterOptions {
    /// Options reading `KUBECONFIG` and `HOME` from the process environment.
    pub fn from_env() -> Self {
        Self {
            kubeconfig_env: std::env::var("KUBECONFIG").ok().filter(|v| !v.is_empty()),
            home: std::env::var_os("HOME").map(PathBuf::from),
            in_cluster: std::env::var_os("KUBERNETES_SERVICE_HOST").is_some(),
            ..Self::default()
        }
    }

    /// Uses this kubeconfig file.
    #[must_use]
    pub fn with_kubeconfig(mut self, path: Option<PathBuf>) -> Self {
        self.kubeconfig = path;
        self
    }

    /// Uses this context.
    #[must_use]
    pub fn with_context(mut self, context: Option<String>) -> Self {
        self.context = context;
        self
    }

    /// Uses this namespace.
    #[must_use]
    pub fn with_namespace(mut self, namespace: Option<String>) -> Self {
        self.namespace = namespace;
        self
    }

    /// The kubeconfig files to read, in order: `--kubeconfig`, else every existing entry of
    /// `KUBECONFIG`, else `~/.kube/config`. Fails naming every place looked at when none exists.
    pub fn kubeconfig_files(&self) -> Result<Vec<PathBuf>> {
        let mut looked = Vec::new();
        if let Some(path) = &self.kubeconfig {
            if path.is_file() {
                return Ok(vec![path.clone()]);
            }
            return Err(Error::NoKubeconfig {
                looked: format!("--kubeconfig {}", path.display()),
            });
        }
        if let Some(env) = &self.kubeconfig_env {
            let paths: Vec<PathBuf> = std::env::split_paths(env)
                .filter(|p| !p.as_os_str().is_empty())
                .collect();
            let existing: Vec<PathBuf> = paths.iter().filter(|p| p.is_file()).cloned().collect();
            if !existing.is_empty() {
                return Ok(existing);
            }
            looked.push(format!("KUBECONFIG={env}"));
        } else {
            looked.push("KUBECONFIG (not set)".to_owned());
        }
        match &self.home {
            Some(home) => {
                let default = home.join(".kube").join("config");
                if default.is_file() {
                    return Ok(vec![default]);
                }
                looked.push(default.display().to_string());
            }
            None => looked.push("~/.kube/config (HOME not set)".to_owned()),
        }
        Err(Error::NoKubeconfig {
            looked: looked.join(", "),
        })
    }
}

/// A connected client with the namespace to use.
#[derive(Clone)]
pub struct Cluster {
    /// The client.
    pub client: kube::Client,
    /// The namespace given in the options (`--namespace`): wins over everything.
    pub namespace_override: Option<String>,
    /// The kubeconfig context's namespace, else `default`.
    pub context_namespace: String,
    /// The API server URL (for messages).
    pub url: String,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("namespace", &self.context_namespace)
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl Cluster {
    /// The namespace a Job goes to: `--namespace`, else the stage's or `[k8s]` namespace, else the
    /// kubeconfig context's.
    pub fn namespace_for(&self, configured: Option<&str>) -> String {
        self.namespace_override
            .clone()
            .or_else(|| configured.map(str::to_owned))
            .unwrap_or_else(|| self.context_namespace.clone())
    }

    /// Loads the kubeconfig and builds a client. Does not contact the server (the first request
    /// does, and fails within the connect timeout when the server is unreachable). Must be called
    /// inside a Tokio runtime.
    pub async fn connect(options: &ClusterOptions) -> Result<Self> {
        // With both ring and aws-lc-rs linked (the CLI's cloud remotes bring the second), rustls
        // cannot choose by itself: pick ring, the one kube is built with. Already set is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let files = match options.kubeconfig_files() {
            Ok(files) => files,
            Err(Error::NoKubeconfig { looked })
                if options.kubeconfig.is_none() && options.in_cluster =>
            {
                let config = kube::Config::incluster()
                    .map_err(|source| Error::InCluster { looked, source })?;
                return Self::from_config(config, options);
            }
            Err(e) => return Err(e),
        };
        let mut merged: Option<Kubeconfig> = None;
        for file in &files {
            let kc = Kubeconfig::read_from(file).map_err(|source| Error::Kubeconfig {
                path: file.clone(),
                source,
            })?;
            merged = Some(match merged {
                None => kc,
                Some(m) => m.merge(kc).map_err(|source| Error::Kubeconfig {
                    path: file.clone(),
                    source,
                })?,
            });
        }
        let first = files.first().cloned().unwrap_or_default();
        let Some(kubeconfig) = merged else {
            return Err(Error::NoKubeconfig {
                looked: first.display().to_string(),
            });
        };
        Self::from_kubeconfig(kubeconfig, &first, options).await
    }

    /// Builds a client from a parsed kubeconfig (`path` is only used in messages).
    pub async fn from_kubeconfig(
        kubeconfig: Kubeconfig,
        path: &Path,
        options: &ClusterOptions,
    ) -> Result<Self> {
        let kube_options = KubeConfigOptions {
            context: options.context.clone(),
            ..KubeConfigOptions::default()
        };
        let config = kube::Config::from_custom_kubeconfig(kubeconfig, &kube_options)
            .await
            .map_err(|source| Error::Kubeconfig {
                path: path.to_owned(),
                source,
            })?;
        Self::from_config(config, options)
    }

    /// Builds a client from a client configuration, with the options' timeouts and namespace.
    /// Must be called inside a Tokio runtime.
    pub fn from_config(mut config: kube::Config, options: &ClusterOptions) -> Result<Self> {
        config.connect_timeout = Some(options.connect_timeout);
        // Quick failure on a dead server; watches and log streams set their own timeouts.
        config.write_timeout = Some(Duration::from_secs(30));
        let url = config.cluster_url.to_string();
        let context_namespace = config.default_namespace.clone();
        let client = kube::Client::try_from(config).map_err(|error| Error::Unreachable {
            url: url.clone(),
            error,
        })?;
        Ok(Self {
            client,
            namespace_override: options.namespace.clone(),
            context_namespace,
            url,
        })
    }
}
