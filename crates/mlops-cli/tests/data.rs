//! End-to-end tests of the data versioning commands: the `mlops` binary on real folders.
#![allow(clippy::unwrap_used, reason = "test helpers panic on setup failures")]

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::prelude::*;
use predicates::prelude::*;

fn mlops(dir: &Path) -> Command {
    let mut c = Command::cargo_bin("mlops").unwrap();
    c.arg("-C")
        .arg(dir)
        .env("NO_COLOR", "1")
        .env_remove("RUST_LOG");
    c
}

/// A Git work tree with mlops initialised and a few data files.
fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(d.path().join(".git")).unwrap();
    mlops(d.path()).arg("init").assert().success();
    let data = d.path().join("data");
    std::fs::create_dir_all(data.join("images/sub")).unwrap();
    std::fs::write(data.join("train.csv"), "age,churned\n42,0\n17,1\n").unwrap();
    for i in 0..5 {
        std::fs::write(data.join(format!("images/{i}.bin")), vec![i as u8; 100 + i]).unwrap();
    }
    std::fs::write(data.join("images/sub/deep.txt"), "deep").unwrap();
    d
}

/// Configures the repository at `dir` to copy payloads (no links), so corrupting the cache does
/// not also change the workspace file.
fn use_copies(dir: &Path) {
    std::fs::write(
        dir.join(".mlops/config.toml"),
        "[cache]\nlink = [\"copy\"]\n",
    )
    .unwrap();
}

fn status_json(dir: &Path, extra: &[&str]) -> serde_json::Value {
    let out = mlops(dir)
        .arg("--json")
        .arg("status")
        .args(extra)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn states_of(status: &serde_json::Value, path: &str) -> Vec<String> {
    status["changes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["path"] == path)
        .map(|c| {
            c["states"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s.as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

/// Every object in a store folder hashes to its name.
fn assert_objects_valid(store: &Path) -> usize {
    let mut n = 0;
    for e in walkdir(store.join("blake3")) {
        let name = format!(
            "blake3:{}{}",
            e.parent().unwrap().file_name().unwrap().to_string_lossy(),
            e.file_name().unwrap().to_string_lossy()
        );
        if name.contains(".tmp-") || name.contains('#') {
            continue;
        }
        let actual = mlops_cas::hash_file(&e).unwrap();
        assert_eq!(actual.to_string(), name, "corrupt object {}", e.display());
        n += 1;
    }
    n
}

fn walkdir(dir: PathBuf) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in rd {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p)
            } else {
                out.push(p)
            }
        }
    }
    out
}

#[test]
fn add_status_checkout_roundtrip() {
    let d = repo();
    mlops(d.path())
        .args(["add", "data/train.csv", "data/images"])
        .assert()
        .success()
        .stdout(predicate::str::contains("data/images"));
    let pointer = std::fs::read_to_string(d.path().join("data/images.mlops")).unwrap();
    assert!(pointer.contains("files = 6"), "{pointer}");
    let ignore = std::fs::read_to_string(d.path().join("data/.gitignore")).unwrap();
    assert_eq!(ignore, "/train.csv\n/images/\n");
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));

    // Delete the payloads; status says missing, checkout restores identical bytes.
    std::fs::remove_file(d.path().join("data/train.csv")).unwrap();
    std::fs::remove_dir_all(d.path().join("data/images")).unwrap();
    let s = status_json(d.path(), &[]);
    assert_eq!(states_of(&s, "data/train.csv"), ["missing"]);
    assert_eq!(states_of(&s, "data/images"), ["missing"]);
    mlops(d.path()).args(["checkout"]).assert().success();
    assert_eq!(
        std::fs::read_to_string(d.path().join("data/train.csv")).unwrap(),
        "age,churned\n42,0\n17,1\n"
    );
    assert_eq!(
        std::fs::read(d.path().join("data/images/3.bin")).unwrap(),
        vec![3u8; 103]
    );
    assert_eq!(
        std::fs::read_to_string(d.path().join("data/images/sub/deep.txt")).unwrap(),
        "deep"
    );
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));
}

