//! The `[k8s]` defaults and `[stages.NAME.k8s]` tables of `mlops.toml`, parsed, validated and
//! merged into one [`JobSettings`] per stage.
//!
//! Only these two tables are read; every other section of the file is ignored.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::values::{self, QuantityKind};

/// The GPU resource name used when a stage asks for `gpu = N` without `gpu-resource`.
pub const DEFAULT_GPU_RESOURCE: &str = "nvidia.com/gpu";
/// The active deadline when neither the stage nor `[k8s]` sets `deadline`.
pub const DEFAULT_DEADLINE_SECS: u64 = 6 * 3600;
/// How long an `ErrImagePull`/`ImagePullBackOff` may last before the run fails.
pub const DEFAULT_IMAGE_PULL_GRACE_SECS: u64 = 30;
/// How long a pod may stay `Unschedulable` before the run fails.
pub const DEFAULT_UNSCHEDULABLE_GRACE_SECS: u64 = 120;
/// `ttlSecondsAfterFinished` when `[k8s] ttl-after-finished` is not set.
pub const DEFAULT_TTL_SECS: u64 = 3600;
/// The folder the data volume is mounted at in the pod.
pub const DEFAULT_WORKDIR: &str = "/work";

/// A toleration, as in the pod spec.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key (empty with `Exists` tolerates everything).
    #[serde(default)]
    pub key: Option<String>,
    /// `Exists` or `Equal` (the default).
    #[serde(default)]
    pub operator: Option<String>,
    /// The taint value for `Equal`.
    #[serde(default)]
    pub value: Option<String>,
    /// `NoSchedule`, `PreferNoSchedule` or `NoExecute`; empty matches all.
    #[serde(default)]
    pub effect: Option<String>,
    /// For `NoExecute`: how long the pod stays bound after the taint appears.
    #[serde(default)]
    pub toleration_seconds: Option<i64>,
}

/// A number or a string in TOML (`cpu = 2` and `cpu = "500m"` are both accepted).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
enum Scalar {
    Int(i64),
    Float(f64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Self::Int(i) => i.to_string(),
            Self::Float(f) => f.to_string(),
            Self::Text(s) => s.clone(),
        }
    }
}

/// What to do with a stage that has no `[stages.NAME.k8s]` table under `--executor k8s`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum WithoutK8sTable {
    /// Refuse the stage with a message saying how to fix it (the default).
    #[default]
    Refuse,
    /// Run it with the local executor.
    Local,
}

/// Raw `[k8s.data]`: the data-version init container and out push.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawData {
    remote: Option<String>,
    secret: Option<String>,
    image: Option<String>,
    workdir: Option<String>,
    fetch_outs: Option<bool>,
}

/// Keys allowed both in `[k8s]` (as defaults) and in `[stages.NAME.k8s]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawCommon {
    image: Option<String>,
    namespace: Option<String>,
    service_account: Option<String>,
    deadline: Option<Scalar>,
    backoff_limit: Option<i64>,
    retry_exit_codes: Option<Vec<i64>>,
    image_pull_policy: Option<String>,
    image_pull_secrets: Option<Vec<String>>,
    env: Option<BTreeMap<String, String>>,
    secret_env: Option<BTreeMap<String, String>>,
    node_selector: Option<BTreeMap<String, String>>,
    tolerations: Option<Vec<Toleration>>,
    labels: Option<BTreeMap<String, String>>,
    cpu: Option<Scalar>,
    memory: Option<Scalar>,
    cpu_limit: Option<Scalar>,
    memory_limit: Option<Scalar>,
    gpu: Option<Scalar>,
    gpu_resource: Option<String>,
}

/// Raw `[k8s]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawDefaults {
    #[serde(flatten)]
    common: RawCommon,
    ttl_after_finished: Option<Scalar>,
    image_pull_grace: Option<Scalar>,
    unschedulable_grace: Option<Scalar>,
    keep_on_failure: Option<bool>,
    without_k8s_table: Option<WithoutK8sTable>,
    data: Option<RawData>,
}

