//! The public API of mlops-pipeline end to end: real `sh -c` stages in temporary repositories.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers outside #[test] functions panic on setup failures"
)]

use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use mlops_cas::{InitOptions, Repo};
use mlops_pipeline::{
    Action, CancelToken, Error, Event, LocalExecutor, LockFile, Pipeline, Reason, ReproOptions,
    ReproReport, State,
};

struct Fixture {
    dir: tempfile::TempDir,
    repo: Repo,
}

impl Fixture {
    fn new(spec: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::init(dir.path(), &InitOptions::new().no_git(true)).unwrap();
        std::fs::write(dir.path().join("mlops.toml"), spec).unwrap();
        Self { dir, repo }
    }

    fn path(&self, p: &str) -> std::path::PathBuf {
        self.dir.path().join(p)
    }

    fn write(&self, p: &str, text: &str) {
        let path = self.path(p);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }

    fn read(&self, p: &str) -> String {
        std::fs::read_to_string(self.path(p)).unwrap()
    }

    fn repro_with(&self, opts: ReproOptions) -> mlops_pipeline::Result<ReproReport> {
        let pipeline = Pipeline::load(self.dir.path())?;
        pipeline.repro(
            &self.repo,
            &LocalExecutor::new(),
            &opts,
            &CancelToken::new(),
            &|_| {},
        )
    }

    fn repro(&self) -> ReproReport {
        self.repro_with(ReproOptions::new().jobs(2)).unwrap()
    }

    fn lock(&self) -> LockFile {
        LockFile::load(self.dir.path()).unwrap()
    }
}

fn actions(report: &ReproReport) -> Vec<(String, Action)> {
    let mut v: Vec<_> = report
        .stages
        .iter()
        .map(|s| (s.name.clone(), s.action))
        .collect();
    v.sort_by(|a, b| a.0.cmp(&b.0));
    v
}

fn action(report: &ReproReport, name: &str) -> Action {
    report
        .stages
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.action)
        .unwrap()
}

fn reasons(report: &ReproReport, name: &str) -> Vec<Reason> {
    report
        .stages
        .iter()
        .find(|s| s.name == name)
        .map(|s| s.reasons.clone())
        .unwrap()
}

const CHAIN: &str = r#"
[stages.prepare]
cmd = "tr a-z A-Z < raw.txt > prepared.txt"
deps = ["raw.txt"]
outs = ["prepared.txt"]

[stages.train]
cmd = "cat prepared.txt > model.txt && echo lr=$(grep -c . prepared.txt) >> model.txt"
deps = ["prepared.txt"]
params = ["params.yaml:model.lr"]
outs = ["model.txt"]

[stages.evaluate]
cmd = "printf '{\"acc\": 0.75, \"per_class\": {\"a\": 1}}' > metrics.json"
deps = ["model.txt"]
metrics = ["metrics.json"]
"#;

fn chain() -> Fixture {
    let f = Fixture::new(CHAIN);
    f.write("raw.txt", "hello\n");
    f.write("params.yaml", "model:\n  lr: 0.1\n  depth: 4\nother: 1\n");
    f
}

#[test]
fn first_run_runs_everything_then_nothing_is_out_of_date() {
    let f = chain();
    let r = f.repro();
    assert!(r.succeeded());
    assert_eq!(
        actions(&r),
        [
            ("evaluate".into(), Action::Ran),
            ("prepare".into(), Action::Ran),
            ("train".into(), Action::Ran)
        ]
    );
    assert_eq!(reasons(&r, "prepare"), [Reason::NeverRun]);
    assert_eq!(f.read("prepared.txt"), "HELLO\n");
    let lock = f.lock();
    assert_eq!(lock.stages.len(), 3);
    let train = &lock.stages["train"];
    assert_eq!(train.params["params.yaml:model.lr"], "0.1");
    assert_eq!(train.deps[0].path, "prepared.txt");
    assert!(train.deps[0].hash.starts_with("blake3:"));
    assert_eq!(train.outs[0].path, "model.txt");
    assert_eq!(train.exit_code, 0);
    assert_eq!(train.executor, "local");
    let m = &lock.stages["evaluate"].metrics[0];
    assert_eq!(m.values["acc"].as_float(), Some(0.75));
    assert_eq!(m.values["per_class.a"].as_integer(), Some(1));
    assert!(f.path(".mlops/logs/train.log").exists());

    let r = f.repro();
    assert!(
        r.stages.iter().all(|s| s.action == Action::UpToDate),
        "{r:?}"
    );
    let status = mlops_pipeline::stage_status(&f.repo).unwrap();
    assert!(
        status.iter().all(|s| s.state == State::UpToDate),
        "{status:?}"
    );
}

