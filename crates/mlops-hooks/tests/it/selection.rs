//! File selection (staged, all files, refs, explicit lists), bad input, fixes and options.

use mlops_hooks::{CheckId, Error, HooksConfig, Runner, Selection, Source};

use crate::{git, repo, run, summary, write};

#[test]
fn staged_mode_reads_the_index_not_the_working_file() {
    let dir = repo();
    let d = dir.path();
    write(d, "params.yaml", "lr: 0.1\n");
    git(d, &["add", "params.yaml"]);
    // An unstaged edit that breaks the file must not fail the commit of the staged content.
    write(d, "params.yaml", "lr: [0.1\n");
    let report = run(d, Selection::Staged);
    assert_eq!(report.source, Source::Index);
    assert_eq!(report.files_checked, 1);
    assert!(report.passed(), "{:?}", report.findings);

    // And an unstaged repair must not hide a broken staged version.
    git(d, &["add", "params.yaml"]);
    write(d, "params.yaml", "lr: 0.1\n");
    let report = run(d, Selection::Staged);
    assert_eq!(
        summary(&report),
        vec![(CheckId::Syntax, "params.yaml".into(), Some(2))]
    );
    // The working tree was not touched.
    assert_eq!(
        std::fs::read_to_string(d.join("params.yaml")).unwrap(),
        "lr: 0.1\n"
    );
}

#[test]
fn staged_mode_ignores_unstaged_deleted_and_symlinked_files() {
    let dir = repo();
    let d = dir.path();
    write(d, "keep.txt", "ok\n");
    write(d, "gone.json", "{}\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["rm", "-q", "--cached", "gone.json"]);
    write(d, "untracked.json", "{bad");
    #[cfg(unix)]
    {
        std::os::unix::fs::symlink("keep.txt", d.join("link.json")).unwrap();
        git(d, &["add", "link.json"]);
    }
    let report = run(d, Selection::Staged);
    assert_eq!(report.files_checked, 0);
    assert!(report.passed(), "{:?}", report.findings);
}

#[test]
fn works_in_an_empty_repository_before_the_first_commit() {
    let dir = repo();
    let d = dir.path();
    write(d, "a.py", "x = 1 \n");
    git(d, &["add", "a.py"]);
    let report = run(d, Selection::Staged);
    assert_eq!(
        summary(&report),
        vec![(CheckId::TrailingWhitespace, "a.py".into(), Some(1))]
    );
    assert!(run(d, Selection::AllFiles).findings.len() == 1);
}

#[test]
fn outside_git_only_explicit_files_work() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    write(d, "c.json", "{\"a\": 1, \"a\": 2}");
    let err = Runner::new(d)
        .selection(Selection::Staged)
        .run()
        .unwrap_err();
    assert!(matches!(err, Error::NotAGitRepo { .. }));
    assert!(err.is_usage());
    assert!(err.to_string().contains("not a git repository"), "{err}");
    let err = Runner::new(d)
        .selection(Selection::AllFiles)
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("name the files to check"), "{err}");

    let report = run(d, Selection::Files(vec!["c.json".into()]));
    let s = summary(&report);
    assert!(
        s.contains(&(CheckId::Syntax, "c.json".into(), Some(1))),
        "{s:?}"
    );
    assert!(
        s.contains(&(CheckId::EndOfFile, "c.json".into(), Some(1))),
        "{s:?}"
    );
    let msg = &report.findings_of(CheckId::Syntax).next().unwrap().message;
    assert!(msg.contains("duplicate key `a`"), "{msg}");

    let err = Runner::new(d)
        .selection(Selection::Files(vec!["missing.txt".into()]))
        .run()
        .unwrap_err();
    assert_eq!(err.to_string(), "missing.txt: no such file");
    let err = Runner::new(d)
        .selection(Selection::Files(vec![".".into()]))
        .run()
        .unwrap_err();
    assert!(err.to_string().contains("is a directory"), "{err}");
}