/// Raw `[stages.NAME.k8s]`.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RawStage {
    #[serde(flatten)]
    common: RawCommon,
    command: Option<Vec<String>>,
    data: Option<bool>,
}

/// Only what this crate reads from `mlops.toml`; every other key is ignored.
#[derive(Debug, Default, Deserialize)]
struct RawFile {
    k8s: Option<toml::Value>,
    #[serde(default)]
    stages: BTreeMap<String, toml::Value>,
}

/// The data-version settings: where the pod fetches deps from and pushes outs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataSettings {
    /// The remote URL (`s3://…`, `gs://…`, `https://…`) as the pod sees it.
    pub remote: String,
    /// The Secret whose keys become the containers' environment (remote credentials).
    pub secret: Option<String>,
    /// An image that carries the `mlops` binary (static), used by the init container.
    pub image: String,
    /// Where the working tree is materialised in the pod.
    pub workdir: String,
    /// Bring the outs the pod pushed back into the workspace after a successful run (default);
    /// when false they stay in the remote and only their hashes are recorded.
    pub fetch_outs: bool,
}

/// Everything needed to build one stage's Job, after merging the stage table over `[k8s]`.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct JobSettings {
    /// The container image.
    pub image: String,
    /// The namespace, if set (else the kubeconfig context's).
    pub namespace: Option<String>,
    /// The pod's service account.
    pub service_account: Option<String>,
    /// `activeDeadlineSeconds`.
    pub deadline_secs: u64,
    /// `backoffLimit`.
    pub backoff_limit: i32,
    /// Exit codes after which the pod may be retried (all others fail the Job at once).
    pub retry_exit_codes: Vec<i32>,
    /// `ttlSecondsAfterFinished`.
    pub ttl_secs: u64,
    /// `imagePullPolicy`.
    pub image_pull_policy: Option<String>,
    /// `imagePullSecrets`.
    pub image_pull_secrets: Vec<String>,
    /// Plain environment variables (merged over the stage's own `env`).
    pub env: BTreeMap<String, String>,
    /// Variables taken from Secrets: name → `secret/key`.
    pub secret_env: BTreeMap<String, (String, String)>,
    /// `nodeSelector`.
    pub node_selector: BTreeMap<String, String>,
    /// `tolerations`.
    pub tolerations: Vec<Toleration>,
    /// Extra labels on the Job and its pods.
    pub labels: BTreeMap<String, String>,
    /// Requests (`cpu`, `memory`, GPU resource).
    pub requests: BTreeMap<String, String>,
    /// Limits (`cpu`, `memory`, GPU resource).
    pub limits: BTreeMap<String, String>,
    /// The container command, overriding `sh -c CMD`.
    pub command: Option<Vec<String>>,
    /// How long an image pull may fail before the run fails.
    pub image_pull_grace_secs: u64,
    /// How long the pod may stay unschedulable before the run fails.
    pub unschedulable_grace_secs: u64,
    /// Keep the Job (and its pods) when it failed.
    pub keep_on_failure: bool,
    /// The data-version init container and out push, when `[k8s.data]` is set and the stage did
    /// not say `data = false`.
    pub data: Option<DataSettings>,
}

/// The project's Kubernetes configuration: `[k8s]` defaults and every stage's `k8s` table, all
/// validated.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct K8sConfig {
    defaults: RawDefaults,
    stages: BTreeMap<String, Option<RawStage>>,
}

/// Where a validation problem is: a dotted key path and the message.
#[derive(Debug)]
struct Problem {
    path: Vec<String>,
    message: String,
}

impl Problem {
    fn new(path: &[&str], message: String) -> Self {
        Self {
            path: path.iter().map(|s| (*s).to_owned()).collect(),
            message,
        }
    }
}

impl K8sConfig {
    /// Reads and validates `file` (normally `mlops.toml`). Errors name the line and column.
    pub fn load(file: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(file).map_err(|source| Error::Io {
            path: file.to_owned(),
            source,
        })?;
        Self::parse(&text, file)
    }

