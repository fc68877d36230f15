//! `cargo xtask e2e-k8s`: the runner's scenarios against a real cluster (the one `KUBECONFIG`
//! points at), through the `mlops` binary: success, non-zero exit, image pull failure, invalid
//! image name, unschedulable, OOM kill, deadline exceeded, and Ctrl-C. The same lifecycles the
//! in-process fake API server scripts in the crate's tests, checked for real.
//!
//! Try it with kind (see docs/k8s.md): `kind create cluster --name mlops-e2e`, then
//! `KUBECONFIG=$HOME/.kube/config cargo xtask e2e-k8s`. `--fake` runs the same harness against the
//! in-process fake API server, so the harness itself is checked without a cluster.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;

use crate::util::{run_loud, workspace_root};

/// Options of `cargo xtask e2e-k8s`.
#[derive(Debug, clap::Args)]
pub(crate) struct E2eArgs {
    /// Run only the scenarios whose name contains this text.
    #[arg(long)]
    only: Option<String>,
    /// The namespace to run in (must exist).
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Use this mlops binary instead of building one.
    #[arg(long)]
    mlops: Option<PathBuf>,
    /// Run against the in-process fake API server (scripted lifecycles) instead of a cluster:
    /// checks this harness and the binary without one.
    #[arg(long)]
    fake: bool,
}

/// What a scenario must end with.
struct Expect {
    exit: i32,
    reasons: &'static [&'static str],
    exit_code: Option<i64>,
}

struct Scenario {
    name: &'static str,
    k8s: &'static str,
    cmd: &'static str,
    expect: Expect,
}

const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "success",
        k8s: "image = \"busybox:1.36\"",
        cmd: "echo hello from the cluster; echo done",
        expect: Expect {
            exit: 0,
            reasons: &["Completed"],
            exit_code: Some(0),
        },
    },
    Scenario {
        name: "non-zero-exit",
        k8s: "image = \"busybox:1.36\"",
        cmd: "echo failing; exit 3",
        expect: Expect {
            exit: 1,
            reasons: &["PodFailurePolicy", "BackoffLimitExceeded"],
            exit_code: Some(3),
        },
    },
    Scenario {
        name: "image-pull-backoff",
        k8s: "image = \"registry.invalid/mlops/nosuch:1\"",
        cmd: "true",
        expect: Expect {
            exit: 1,
            reasons: &["ErrImagePull", "ImagePullBackOff"],
            exit_code: None,
        },
    },
    Scenario {
        name: "invalid-image-name",
        k8s: "image = \"busybox:Not_A_Valid_Tag!\"",
        cmd: "true",
        expect: Expect {
            exit: 1,
            reasons: &["InvalidImageName"],
            exit_code: None,
        },
    },
    Scenario {
        name: "unschedulable",
        k8s: "image = \"busybox:1.36\"\nnode-selector = { \"mlops.dev/e2e-no-such-node\" = \"true\" }",
        cmd: "true",
        expect: Expect {
            exit: 1,
            reasons: &["Unschedulable"],
            exit_code: None,
        },
    },
    Scenario {
        name: "oom-killed",
        k8s: "image = \"busybox:1.36\"\nmemory = \"16Mi\"",
        cmd: "dd if=/dev/zero of=/dev/null bs=256M count=1",
        expect: Expect {
            exit: 1,
            reasons: &["OOMKilled"],
            exit_code: Some(137),
        },
    },
    Scenario {
        name: "deadline-exceeded",
        k8s: "image = \"busybox:1.36\"\ndeadline = \"10s\"",
        cmd: "sleep 120",
        expect: Expect {
            exit: 1,
            reasons: &["DeadlineExceeded"],
            exit_code: None,
        },
    },
];

