//! The runner against the fake API server: every scripted pod lifecycle ends with the right
//! verdict, reason, record and cleanup; watches that close or expire are resumed; connection and
//! permission problems are named.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mlops_k8s::fake::{FAKE_IMAGE_ID, FAKE_NODE, FakeCluster, Scenario, Step};
use mlops_k8s::{ClusterOptions, Error, JobSettings, K8sExecutor, RunOutcome, StageInfo};
use mlops_pipeline::CancelToken;

use crate::{config, options_for};

const TOML: &str = r#"
[k8s]
namespace = "ml"
image = "python:3.12-slim"
image-pull-grace = "1s"
unschedulable-grace = "1s"

[stages.train]
cmd = "python train.py"

[stages.train.k8s]
memory = "512Mi"
"#;

struct Setup {
    cluster: FakeCluster,
    dir: tempfile::TempDir,
    executor: K8sExecutor,
    settings: JobSettings,
}

fn setup(scenario: Scenario) -> Setup {
    setup_with(scenario, TOML, |o| o)
}

fn setup_with(
    scenario: Scenario,
    toml: &str,
    tweak: impl FnOnce(ClusterOptions) -> ClusterOptions,
) -> Setup {
    let cluster = FakeCluster::start().unwrap();
    cluster.script("mlops-train", scenario);
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(toml);
    let settings = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
    let options = tweak(options_for(&cluster, dir.path(), "default"));
    let executor = K8sExecutor::connect(cfg, &options).unwrap();
    Setup {
        cluster,
        dir,
        executor,
        settings,
    }
}

fn stage() -> StageInfo {
    StageInfo::new(
        "train",
        "python train.py",
        "blake3:5a5a5a5a00000000000000000000000000000000000000000000000000000000",
    )
}

impl Setup {
    fn run(&self) -> Result<RunOutcome, Error> {
        self.run_with(&CancelToken::new())
    }

    fn run_with(&self, cancel: &CancelToken) -> Result<RunOutcome, Error> {
        let log = self.dir.path().join(".mlops/logs/train.log");
        self.executor
            .run_stage(&stage(), &self.settings, self.dir.path(), &log, cancel)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join(".mlops/logs/train.log")).unwrap()
    }
}

#[test]
fn success_records_digest_node_exit_code_and_deletes_in_background() {
    let s = setup(Scenario::succeed("epoch 1 loss 0.9\nepoch 2 loss 0.4\n"));
    let out = s.run().unwrap();
    assert!(out.succeeded, "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.reason.as_deref(), Some("Completed"));
    assert_eq!(
        out.namespace, "ml",
        "the [k8s] namespace wins over the context's"
    );
    assert!(out.job.starts_with("mlops-train-5a5a5a5a-"), "{}", out.job);
    assert_eq!(out.image_id.as_deref(), Some(FAKE_IMAGE_ID));
    assert_eq!(out.node.as_deref(), Some(FAKE_NODE));
    assert_eq!(s.log(), "epoch 1 loss 0.9\nepoch 2 loss 0.4\n");
    assert_eq!(
        s.cluster.deletes(),
        vec![(
            "ml".to_owned(),
            out.job.clone(),
            Some("Background".to_owned())
        )]
    );
    assert!(s.cluster.jobs().is_empty());

    let record = out.to_record();
    assert!(record.succeeded());
    assert_eq!(record.executor, "k8s");
    assert_eq!(record.details["job"], out.job);
    assert_eq!(record.details["namespace"], "ml");
    assert_eq!(record.details["node"], FAKE_NODE);
    assert_eq!(
        record.details["image_digest"],
        FAKE_IMAGE_ID.rsplit_once('@').unwrap().1
    );
    assert!(
        record.started <= record.ended && record.started.ends_with('Z'),
        "{} {}",
        record.started,
        record.ended
    );

    let requests = s.cluster.requests();
    let apply = requests.iter().find(|r| r.starts_with("PATCH ")).unwrap();
    assert!(
        apply.starts_with(&format!(
            "PATCH /apis/batch/v1/namespaces/ml/jobs/{}?",
            out.job
        )),
        "{apply}"
    );
    assert!(
        apply.contains("fieldManager=mlops") && apply.contains("force=true"),
        "{apply}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/pods?") && r.contains("labelSelector=job-name%3D")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.contains("/log?") && r.contains("follow=true")),
        "{requests:?}"
    );
}