    /// Parses and validates the text of `file`. Errors name the line and column.
    pub fn parse(text: &str, file: &Path) -> Result<Self> {
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            Error::Config {
                file: file.to_owned(),
                line,
                column,
                message: e.message().to_owned(),
            }
        })?;
        let located = |p: Problem| locate(text, file, p);
        let defaults = match raw.k8s {
            Some(v) => parse_defaults(v).map_err(located)?,
            None => RawDefaults::default(),
        };
        let mut stages = BTreeMap::new();
        for (name, value) in raw.stages {
            let k8s = match value.get("k8s") {
                Some(v) => Some(parse_stage(&name, v.clone()).map_err(located)?),
                None => None,
            };
            stages.insert(name, k8s);
        }
        let config = Self { defaults, stages };
        for name in config.stages.keys() {
            if config.stages[name].is_some() {
                config
                    .resolve_inner(name, config.stages[name].as_ref())
                    .map_err(located)?;
            }
        }
        Ok(config)
    }

    /// A configuration from already-parsed tables (as the pipeline hands them over): `defaults`
    /// is the `[k8s]` table. Errors name the key.
    pub fn from_defaults_table(defaults: Option<&toml::Table>) -> Result<Self> {
        let defaults = match defaults {
            Some(t) => parse_defaults(toml::Value::Table(t.clone())).map_err(unlocated)?,
            None => RawDefaults::default(),
        };
        Ok(Self {
            defaults,
            stages: BTreeMap::new(),
        })
    }

    /// The declared stage names, sorted.
    pub fn stage_names(&self) -> Vec<String> {
        self.stages.keys().cloned().collect()
    }

    /// What to do with stages that have no `k8s` table.
    pub fn without_k8s_table(&self) -> WithoutK8sTable {
        self.defaults.without_k8s_table.unwrap_or_default()
    }

    /// The default namespace from `[k8s] namespace`, if set.
    pub fn namespace(&self) -> Option<&str> {
        self.defaults.common.namespace.as_deref()
    }

    /// The merged settings for stage `name` from the file this configuration was loaded from.
    /// Fails when the stage is unknown or has no `k8s` table.
    pub fn resolve(&self, name: &str, file: &Path) -> Result<JobSettings> {
        let Some(stage) = self.stages.get(name) else {
            return Err(Error::UnknownStage {
                stage: name.to_owned(),
                file: file.to_owned(),
                known: self.stage_names(),
            });
        };
        if stage.is_none() {
            return Err(Error::NotRunnable {
                stage: name.to_owned(),
                reason: format!(
                    "no [stages.{name}.k8s] table in {}: add one with at least `image = \"…\"` (or set [k8s] image)",
                    file.display()
                ),
            });
        }
        self.resolve_inner(name, stage.as_ref()).map_err(unlocated)
    }

    /// The merged settings for a stage whose `k8s` table is given directly (the pipeline's
    /// `StageJob::k8s`). Errors name the key.
    pub fn resolve_table(&self, name: &str, table: &toml::Table) -> Result<JobSettings> {
        let stage = parse_stage(name, toml::Value::Table(table.clone())).map_err(unlocated)?;
        self.resolve_inner(name, Some(&stage)).map_err(unlocated)
    }

    fn resolve_inner(&self, name: &str, stage: Option<&RawStage>) -> Result<JobSettings, Problem> {
        let d = &self.defaults;
        let empty = RawStage::default();
        let s = stage.unwrap_or(&empty);
        let sp = |key: &str| -> Vec<String> {
            vec!["stages".into(), name.into(), "k8s".into(), key.into()]
        };
        // Pick the stage's value, else the default's, remembering where it came from.
        macro_rules! pick {
            ($field:ident, $key:literal) => {
                match (&s.common.$field, &d.common.$field) {
                    (Some(v), _) => Some((v.clone(), sp($key))),
                    (None, Some(v)) => Some((v.clone(), vec!["k8s".to_owned(), $key.to_owned()])),
                    (None, None) => None,
                }
            };
        }
        let fail = |path: Vec<String>, message: String| Problem { path, message };

        let image = match pick!(image, "image") {
            Some((image, path)) => {
                if image.trim().is_empty() || image.chars().any(char::is_whitespace) {
                    return Err(fail(
                        path,
                        format!(
                            "invalid image `{image}`: must be an image reference like `python:3.12-slim`"
                        ),
                    ));
                }
                image
            }
            None => {
                return Err(fail(
                    sp("image"),
                    format!(
                        "stage `{name}` has no image: set `image` in [stages.{name}.k8s] or in [k8s]"
                    ),
                ));
            }
        };
        let namespace = match pick!(namespace, "namespace") {
            Some((ns, path)) => {
                values::check_dns_label(&ns, "namespace").map_err(|m| fail(path, m))?;
                Some(ns)
            }
            None => None,
        };
        let service_account = match pick!(service_account, "service-account") {
            Some((sa, path)) => {
                values::check_dns_subdomain(&sa, "service account").map_err(|m| fail(path, m))?;
                Some(sa)
            }
            None => None,
        };
        let deadline_secs = match pick!(deadline, "deadline") {
            Some((v, path)) => values::parse_duration(&v.text()).map_err(|m| fail(path, m))?,
            None => DEFAULT_DEADLINE_SECS,
        };
        let backoff_limit = match pick!(backoff_limit, "backoff-limit") {
            Some((v, path)) => i32::try_from(v)
                .ok()
                .filter(|n| (0..=100).contains(n))
                .ok_or_else(|| fail(path, format!("invalid backoff-limit `{v}`: use 0 to 100")))?,
            None => 0,
        };
        let retry_exit_codes = match pick!(retry_exit_codes, "retry-exit-codes") {
            Some((codes, path)) => {
                let mut out = Vec::new();
                for c in codes {
                    let c = i32::try_from(c)
                        .ok()
                        .filter(|c| (1..=255).contains(c))
                        .ok_or_else(|| {
                            fail(
                                path.clone(),
                                format!(
                                    "invalid exit code `{c}` in retry-exit-codes: use 1 to 255"
                                ),
                            )
                        })?;
                    out.push(c);
                }
                out.sort_unstable();
                out.dedup();
                out
            }
            None => Vec::new(),
        };
        let image_pull_policy = match pick!(image_pull_policy, "image-pull-policy") {
            Some((p, path)) => {
                if !matches!(p.as_str(), "Always" | "IfNotPresent" | "Never") {
                    return Err(fail(
                        path,
                        format!(
                            "invalid image-pull-policy `{p}`: use Always, IfNotPresent or Never"
                        ),
                    ));
                }
                Some(p)
            }
            None => None,
        };
        let image_pull_secrets = match pick!(image_pull_secrets, "image-pull-secrets") {
            Some((list, path)) => {
                for name in &list {
                    values::check_dns_subdomain(name, "image pull secret")
                        .map_err(|m| fail(path.clone(), m))?;
                }
                list
            }
            None => Vec::new(),
        };
        let mut env = d.common.env.clone().unwrap_or_default();
        env.extend(s.common.env.clone().unwrap_or_default());
        for key in env.keys() {
            if !is_env_name(key) {
                return Err(fail(
                    sp("env"),
                    format!("invalid environment variable name `{key}`"),
                ));
            }
        }
        let mut secret_env = BTreeMap::new();
        let mut raw_secret_env = d.common.secret_env.clone().unwrap_or_default();
        raw_secret_env.extend(s.common.secret_env.clone().unwrap_or_default());
        for (key, reference) in raw_secret_env {
            let bad = |m: String| fail(sp("secret-env"), m);
            if !is_env_name(&key) {
                return Err(bad(format!("invalid environment variable name `{key}`")));
            }
            let Some((secret, secret_key)) = reference.split_once('/') else {
                return Err(bad(format!(
                    "invalid secret reference `{reference}` for {key}: use `SECRET/KEY`"
                )));
            };
            values::check_dns_subdomain(secret, "secret name").map_err(bad)?;
            if secret_key.is_empty() {
                return Err(fail(
                    sp("secret-env"),
                    format!(
                        "invalid secret reference `{reference}` for {key}: the key after `/` is empty"
                    ),
                ));
            }
            secret_env.insert(key, (secret.to_owned(), secret_key.to_owned()));
        }
        let mut node_selector = d.common.node_selector.clone().unwrap_or_default();
        node_selector.extend(s.common.node_selector.clone().unwrap_or_default());
        let tolerations = match pick!(tolerations, "tolerations") {
            Some((list, path)) => {
                for t in &list {
                    check_toleration(t).map_err(|m| fail(path.clone(), m))?;
                }
                list
            }
            None => Vec::new(),
        };
        let mut labels = d.common.labels.clone().unwrap_or_default();
        labels.extend(s.common.labels.clone().unwrap_or_default());
        for (k, v) in &labels {
            if k.starts_with("mlops.dev/") || values::label_value(v) != *v || v.is_empty() {
                return Err(fail(
                    sp("labels"),
                    format!(
                        "invalid label `{k} = \"{v}\"`: values are at most 63 of [A-Za-z0-9_.-], keys must not use the reserved mlops.dev/ prefix"
                    ),
                ));
            }
        }

        let mut requests = BTreeMap::new();
        let mut limits = BTreeMap::new();
        let quantity =
            |pair: Option<(Scalar, Vec<String>)>, kind| -> Result<Option<String>, Problem> {
                match pair {
                    Some((v, path)) => values::check_quantity(&v.text(), kind)
                        .map(Some)
                        .map_err(|m| fail(path, m)),
                    None => Ok(None),
                }
            };
        if let Some(cpu) = quantity(pick!(cpu, "cpu"), QuantityKind::Cpu)? {
            requests.insert("cpu".to_owned(), cpu);
        }
        if let Some(cpu) = quantity(pick!(cpu_limit, "cpu-limit"), QuantityKind::Cpu)? {
            limits.insert("cpu".to_owned(), cpu);
        }
        let memory = quantity(pick!(memory, "memory"), QuantityKind::Memory)?;
        let memory_limit = quantity(pick!(memory_limit, "memory-limit"), QuantityKind::Memory)?;
        if let Some(m) = &memory {
            requests.insert("memory".to_owned(), m.clone());
        }
        // A memory request without a limit gets the same limit: a batch pod that outgrows its
        // request should be OOMKilled with a clear reason, not evicted unpredictably later.
        if let Some(m) = memory_limit.or(memory) {
            limits.insert("memory".to_owned(), m);
        }
        if let Some(gpus) = quantity(pick!(gpu, "gpu"), QuantityKind::Count)? {
            let resource = pick!(gpu_resource, "gpu-resource")
                .map_or_else(|| DEFAULT_GPU_RESOURCE.to_owned(), |(r, _)| r);
            if gpus != "0" {
                // Extended resources may only be limits (requests default to them).
                limits.insert(resource, gpus);
            }
        }

        let secs = |v: &Option<Scalar>, key: &str, default: u64| -> Result<u64, Problem> {
            match v {
                Some(v) => values::parse_duration(&v.text())
                    .map_err(|m| fail(vec!["k8s".to_owned(), key.to_owned()], m)),
                None => Ok(default),
            }
        };
        let ttl_secs = secs(
            &d.ttl_after_finished,
            "ttl-after-finished",
            DEFAULT_TTL_SECS,
        )?;
        let image_pull_grace_secs = secs(
            &d.image_pull_grace,
            "image-pull-grace",
            DEFAULT_IMAGE_PULL_GRACE_SECS,
        )?;
        let unschedulable_grace_secs = secs(
            &d.unschedulable_grace,
            "unschedulable-grace",
            DEFAULT_UNSCHEDULABLE_GRACE_SECS,
        )?;

        if s.command.as_ref().is_some_and(Vec::is_empty) {
            return Err(fail(
                sp("command"),
                "empty command: give at least the program, e.g. [\"python\", \"train.py\"]"
                    .to_owned(),
            ));
        }

        let data = match (&d.data, s.data) {
            (_, Some(false)) | (None, _) => {
                if s.data == Some(true) && d.data.is_none() {
                    return Err(fail(
                        sp("data"),
                        format!(
                            "stage `{name}` asks for data = true but [k8s.data] is not set: add [k8s.data] with `remote` and `image`"
                        ),
                    ));
                }
                None
            }
            (Some(raw), _) => Some(check_data(raw)?),
        };

        Ok(JobSettings {
            image,
            namespace,
            service_account,
            deadline_secs,
            backoff_limit,
            retry_exit_codes,
            ttl_secs,
            image_pull_policy,
            image_pull_secrets,
            env,
            secret_env,
            node_selector,
            tolerations,
            labels,
            requests,
            limits,
            command: s.command.clone(),
            image_pull_grace_secs,
            unschedulable_grace_secs,
            keep_on_failure: d.keep_on_failure.unwrap_or(false),
            data,
        })
    }
}