#[test]
fn a_relative_dash_c_folder_is_where_relative_paths_start() {
    let d = repo();
    let parent = d.path().parent().unwrap();
    let name = d.path().file_name().unwrap();
    // `-C <repo> add data/train.csv` run from the repository's parent: the path is taken
    // inside the -C folder, once, not joined onto it a second time.
    let mut add = Command::cargo_bin("mlops").unwrap();
    add.current_dir(parent)
        .arg("-C")
        .arg(name)
        .args(["add", "data/train.csv"])
        .env_remove("RUST_LOG")
        .assert()
        .success();
    assert!(d.path().join("data/train.csv.mlops").is_file());
    let mut missing = Command::cargo_bin("mlops").unwrap();
    missing
        .current_dir(parent)
        .arg("-C")
        .arg(name)
        .args(["add", "data/absent.csv"])
        .env_remove("RUST_LOG")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("data/absent.csv"));
}

#[test]
fn modified_file_is_reported_and_readded() {
    let d = repo();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    // Replace (not edit in place): the way editors and tools write files.
    let p = d.path().join("data/train.csv");
    std::fs::remove_file(&p).unwrap();
    std::fs::write(&p, "age\n1\n").unwrap();
    assert_eq!(
        states_of(&status_json(d.path(), &[]), "data/train.csv"),
        ["modified"]
    );
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));
}

#[test]
fn cache_objects_are_read_only_and_in_place_edits_are_detected() {
    use std::os::unix::fs::PermissionsExt;
    let d = repo();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    let cache = d.path().join(".mlops/cache");
    for obj in walkdir(cache.join("blake3")) {
        assert_eq!(
            std::fs::metadata(&obj).unwrap().permissions().mode() & 0o222,
            0,
            "{}",
            obj.display()
        );
    }
    // Someone forces an in-place edit of the (possibly hard-linked) workspace file.
    let p = d.path().join("data/train.csv");
    let mut perms = std::fs::metadata(&p).unwrap().permissions();
    perms.set_mode(0o644);
    std::fs::set_permissions(&p, perms).unwrap();
    std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
    f.write_all(b"tampered\n").unwrap();
    drop(f);
    let s = status_json(d.path(), &[]);
    let states = states_of(&s, "data/train.csv");
    assert!(states.contains(&"modified".to_owned()), "{states:?}");
    // Whatever the link kind, no object in the cache may have content that differs from its name.
    assert_objects_valid(&cache);
}