pub(crate) fn run(args: &E2eArgs) -> anyhow::Result<()> {
    // Keeps the fake server alive for the whole run.
    let mut _fake = None;
    let kubeconfig = if args.fake {
        let (cluster, path) = start_fake()?;
        _fake = Some(cluster);
        Some(path.into_os_string())
    } else {
        std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty())
    };
    let Some(kubeconfig) = kubeconfig else {
        bail!(
            "cargo xtask e2e-k8s needs a Kubernetes cluster: set KUBECONFIG to its kubeconfig.\n\
             With kind: `kind create cluster --name mlops-e2e` then \
             `KUBECONFIG=$HOME/.kube/config cargo xtask e2e-k8s` (see docs/k8s.md).\n\
             Without a cluster, `cargo xtask e2e-k8s --fake` runs them against the in-process \
             fake API server (as `cargo test -p mlops-k8s` does)."
        );
    };
    eprintln!(
        "e2e-k8s: cluster from KUBECONFIG={}",
        kubeconfig.to_string_lossy()
    );
    let grace = if args.fake { "1s" } else { "20s" };
    let mlops = match &args.mlops {
        Some(p) => p.clone(),
        None => build_mlops()?,
    };
    let mut failures = Vec::new();
    for s in SCENARIOS
        .iter()
        .filter(|s| args.only.as_deref().is_none_or(|o| s.name.contains(o)))
    {
        let t = Instant::now();
        match scenario(&mlops, &kubeconfig, &args.namespace, grace, s) {
            Ok(summary) => eprintln!(
                "ok    {:<20} {:>6.1}s  {summary}",
                s.name,
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!(
                    "FAIL  {:<20} {:>6.1}s  {e:#}",
                    s.name,
                    t.elapsed().as_secs_f64()
                );
                failures.push(s.name);
            }
        }
    }
    if args.only.as_deref().is_none_or(|o| "cancel".contains(o)) {
        let t = Instant::now();
        match cancel(&mlops, &kubeconfig, &args.namespace, grace, args.fake) {
            Ok(()) => eprintln!(
                "ok    {:<20} {:>6.1}s  interrupted run deleted its Job",
                "cancel",
                t.elapsed().as_secs_f64()
            ),
            Err(e) => {
                eprintln!(
                    "FAIL  {:<20} {:>6.1}s  {e:#}",
                    "cancel",
                    t.elapsed().as_secs_f64()
                );
                failures.push("cancel");
            }
        }
    }
    if args.fake {
        let _ = std::fs::remove_file(&kubeconfig);
    }
    if !failures.is_empty() {
        bail!(
            "e2e-k8s: {} scenario(s) failed: {}",
            failures.len(),
            failures.join(", ")
        );
    }
    eprintln!("e2e-k8s: all scenarios passed");
    Ok(())
}

fn build_mlops() -> anyhow::Result<PathBuf> {
    let root = workspace_root();
    run_loud(crate::util::cargo().args(["build", "-p", "mlops-cli"]))?;
    Ok(root.join("target/debug/mlops"))
}

/// The fake API server with each scenario's lifecycle scripted for its stage's Jobs, and a
/// kubeconfig pointing at it.
fn start_fake() -> anyhow::Result<(mlops_k8s::fake::FakeCluster, PathBuf)> {
    use mlops_k8s::fake::{FakeCluster, Scenario as Fake};
    let cluster = FakeCluster::start()?;
    cluster.script(
        "mlops-success-",
        Fake::succeed("hello from the cluster\ndone\n"),
    );
    cluster.script("mlops-non-zero-exit-", Fake::exit(3, "failing\n"));
    cluster.script("mlops-image-pull-backoff-", Fake::image_pull_backoff());
    cluster.script(
        "mlops-invalid-image-name-",
        Fake::stuck_waiting("InvalidImageName", "Failed to apply default image tag"),
    );
    cluster.script("mlops-unschedulable-", Fake::unschedulable());
    cluster.script("mlops-oom-killed-", Fake::oom_killed());
    cluster.script("mlops-deadline-exceeded-", Fake::deadline_exceeded());
    cluster.script("mlops-cancel-", Fake::run_forever());
    let path =
        std::env::temp_dir().join(format!("mlops-e2e-fake-{}.kubeconfig", std::process::id()));
    std::fs::write(&path, cluster.kubeconfig_yaml("default"))?;
    Ok((cluster, path))
}