fn check_data(raw: &RawData) -> Result<DataSettings, Problem> {
    let path = |key: &str| vec!["k8s".to_owned(), "data".to_owned(), key.to_owned()];
    let remote = raw.remote.clone().ok_or_else(|| Problem {
        path: vec!["k8s".to_owned(), "data".to_owned()],
        message: "[k8s.data] needs `remote`: the URL of the project's remote as the pod reaches it, e.g. \"s3://bucket/mlops\"".to_owned(),
    })?;
    if !remote.contains("://") {
        return Err(Problem {
            path: path("remote"),
            message: format!(
                "invalid remote `{remote}`: the pod needs a URL it can reach (s3://, gs://, az://, http(s)://), not a local path"
            ),
        });
    }
    let image = raw.image.clone().ok_or_else(|| Problem {
        path: vec!["k8s".to_owned(), "data".to_owned()],
        message: "[k8s.data] needs `image`: an image that carries a static `mlops` binary"
            .to_owned(),
    })?;
    if let Some(secret) = &raw.secret {
        values::check_dns_subdomain(secret, "secret name").map_err(|m| Problem {
            path: path("secret"),
            message: m,
        })?;
    }
    let workdir = raw
        .workdir
        .clone()
        .unwrap_or_else(|| DEFAULT_WORKDIR.to_owned());
    if !workdir.starts_with('/') || workdir == "/" {
        return Err(Problem {
            path: path("workdir"),
            message: format!(
                "invalid workdir `{workdir}`: use an absolute folder other than `/`, e.g. \"/work\""
            ),
        });
    }
    Ok(DataSettings {
        remote,
        secret: raw.secret.clone(),
        image,
        workdir,
        fetch_outs: raw.fetch_outs.unwrap_or(true),
    })
}