#[test]
fn push_pull_through_a_folder_remote() {
    let d = repo();
    let remote = tempfile::tempdir().unwrap();
    mlops(d.path()).args(["add", "data"]).assert().success();
    mlops(d.path())
        .args(["remote", "add", "store"])
        .arg(remote.path())
        .arg("--default")
        .assert()
        .success();
    let s = status_json(d.path(), &["--remote"]);
    assert_eq!(states_of(&s, "data"), ["not_in_remote"]);
    mlops(d.path())
        .args(["push", "-j", "3"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pushed 8 object(s)"));
    assert_eq!(assert_objects_valid(remote.path()), 8);
    assert_eq!(
        status_json(d.path(), &["--remote"])["changes"],
        serde_json::json!([])
    );
    // Pushing again moves nothing.
    mlops(d.path())
        .args(["push"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pushed 0 object(s)"));

    // A fresh clone: pointers only.
    let clone = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(clone.path().join(".git")).unwrap();
    mlops(clone.path()).arg("init").assert().success();
    std::fs::copy(d.path().join("data.mlops"), clone.path().join("data.mlops")).unwrap();
    mlops(clone.path())
        .args(["remote", "add", "store"])
        .arg(remote.path())
        .assert()
        .success();
    let s = status_json(clone.path(), &[]);
    assert_eq!(states_of(&s, "data"), ["missing", "not_in_cache"]);
    mlops(clone.path())
        .args(["pull", "-r", "store"])
        .assert()
        .success();
    assert_eq!(
        std::fs::read(clone.path().join("data/images/4.bin")).unwrap(),
        vec![4u8; 104]
    );
    assert_eq!(
        status_json(clone.path(), &[])["changes"],
        serde_json::json!([])
    );
}

#[test]
fn corrupt_remote_object_is_never_checked_out() {
    let d = repo();
    let remote = tempfile::tempdir().unwrap();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    mlops(d.path())
        .args(["remote", "add", "store"])
        .arg(remote.path())
        .arg("--default")
        .assert()
        .success();
    mlops(d.path()).arg("push").assert().success();
    // Flip a byte in the remote copy.
    let obj = walkdir(remote.path().join("blake3")).pop().unwrap();
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&obj, bytes).unwrap();
    std::fs::remove_dir_all(d.path().join(".mlops/cache")).unwrap();
    std::fs::remove_file(d.path().join("data/train.csv")).unwrap();
    mlops(d.path()).arg("pull").assert().code(3).stderr(
        predicate::str::contains("corrupt object blake3:")
            .and(predicate::str::contains("its content hashes to")),
    );
    assert!(
        !d.path().join("data/train.csv").exists(),
        "a corrupt object was checked out"
    );
    assert_eq!(assert_objects_valid(&d.path().join(".mlops/cache")), 0);
}

#[test]
fn corrupt_cache_object_is_reported_and_not_checked_out() {
    use std::os::unix::fs::PermissionsExt;
    let d = repo();
    // Copies, so corrupting the cache does not also change the workspace file.
    use_copies(d.path());
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    let obj = walkdir(d.path().join(".mlops/cache/blake3")).pop().unwrap();
    std::fs::set_permissions(&obj, std::fs::Permissions::from_mode(0o644)).unwrap();
    let mut bytes = std::fs::read(&obj).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&obj, bytes).unwrap();
    assert_eq!(
        states_of(&status_json(d.path(), &[]), "data/train.csv"),
        ["corrupt"]
    );
    std::fs::remove_file(d.path().join("data/train.csv")).unwrap();
    mlops(d.path())
        .arg("checkout")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("is not in the cache"));
    assert!(!d.path().join("data/train.csv").exists());
}

#[test]
fn bad_paths_are_usage_errors_and_change_nothing() {
    let d = repo();
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("x"), "x").unwrap();
    mlops(d.path())
        .arg("add")
        .arg(outside.path().join("x"))
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is outside the repository"));
    mlops(d.path())
        .args(["add", ".mlops/config.toml"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is inside .mlops/"));
    mlops(d.path())
        .args(["add", "data/nope.csv", "data/train.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "data/nope.csv: no such file or directory",
        ));
    assert!(
        !d.path().join("data/train.csv.mlops").exists(),
        "nothing may change when one path is bad"
    );
    mlops(d.path())
        .args(["checkout", "data/train.csv"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("is not tracked"));
}

#[test]
fn not_a_repo_and_no_git_are_explained() {
    let d = tempfile::tempdir().unwrap();
    mlops(d.path()).arg("status").assert().code(2).stderr(
        predicate::str::contains("not an mlops repository")
            .and(predicate::str::contains("mlops init")),
    );
    mlops(d.path())
        .arg("init")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("not inside a Git work tree"));
    mlops(d.path())
        .args(["init", "--no-git"])
        .assert()
        .success();
    mlops(d.path())
        .arg("status")
        .assert()
        .success()
        .stdout("everything is in sync\n");
}

#[test]
fn malformed_pointer_and_config_name_line_and_column() {
    let d = repo();
    std::fs::write(
        d.path().join("data/x.csv.mlops"),
        "path = \"x.csv\"\nhash = nope\n",
    )
    .unwrap();
    mlops(d.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains("data/x.csv.mlops:2:8"));
    std::fs::remove_file(d.path().join("data/x.csv.mlops")).unwrap();
    std::fs::write(d.path().join(".mlops/config.toml"), "[remotes.a]\nurl = \n").unwrap();
    mlops(d.path())
        .arg("status")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(".mlops/config.toml:2:7"));
}

#[test]
fn unknown_and_unreachable_remotes() {
    let d = repo();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    mlops(d.path())
        .arg("push")
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "no remote given and no default remote set",
        ));
    mlops(d.path())
        .args(["remote", "add", "a", "/tmp/a"])
        .assert()
        .success();
    mlops(d.path())
        .args(["push", "-r", "b"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains(
            "unknown remote `b`; configured remotes: a",
        ));
    mlops(d.path())
        .args(["remote", "add", "bad", "ftp://x/y"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unsupported scheme"));
    mlops(d.path())
        .args(["remote", "add", "no/slash", "/x"])
        .assert()
        .code(2);
    // A closed port on loopback: connection refused, reported quickly as a runtime failure.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    mlops(d.path())
        .args(["remote", "add", "down", "s3://bucket/p"])
        .assert()
        .success();
    let start = std::time::Instant::now();
    mlops(d.path())
        .args(["push", "-r", "down"])
        .env("AWS_ENDPOINT_URL", format!("http://127.0.0.1:{port}"))
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .assert()
        .code(3)
        .stderr(predicate::str::contains("remote s3://bucket/p"));
    assert!(
        start.elapsed() < std::time::Duration::from_secs(60),
        "took {:?}",
        start.elapsed()
    );
}

#[test]
fn remote_list_default_remove() {
    let d = repo();
    mlops(d.path())
        .args(["remote", "add", "a", "/tmp/a"])
        .assert()
        .success();
    mlops(d.path())
        .args(["remote", "add", "b", "s3://bucket/x", "--default"])
        .assert()
        .success();
    let out = mlops(d.path())
        .args(["--json", "remote", "list"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        v["remotes"][1],
        serde_json::json!({"name": "b", "url": "s3://bucket/x", "default": true})
    );
    mlops(d.path())
        .args(["remote", "default", "a"])
        .assert()
        .success();
    mlops(d.path())
        .args(["remote", "default", "zz"])
        .assert()
        .code(2);
    mlops(d.path())
        .args(["remote", "remove", "a"])
        .assert()
        .success();
    mlops(d.path())
        .args(["remote", "remove", "a"])
        .assert()
        .code(2)
        .stderr(predicate::str::contains("unknown remote `a`"));
    mlops(d.path())
        .args(["remote", "list"])
        .assert()
        .success()
        .stdout(predicate::str::is_match(r"b\s+s3://bucket/x").unwrap());
}

#[test]
fn gc_is_a_dry_run_unless_forced() {
    let d = repo();
    use_copies(d.path());
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    std::fs::remove_file(d.path().join("data/train.csv")).unwrap();
    std::fs::write(d.path().join("data/train.csv"), "new\n").unwrap();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
    mlops(d.path())
        .arg("gc")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "would remove 1 unreferenced object(s)",
        ))
        .stdout(predicate::str::is_match(r"would drop \d+ hash-cache entr").unwrap());
    assert_eq!(assert_objects_valid(&d.path().join(".mlops/cache")), 2);
    mlops(d.path())
        .args(["gc", "--force"])
        .assert()
        .success()
        .stdout(predicate::str::contains("removed 1"))
        .stdout(predicate::str::contains("dropped "));
    assert_eq!(assert_objects_valid(&d.path().join(".mlops/cache")), 1);
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));
    // The removed object's hash-cache entry went with it: nothing stale is left.
    let out = mlops(d.path()).args(["--json", "gc"]).output().unwrap();
    assert!(out.status.success());
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["unreferenced"], 0, "{report}");
    assert_eq!(report["stale_hash_entries"], 0, "{report}");
    mlops(d.path())
        .arg("gc")
        .assert()
        .success()
        .stdout(predicate::str::contains("hash-cache").not());
}

