//! `stale-pointers`: data edited without `mlops add`, pointers whose object is not cached, and
//! skipping where there is no `.mlops/`.

use mlops_cas::{InitOptions, Repo};
use mlops_hooks::{CheckId, Selection};

use crate::{git, repo, run, write};

#[test]
fn skipped_without_mlops_folder() {
    let dir = repo();
    write(dir.path(), "a.txt", "x\n");
    git(dir.path(), &["add", "."]);
    let report = run(dir.path(), Selection::Staged);
    let skipped = report
        .skipped
        .iter()
        .find(|s| s.check == CheckId::StalePointers)
        .unwrap();
    assert!(skipped.reason.contains("no .mlops/"), "{}", skipped.reason);
    assert!(report.passed());
}

#[test]
fn edited_data_and_uncached_objects_are_found() {
    let dir = repo();
    let d = dir.path();
    let cas = Repo::init(d, &InitOptions::new()).unwrap();
    write(d, "data/train.csv", "age\n42\n");
    cas.add(&["data/train.csv".into()]).unwrap();
    git(d, &["add", "."]);
    let report = run(d, Selection::Staged);
    assert_eq!(
        report.findings_of(CheckId::StalePointers).count(),
        0,
        "{:?}",
        report.findings
    );

    git(d, &["commit", "-qm", "data"]);
    // The data changes, the pointer does not: any later commit is stopped.
    write(d, "data/train.csv", "age\n43\n");
    write(d, "src/train.py", "print(1)\n");
    git(d, &["add", "src/train.py"]);
    let report = run(d, Selection::Staged);
    let f = report.findings_of(CheckId::StalePointers).next().unwrap();
    assert_eq!(f.path, "data/train.csv.mlops");
    assert!(
        f.message
            .starts_with("`data/train.csv` changed since its pointer was written"),
        "{}",
        f.message
    );
    assert_eq!(
        f.fix,
        "run `mlops add data/train.csv` and stage `data/train.csv.mlops`"
    );

    // A staged pointer whose object is not in the cache.
    write(d, "data/train.csv", "age\n42\n");
    let pointer = std::fs::read_to_string(d.join("data/train.csv.mlops")).unwrap();
    let fake = pointer.replace(
        &pointer[pointer.find("blake3:").unwrap() + 7..][..64],
        &"ab".repeat(32),
    );
    write(
        d,
        "data/other.csv.mlops",
        fake.replace("train.csv", "other.csv"),
    );
    git(d, &["add", "data/other.csv.mlops"]);
    let report = run(d, Selection::Staged);
    let msgs: Vec<&str> = report
        .findings_of(CheckId::StalePointers)
        .map(|f| f.message.as_str())
        .collect();
    assert_eq!(msgs.len(), 1, "{msgs:?}");
    assert!(msgs[0].contains("is not in the local cache"), "{msgs:?}");

    // A malformed staged pointer is reported, not an error.
    write(d, "data/bad.csv.mlops", "path = 3\n");
    git(d, &["add", "data/bad.csv.mlops"]);
    let report = run(d, Selection::Staged);
    assert!(
        report
            .findings_of(CheckId::StalePointers)
            .any(|f| f.message.starts_with("malformed pointer file"))
    );
}