#[test]
fn a_changed_dep_reruns_that_stage_and_what_depends_on_it() {
    let f = chain();
    f.repro();
    f.write("prepared.txt", "tampered\n");
    let status = mlops_pipeline::stage_status(&f.repo).unwrap();
    let prepare = status.iter().find(|s| s.name == "prepare").unwrap();
    assert!(
        matches!(&prepare.reasons[0], Reason::OutModified { path, .. } if path == "prepared.txt"),
        "{prepare:?}"
    );
    // prepare will rewrite train's dep, so train is out of date because of it
    let train = status.iter().find(|s| s.name == "train").unwrap();
    assert_eq!(
        train.reasons,
        [Reason::UpstreamChanged {
            stage: "prepare".into()
        }]
    );

    f.write("raw.txt", "bye\n");
    let status = mlops_pipeline::stage_status(&f.repo).unwrap();
    let prepare = status.iter().find(|s| s.name == "prepare").unwrap();
    assert!(
        matches!(&prepare.reasons[0], Reason::DepChanged { path, old: Some(_), .. } if path == "raw.txt"),
        "{prepare:?}"
    );
    let r = f
        .repro_with(ReproOptions::new().jobs(1).run_cache(false))
        .unwrap();
    assert_eq!(action(&r, "prepare"), Action::Ran);
    assert_eq!(action(&r, "train"), Action::Ran);
    assert_eq!(f.read("model.txt"), "BYE\nlr=1\n");
}

#[test]
fn only_the_named_param_value_counts() {
    let f = chain();
    f.repro();
    f.write(
        "params.yaml",
        "# comment\nother: 2\nmodel:\n  depth: 8\n  lr: 0.1\n",
    );
    let r = f.repro();
    assert!(
        r.stages.iter().all(|s| s.action == Action::UpToDate),
        "{r:?}"
    );
    f.write("params.yaml", "model:\n  lr: 0.2\n");
    let r = f.repro_with(ReproOptions::new().dry_run(true)).unwrap();
    assert_eq!(action(&r, "train"), Action::WouldRun);
    assert_eq!(
        reasons(&r, "train"),
        [Reason::ParamChanged {
            param: "params.yaml:model.lr".into(),
            old: Some("0.1".into()),
            new: "0.2".into()
        }]
    );
    assert_eq!(
        reasons(&r, "evaluate"),
        [Reason::UpstreamChanged {
            stage: "train".into()
        }]
    );
    assert_eq!(action(&r, "prepare"), Action::UpToDate);
}

#[test]
fn a_missing_param_key_and_a_missing_dep_are_usage_errors() {
    let f = chain();
    f.write("params.yaml", "model:\n  depth: 4\n");
    let e = f.repro_with(ReproOptions::new()).unwrap_err();
    assert!(e.is_usage());
    assert_eq!(
        e.to_string(),
        "params.yaml: no key `model.lr` (used by stage train); check the key path, e.g. `model.lr`"
    );

    let f = chain();
    std::fs::remove_file(f.path("raw.txt")).unwrap();
    let status = mlops_pipeline::stage_status(&f.repo).unwrap();
    assert_eq!(
        status[0].reasons,
        [Reason::DepMissing {
            path: "raw.txt".into()
        }],
        "status reports it per stage"
    );
    assert_eq!(
        status[1].reasons,
        [
            Reason::NeverRun,
            Reason::UpstreamChanged {
                stage: "prepare".into()
            }
        ]
    );
    let e = f.repro_with(ReproOptions::new()).unwrap_err();
    assert!(e.is_usage());
    assert_eq!(
        e.to_string(),
        "stage prepare: dependency raw.txt does not exist and no stage produces it"
    );
}

const FAILING: &str = r#"
[stages.ok]
cmd = "echo fine > ok.txt"
outs = ["ok.txt"]

[stages.bad]
cmd = "echo line1; echo 'something broke' >&2; exit 3"
outs = ["bad.txt"]

[stages.after_bad]
cmd = "cp bad.txt after.txt"
deps = ["bad.txt"]
outs = ["after.txt"]

[stages.slow_other]
cmd = "sleep 0.3; echo x > other.txt"
outs = ["other.txt"]
"#;