#[test]
fn second_mutating_command_names_the_lock_holder() {
    let d = repo();
    let lock = d.path().join(".mlops/lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .read(true)
        .open(&lock)
        .unwrap();
    f.lock().unwrap();
    std::fs::write(&lock, "4242\nmlops push\n").unwrap();
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains(
            "another mlops command is running in this repository (pid 4242: mlops push)",
        ));
    drop(f);
    mlops(d.path())
        .args(["add", "data/train.csv"])
        .assert()
        .success();
}

/// Makes `n` files of a few KiB under `dir`.
fn many_files(dir: &Path, n: usize) {
    for i in 0..n {
        let sub = dir.join(format!("d{}", i % 20));
        std::fs::create_dir_all(&sub).unwrap();
        let body: Vec<u8> = (0..(1024 + i % 4096))
            .map(|j| ((i * 7 + j) % 251) as u8)
            .collect();
        std::fs::write(sub.join(format!("f{i}.bin")), body).unwrap();
    }
}

/// Starts `cmd`, kills it with SIGKILL after `after`, and returns whether it was still running.
fn kill_after(mut cmd: Command, after: std::time::Duration) -> bool {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(after);
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

#[test]
fn killed_add_push_pull_are_finished_by_running_again() {
    let d = repo();
    many_files(&d.path().join("big"), 3000);
    let remote = tempfile::tempdir().unwrap();
    mlops(d.path())
        .args(["remote", "add", "store"])
        .arg(remote.path())
        .arg("--default")
        .assert()
        .success();

    let mut add = mlops(d.path());
    add.args(["add", "big"]);
    kill_after(add, std::time::Duration::from_millis(150));
    assert_objects_valid(&d.path().join(".mlops/cache"));
    mlops(d.path()).args(["add", "big"]).assert().success();
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));

    let mut push = mlops(d.path());
    push.arg("push");
    kill_after(push, std::time::Duration::from_millis(300));
    assert_objects_valid(remote.path());
    mlops(d.path()).arg("push").assert().success();
    assert_eq!(assert_objects_valid(remote.path()), 3001);
    assert_eq!(
        status_json(d.path(), &["--remote"])["changes"],
        serde_json::json!([])
    );

    std::fs::remove_dir_all(d.path().join(".mlops/cache")).unwrap();
    std::fs::remove_dir_all(d.path().join("big")).unwrap();
    let mut pull = mlops(d.path());
    pull.arg("pull");
    kill_after(pull, std::time::Duration::from_millis(300));
    assert_objects_valid(&d.path().join(".mlops/cache"));
    mlops(d.path()).arg("pull").assert().success();
    assert_eq!(status_json(d.path(), &[])["changes"], serde_json::json!([]));
    assert_eq!(assert_objects_valid(&d.path().join(".mlops/cache")), 3001);
}

