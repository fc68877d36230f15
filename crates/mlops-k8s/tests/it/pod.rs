//! Data mode: deps pushed before the Job, fetched by hash in the init container, outs pushed and
//! reported by the main container; and the runner turning the report into `remote_outs`.

use std::path::{Path, PathBuf};

use mlops_cas::{InitOptions, Repo};
use mlops_k8s::fake::{FakeCluster, Scenario};
use mlops_k8s::manifest::Dep;
use mlops_k8s::pod::{dep_arg, fetch_deps, parse_dep_arg, push_deps, run_and_push};
use mlops_k8s::{K8sExecutor, StageInfo};
use mlops_pipeline::CancelToken;

use crate::{config, options_for};

fn workspace() -> (tempfile::TempDir, Repo) {
    let dir = tempfile::tempdir().unwrap();
    let repo = Repo::init(dir.path(), &InitOptions::new().no_git(true)).unwrap();
    std::fs::create_dir_all(dir.path().join("data/images/cats")).unwrap();
    std::fs::write(dir.path().join("data/train.csv"), "x,y\n1,2\n3,4\n").unwrap();
    std::fs::write(dir.path().join("data/images/a.png"), [0u8, 1, 2, 3]).unwrap();
    std::fs::write(dir.path().join("data/images/cats/b.png"), [9u8; 300]).unwrap();
    std::fs::write(dir.path().join("train.py"), "print('hi')\n").unwrap();
    (dir, repo)
}

fn deps(repo: &Repo) -> Vec<Dep> {
    ["data/train.csv", "data/images", "train.py"]
        .iter()
        .map(|p| {
            let abs = repo.root().join(p);
            Dep {
                path: PathBuf::from(p),
                hash: repo.hash_path(&abs).unwrap().hash.to_string(),
                dir: abs.is_dir(),
            }
        })
        .collect()
}

fn remote_url(dir: &Path) -> String {
    format!("file://{}", dir.display())
}

#[test]
fn dep_args_round_trip_and_reject_escapes() {
    let hash = format!("blake3:{}", "a".repeat(64));
    let dep = Dep {
        path: PathBuf::from("data/images"),
        hash: hash.clone(),
        dir: true,
    };
    assert_eq!(dep_arg(&dep), format!("data/images/={hash}"));
    let (path, parsed, dir) = parse_dep_arg(&dep_arg(&dep)).unwrap();
    assert_eq!(
        (path, parsed.to_string(), dir),
        (PathBuf::from("data/images"), hash.clone(), true)
    );
    for bad in [
        format!("../etc={hash}"),
        format!("/etc/passwd={hash}"),
        "x=blake3:zz".to_owned(),
        "no-hash".to_owned(),
    ] {
        assert!(parse_dep_arg(&bad).is_err(), "{bad}");
    }
}

#[test]
fn deps_travel_to_the_pod_and_outs_come_back() {
    let (local, repo) = workspace();
    let remote = tempfile::tempdir().unwrap();
    let url = remote_url(remote.path());
    let deps = deps(&repo);
    let pushed = push_deps(&repo, &url, &deps).unwrap();
    assert!(
        pushed >= 5,
        "3 files + 1 manifest + 2 image files, saw {pushed}"
    );
    assert_eq!(
        push_deps(&repo, &url, &deps).unwrap(),
        0,
        "a second push moves nothing"
    );

    // The init container, in an empty folder.
    let pod = tempfile::tempdir().unwrap();
    let args: Vec<String> = deps.iter().map(dep_arg).collect();
    let install = pod.path().join("tools/mlops");
    let files = fetch_deps(pod.path(), &url, &args, Some(&install)).unwrap();
    assert_eq!(files, 4);
    for p in [
        "data/train.csv",
        "data/images/a.png",
        "data/images/cats/b.png",
        "train.py",
    ] {
        assert_eq!(
            std::fs::read(pod.path().join(p)).unwrap(),
            std::fs::read(local.path().join(p)).unwrap(),
            "{p}"
        );
    }
    assert!(install.is_file());

    // The main container.
    let report = pod.path().join("termination-log");
    let code = run_and_push(
        pod.path(),
        pod.path(),
        &url,
        &[PathBuf::from("model.bin")],
        &[
            "sh".into(),
            "-c".into(),
            "cat data/train.csv data/train.csv > model.bin".into(),
        ],
        &report,
    )
    .unwrap();
    assert_eq!(code, 0);
    let message = std::fs::read_to_string(&report).unwrap();
    let outs = mlops_k8s::runner::reported_outs(Some(&message));
    let expected = mlops_cas::hash_bytes(b"x,y\n1,2\n3,4\nx,y\n1,2\n3,4\n").to_string();
    assert_eq!(outs[Path::new("model.bin")], expected);

    // The out is in the remote: a third workspace fetches it by hash.
    let other = tempfile::tempdir().unwrap();
    fetch_deps(other.path(), &url, &[format!("model.bin={expected}")], None).unwrap();
    assert_eq!(
        std::fs::read(other.path().join("model.bin")).unwrap().len(),
        24
    );
}

#[test]
fn a_failing_command_keeps_its_exit_code_and_pushes_nothing() {
    let pod = tempfile::tempdir().unwrap();
    Repo::init(pod.path(), &InitOptions::new().no_git(true)).unwrap();
    let remote = tempfile::tempdir().unwrap();
    let report = pod.path().join("report");
    let code = run_and_push(
        pod.path(),
        pod.path(),
        &remote_url(remote.path()),
        &[PathBuf::from("never.bin")],
        &["sh".into(), "-c".into(), "exit 7".into()],
        &report,
    )
    .unwrap();
    assert_eq!(code, 7);
    assert!(!report.exists());
}