#[test]
fn a_failing_command_is_reported_with_exit_status_and_log_tail_and_never_recorded() {
    let f = Fixture::new(FAILING);
    let r = f
        .repro_with(ReproOptions::new().jobs(1).keep_going(true))
        .unwrap();
    assert!(!r.succeeded());
    let failure = &r.failures[0];
    assert_eq!(failure.stage, "bad");
    assert_eq!(failure.exit_code, Some(3));
    assert_eq!(failure.message, "command failed (exit status 3)");
    assert_eq!(failure.log_tail, ["line1", "something broke"]);
    assert_eq!(action(&r, "after_bad"), Action::NotRun);
    assert_eq!(
        action(&r, "slow_other"),
        Action::Ran,
        "keep-going runs independent stages"
    );
    let lock = f.lock();
    assert!(!lock.stages.contains_key("bad"));
    assert!(lock.stages.contains_key("ok") && lock.stages.contains_key("slow_other"));
}

#[test]
fn fail_fast_starts_nothing_new_after_a_failure() {
    let f = Fixture::new(FAILING);
    // With one job, stages start in name order: after_bad waits, bad fails first, then nothing.
    let r = f.repro_with(ReproOptions::new().jobs(1)).unwrap();
    assert!(!r.succeeded());
    assert_eq!(action(&r, "bad"), Action::Failed);
    assert_eq!(action(&r, "ok"), Action::NotRun);
    assert_eq!(action(&r, "slow_other"), Action::NotRun);
    assert!(!f.path("other.txt").exists());
}

#[test]
fn a_stage_that_does_not_write_its_out_fails() {
    let f = Fixture::new("[stages.a]\ncmd = \"true\"\nouts = [\"never.txt\"]\n");
    let r = f.repro();
    assert_eq!(
        r.failures[0].message,
        "the command succeeded but did not write its out never.txt"
    );
    assert!(f.lock().stages.is_empty());
}

#[test]
fn a_dep_that_changes_while_the_stage_runs_is_not_recorded() {
    let f = Fixture::new(
        "[stages.a]\ncmd = \"echo more >> input.txt; cp input.txt out.txt\"\ndeps = [\"input.txt\"]\nouts = [\"out.txt\"]\n",
    );
    f.write("input.txt", "x\n");
    let r = f.repro();
    assert!(!r.succeeded());
    let m = &r.failures[0].message;
    assert!(
        m.starts_with("dependency input.txt changed while the stage ran ("),
        "{m}"
    );
    assert!(f.lock().stages.is_empty());
}

#[test]
fn the_run_cache_restores_outputs_of_a_fingerprint_seen_before() {
    let f = Fixture::new(
        "[stages.count]\ncmd = \"echo run >> runs.log; wc -c < input.txt > count.txt\"\ndeps = [\"input.txt\"]\nouts = [\"count.txt\"]\n",
    );
    f.write("input.txt", "abc\n");
    f.repro();
    f.write("input.txt", "abcdef\n");
    f.repro();
    assert_eq!(f.read("count.txt").trim(), "7");
    f.write("input.txt", "abc\n");
    let r = f.repro();
    assert_eq!(action(&r, "count"), Action::Restored);
    assert_eq!(f.read("count.txt").trim(), "4");
    assert_eq!(
        f.read("runs.log"),
        "run\nrun\n",
        "the command did not run a third time"
    );
    assert!(
        f.lock().stages["count"]
            .details
            .contains_key("restored_from_run_cache")
    );

    // A deleted out comes back from the run-cache too; --no-run-cache runs the command instead.
    std::fs::remove_file(f.path("count.txt")).unwrap();
    let r = f.repro();
    assert_eq!(action(&r, "count"), Action::Restored);
    assert_eq!(
        reasons(&r, "count"),
        [Reason::OutMissing {
            path: "count.txt".into()
        }]
    );
    std::fs::remove_file(f.path("count.txt")).unwrap();
    let r = f.repro_with(ReproOptions::new().run_cache(false)).unwrap();
    assert_eq!(action(&r, "count"), Action::Ran);
    assert_eq!(f.read("runs.log"), "run\nrun\nrun\n");
}