/// Push and pull through a real S3-compatible server. `.ci/run` starts one and sets
/// MLOPS_TEST_S3_ENDPOINT and MLOPS_TEST_S3_BUCKET; in CI (CI=true) a missing server fails the test.
#[test]
fn s3_remote_roundtrip() {
    let (Ok(endpoint), Ok(bucket)) = (
        std::env::var("MLOPS_TEST_S3_ENDPOINT"),
        std::env::var("MLOPS_TEST_S3_BUCKET"),
    ) else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must provide an S3 server (MLOPS_TEST_S3_ENDPOINT, MLOPS_TEST_S3_BUCKET)"
        );
        eprintln!(
            "skipping: set MLOPS_TEST_S3_ENDPOINT and MLOPS_TEST_S3_BUCKET to run against an S3 server"
        );
        return;
    };
    let d = repo();
    let env = |c: &mut Command| {
        c.env("AWS_ENDPOINT_URL", &endpoint)
            .env(
                "AWS_ACCESS_KEY_ID",
                std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "test".into()),
            )
            .env(
                "AWS_SECRET_ACCESS_KEY",
                std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "test".into()),
            )
            .env("AWS_REGION", "us-east-1");
    };
    // A large file too, so the multipart path runs.
    let big: Vec<u8> = (0..(70u32 << 20)).map(|i| (i % 253) as u8).collect();
    std::fs::write(d.path().join("data/model.pt"), &big).unwrap();
    mlops(d.path()).args(["add", "data"]).assert().success();
    let prefix = format!("s3://{bucket}/run-{}", std::process::id());
    mlops(d.path())
        .args(["remote", "add", "s3", &prefix, "--default"])
        .assert()
        .success();
    let mut c = mlops(d.path());
    env(&mut c);
    c.args(["push", "-j", "4"])
        .assert()
        .success()
        .stdout(predicate::str::contains("pushed 9 object(s)"));
    let mut c = mlops(d.path());
    env(&mut c);
    let out = c.args(["--json", "status", "--remote"]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["changes"], serde_json::json!([]));
    std::fs::remove_dir_all(d.path().join(".mlops/cache")).unwrap();
    std::fs::remove_dir_all(d.path().join("data")).unwrap();
    let mut c = mlops(d.path());
    env(&mut c);
    c.arg("pull").assert().success();
    assert_eq!(std::fs::read(d.path().join("data/model.pt")).unwrap(), big);
    assert_eq!(
        std::fs::read(d.path().join("data/images/2.bin")).unwrap(),
        vec![2u8; 102]
    );
}

#[test]
fn status_lists_stages_out_of_date_with_reasons() {
    let d = repo();
    std::fs::write(
        d.path().join("mlops.toml"),
        "[stages.prepare]\ncmd = \"cp data/train.csv out.csv\"\ndeps = [\"data/train.csv\"]\nouts = [\"out.csv\"]\n",
    )
    .unwrap();
    let s = status_json(d.path(), &[]);
    assert_eq!(s["stages"][0]["name"], "prepare");
    assert!(
        s["stages"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("never run"),
        "{s}"
    );
    mlops(d.path())
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains("prepare"));
    mlops(d.path()).arg("repro").assert().success();
    assert_eq!(status_json(d.path(), &[])["stages"], serde_json::json!([]));
    std::fs::write(d.path().join("data/train.csv"), "age\n1\n").unwrap();
    let s = status_json(d.path(), &[]);
    assert!(
        s["stages"][0]["reasons"][0]
            .as_str()
            .unwrap()
            .contains("dep data/train.csv changed"),
        "{s}"
    );
}