#[test]
fn a_dep_changed_since_scheduling_is_refused() {
    let (local, repo) = workspace();
    let remote = tempfile::tempdir().unwrap();
    let deps = deps(&repo);
    std::fs::write(local.path().join("train.py"), "print('changed')\n").unwrap();
    let err = push_deps(&repo, &remote_url(remote.path()), &deps)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("dep train.py changed since the stage was scheduled"),
        "{err}"
    );
}

#[test]
fn data_mode_run_pushes_deps_and_records_reported_outs() {
    let (local, repo) = workspace();
    let remote = tempfile::tempdir().unwrap();
    let url = remote_url(remote.path());
    let toml = format!(
        "[k8s]\nimage = \"python:3.12-slim\"\n[k8s.data]\nremote = \"{url}\"\nimage = \"mlops:1\"\nfetch-outs = false\n[stages.train]\ncmd = \"python train.py\"\n[stages.train.k8s]\nmemory = \"1Gi\"\n"
    );
    let cfg = config(&toml);
    let settings = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
    let cluster = FakeCluster::start().unwrap();
    let model = format!("blake3:{}", "c".repeat(64));
    cluster.script(
        "mlops-train",
        Scenario::succeed_with_message(
            "ok\n",
            &format!("{{\"outs\":{{\"model.bin\":\"{model}\"}}}}"),
        ),
    );
    let executor =
        K8sExecutor::connect(cfg, &options_for(&cluster, local.path(), "default")).unwrap();
    let mut stage = StageInfo::new("train", "python train.py", "blake3:0123").with_out("model.bin");
    for d in deps(&repo) {
        stage = if d.dir {
            stage.with_dir_dep(d.path, d.hash)
        } else {
            stage.with_dep(d.path, d.hash)
        };
    }
    let out = executor
        .run_stage(
            &stage,
            &settings,
            local.path(),
            &local.path().join("train.log"),
            &CancelToken::new(),
        )
        .unwrap();
    assert!(out.succeeded);
    let record = out.to_record();
    assert_eq!(record.remote_outs[Path::new("model.bin")], model);
    // Every dep object is in the remote before the pod could ask for it.
    let pod = tempfile::tempdir().unwrap();
    let args: Vec<String> = stage.deps.iter().map(dep_arg).collect();
    assert_eq!(fetch_deps(pod.path(), &url, &args, None).unwrap(), 4);
    // The applied Job carried the init container with those deps.
    let job = cluster
        .requests()
        .into_iter()
        .find(|r| r.starts_with("PATCH"))
        .unwrap();
    assert!(job.contains("/jobs/mlops-train-0123-"), "{job}");
}

#[test]
fn data_mode_brings_reported_outs_back_into_the_workspace() {
    let (local, repo) = workspace();
    let remote = tempfile::tempdir().unwrap();
    let url = remote_url(remote.path());
    // What the pod would have pushed: a model file and a folder of reports.
    let pod = tempfile::tempdir().unwrap();
    fetch_deps(pod.path(), &url, &[], None).unwrap();
    let report = pod.path().join("report");
    let code = run_and_push(
        pod.path(),
        pod.path(),
        &url,
        &[PathBuf::from("model.bin"), PathBuf::from("reports")],
        &[
            "sh".into(),
            "-c".into(),
            "printf w > model.bin && mkdir -p reports/a && printf 1 > reports/a/x.json".into(),
        ],
        &report,
    )
    .unwrap();
    assert_eq!(code, 0);
    let message = std::fs::read_to_string(&report).unwrap();
    assert!(
        message.contains("\"reports/\":\"blake3:"),
        "directories are marked: {message}"
    );

    let toml = format!(
        "[k8s]\nimage = \"python:3.12-slim\"\n[k8s.data]\nremote = \"{url}\"\nimage = \"mlops:1\"\n[stages.train]\ncmd = \"python train.py\"\n[stages.train.k8s]\nmemory = \"1Gi\"\n"
    );
    let cfg = config(&toml);
    let settings = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
    let cluster = FakeCluster::start().unwrap();
    cluster.script(
        "mlops-train",
        Scenario::succeed_with_message("ok\n", &message),
    );
    let executor =
        K8sExecutor::connect(cfg, &options_for(&cluster, local.path(), "default")).unwrap();
    let mut stage = StageInfo::new("train", "python train.py", "blake3:0456");
    for d in deps(&repo) {
        stage = if d.dir {
            stage.with_dir_dep(d.path, d.hash)
        } else {
            stage.with_dep(d.path, d.hash)
        };
    }
    let out = executor
        .run_stage(
            &stage,
            &settings,
            local.path(),
            &local.path().join("train.log"),
            &CancelToken::new(),
        )
        .unwrap();
    assert!(out.succeeded && out.outs_fetched);
    assert_eq!(std::fs::read(local.path().join("model.bin")).unwrap(), b"w");
    assert_eq!(
        std::fs::read(local.path().join("reports/a/x.json")).unwrap(),
        b"1"
    );
    assert!(
        out.to_record().remote_outs.is_empty(),
        "fetched outs are hashed locally by the pipeline"
    );
}

#[test]
fn reported_outs_that_escape_the_workspace_are_refused() {
    let (_local, repo) = workspace();
    let remote = tempfile::tempdir().unwrap();
    let hash = format!("blake3:{}", "d".repeat(64));
    let err = mlops_k8s::pod::fetch_outs(
        &repo,
        &remote_url(remote.path()),
        &[(PathBuf::from("../x"), hash, false)],
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("must stay inside the workspace"), "{err}");
}