#[test]
fn non_zero_exit_fails_with_the_code_and_pod_failure_policy() {
    let s = setup(Scenario::exit(3, "Traceback: boom\n"));
    let out = s.run().unwrap();
    assert!(!out.succeeded);
    assert_eq!(out.exit_code, Some(3));
    assert_eq!(out.reason.as_deref(), Some("PodFailurePolicy"));
    assert_eq!(out.to_record().exit_code, Some(3));
    let log = s.log();
    assert!(
        log.starts_with("Traceback: boom\n[mlops] job ml/mlops-train-"),
        "{log}"
    );
    assert!(log.ends_with("failed: PodFailurePolicy: Container main for pod default/pod failed with exit code 3 matching FailJob rule at index 1 (exit code 3)\n"), "{log}");
    assert_eq!(
        s.cluster.deletes().len(),
        1,
        "failed jobs are deleted unless kept"
    );
}

#[test]
fn keep_on_failure_leaves_the_job() {
    let s = setup_with(
        Scenario::exit(1, "x\n"),
        &TOML.replace("[k8s]\n", "[k8s]\nkeep-on-failure = true\n"),
        |o| o,
    );
    let out = s.run().unwrap();
    assert!(out.kept);
    assert!(s.cluster.deletes().is_empty());
    assert_eq!(s.cluster.jobs(), vec![("ml".to_owned(), out.job.clone())]);
    assert_eq!(out.to_record().details["kept"], "true");
}

#[test]
fn image_pull_backoff_fails_after_the_grace_not_the_deadline() {
    let s = setup(Scenario::image_pull_backoff());
    let t = Instant::now();
    let out = s.run().unwrap();
    let took = t.elapsed();
    assert!(!out.succeeded);
    assert!(
        matches!(
            out.reason.as_deref(),
            Some("ImagePullBackOff" | "ErrImagePull")
        ),
        "{out:?}"
    );
    assert!(
        out.message
            .as_deref()
            .unwrap_or("")
            .contains("container main"),
        "{out:?}"
    );
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(10),
        "{took:?}"
    );
    assert_eq!(out.exit_code, None);
    assert_eq!(out.to_record().exit_code, None);
    let log = s.log();
    assert!(log.starts_with("[mlops] job ml/mlops-train-"), "{log}");
    assert!(
        log.contains("failed: ImagePullBackOff: container main: Back-off pulling image"),
        "{log}"
    );
    assert_eq!(s.cluster.deletes().len(), 1);
}

#[test]
fn invalid_image_name_and_config_errors_fail_at_once() {
    for reason in ["InvalidImageName", "CreateContainerConfigError"] {
        let s = setup(Scenario::stuck_waiting(
            reason,
            "secret \"wandb\" not found",
        ));
        let t = Instant::now();
        let out = s.run().unwrap();
        assert_eq!(out.reason.as_deref(), Some(reason));
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "{reason}: {:?}",
            t.elapsed()
        );
    }
}

#[test]
fn unschedulable_beyond_the_grace_fails_with_the_scheduler_message() {
    let s = setup(Scenario::unschedulable());
    let out = s.run().unwrap();
    assert_eq!(out.reason.as_deref(), Some("Unschedulable"));
    assert!(
        out.message
            .as_deref()
            .unwrap()
            .contains("Insufficient nvidia.com/gpu")
    );
    assert_eq!(out.node, None);
}

#[test]
fn oom_killed_is_named_over_the_job_reason() {
    let s = setup(Scenario::oom_killed());
    let out = s.run().unwrap();
    assert_eq!(out.reason.as_deref(), Some("OOMKilled"));
    assert_eq!(out.exit_code, Some(137));
    assert!(
        s.log().starts_with("allocating\n[mlops] job "),
        "{}",
        s.log()
    );
    assert!(s.log().ends_with("failed: OOMKilled: Container main for pod default/pod failed with exit code 137 matching FailJob rule at index 1 (exit code 137)\n"), "{}", s.log());
}

