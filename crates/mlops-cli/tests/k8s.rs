//! End-to-end tests of `mlops k8s render|run` against the in-process fake Kubernetes API server:
//! manifests, runs recorded in mlops.lock, named failures, and the exit codes of bad input,
//! missing kubeconfig, unreachable clusters and RBAC refusals.
#![allow(clippy::unwrap_used, reason = "test helpers unwrap")]

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use mlops_k8s::fake::{FakeCluster, Scenario};
use predicates::prelude::*;

const TOML: &str = r#"
[k8s]
namespace = "ml"
image = "python:3.12-slim"
image-pull-grace = "1s"

[stages.prepare]
cmd = "python prepare.py"
deps = ["prepare.py"]

[stages.train]
cmd = "python train.py"
deps = ["train.py"]

[stages.train.k8s]
cpu = "500m"
memory = "512Mi"
deadline = "1h"
"#;

fn project(toml: &str) -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join(".mlops")).unwrap();
    std::fs::write(d.path().join("mlops.toml"), toml).unwrap();
    std::fs::write(d.path().join("train.py"), "print('train')\n").unwrap();
    std::fs::write(d.path().join("prepare.py"), "print('prepare')\n").unwrap();
    d
}

fn mlops(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("mlops").unwrap();
    c.arg("-C")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG")
        .env_remove("KUBECONFIG");
    c.env("HOME", dir.join("no-home"));
    c
}

fn with_cluster(dir: &Path, cluster: &FakeCluster) -> Command {
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(&kubeconfig, cluster.kubeconfig_yaml("default")).unwrap();
    let mut c = mlops(dir);
    c.env("KUBECONFIG", &kubeconfig);
    c
}

#[test]
fn render_prints_a_deterministic_job() {
    let p = project(TOML);
    let first = mlops(p.path())
        .args(["k8s", "render", "train"])
        .assert()
        .success();
    let yaml = String::from_utf8(first.get_output().stdout.clone()).unwrap();
    let second = mlops(p.path())
        .args(["k8s", "render", "train"])
        .output()
        .unwrap();
    assert_eq!(yaml, String::from_utf8(second.stdout).unwrap());
    let job: serde_yaml::Value = serde_yaml::from_str(&yaml).unwrap();
    assert_eq!(job["kind"].as_str(), Some("Job"));
    assert_eq!(job["metadata"]["namespace"].as_str(), Some("ml"));
    let name = job["metadata"]["name"].as_str().unwrap();
    assert!(name.starts_with("mlops-train-"), "{name}");
    let spec = &job["spec"];
    assert_eq!(spec["activeDeadlineSeconds"].as_i64(), Some(3600));
    let command = &spec["template"]["spec"]["containers"][0]["command"];
    assert_eq!(
        serde_yaml::to_string(command).unwrap(),
        "- sh\n- -c\n- python train.py\n"
    );
    let deps = job["metadata"]["annotations"]["mlops.dev/deps"]
        .as_str()
        .unwrap();
    assert!(deps.contains("\"train.py\":\"blake3:"), "{deps}");
}