/// A project folder with one stage named `stage` running `cmd`, with the `k8s` lines as its
/// `[stages.NAME.k8s]` table.
fn project(
    namespace: &str,
    grace: &str,
    stage: &str,
    k8s: &str,
    cmd: &str,
) -> anyhow::Result<tempfile::TempDir> {
    let dir = tempfile::tempdir()?;
    std::fs::create_dir(dir.path().join(".mlops"))?;
    let toml = format!(
        "[k8s]\nnamespace = \"{namespace}\"\nimage-pull-grace = \"{grace}\"\nunschedulable-grace = \"{grace}\"\nttl-after-finished = \"10m\"\n\n[stages.{stage}]\ncmd = \"{cmd}\"\n\n[stages.{stage}.k8s]\n{k8s}\n"
    );
    std::fs::write(dir.path().join("mlops.toml"), toml)?;
    Ok(dir)
}

fn scenario(
    mlops: &Path,
    kubeconfig: &std::ffi::OsStr,
    namespace: &str,
    grace: &str,
    s: &Scenario,
) -> anyhow::Result<String> {
    let dir = project(namespace, grace, s.name, s.k8s, s.cmd)?;
    let out = Command::new(mlops)
        .env("KUBECONFIG", kubeconfig)
        .arg("-C")
        .arg(dir.path())
        .args(["--json", "k8s", "run", s.name])
        .stderr(Stdio::inherit())
        .output()
        .context("starting mlops")?;
    let code = out.status.code().unwrap_or(-1);
    let json: Value = serde_json::from_slice(&out.stdout).with_context(|| {
        format!(
            "exit {code}; stdout is not JSON: {}",
            String::from_utf8_lossy(&out.stdout)
        )
    })?;
    let job = &json["jobs"][0];
    let reason = job["reason"].as_str().unwrap_or("");
    if code != s.expect.exit {
        bail!("exit {code}, expected {} ({json})", s.expect.exit);
    }
    if !s.expect.reasons.contains(&reason) {
        bail!(
            "reason `{reason}`, expected one of {:?} ({json})",
            s.expect.reasons
        );
    }
    if let Some(want) = s.expect.exit_code
        && job["exit_code"].as_i64() != Some(want)
    {
        bail!("exit code {}, expected {want}", job["exit_code"]);
    }
    if s.expect.exit == 0 && !job["image_id"].as_str().unwrap_or("").contains("sha256:") {
        bail!("no image digest recorded: {job}");
    }
    let log = std::fs::read_to_string(job["log_path"].as_str().unwrap_or("")).unwrap_or_default();
    if s.name == "success" && !log.contains("hello from the cluster") {
        bail!("the log was not saved: {log:?}");
    }
    Ok(format!(
        "{reason}, job {}",
        job["job"].as_str().unwrap_or("?")
    ))
}

/// Starts a long run, sends SIGTERM after the pod started, and expects a prompt, clean stop.
fn cancel(
    mlops: &Path,
    kubeconfig: &std::ffi::OsStr,
    namespace: &str,
    grace: &str,
    fake: bool,
) -> anyhow::Result<()> {
    let dir = project(
        namespace,
        grace,
        "cancel",
        "image = \"busybox:1.36\"",
        "sleep 600",
    )?;
    let child = Command::new(mlops)
        .env("KUBECONFIG", kubeconfig)
        .arg("-C")
        .arg(dir.path())
        .args(["k8s", "run", "cancel"])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    std::thread::sleep(Duration::from_secs(if fake { 2 } else { 15 }));
    let pid = child.id().to_string();
    Command::new("kill").args(["-TERM", &pid]).status()?;
    let t = Instant::now();
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        bail!("an interrupted run exited 0: {stderr}");
    }
    if t.elapsed() > Duration::from_secs(30) {
        bail!("stopping took {:?}", t.elapsed());
    }
    if !stderr.contains("interrupted") {
        bail!("no interruption message: {stderr}");
    }
    Ok(())
}