#[test]
fn deadline_exceeded_is_named() {
    let s = setup(Scenario::deadline_exceeded());
    let out = s.run().unwrap();
    assert_eq!(out.reason.as_deref(), Some("DeadlineExceeded"));
    assert!(out.message.as_deref().unwrap().contains("deadline"));
}

#[test]
fn a_watch_closed_mid_way_is_resumed() {
    let s = setup(Scenario::succeed("a\nb\n"));
    s.cluster.close_watches_after(1);
    let out = s.run().unwrap();
    assert!(out.succeeded, "{out:?}");
    let watches = s
        .cluster
        .requests()
        .iter()
        .filter(|r| r.contains("watch=true") && r.contains("/pods?"))
        .count();
    assert!(
        watches >= 2,
        "expected the pod watch to be re-opened, saw {watches}"
    );
}

#[test]
fn a_410_gone_watch_is_recovered_by_re_listing() {
    let mut scenario = Scenario::succeed("ok\n");
    scenario
        .steps
        .insert(3, Step::Sleep(Duration::from_millis(400)));
    let s = setup(scenario);
    s.cluster.expire_next_watch();
    let out = s.run().unwrap();
    assert!(out.succeeded, "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    let expired = s.cluster.expired_watches();
    assert_eq!(expired.len(), 1);
    let collection = format!("/{}?", expired[0]);
    let requests = s.cluster.requests();
    let before_delete = requests.iter().take_while(|r| !r.starts_with("DELETE "));
    let lists = before_delete
        .filter(|r| r.starts_with("GET ") && !r.contains("watch=true") && r.contains(&collection))
        .count();
    assert!(
        lists >= 2,
        "expected {} to be listed again after the 410: {requests:#?}",
        expired[0]
    );
}

#[test]
fn cancel_deletes_the_job_and_returns_cancelled() {
    let s = setup(Scenario::run_forever());
    let cancel = CancelToken::new();
    let c = cancel.clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(400));
        c.cancel();
    });
    let err = s.run_with(&cancel).unwrap_err();
    t.join().unwrap();
    assert!(matches!(err, Error::Cancelled), "{err}");
    assert_eq!(s.cluster.deletes().len(), 1);
    assert_eq!(s.cluster.deletes()[0].2.as_deref(), Some("Background"));
}

#[test]
fn follow_streams_lines_to_the_sink() {
    let lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink_lines = lines.clone();
    let s = setup(Scenario::succeed("one\ntwo\n"));
    let executor = K8sExecutor::connect(
        config(TOML),
        &options_for(&s.cluster, s.dir.path(), "default"),
    )
    .unwrap()
    .follow(Some(Arc::new(move |l: &str| {
        sink_lines.lock().unwrap().push(l.to_owned())
    })));
    let log = s.dir.path().join("f.log");
    let out = executor
        .run_stage(
            &stage(),
            &s.settings,
            s.dir.path(),
            &log,
            &CancelToken::new(),
        )
        .unwrap();
    assert!(out.succeeded);
    assert_eq!(*lines.lock().unwrap(), ["one", "two"]);
}

#[test]
fn namespace_flag_wins_over_config() {
    let s = setup_with(Scenario::succeed("x\n"), TOML, |o| {
        o.with_namespace(Some("override".into()))
    });
    let out = s.run().unwrap();
    assert_eq!(out.namespace, "override");
}

#[test]
fn rbac_forbidden_names_verb_and_resource() {
    let s = setup(Scenario::succeed("x\n"));
    s.cluster.forbid("patch", "jobs");
    let err = s.run().unwrap_err();
    assert!(matches!(err, Error::Forbidden { .. }));
    let text = err.to_string();
    assert!(
        text.starts_with("forbidden: cannot patch jobs.batch in namespace `ml` (RBAC)"),
        "{text}"
    );
    assert!(
        text.contains("cannot patch resource \"jobs\" in API group \"batch\""),
        "{text}"
    );

    let s = setup(Scenario::succeed("x\n"));
    s.cluster.forbid("list", "pods");
    let text = s.run().unwrap_err().to_string();
    assert!(
        text.starts_with("forbidden: cannot list pods in namespace `ml`"),
        "{text}"
    );
}

