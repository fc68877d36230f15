//! The `batch/v1` Job for one stage: built from the stage (command, deps, outs) and its merged
//! [`JobSettings`], serialised to deterministic YAML for `mlops k8s render`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::batch::v1::{
    Job, JobSpec, PodFailurePolicy, PodFailurePolicyOnExitCodesRequirement,
    PodFailurePolicyOnPodConditionsPattern, PodFailurePolicyRule,
};
use k8s_openapi::api::core::v1::{
    Container, EmptyDirVolumeSource, EnvFromSource, EnvVar, EnvVarSource, LocalObjectReference,
    PodSpec, PodTemplateSpec, ResourceRequirements, SecretEnvSource, SecretKeySelector,
    Toleration as K8sToleration, Volume, VolumeMount,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use mlops_pipeline::StageJob;

use crate::config::JobSettings;
use crate::error::Result;
use crate::values;

/// The name of the container that runs the stage's command.
pub const MAIN_CONTAINER: &str = "main";
/// The name of the init container that fetches the deps by hash.
pub const FETCH_CONTAINER: &str = "mlops-fetch";
/// Where the init container installs the `mlops` binary for the main container.
pub const TOOLS_DIR: &str = "/mlops/bin";
/// Label: the (sanitised) stage name.
pub const LABEL_STAGE: &str = "mlops.dev/stage";
/// Label: the first 32 hex digits of the stage fingerprint.
pub const LABEL_FINGERPRINT: &str = "mlops.dev/fingerprint";
/// Label: the per-run suffix, so one run's objects can be selected.
pub const LABEL_RUN: &str = "mlops.dev/run";
/// Annotation: the Git commit the run started from.
pub const ANNOTATION_COMMIT: &str = "mlops.dev/git-commit";
/// Annotation: JSON object of dep path → content hash.
pub const ANNOTATION_DEPS: &str = "mlops.dev/deps";

/// A dependency as the Job needs it: path relative to the repository root and content hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    /// Path relative to the repository root.
    pub path: PathBuf,
    /// `blake3:…`.
    pub hash: String,
    /// Whether it is a directory (its hash names a manifest).
    pub dir: bool,
}

/// The parts of a stage the Job is made from, independent of where they were read.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StageInfo {
    /// The stage name.
    pub name: String,
    /// The shell command.
    pub cmd: String,
    /// The working folder relative to the repository root (empty for the root).
    pub wdir: PathBuf,
    /// The stage's own environment variables.
    pub env: BTreeMap<String, String>,
    /// Dependencies with their content hashes, sorted by path.
    pub deps: Vec<Dep>,
    /// Declared outputs and metric files, relative to the root, sorted.
    pub outs: Vec<PathBuf>,
    /// The stage fingerprint (`blake3:…`).
    pub fingerprint: String,
}

impl StageInfo {
    /// A stage with a name, command and fingerprint, and nothing else.
    pub fn new(
        name: impl Into<String>,
        cmd: impl Into<String>,
        fingerprint: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            cmd: cmd.into(),
            wdir: PathBuf::new(),
            env: BTreeMap::new(),
            deps: Vec::new(),
            outs: Vec::new(),
            fingerprint: fingerprint.into(),
        }
    }

    /// Adds a dependency with its hash (kept sorted by path).
    #[must_use]
    pub fn with_dep(mut self, path: impl Into<PathBuf>, hash: impl Into<String>) -> Self {
        self.deps.push(Dep {
            path: path.into(),
            hash: hash.into(),
            dir: false,
        });
        self.deps.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }

    /// Adds a directory dependency (its hash names a manifest), kept sorted by path.
    #[must_use]
    pub fn with_dir_dep(mut self, path: impl Into<PathBuf>, hash: impl Into<String>) -> Self {
        self.deps.push(Dep {
            path: path.into(),
            hash: hash.into(),
            dir: true,
        });
        self.deps.sort_by(|a, b| a.path.cmp(&b.path));
        self
    }

    /// Adds a declared output (kept sorted).
    #[must_use]
    pub fn with_out(mut self, path: impl Into<PathBuf>) -> Self {
        self.outs.push(path.into());
        self.outs.sort();
        self.outs.dedup();
        self
    }

    /// Sets the working folder relative to the root.
    #[must_use]
    pub fn with_wdir(mut self, wdir: impl Into<PathBuf>) -> Self {
        self.wdir = wdir.into();
        self
    }

    /// Adds an environment variable.
    #[must_use]
    pub fn with_env(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(key.into(), value.into());
        self
    }
}