fn check_toleration(t: &Toleration) -> Result<(), String> {
    if let Some(op) = &t.operator {
        if !matches!(op.as_str(), "Exists" | "Equal") {
            return Err(format!(
                "invalid toleration operator `{op}`: use Exists or Equal"
            ));
        }
        if op == "Exists" && t.value.is_some() {
            return Err("a toleration with operator Exists must not have a value".to_owned());
        }
    }
    if let Some(effect) = &t.effect
        && !matches!(
            effect.as_str(),
            "NoSchedule" | "PreferNoSchedule" | "NoExecute"
        )
    {
        return Err(format!(
            "invalid toleration effect `{effect}`: use NoSchedule, PreferNoSchedule or NoExecute"
        ));
    }
    if t.toleration_seconds.is_some() && t.effect.as_deref() != Some("NoExecute") {
        return Err("toleration-seconds only applies to effect NoExecute".to_owned());
    }
    Ok(())
}

fn is_env_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

fn parse_defaults(value: toml::Value) -> Result<RawDefaults, Problem> {
    RawDefaults::deserialize(value)
        .map_err(|e| Problem::new(&["k8s"], format!("in [k8s]: {}", e.message())))
}

fn parse_stage(name: &str, value: toml::Value) -> Result<RawStage, Problem> {
    RawStage::deserialize(value).map_err(|e| {
        Problem::new(
            &["stages", name, "k8s"],
            format!("in [stages.{name}.k8s]: {}", e.message()),
        )
    })
}