#[test]
fn unreachable_cluster_fails_quickly() {
    let dir = tempfile::tempdir().unwrap();
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!("apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: c\n  context:\n    cluster: c\n    user: u\ncurrent-context: c\nusers:\n- name: u\n  user: {{}}\n"),
    )
    .unwrap();
    let cfg = config(TOML);
    let settings = cfg.resolve("train", Path::new("mlops.toml")).unwrap();
    let executor = K8sExecutor::connect(
        cfg,
        &ClusterOptions::default().with_kubeconfig(Some(kubeconfig)),
    )
    .unwrap();
    let t = Instant::now();
    let err = executor
        .run_stage(
            &stage(),
            &settings,
            dir.path(),
            &dir.path().join("l.log"),
            &CancelToken::new(),
        )
        .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());
    assert!(matches!(err, Error::Unreachable { .. }), "{err}");
    assert!(
        err.to_string().starts_with(&format!(
            "cluster at http://127.0.0.1:{port}/ is unreachable"
        )),
        "{err}"
    );
    assert!(!err.is_usage());
}

#[test]
fn missing_kubeconfig_names_every_place_looked() {
    let home = tempfile::tempdir().unwrap();
    let mut options = ClusterOptions::default();
    options.kubeconfig_env = Some("/nonexistent/a:/nonexistent/b".to_owned());
    options.home = Some(home.path().to_owned());
    let err = options.kubeconfig_files().unwrap_err();
    assert!(err.is_usage());
    let text = err.to_string();
    assert!(
        text.contains("KUBECONFIG=/nonexistent/a:/nonexistent/b"),
        "{text}"
    );
    assert!(
        text.contains(&home.path().join(".kube/config").display().to_string()),
        "{text}"
    );

    let explicit = ClusterOptions::default().with_kubeconfig(Some("/nonexistent/kc".into()));
    assert!(
        explicit
            .kubeconfig_files()
            .unwrap_err()
            .to_string()
            .contains("--kubeconfig /nonexistent/kc")
    );
}

#[test]
fn malformed_kubeconfig_is_a_usage_error_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("kubeconfig");
    std::fs::write(&path, "apiVersion: v1\nkind: Config\nclusters: [\n").unwrap();
    let err = K8sExecutor::connect(
        config(TOML),
        &ClusterOptions::default().with_kubeconfig(Some(path.clone())),
    )
    .unwrap_err();
    assert!(err.is_usage());
    assert!(
        err.to_string()
            .starts_with(&format!("kubeconfig {}", path.display())),
        "{err}"
    );
}

#[test]
fn parallel_stages_run_as_parallel_jobs() {
    let s = setup(Scenario::succeed("x\n"));
    let executor = Arc::new(s.executor);
    let settings = Arc::new(s.settings);
    let dir = s.dir.path().to_owned();
    let handles: Vec<_> = (0..3)
        .map(|i| {
            let (e, st, d) = (executor.clone(), settings.clone(), dir.clone());
            std::thread::spawn(move || {
                e.run_stage(
                    &stage(),
                    &st,
                    &d,
                    &d.join(format!("{i}.log")),
                    &CancelToken::new(),
                )
                .unwrap()
            })
        })
        .collect();
    let outs: Vec<RunOutcome> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    let mut names: Vec<_> = outs.iter().map(|o| o.job.clone()).collect();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 3, "every run gets its own Job name");
    assert!(outs.iter().all(|o| o.succeeded));
}

