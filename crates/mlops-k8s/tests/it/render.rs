//! Job manifests: deterministic YAML, snapshots of the plain and data-mode Jobs, and the fields
//! Kubernetes requires for a finite batch step.

use std::path::Path;

use k8s_openapi::api::batch::v1::Job;
use mlops_k8s::{JobIdentity, StageInfo, build_job, render_yaml};

use crate::config;

const TOML: &str = r#"
[k8s]
namespace = "ml"
image = "python:3.12-slim"
service-account = "mlops-runner"
ttl-after-finished = "30m"
env = { PYTHONUNBUFFERED = "1" }
labels = { team = "vision" }

[stages.prepare]
cmd = "python src/prepare.py"

[stages.train]
cmd = "python src/train.py --epochs 3"
deps = ["src/train.py", "data/processed"]
outs = ["models/model.pt"]

[stages.train.k8s]
image = "ghcr.io/acme/train:1.4"
cpu = "500m"
memory = "2Gi"
gpu = 1
deadline = "2h"
retry-exit-codes = [75]
node-selector = { "cloud.google.com/gke-accelerator" = "nvidia-l4" }
tolerations = [{ key = "nvidia.com/gpu", operator = "Exists", effect = "NoSchedule" }]
secret-env = { WANDB_API_KEY = "wandb/api-key" }
"#;

fn train() -> StageInfo {
    StageInfo::new(
        "train",
        "python src/train.py --epochs 3",
        "blake3:7d1e4c0a9b8f6e5d4c3b2a190817263544536271809a8b7c6d5e4f3a2b1c0d9e",
    )
    .with_dep(
        "src/train.py",
        "blake3:1111111111111111111111111111111111111111111111111111111111111111",
    )
    .with_dir_dep(
        "data/processed",
        "blake3:2222222222222222222222222222222222222222222222222222222222222222",
    )
    .with_out("models/model.pt")
    .with_env("SEED", "7")
}

fn render(text: &str, stage: &StageInfo) -> String {
    let settings = config(text)
        .resolve(&stage.name, Path::new("mlops.toml"))
        .unwrap();
    let id = JobIdentity::new(
        stage,
        settings
            .namespace
            .clone()
            .unwrap_or_else(|| "default".into()),
        "",
    )
    .with_git_commit(Some("0123456789abcdef0123456789abcdef01234567".into()));
    render_yaml(&build_job(stage, &settings, &id)).unwrap()
}

#[test]
fn train_job_snapshot() {
    insta::assert_snapshot!("train_job", render(TOML, &train()));
}

#[test]
fn data_mode_job_snapshot() {
    let text = format!(
        "{TOML}\n[k8s.data]\nremote = \"s3://acme-ml/mlops\"\nsecret = \"mlops-remote\"\nimage = \"ghcr.io/acme/mlops:0.1.0\"\n"
    );
    insta::assert_snapshot!("train_job_data_mode", render(&text, &train()));
}

#[test]
fn rendering_is_deterministic_and_parses_back_as_a_job() {
    let a = render(TOML, &train());
    let b = render(TOML, &train());
    assert_eq!(a, b);
    let job: Job = serde_yaml::from_str(&a).unwrap();
    let spec = job.spec.unwrap();
    assert_eq!(spec.backoff_limit, Some(0));
    assert_eq!(spec.active_deadline_seconds, Some(7200));
    assert_eq!(spec.ttl_seconds_after_finished, Some(1800));
    let pod = spec.template.spec.unwrap();
    assert_eq!(pod.restart_policy.as_deref(), Some("Never"));
    let policy = spec.pod_failure_policy.unwrap();
    let fail = policy.rules.iter().find(|r| r.action == "FailJob").unwrap();
    assert_eq!(fail.on_exit_codes.as_ref().unwrap().values, vec![0, 75]);
    let labels = job.metadata.labels.unwrap();
    assert_eq!(labels["mlops.dev/stage"], "train");
    assert_eq!(
        labels["mlops.dev/fingerprint"],
        "7d1e4c0a9b8f6e5d4c3b2a1908172635"
    );
    let ann = job.metadata.annotations.unwrap();
    assert_eq!(
        ann["mlops.dev/git-commit"],
        "0123456789abcdef0123456789abcdef01234567"
    );
    assert!(ann["mlops.dev/deps"].contains("\"data/processed\":\"blake3:2222"));
}

#[test]
fn job_names_are_dns_labels_and_unique_per_run() {
    let stage = StageInfo::new(
        "Train@LR=0.01,depth=4 with a very long suffix that keeps going on",
        "x",
        "blake3:abcdef0123456789",
    );
    let render_name = JobIdentity::new(&stage, "ml", "").name;
    let run_a = JobIdentity::new(&stage, "ml", "a1b2c3").name;
    let run_b = JobIdentity::new(&stage, "ml", "z9y8x7").name;
    for n in [&render_name, &run_a, &run_b] {
        assert!(n.len() <= 63, "{n}");
        mlops_k8s::values::check_dns_label(n, "job name").unwrap();
        assert!(n.starts_with("mlops-train-lr-0-01-depth-4"), "{n}");
    }
    assert!(render_name.ends_with("-abcdef01"), "{render_name}");
    assert_ne!(run_a, run_b);
}

#[test]
fn stage_without_table_or_image_is_refused_with_fix() {
    let cfg = config(TOML);
    let err = cfg.resolve("prepare", Path::new("mlops.toml")).unwrap_err();
    assert!(err.is_usage());
    assert!(
        err.to_string()
            .contains("no [stages.prepare.k8s] table in mlops.toml"),
        "{err}"
    );
    let no_image = TOML
        .replace("image = \"python:3.12-slim\"\n", "")
        .replace("image = \"ghcr.io/acme/train:1.4\"\n", "");
    let err = mlops_k8s::K8sConfig::parse(&no_image, Path::new("mlops.toml"))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("stage `train` has no image: set `image` in [stages.train.k8s] or in [k8s]"),
        "{err}"
    );
}

#[test]
fn command_override_and_wdir_in_data_mode() {
    let text = format!(
        "{}\n[k8s.data]\nremote = \"gs://b/m\"\nimage = \"mlops:1\"\nworkdir = \"/src\"\n",
        TOML.replace(
            "retry-exit-codes = [75]",
            "command = [\"python\", \"-m\", \"train\"]"
        )
    );
    let stage = train().with_wdir("ml");
    let yaml = render(&text, &stage);
    let job: Job = serde_yaml::from_str(&yaml).unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    let main = &pod.containers[0];
    assert_eq!(main.working_dir.as_deref(), Some("/src/ml"));
    let cmd = main.command.clone().unwrap();
    let dashdash = cmd.iter().position(|a| a == "--").unwrap();
    assert_eq!(&cmd[dashdash + 1..], ["python", "-m", "train"]);
    assert!(cmd.windows(2).any(|w| w == ["--out", "models/model.pt"]));
    let init = &pod.init_containers.unwrap()[0];
    let args = init.command.clone().unwrap();
    assert!(
        args.contains(
            &"src/train.py=blake3:1111111111111111111111111111111111111111111111111111111111111111"
                .to_owned()
        )
    );
    assert!(init.env_from.is_none(), "no secret configured, no envFrom");
}