#[test]
fn all_files_checks_tracked_files_in_the_working_tree() {
    let dir = repo();
    let d = dir.path();
    write(d, "tracked.md", "fine\n");
    write(d, "sub/tracked.toml", "a = 1\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    write(d, "untracked.toml", "a =\n");
    write(d, "sub/tracked.toml", "a =\n");
    let report = run(d, Selection::AllFiles);
    assert_eq!(report.source, Source::WorkingTree);
    assert_eq!(report.files_checked, 2);
    assert_eq!(
        summary(&report),
        vec![(CheckId::Syntax, "sub/tracked.toml".into(), Some(1))]
    );
    let f = report.findings_of(CheckId::Syntax).next().unwrap();
    assert!(
        f.message.starts_with("TOML does not parse"),
        "{}",
        f.message
    );
    // Deleted in the working tree but still tracked: nothing to read, no error.
    std::fs::remove_file(d.join("tracked.md")).unwrap();
    assert_eq!(run(d, Selection::AllFiles).files_checked, 2);
}

#[test]
fn refs_mode_checks_what_changed_since_the_merge_base_as_committed() {
    let dir = repo();
    let d = dir.path();
    write(d, "old.json", "{bad");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    git(d, &["switch", "-qc", "feature"]);
    write(d, "new.yaml", "a: [1\n");
    write(d, "ok.yaml", "a: 1\n");
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "feature"]);
    // The working copy is repaired, but the commit is what is checked.
    write(d, "new.yaml", "a: 1\n");
    let report = run(
        d,
        Selection::Refs {
            from: "main".into(),
            to: "feature".into(),
        },
    );
    assert_eq!(report.source, Source::Commit);
    assert_eq!(report.files_checked, 2);
    assert_eq!(
        summary(&report),
        vec![(CheckId::Syntax, "new.yaml".into(), Some(2))]
    );
    let err = Runner::new(d)
        .selection(Selection::Refs {
            from: "nope".into(),
            to: "feature".into(),
        })
        .run()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "unknown revision `nope`: give a branch, tag or commit that exists"
    );
    assert!(err.is_usage());
}

#[test]
fn binary_invalid_utf8_and_huge_single_line_files() {
    let dir = repo();
    let d = dir.path();
    // Binary: only the size check applies (trailing "whitespace" bytes are not text).
    let mut bin = vec![0u8, 1, 2, b' ', b'\n', b' '];
    bin.extend(std::iter::repeat_n(7u8, 600 * 1024));
    write(d, "blob.dat", &bin);
    // Latin-1 text: whitespace checks still work; YAML reports the encoding problem.
    write(d, "latin.yaml", b"name: caf\xe9 \n");
    // One 4 MiB line with a key at the end: found, on line 1.
    let mut line = "x".repeat(4 << 20);
    line.push_str(" AKIAZ7QWERTY2345UIOP\n");
    write(d, "minified.js", &line);
    git(d, &["add", "."]);
    let report = run(d, Selection::Staged);
    let s = summary(&report);
    assert!(
        s.contains(&(CheckId::LargeFiles, "blob.dat".into(), None)),
        "{s:?}"
    );
    assert!(
        !s.iter()
            .any(|(c, p, _)| p == "blob.dat" && *c != CheckId::LargeFiles),
        "{s:?}"
    );
    assert!(
        s.contains(&(CheckId::TrailingWhitespace, "latin.yaml".into(), Some(1))),
        "{s:?}"
    );
    assert!(
        s.contains(&(CheckId::Syntax, "latin.yaml".into(), Some(1))),
        "{s:?}"
    );
    assert!(
        s.contains(&(CheckId::Secrets, "minified.js".into(), Some(1))),
        "{s:?}"
    );
    assert!(
        s.contains(&(CheckId::LargeFiles, "minified.js".into(), None)),
        "{s:?}"
    );
}

#[test]
fn large_files_only_counts_added_files_unless_enforced() {
    let dir = repo();
    let d = dir.path();
    let lines = |c: u8, kib: usize| [c, b'\n'].repeat(kib * 512);
    write(d, "big.csv", lines(b'1', 600));
    git(d, &["add", "."]);
    git(d, &["commit", "-qm", "base"]);
    write(d, "big.csv", lines(b'2', 700));
    write(d, "models/clf.pt", lines(b'w', 200));
    git(d, &["add", "."]);
    let report = run(d, Selection::Staged);
    assert_eq!(
        summary(&report),
        vec![(CheckId::LargeFiles, "models/clf.pt".into(), None)]
    );
    let f = &report.findings[0];
    assert!(
        f.message
            .contains("200 KiB is over the 100 KiB limit for model and data files"),
        "{}",
        f.message
    );
    assert_eq!(
        f.fix,
        "track it with `mlops add models/clf.pt` and commit the pointer file instead"
    );

    write(d, "mlops.toml", "[hooks.large-files]\nenforce-all = true\n");
    let report = run(d, Selection::AllFiles);
    let s = summary(&report);
    assert!(
        s.contains(&(CheckId::LargeFiles, "big.csv".into(), None)),
        "{s:?}"
    );
}