#[test]
fn render_with_namespace_flag() {
    let p = project(TOML);
    mlops(p.path())
        .args(["k8s", "render", "train", "-n", "team-a"])
        .assert()
        .success()
        .stdout(predicate::str::contains("namespace: team-a"));
    mlops(p.path())
        .args(["k8s", "render", "train", "-n", "Team_A"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("invalid namespace `Team_A`"));
}

#[test]
fn unknown_stage_is_a_usage_error() {
    let p = project(TOML);
    mlops(p.path())
        .args(["k8s", "render", "trian"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("unknown stage `trian`")
                .and(predicate::str::contains("declared stages: prepare, train")),
        );
}

#[test]
fn stage_without_k8s_table_is_refused() {
    let p = project(TOML);
    mlops(p.path())
        .args(["k8s", "render", "prepare"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no [stages.prepare.k8s] table"));
}

#[test]
fn missing_image_and_bad_quantity_name_line_and_column() {
    let p = project(&TOML.replace("image = \"python:3.12-slim\"\n", ""));
    mlops(p.path())
        .args(["k8s", "render", "train"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("stage `train` has no image"));
    let p = project(&TOML.replace("memory = \"512Mi\"", "memory = \"500mb\""));
    mlops(p.path())
        .args(["k8s", "render", "train"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "mlops.toml:17:10: invalid quantity `500mb`: `mb` is not a unit",
        ));
    let p = project(&TOML.replace("namespace = \"ml\"", "namespace = \"ML\""));
    mlops(p.path())
        .args(["k8s", "run", "train"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "mlops.toml:3:13: invalid namespace `ML`",
        ));
}

#[test]
fn run_without_kubeconfig_says_where_it_looked() {
    let p = project(TOML);
    mlops(p.path())
        .env("KUBECONFIG", p.path().join("nope.yaml"))
        .args(["k8s", "run", "train"])
        .assert()
        .code(2)
        .stderr(
            predicate::str::contains("no kubeconfig found")
                .and(predicate::str::contains("nope.yaml"))
                .and(predicate::str::contains("no-home/.kube/config")),
        );
}

#[test]
fn run_succeeds_records_the_job_in_the_lock_and_saves_the_log() {
    let p = project(TOML);
    let cluster = FakeCluster::start().unwrap();
    cluster.script("mlops-train", Scenario::succeed("epoch 1\nepoch 2\n"));
    with_cluster(p.path(), &cluster)
        .args(["k8s", "run", "train", "--follow"])
        .assert()
        .success()
        .stderr(predicate::str::contains("epoch 2"))
        .stdout(predicate::str::contains("succeeded").and(predicate::str::contains("kind-worker")));
    let lock = std::fs::read_to_string(p.path().join("mlops.lock")).unwrap();
    assert!(lock.contains("executor = \"k8s\""), "{lock}");
    assert!(lock.contains("namespace = \"ml\""), "{lock}");
    assert!(lock.contains("image_digest = \"sha256:"), "{lock}");
    let logs = std::fs::read_dir(p.path().join(".mlops/logs"))
        .unwrap()
        .count();
    assert!(logs >= 1);
    assert_eq!(cluster.deletes().len(), 1);

    // Up to date now: nothing runs without --force; --json says so.
    let out = with_cluster(p.path(), &cluster)
        .args(["--json", "k8s", "run", "train"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["up_to_date"], true);
    let out = with_cluster(p.path(), &cluster)
        .args(["--json", "k8s", "run", "train", "--force"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["jobs"][0]["exit_code"], 0);
    assert_eq!(v["jobs"][0]["namespace"], "ml");
}

#[test]
fn failed_job_exits_1_with_the_reason() {
    let p = project(TOML);
    let cluster = FakeCluster::start().unwrap();
    cluster.script("mlops-train", Scenario::image_pull_backoff());
    with_cluster(p.path(), &cluster)
        .args(["k8s", "run", "train", "--keep"])
        .assert()
        .code(1)
        .stdout(
            predicate::str::contains("ImagePullBackOff")
                .or(predicate::str::contains("ErrImagePull")),
        )
        .stdout(predicate::str::contains("(kept)"));
    assert!(cluster.deletes().is_empty(), "--keep keeps a failed job");
}

#[test]
fn unreachable_cluster_exits_3_quickly() {
    let p = project(TOML);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = p.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    let t = Instant::now();
    mlops(p.path())
        .args(["k8s", "run", "train", "--kubeconfig"])
        .arg(&kubeconfig)
        .assert()
        .code(3)
        .stderr(predicate::str::contains(format!(
            "cluster at http://127.0.0.1:{port}/ is unreachable"
        )));
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
}

#[test]
fn rbac_forbidden_exits_3_naming_verb_and_resource() {
    let p = project(TOML);
    let cluster = FakeCluster::start().unwrap();
    cluster.forbid("patch", "jobs");
    with_cluster(p.path(), &cluster)
        .args(["k8s", "run", "train"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "forbidden: cannot patch jobs.batch in namespace `ml`",
        ));
}

#[test]
fn pod_commands_fetch_run_push_and_keep_the_exit_code() {
    let remote = tempfile::tempdir().unwrap();
    let url = format!("file://{}", remote.path().display());
    let pod = tempfile::tempdir().unwrap();
    let root = pod.path().join("work");
    // The init container: nothing to fetch yet, installs the binary.
    mlops(pod.path())
        .args(["k8s", "pod-fetch", "--remote", &url, "--root"])
        .arg(&root)
        .arg("--install")
        .arg(pod.path().join("bin/mlops"))
        .assert()
        .success();
    assert!(pod.path().join("bin/mlops").is_file());
    // The main container: a failing command keeps its exit code.
    mlops(&root)
        .current_dir(&root)
        .args(["k8s", "pod-run", "--remote", &url, "--root"])
        .arg(&root)
        .args(["--out", "model.bin", "--report"])
        .arg(pod.path().join("report"))
        .args(["--", "sh", "-c", "exit 5"])
        .assert()
        .code(5);
    assert!(!pod.path().join("report").exists());
    mlops(&root)
        .current_dir(&root)
        .args(["k8s", "pod-run", "--remote", &url, "--root"])
        .arg(&root)
        .args(["--out", "model.bin", "--report"])
        .arg(pod.path().join("report"))
        .args(["--", "sh", "-c", "printf weights > model.bin"])
        .assert()
        .success();
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(pod.path().join("report")).unwrap()).unwrap();
    let hash = report["outs"]["model.bin"].as_str().unwrap().to_owned();
    assert_eq!(hash, mlops_cas::hash_bytes(b"weights").to_string());
    // Another pod fetches it by hash.
    let other = tempfile::tempdir().unwrap();
    mlops(other.path())
        .args(["k8s", "pod-fetch", "--remote", &url, "--root"])
        .arg(other.path())
        .arg(format!("model.bin={hash}"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read(other.path().join("model.bin")).unwrap(),
        b"weights"
    );
    // A bad dep argument is refused.
    mlops(other.path())
        .args(["k8s", "pod-fetch", "--remote", &url, "--root"])
        .arg(other.path())
        .arg(format!("../escape={hash}"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("must be relative"));
}

#[test]
fn repro_with_k8s_executor_refuses_or_runs_locally_stages_without_a_table() {
    let toml = TOML.replace(
        "cmd = \"python prepare.py\"",
        "cmd = \"echo prepared > prepared.txt\"",
    );
    let p = project(&toml);
    let cluster = FakeCluster::start().unwrap();
    with_cluster(p.path(), &cluster)
        .args(["repro", "prepare", "--executor", "k8s"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("no [stages.prepare.k8s] table"));
    assert!(
        cluster.requests().is_empty(),
        "a refused stage never reaches the cluster"
    );

    let p = project(&toml.replace("[k8s]\n", "[k8s]\nwithout-k8s-table = \"local\"\n"));
    with_cluster(p.path(), &cluster)
        .args(["repro", "--executor", "k8s"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(p.path().join("prepared.txt")).unwrap(),
        "prepared\n"
    );
    let lock = std::fs::read_to_string(p.path().join("mlops.lock")).unwrap();
    assert!(lock.contains("executor = \"local\""), "{lock}");
    assert!(
        lock.contains("executor = \"k8s\""),
        "train ran as a Job: {lock}"
    );
}

#[test]
fn render_in_data_mode_fetches_deps_by_hash_and_pushes_outs() {
    let toml = format!(
        "{}\n[k8s.data]\nremote = \"s3://acme/mlops\"\nsecret = \"mlops-remote\"\nimage = \"ghcr.io/acme/mlops:0.1.0\"\n",
        TOML.replace(
            "deps = [\"train.py\"]",
            "deps = [\"train.py\", \"data\"]\nouts = [\"model.bin\"]"
        )
    );
    let p = project(&toml);
    std::fs::create_dir(p.path().join("data")).unwrap();
    std::fs::write(p.path().join("data/a.csv"), "a\n1\n").unwrap();
    let out = mlops(p.path())
        .args(["k8s", "render", "train"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let yaml = String::from_utf8(out.stdout).unwrap();
    assert!(yaml.contains("- pod-fetch"), "{yaml}");
    assert!(
        yaml.contains("- data/=blake3:"),
        "a directory dep is marked with a slash: {yaml}"
    );
    assert!(yaml.contains("- train.py=blake3:"), "{yaml}");
    assert!(yaml.contains("- --out\n        - model.bin"), "{yaml}");
    assert!(yaml.contains("name: mlops-remote"), "{yaml}");
    assert!(
        !yaml.contains("AWS_SECRET"),
        "credentials are never inlined"
    );
}

#[test]
fn data_mode_run_brings_the_pods_outs_into_the_workspace_and_the_lock() {
    let remote = tempfile::tempdir().unwrap();
    let url = format!("file://{}", remote.path().display());
    // What the pod does: fetch (nothing), run, push the out, report its hash.
    let pod = tempfile::tempdir().unwrap();
    mlops(pod.path())
        .args(["k8s", "pod-fetch", "--remote", &url, "--root"])
        .arg(pod.path())
        .assert()
        .success();
    let report = pod.path().join("report");
    mlops(pod.path())
        .current_dir(pod.path())
        .args(["k8s", "pod-run", "--remote", &url, "--root"])
        .arg(pod.path())
        .args(["--out", "model.bin", "--report"])
        .arg(&report)
        .args(["--", "sh", "-c", "printf weights > model.bin"])
        .assert()
        .success();
    let message = std::fs::read_to_string(&report).unwrap();

    let toml = format!(
        "{}\n[k8s.data]\nremote = \"{url}\"\nimage = \"ghcr.io/acme/mlops:0.1.0\"\n",
        TOML.replace(
            "deps = [\"train.py\"]",
            "deps = [\"train.py\"]\nouts = [\"model.bin\"]"
        )
    );
    let p = project(&toml);
    let cluster = FakeCluster::start().unwrap();
    cluster.script(
        "mlops-train",
        Scenario::succeed_with_message("trained\n", &message),
    );
    with_cluster(p.path(), &cluster)
        .args(["k8s", "run", "train"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(p.path().join("model.bin")).unwrap(),
        b"weights"
    );
    let lock = std::fs::read_to_string(p.path().join("mlops.lock")).unwrap();
    let hash = mlops_cas::hash_bytes(b"weights").to_string();
    assert!(lock.contains(&hash), "the out's hash is recorded: {lock}");
    // The dep went to the remote before the Job: another pod can fetch it by hash.
    let dep = mlops_cas::hash_bytes(b"print('train')\n").to_string();
    let other = tempfile::tempdir().unwrap();
    mlops(other.path())
        .args(["k8s", "pod-fetch", "--remote", &url, "--root"])
        .arg(other.path())
        .arg(format!("train.py={dep}"))
        .assert()
        .success();
    assert_eq!(
        std::fs::read_to_string(other.path().join("train.py")).unwrap(),
        "print('train')\n"
    );
}

#[test]
fn repro_with_k8s_executor_names_the_failure_in_the_log_tail() {
    let p = project(TOML);
    let cluster = FakeCluster::start().unwrap();
    cluster.script("mlops-train", Scenario::oom_killed());
    with_cluster(p.path(), &cluster)
        .args(["repro", "train", "--executor", "k8s"])
        .assert()
        .code(1)
        .stderr(predicate::str::contains("stage train failed"))
        .stderr(predicate::str::contains("failed: OOMKilled"));
}