#[test]
fn force_reruns_and_frozen_never_runs() {
    let f = Fixture::new(
        "[stages.a]\ncmd = \"echo a >> a.log\"\nalways_changed = true\n[stages.b]\ncmd = \"echo b >> b.log\"\n[stages.c]\ncmd = \"echo c >> c.log\"\nfrozen = true\n",
    );
    f.repro();
    f.repro();
    assert_eq!(f.read("a.log"), "a\na\n", "always_changed runs every time");
    assert_eq!(f.read("b.log"), "b\n");
    assert!(!f.path("c.log").exists());
    let r = f
        .repro_with(ReproOptions::new().force(true).targets(vec!["b".into()]))
        .unwrap();
    assert_eq!(actions(&r), [("b".into(), Action::Ran)]);
    assert_eq!(reasons(&r, "b"), [Reason::Forced]);
    assert_eq!(f.read("b.log"), "b\nb\n");
    let e = f
        .repro_with(ReproOptions::new().targets(vec!["nope".into()]))
        .unwrap_err();
    assert!(
        e.is_usage() && e.to_string().starts_with("unknown stage `nope`"),
        "{e}"
    );
}

#[test]
fn independent_stages_run_in_parallel_with_prefixed_output() {
    let f = Fixture::new(
        "[stages.a]\ncmd = \"sleep 0.6; echo from-a\"\n[stages.b]\ncmd = \"sleep 0.6; echo from-b\"\n[stages.c]\ncmd = \"sleep 0.6\"\n",
    );
    let lines = std::sync::Arc::new(Mutex::new(Vec::new()));
    let l2 = lines.clone();
    let exec = LocalExecutor::new().with_output(std::sync::Arc::new(move |s: &str| {
        l2.lock().unwrap().push(s.to_owned())
    }));
    let pipeline = Pipeline::load(f.dir.path()).unwrap();
    let start = Instant::now();
    let r = pipeline
        .repro(
            &f.repo,
            &exec,
            &ReproOptions::new().jobs(3),
            &CancelToken::new(),
            &|_| {},
        )
        .unwrap();
    assert!(r.succeeded());
    assert!(
        start.elapsed() < Duration::from_millis(1500),
        "{:?}",
        start.elapsed()
    );
    let mut got = lines.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["a | from-a", "b | from-b"]);
}

#[test]
fn ctrl_c_stops_running_stages_and_keeps_finished_ones() {
    let f = Fixture::new(
        "[stages.quick]\ncmd = \"echo q > q.txt\"\nouts = [\"q.txt\"]\n[stages.slow]\ncmd = \"sleep 30; echo s > s.txt\"\nouts = [\"s.txt\"]\n[stages.z_after]\ncmd = \"cp s.txt z.txt\"\ndeps = [\"s.txt\"]\nouts = [\"z.txt\"]\n",
    );
    let pipeline = Pipeline::load(f.dir.path()).unwrap();
    let cancel = CancelToken::new();
    let started = Mutex::new(Vec::new());
    let events = |e: &Event<'_>| {
        if let Event::Finished(r) = e {
            started.lock().unwrap().push(r.name.clone());
            if r.name == "quick" {
                cancel.cancel();
            }
        }
    };
    let exec = LocalExecutor::new().with_grace(Duration::from_millis(300));
    let start = Instant::now();
    let e = pipeline
        .repro(
            &f.repo,
            &exec,
            &ReproOptions::new().jobs(2),
            &cancel,
            &events,
        )
        .unwrap_err();
    assert!(start.elapsed() < Duration::from_secs(10));
    assert!(
        matches!(
            e,
            Error::Cancelled {
                finished: 1,
                stopped: 1
            }
        ),
        "{e}"
    );
    let lock = f.lock();
    assert_eq!(lock.stages.keys().collect::<Vec<_>>(), ["quick"]);
    assert!(!f.path("s.txt").exists());
    // nothing half-written: only the lock and known files at the root
    for entry in std::fs::read_dir(f.dir.path()).unwrap() {
        let name = entry.unwrap().file_name().into_string().unwrap();
        assert!(!name.starts_with(".mlops-tmp"), "{name}");
    }
}

#[test]
fn matrix_stages_each_run_with_their_values() {
    let f = Fixture::new(
        "[stages.train]\ncmd = \"echo ${matrix.lr} ${matrix.depth} > out-${matrix.lr}-${matrix.depth}.txt\"\nouts = [\"out-${matrix.lr}-${matrix.depth}.txt\"]\nmatrix = { lr = [0.01, 0.1], depth = [4] }\n",
    );
    let r = f.repro();
    assert_eq!(
        actions(&r),
        [
            ("train@lr=0.01,depth=4".into(), Action::Ran),
            ("train@lr=0.1,depth=4".into(), Action::Ran)
        ]
    );
    assert_eq!(f.read("out-0.1-4.txt"), "0.1 4\n");
    assert!(f.path(".mlops/logs/train@lr=0.1,depth=4.log").exists());
}