#[test]
fn fix_repairs_the_working_tree_and_then_passes() {
    let dir = repo();
    let d = dir.path();
    write(d, "a.py", "x = 1  \r\ny = 2\n\n\n");
    write(d, "b.md", "no newline");
    write(
        d,
        "n.ipynb",
        r#"{"cells": [{"cell_type": "code", "execution_count": 2, "metadata": {"scrolled": true}, "outputs": [{"output_type": "stream", "name": "stdout", "text": ["hi\n"]}], "source": ["print('hi')"]}], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}"#,
    );
    git(d, &["add", "."]);
    let report = Runner::new(d)
        .selection(Selection::AllFiles)
        .fix(true)
        .run()
        .unwrap();
    let checks: Vec<CheckId> = report.findings.iter().map(|f| f.check).collect();
    assert!(checks.contains(&CheckId::TrailingWhitespace));
    assert!(checks.contains(&CheckId::MixedLineEnding));
    assert!(checks.contains(&CheckId::EndOfFile));
    assert!(checks.contains(&CheckId::NotebookOutputs));
    assert!(
        report.findings.iter().all(|f| f.fixed),
        "{:?}",
        report.findings
    );
    assert!(report.passed());
    assert_eq!(report.fixed_files, vec!["a.py", "b.md", "n.ipynb"]);
    assert_eq!(
        std::fs::read_to_string(d.join("a.py")).unwrap(),
        "x = 1\ny = 2\n"
    );
    assert_eq!(
        std::fs::read_to_string(d.join("b.md")).unwrap(),
        "no newline\n"
    );
    let nb: serde_json::Value =
        serde_json::from_slice(&std::fs::read(d.join("n.ipynb")).unwrap()).unwrap();
    assert_eq!(nb["cells"][0]["outputs"], serde_json::json!([]));
    assert_eq!(nb["cells"][0]["execution_count"], serde_json::Value::Null);
    assert!(run(d, Selection::AllFiles).passed());
}

#[test]
fn fix_in_staged_mode_still_fails_and_never_loses_unstaged_edits() {
    let dir = repo();
    let d = dir.path();
    write(d, "same.txt", "a \n");
    write(d, "edited.txt", "b \n");
    git(d, &["add", "."]);
    write(d, "edited.txt", "b \nunstaged work\n");
    let report = Runner::new(d)
        .selection(Selection::Staged)
        .fix(true)
        .run()
        .unwrap();
    assert!(!report.passed(), "the staged content is still unfixed");
    assert_eq!(report.fixed_files, vec!["same.txt"]);
    assert_eq!(std::fs::read_to_string(d.join("same.txt")).unwrap(), "a\n");
    assert_eq!(
        std::fs::read_to_string(d.join("edited.txt")).unwrap(),
        "b \nunstaged work\n"
    );
    let edited = report
        .findings
        .iter()
        .find(|f| f.path == "edited.txt")
        .unwrap();
    assert!(!edited.fixed);
    assert!(edited.fix.contains("not fixed"), "{}", edited.fix);
}

#[test]
fn merge_conflicts_case_conflicts_and_protected_branches() {
    let dir = repo();
    let d = dir.path();
    write(
        d,
        "train.py",
        "a = 1\n<<<<<<< HEAD\nb = 2\n=======\nb = 3\n>>>>>>> feature\n",
    );
    write(d, "README.rst", "Title\n=======\n");
    write(d, "Data/a.csv", "x\n");
    write(d, "data/b.csv", "y\n");
    git(d, &["add", "."]);
    let s = summary(&run(d, Selection::Staged));
    assert!(
        s.contains(&(CheckId::MergeConflict, "train.py".into(), Some(2))),
        "{s:?}"
    );
    assert!(!s.iter().any(|(_, p, _)| p == "README.rst"), "{s:?}");
    let case: Vec<_> = s
        .iter()
        .filter(|(c, _, _)| *c == CheckId::CaseConflict)
        .collect();
    assert_eq!(case.len(), 1, "{s:?}");
    assert!(
        !s.iter().any(|(c, _, _)| *c == CheckId::NoCommitToBranch),
        "off unless configured"
    );

    write(
        d,
        "mlops.toml",
        "[hooks.no-commit-to-branch]\nbranches = [\"main\", \"release/*\"]\n",
    );
    let report = run(d, Selection::Staged);
    let f = report
        .findings_of(CheckId::NoCommitToBranch)
        .next()
        .unwrap();
    assert_eq!(
        f.message,
        "committing directly to the protected branch `main`"
    );
    git(d, &["switch", "-qc", "feature"]);
    assert_eq!(
        run(d, Selection::Staged)
            .findings_of(CheckId::NoCommitToBranch)
            .count(),
        0
    );
}