fn unlocated(p: Problem) -> Error {
    Error::Invalid {
        key: p.path.join("."),
        message: p.message,
    }
}

/// Finds the problem's key in the source text (or the nearest enclosing key) for a line:column.
fn locate(text: &str, file: &Path, p: Problem) -> Error {
    let offset = toml_edit::Document::parse(text).ok().and_then(|doc| {
        let mut spans = Vec::new();
        let mut item = doc.as_item();
        for key in &p.path {
            match item.get(key.as_str()) {
                Some(next) => {
                    item = next;
                    if let Some(span) = item.span() {
                        spans.push(span.start);
                    } else if let Some(span) = item.as_table().and_then(toml_edit::Table::span) {
                        spans.push(span.start);
                    }
                }
                None => break,
            }
        }
        spans.last().copied()
    });
    let (line, column) = offset.map_or((1, 1), |o| line_col(text, o));
    Error::Config {
        file: file.to_owned(),
        line,
        column,
        message: p.message,
    }
}

/// 1-based line and column of a byte offset.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The path of `mlops.toml` under `root`.
pub fn config_path(root: &Path) -> PathBuf {
    root.join("mlops.toml")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<K8sConfig> {
        K8sConfig::parse(text, Path::new("mlops.toml"))
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    const BASE: &str = r#"
[k8s]
namespace = "ml"
image = "python:3.12-slim"
env = { PYTHONUNBUFFERED = "1" }

[stages.prepare]
cmd = "python prep.py"

[stages.train]
cmd = "python train.py"
deps = ["data.csv"]

[stages.train.k8s]
cpu = "500m"
memory = "512Mi"
gpu = 1
deadline = "2h"
env = { SEED = "7" }
"#;

    #[test]
    fn stage_settings_merge_over_defaults() {
        let cfg = parse(BASE).unwrap();
        let s = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
        assert_eq!(s.image, "python:3.12-slim");
        assert_eq!(s.namespace.as_deref(), Some("ml"));
        assert_eq!(s.deadline_secs, 7200);
        assert_eq!(s.backoff_limit, 0);
        assert_eq!(s.requests["cpu"], "500m");
        assert_eq!(s.limits["memory"], "512Mi");
        assert_eq!(s.limits[DEFAULT_GPU_RESOURCE], "1");
        assert_eq!(
            s.env.keys().collect::<Vec<_>>(),
            ["PYTHONUNBUFFERED", "SEED"]
        );
        assert_eq!(cfg.stage_names(), ["prepare", "train"]);
    }

    #[test]
    fn invalid_memory_names_line_column_and_fix() {
        let text = BASE.replace("memory = \"512Mi\"", "memory = \"500mb\"");
        let e = err(&text);
        assert!(
            e.starts_with("mlops.toml:16:10: invalid quantity `500mb`: `mb` is not a unit"),
            "{e}"
        );
    }

    #[test]
    fn invalid_namespace_points_at_the_default() {
        let e = err(&BASE.replace("namespace = \"ml\"", "namespace = \"ML_Team\""));
        assert!(
            e.starts_with("mlops.toml:3:13: invalid namespace `ML_Team`"),
            "{e}"
        );
    }

    #[test]
    fn bad_deadline_and_unknown_key_and_wrong_type() {
        let e = err(&BASE.replace("deadline = \"2h\"", "deadline = \"two hours\""));
        assert!(
            e.starts_with("mlops.toml:18:12: invalid duration `two hours`"),
            "{e}"
        );
        let e = err(&BASE.replace("cpu = \"500m\"", "cpus = \"500m\""));
        assert!(e.contains("unknown field `cpus`"), "{e}");
        assert!(
            e.starts_with("mlops.toml:15:") || e.starts_with("mlops.toml:14:"),
            "{e}"
        );
        let e = err("[k8s]\nimage = 3\n");
        assert!(e.starts_with("mlops.toml:"), "{e}");
        let e = err("[k8s\n");
        assert!(e.starts_with("mlops.toml:1:"), "{e}");
    }

    #[test]
    fn unknown_stage_lists_known_ones() {
        let cfg = parse(BASE).unwrap();
        let e = cfg.resolve("trian", Path::new("mlops.toml")).unwrap_err();
        assert!(e.is_usage());
        assert_eq!(
            e.to_string(),
            "unknown stage `trian` in mlops.toml; declared stages: prepare, train"
        );
    }

    #[test]
    fn stage_without_table_is_not_runnable() {
        let cfg = parse(BASE).unwrap();
        let e = cfg
            .resolve("prepare", Path::new("mlops.toml"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no [stages.prepare.k8s] table"), "{e}");
    }

    #[test]
    fn missing_image_is_reported() {
        let e = err("[stages.a]\ncmd = \"x\"\n[stages.a.k8s]\ncpu = \"1\"\n");
        assert!(e.contains("stage `a` has no image"), "{e}");
    }

    #[test]
    fn table_path_errors_name_the_key() {
        let cfg = K8sConfig::from_defaults_table(None).unwrap();
        let mut t = toml::Table::new();
        t.insert("image".into(), "x:1".into());
        t.insert("memory".into(), "1 GB".into());
        let e = cfg.resolve_table("train", &t).unwrap_err().to_string();
        assert!(
            e.starts_with("stages.train.k8s.memory: invalid quantity `1 GB`"),
            "{e}"
        );
    }

    #[test]
    fn data_settings_and_secret_env() {
        let text = format!(
            "{BASE}\n[k8s.data]\nremote = \"s3://b/mlops\"\nsecret = \"remote-creds\"\nimage = \"ghcr.io/x/mlops:0.1\"\n"
        )
        .replace("env = { SEED = \"7\" }", "env = { SEED = \"7\" }\nsecret-env = { WANDB_API_KEY = \"wandb/key\" }");
        let s = parse(&text)
            .unwrap()
            .resolve("train", Path::new("mlops.toml"))
            .unwrap();
        let data = s.data.unwrap();
        assert_eq!(data.workdir, "/work");
        assert_eq!(data.secret.as_deref(), Some("remote-creds"));
        assert_eq!(
            s.secret_env["WANDB_API_KEY"],
            ("wandb".to_owned(), "key".to_owned())
        );
        let bad = text.replace("s3://b/mlops", "/mnt/remote");
        assert!(err(&bad).contains("invalid remote `/mnt/remote`"));
    }

    proptest::proptest! {
        #[test]
        fn any_memory_value_is_accepted_or_located(value in "[ -!#-\\[\\]-~]{0,12}") {
            let text = BASE.replace("memory = \"512Mi\"", &format!("memory = \"{value}\""));
            match parse(&text) {
                Ok(cfg) => {
                    let s = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
                    proptest::prop_assert_eq!(&s.requests["memory"], &value);
                }
                Err(Error::Config { line, column, message, .. }) => {
                    proptest::prop_assert_eq!((line, column), (16, 10), "{}", message);
                    proptest::prop_assert!(message.contains("invalid"), "{}", message);
                }
                Err(other) => proptest::prop_assert!(false, "unexpected error {other}"),
            }
        }

        #[test]
        fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
            let _ = parse(&text);
        }
    }

    #[test]
    fn tolerations_are_checked() {
        let text = format!("{BASE}tolerations = [{{ key = \"gpu\", operator = \"Maybe\" }}]\n");
        assert!(err(&text).contains("invalid toleration operator `Maybe`"));
    }
}