#[test]
fn in_a_pod_without_kubeconfig_the_service_account_is_tried() {
    let home = tempfile::tempdir().unwrap();
    let mut options = ClusterOptions::default();
    options.home = Some(home.path().to_owned());
    options.in_cluster = true;
    match K8sExecutor::connect(config(TOML), &options) {
        Err(err) => {
            assert!(err.is_usage());
            let text = err.to_string();
            assert!(
                text.contains("and the in-cluster configuration failed"),
                "{text}"
            );
            assert!(text.contains(".kube/config"), "{text}");
        }
        // Only possible when these tests themselves run in a pod with a service account.
        Ok(_) => assert!(std::env::var_os("KUBERNETES_SERVICE_HOST").is_some()),
    }
    options.in_cluster = false;
    let err = K8sExecutor::connect(config(TOML), &options).unwrap_err();
    assert!(matches!(err, Error::NoKubeconfig { .. }), "{err}");
}

#[test]
fn a_job_deleted_by_someone_else_ends_the_run() {
    let s = setup(Scenario::run_forever());
    let cluster = &s.cluster;
    std::thread::scope(|scope| {
        scope.spawn(|| {
            // Wait for the Job, then delete it the way `kubectl delete job` does.
            for _ in 0..100 {
                if let Some((ns, name)) = cluster.jobs().first().cloned() {
                    std::thread::sleep(Duration::from_millis(200));
                    let path = format!("/apis/batch/v1/namespaces/{ns}/jobs/{name}");
                    crate::fake_api::http(cluster, "DELETE", &path, "application/json", "{}");
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        let out = s.run().unwrap();
        assert!(!out.succeeded);
        assert_eq!(out.reason.as_deref(), Some("Deleted"));
    });
}

#[test]
fn a_retried_job_keeps_every_attempts_log_and_records_the_last_pod() {
    let node2 = "kind-worker2".to_owned();
    let scenario = Scenario {
        steps: vec![
            Step::CreatePod,
            Step::Schedule(FAKE_NODE.to_owned()),
            Step::Run,
            Step::Log("attempt 1: spot node lost the lease\n".to_owned()),
            Step::Terminate {
                exit_code: 75,
                reason: "Error".to_owned(),
                message: None,
            },
            Step::Sleep(Duration::from_millis(100)),
            Step::CreatePod,
            Step::Schedule(node2.clone()),
            Step::Run,
            Step::Log("attempt 2: done\n".to_owned()),
            Step::Terminate {
                exit_code: 0,
                reason: "Completed".to_owned(),
                message: None,
            },
            Step::Complete,
        ],
    };
    let toml = TOML.replace(
        "memory = \"512Mi\"",
        "memory = \"512Mi\"\nbackoff-limit = 1\nretry-exit-codes = [75]",
    );
    let s = setup_with(scenario, &toml, |o| o);
    let out = s.run().unwrap();
    assert!(out.succeeded, "{out:?}");
    assert_eq!(out.exit_code, Some(0));
    assert_eq!(out.node.as_deref(), Some(node2.as_str()));
    let log = s.log();
    assert!(
        log.starts_with("attempt 1: spot node lost the lease\n--- pod mlops-train-"),
        "{log}"
    );
    assert!(log.ends_with("(retry) ---\nattempt 2: done\n"), "{log}");
}

#[test]
fn a_failed_fetch_in_the_init_container_is_named() {
    let scenario = Scenario {
        steps: vec![
            Step::CreatePod,
            Step::Schedule(FAKE_NODE.to_owned()),
            Step::InitFail {
                exit_code: 3,
                message: "error: fetch: object blake3:1111 not found in the remote\n".to_owned(),
            },
            Step::Fail(
                "BackoffLimitExceeded".to_owned(),
                "Job has reached the specified backoff limit".to_owned(),
            ),
        ],
    };
    let s = setup(scenario);
    let out = s.run().unwrap();
    assert!(!out.succeeded);
    assert_eq!(out.reason.as_deref(), Some("InitContainerFailed"));
    assert_eq!(
        out.message.as_deref(),
        Some(
            "init container mlops-fetch exited with code 3: error: fetch: object blake3:1111 not found in the remote"
        )
    );
    assert_eq!(out.exit_code, None);
}