impl From<&StageJob> for StageInfo {
    fn from(job: &StageJob) -> Self {
        let mut info = StageInfo::new(&job.name, &job.cmd, &job.fingerprint);
        info.wdir = job
            .wdir
            .strip_prefix(&job.root)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        info.env = job.env.clone();
        for d in &job.deps {
            info = info.with_dep(&d.path, &d.hash);
        }
        for d in &mut info.deps {
            d.dir = job.root.join(&d.path).is_dir();
        }
        for o in job.outs.iter().chain(&job.metrics) {
            info = info.with_out(o);
        }
        info
    }
}

/// The per-run identity of a Job: its name, namespace and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct JobIdentity {
    /// The Job name (a DNS label).
    pub name: String,
    /// The namespace it is created in.
    pub namespace: String,
    /// The per-run suffix (empty for `render`).
    pub run: String,
    /// The Git commit of the workspace, if known.
    pub git_commit: Option<String>,
}

impl JobIdentity {
    /// The identity for `stage`: name `mlops-<stage>-<8 hex of fingerprint>[-<run>]`, always a
    /// valid DNS label of at most 63 characters. An empty `run` gives the deterministic name used
    /// by `render`.
    pub fn new(stage: &StageInfo, namespace: impl Into<String>, run: impl Into<String>) -> Self {
        let run = values::dns_fragment(&run.into(), 12);
        let run = if run == "stage" { String::new() } else { run };
        let fp = fingerprint_hex(&stage.fingerprint);
        let fp8: String = fp.chars().take(8).collect();
        let fixed = "mlops-".len() + fp8.len() + 1 + if run.is_empty() { 0 } else { run.len() + 1 };
        let frag = values::dns_fragment(&stage.name, 63 - fixed);
        let mut name = format!("mlops-{frag}");
        if !fp8.is_empty() {
            name.push('-');
            name.push_str(&fp8);
        }
        if !run.is_empty() {
            name.push('-');
            name.push_str(&run);
        }
        Self {
            name,
            namespace: namespace.into(),
            run,
            git_commit: None,
        }
    }

    /// Sets the Git commit recorded in the annotations.
    #[must_use]
    pub fn with_git_commit(mut self, commit: Option<String>) -> Self {
        self.git_commit = commit;
        self
    }
}