#[test]
fn config_excludes_only_skip_and_malformed_sections() {
    let dir = repo();
    let d = dir.path();
    write(d, "vendor/lib.json", "{bad");
    write(d, "gen/out.yaml", "a: [\n");
    write(d, "src/x.py", "y = 1 \n");
    write(
        d,
        "mlops.toml",
        "[hooks]\nexclude = [\"vendor/**\"]\n[hooks.syntax]\nexclude = [\"gen/*.yaml\"]\n",
    );
    git(d, &["add", "."]);
    let s = summary(&run(d, Selection::Staged));
    assert_eq!(
        s,
        vec![(CheckId::TrailingWhitespace, "src/x.py".into(), Some(1))]
    );

    let r = Runner::new(d)
        .selection(Selection::Staged)
        .skip(vec![CheckId::TrailingWhitespace])
        .run()
        .unwrap();
    assert!(r.passed());
    assert!(!r.checks.contains(&CheckId::TrailingWhitespace));
    let r = Runner::new(d)
        .selection(Selection::Staged)
        .only(vec![CheckId::Secrets])
        .run()
        .unwrap();
    assert_eq!(r.checks, vec![CheckId::Secrets]);

    write(
        d,
        "mlops.toml",
        "[stages.train]\ncmd = \"x\"\n\n[hooks.large-files]\nmax-kib = \"big\"\n",
    );
    let err = Runner::new(d)
        .selection(Selection::Staged)
        .run()
        .unwrap_err();
    assert!(err.is_usage());
    let msg = err.to_string();
    assert!(msg.contains("mlops.toml:5:11"), "{msg}");
    // A configuration given in code is used as is.
    let r = Runner::new(d)
        .config(HooksConfig::default())
        .selection(Selection::Staged)
        .run()
        .unwrap();
    assert!(r.findings.iter().any(|f| f.path == "vendor/lib.json"));
}

#[test]
fn secrets_baseline_accepts_findings_wherever_the_line_moves() {
    let dir = repo();
    let d = dir.path();
    write(d, "tests/fixture.py", "KEY = 'AKIAZ7QWERTY2345UIOP'\n");
    git(d, &["add", "."]);
    let first = run(d, Selection::Staged);
    let f = first.findings_of(CheckId::Secrets).next().unwrap();
    assert!(
        f.message
            .starts_with("aws-access-key-id: AWS access key id AKIA…(20 chars)"),
        "{}",
        f.message
    );
    assert!(!f.message.contains("AKIAZ7QWERTY2345UIOP"));

    let r = Runner::new(d)
        .selection(Selection::Staged)
        .update_baseline(true)
        .run()
        .unwrap();
    assert!(r.passed());
    assert_eq!(r.baselined, 1);
    let text = std::fs::read_to_string(d.join(".mlops-secrets-baseline.toml")).unwrap();
    assert!(text.contains("rule = \"aws-access-key-id\""), "{text}");
    assert!(!text.contains("AKIAZ7QWERTY2345UIOP"));

    write(
        d,
        "tests/fixture.py",
        "\n\n# moved\nKEY = 'AKIAZ7QWERTY2345UIOP'\n",
    );
    write(d, "src/app.py", "KEY = 'AKIAZ7QWERTY2345UIOP'\n");
    git(d, &["add", "."]);
    let r = run(d, Selection::Staged);
    assert_eq!(
        summary(&r),
        vec![(CheckId::Secrets, "src/app.py".into(), Some(1))]
    );
    assert_eq!(r.baselined, 1);

    write(
        d,
        ".mlops-secrets-baseline.toml",
        "[[secret]]\nrule = \"x\"\n",
    );
    let err = Runner::new(d)
        .selection(Selection::Staged)
        .run()
        .unwrap_err();
    assert!(
        err.to_string().contains("malformed secrets baseline"),
        "{err}"
    );
}