#[test]
fn folder_outs_and_wdir() {
    let f = Fixture::new(
        "[stages.split]\ncmd = \"mkdir -p ../data/parts && echo 1 > ../data/parts/a && echo 2 > ../data/parts/b\"\nwdir = \"src\"\nouts = [\"../data/parts\"]\n[stages.use]\ncmd = \"cat data/parts/a data/parts/b > joined.txt\"\ndeps = [\"data/parts/a\"]\nouts = [\"joined.txt\"]\n",
    );
    std::fs::create_dir_all(f.path("src")).unwrap();
    let r = f.repro();
    assert!(r.succeeded(), "{r:?}");
    assert_eq!(f.read("joined.txt"), "1\n2\n");
    let out = &f.lock().stages["split"].outs[0];
    assert_eq!(out.path, "data/parts");
    assert_eq!(out.files, Some(2));
    assert!(
        f.repro()
            .stages
            .iter()
            .all(|s| s.action == Action::UpToDate)
    );
}

#[test]
fn a_malformed_metrics_file_fails_the_stage_with_its_position() {
    let f = Fixture::new(
        "[stages.m]\ncmd = \"printf '{\\\"a\\\": }' > m.json\"\nmetrics = [\"m.json\"]\n",
    );
    let r = f.repro();
    let msg = &r.failures[0].message;
    assert!(
        msg.starts_with("metrics file not readable: m.json:1:"),
        "{msg}"
    );
}

fn git(dir: &Path, args: &[&str]) {
    let ok = std::process::Command::new("git")
        .args([
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@t",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
}

#[test]
fn metrics_and_params_diff_against_a_git_revision() {
    let f = chain();
    f.repro();
    git(f.dir.path(), &["init", "-q"]);
    git(f.dir.path(), &["add", "-A"]);
    git(f.dir.path(), &["commit", "-qm", "one"]);
    f.write(
        "metrics.json",
        r#"{"acc": 0.5, "per_class": {"a": 1}, "new": true}"#,
    );
    f.write("params.yaml", "model:\n  lr: 0.3\n  depth: 4\nother: 9\n");
    let spec = Pipeline::load(f.dir.path()).unwrap().spec().clone();
    let (values, missing) = mlops_pipeline::metrics::show(&spec).unwrap();
    assert!(missing.is_empty());
    assert_eq!(values.len(), 3);
    let changes = mlops_pipeline::metrics::diff(&spec, "HEAD", false).unwrap();
    let keys: Vec<_> = changes.iter().map(|c| c.key.as_str()).collect();
    assert_eq!(keys, ["acc", "new"]);
    assert_eq!(changes[0].change, Some(-0.25));
    assert_eq!(changes[1].old, None);
    assert_eq!(
        mlops_pipeline::metrics::diff(&spec, "HEAD", true)
            .unwrap()
            .len(),
        3
    );
    let p = mlops_pipeline::metrics::params_diff(&spec, "HEAD", false).unwrap();
    assert_eq!(p.len(), 1, "only the declared key counts: {p:?}");
    assert_eq!(
        (p[0].file.as_str(), p[0].key.as_str()),
        ("params.yaml", "model.lr")
    );
    assert_eq!(p[0].old, Some(serde_json::json!(0.1)));
    let e = mlops_pipeline::metrics::diff(&spec, "no-such-rev", false).unwrap_err();
    assert!(
        e.is_usage() && e.to_string().starts_with("git rev-parse no-such-rev"),
        "{e}"
    );
    f.write("metrics.json", "{ broken");
    let e = mlops_pipeline::metrics::show(&spec)
        .unwrap_err()
        .to_string();
    assert!(e.starts_with("metrics.json:1:"), "{e}");
}

#[test]
fn the_lock_keeps_stages_finished_before_a_later_failure() {
    let f = Fixture::new(
        "[stages.a]\ncmd = \"echo a > a.txt\"\nouts = [\"a.txt\"]\n[stages.b]\ncmd = \"cp a.txt b.txt\"\ndeps = [\"a.txt\"]\nouts = [\"b.txt\"]\n[stages.c]\ncmd = \"exit 1\"\ndeps = [\"b.txt\"]\n",
    );
    let r = f.repro();
    assert!(!r.succeeded());
    let lock = f.lock();
    assert_eq!(lock.stages.keys().collect::<Vec<_>>(), ["a", "b"]);
}