/// The lowercase hex part of a `blake3:…` fingerprint (label-safe).
fn fingerprint_hex(fp: &str) -> String {
    let hex = fp.rsplit(':').next().unwrap_or(fp);
    hex.chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// Builds the Job for `stage` with `settings` and `id`.
pub fn build_job(stage: &StageInfo, settings: &JobSettings, id: &JobIdentity) -> Job {
    let mut labels = settings.labels.clone();
    labels.insert(
        "app.kubernetes.io/managed-by".to_owned(),
        "mlops".to_owned(),
    );
    labels.insert(LABEL_STAGE.to_owned(), values::label_value(&stage.name));
    let fp_label: String = fingerprint_hex(&stage.fingerprint)
        .chars()
        .take(32)
        .collect();
    if !fp_label.is_empty() {
        labels.insert(LABEL_FINGERPRINT.to_owned(), fp_label);
    }
    if !id.run.is_empty() {
        labels.insert(LABEL_RUN.to_owned(), id.run.clone());
    }
    let mut annotations = BTreeMap::new();
    annotations.insert("mlops.dev/stage-name".to_owned(), stage.name.clone());
    annotations.insert(
        "mlops.dev/fingerprint".to_owned(),
        stage.fingerprint.clone(),
    );
    annotations.insert("mlops.dev/cmd".to_owned(), stage.cmd.clone());
    if let Some(commit) = &id.git_commit {
        annotations.insert(ANNOTATION_COMMIT.to_owned(), commit.clone());
    }
    let deps: serde_json::Map<String, serde_json::Value> = stage
        .deps
        .iter()
        .map(|d| {
            (
                slash_path(&d.path),
                serde_json::Value::String(d.hash.clone()),
            )
        })
        .collect();
    annotations.insert(
        ANNOTATION_DEPS.to_owned(),
        serde_json::Value::Object(deps).to_string(),
    );

    let main = main_container(stage, settings);
    let mut pod = PodSpec {
        restart_policy: Some("Never".to_owned()),
        containers: vec![main],
        service_account_name: settings.service_account.clone(),
        node_selector: non_empty_map(&settings.node_selector),
        tolerations: non_empty(settings.tolerations.iter().map(toleration).collect()),
        image_pull_secrets: non_empty(
            settings
                .image_pull_secrets
                .iter()
                .map(|n| LocalObjectReference { name: n.clone() })
                .collect(),
        ),
        ..PodSpec::default()
    };
    if let Some(data) = &settings.data {
        pod.init_containers = Some(vec![fetch_container(stage, settings, data)]);
        pod.volumes = Some(vec![empty_dir("work"), empty_dir("mlops-bin")]);
    }

    Job {
        metadata: ObjectMeta {
            name: Some(id.name.clone()),
            namespace: Some(id.namespace.clone()),
            labels: Some(labels.clone()),
            annotations: Some(annotations),
            ..ObjectMeta::default()
        },
        spec: Some(JobSpec {
            backoff_limit: Some(settings.backoff_limit),
            active_deadline_seconds: Some(
                i64::try_from(settings.deadline_secs).unwrap_or(i64::MAX),
            ),
            ttl_seconds_after_finished: Some(i32::try_from(settings.ttl_secs).unwrap_or(i32::MAX)),
            pod_failure_policy: Some(failure_policy(settings)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            ..JobSpec::default()
        }),
        status: None,
    }
}

/// Evictions and preemptions do not count against the backoff limit; any exit code outside
/// `retry-exit-codes` fails the Job at once, whatever the backoff limit.
fn failure_policy(settings: &JobSettings) -> PodFailurePolicy {
    let mut not_retriable = vec![0];
    not_retriable.extend(&settings.retry_exit_codes);
    PodFailurePolicy {
        rules: vec![
            PodFailurePolicyRule {
                action: "Ignore".to_owned(),
                on_pod_conditions: Some(vec![PodFailurePolicyOnPodConditionsPattern {
                    type_: "DisruptionTarget".to_owned(),
                    status: Some("True".to_owned()),
                }]),
                ..PodFailurePolicyRule::default()
            },
            PodFailurePolicyRule {
                action: "FailJob".to_owned(),
                on_exit_codes: Some(PodFailurePolicyOnExitCodesRequirement {
                    container_name: Some(MAIN_CONTAINER.to_owned()),
                    operator: "NotIn".to_owned(),
                    values: not_retriable,
                }),
                ..PodFailurePolicyRule::default()
            },
        ],
    }
}

fn main_container(stage: &StageInfo, settings: &JobSettings) -> Container {
    let user_command = settings
        .command
        .clone()
        .unwrap_or_else(|| vec!["sh".to_owned(), "-c".to_owned(), stage.cmd.clone()]);
    let mut env: BTreeMap<String, String> = stage.env.clone();
    env.extend(settings.env.clone());
    env.insert("MLOPS_STAGE".to_owned(), stage.name.clone());
    env.insert("MLOPS_FINGERPRINT".to_owned(), stage.fingerprint.clone());
    let mut env_vars: Vec<EnvVar> = env
        .into_iter()
        .map(|(name, value)| EnvVar {
            name,
            value: Some(value),
            value_from: None,
        })
        .collect();
    env_vars.extend(
        settings
            .secret_env
            .iter()
            .map(|(name, (secret, key))| EnvVar {
                name: name.clone(),
                value: None,
                value_from: Some(EnvVarSource {
                    secret_key_ref: Some(SecretKeySelector {
                        name: secret.clone(),
                        key: key.clone(),
                        optional: Some(false),
                    }),
                    ..EnvVarSource::default()
                }),
            }),
    );
    env_vars.sort_by(|a, b| a.name.cmp(&b.name));

    let mut container = Container {
        name: MAIN_CONTAINER.to_owned(),
        image: Some(settings.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(user_command.clone()),
        env: non_empty(env_vars),
        resources: resources(settings),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    };
    if let Some(data) = &settings.data {
        let mut command = vec![
            format!("{TOOLS_DIR}/mlops"),
            "k8s".to_owned(),
            "pod-run".to_owned(),
            "--remote".to_owned(),
            data.remote.clone(),
            "--root".to_owned(),
            data.workdir.clone(),
        ];
        for out in &stage.outs {
            command.push("--out".to_owned());
            command.push(slash_path(out));
        }
        command.push("--".to_owned());
        command.extend(user_command);
        container.command = Some(command);
        container.working_dir = Some(if stage.wdir.as_os_str().is_empty() {
            data.workdir.clone()
        } else {
            format!(
                "{}/{}",
                data.workdir.trim_end_matches('/'),
                slash_path(&stage.wdir)
            )
        });
        container.volume_mounts = Some(data_mounts(&data.workdir));
        container.env_from = secret_env_from(data.secret.as_deref());
    }
    container
}

fn fetch_container(
    stage: &StageInfo,
    settings: &JobSettings,
    data: &crate::config::DataSettings,
) -> Container {
    let mut command = vec![
        "mlops".to_owned(),
        "k8s".to_owned(),
        "pod-fetch".to_owned(),
        "--remote".to_owned(),
        data.remote.clone(),
        "--root".to_owned(),
        data.workdir.clone(),
        "--install".to_owned(),
        format!("{TOOLS_DIR}/mlops"),
    ];
    command.extend(stage.deps.iter().map(crate::pod::dep_arg));
    Container {
        name: FETCH_CONTAINER.to_owned(),
        image: Some(data.image.clone()),
        image_pull_policy: settings.image_pull_policy.clone(),
        command: Some(command),
        env_from: secret_env_from(data.secret.as_deref()),
        volume_mounts: Some(data_mounts(&data.workdir)),
        termination_message_policy: Some("FallbackToLogsOnError".to_owned()),
        ..Container::default()
    }
}

fn data_mounts(workdir: &str) -> Vec<VolumeMount> {
    vec![
        VolumeMount {
            name: "work".to_owned(),
            mount_path: workdir.to_owned(),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "mlops-bin".to_owned(),
            mount_path: TOOLS_DIR.to_owned(),
            ..VolumeMount::default()
        },
    ]
}

fn secret_env_from(secret: Option<&str>) -> Option<Vec<EnvFromSource>> {
    secret.map(|name| {
        vec![EnvFromSource {
            secret_ref: Some(SecretEnvSource {
                name: name.to_owned(),
                optional: Some(false),
            }),
            ..EnvFromSource::default()
        }]
    })
}

fn empty_dir(name: &str) -> Volume {
    Volume {
        name: name.to_owned(),
        empty_dir: Some(EmptyDirVolumeSource::default()),
        ..Volume::default()
    }
}

fn resources(settings: &JobSettings) -> Option<ResourceRequirements> {
    if settings.requests.is_empty() && settings.limits.is_empty() {
        return None;
    }
    let q = |m: &BTreeMap<String, String>| {
        (!m.is_empty()).then(|| {
            m.iter()
                .map(|(k, v)| (k.clone(), Quantity(v.clone())))
                .collect()
        })
    };
    Some(ResourceRequirements {
        requests: q(&settings.requests),
        limits: q(&settings.limits),
        ..ResourceRequirements::default()
    })
}

fn toleration(t: &crate::config::Toleration) -> K8sToleration {
    K8sToleration {
        key: t.key.clone(),
        operator: t.operator.clone(),
        value: t.value.clone(),
        effect: t.effect.clone(),
        toleration_seconds: t.toleration_seconds,
    }
}

fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

fn non_empty_map(m: &BTreeMap<String, String>) -> Option<BTreeMap<String, String>> {
    (!m.is_empty()).then(|| m.clone())
}

/// A relative path with `/` separators, as the pod (Linux) sees it.
fn slash_path(p: &Path) -> String {
    p.components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// The Job as YAML: stable field order (the API's), sorted maps, valid for `kubectl apply -f -`.
pub fn render_yaml(job: &Job) -> Result<String> {
    Ok(serde_yaml::to_string(job)?)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    proptest! {
        #[test]
        fn job_names_are_always_dns_labels(stage in ".{0,100}", fp in "(blake3:)?[0-9a-f]{0,64}", run in "[a-z0-9]{0,20}") {
            let info = StageInfo::new(stage, "true", fp);
            let id = JobIdentity::new(&info, "default", run);
            prop_assert!(crate::values::check_dns_label(&id.name, "job name").is_ok(), "{}", id.name);
            prop_assert!(id.name.starts_with("mlops-"));
        }

        #[test]
        fn labels_are_valid_for_any_stage(stage in ".{0,100}", fp in "[0-9a-f]{0,64}") {
            let info = StageInfo::new(stage, "true", format!("blake3:{fp}"));
            let settings = crate::K8sConfig::parse(
                "[stages.s]\ncmd = \"x\"\n[stages.s.k8s]\nimage = \"busybox\"\n",
                Path::new("mlops.toml"),
            ).unwrap().resolve("s", Path::new("mlops.toml")).unwrap();
            let job = build_job(&info, &settings, &JobIdentity::new(&info, "default", "r1"));
            for (k, v) in job.metadata.labels.unwrap() {
                prop_assert!(v.len() <= 63, "{k}={v}");
                prop_assert_eq!(crate::values::label_value(&v), v.clone());
            }
        }
    }
}
