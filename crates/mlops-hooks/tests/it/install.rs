//! `install`: writes the hook, keeps and chains a foreign one, replaces it only when forced.

use std::path::Path;

use mlops_hooks::install::{HOOK_MARKER, install};

use crate::repo;

#[test]
fn install_writes_chains_updates_and_forces() {
    let dir = repo();
    let d = dir.path();
    let hooks = d.join(".git/hooks");
    std::fs::create_dir_all(&hooks).unwrap();
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho legacy\n").unwrap();

    let first = install(d, Path::new("/usr/local/bin/mlops"), false).unwrap();
    assert_eq!(first.chained, Some(hooks.join("pre-commit.legacy")));
    let script = std::fs::read_to_string(hooks.join("pre-commit")).unwrap();
    assert!(script.contains(HOOK_MARKER));
    assert!(script.contains("'/usr/local/bin/mlops'"));
    assert_eq!(
        std::fs::read_to_string(hooks.join("pre-commit.legacy")).unwrap(),
        "#!/bin/sh\necho legacy\n"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(hooks.join("pre-commit"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o111, 0o111);
    }

    let again = install(d, Path::new("/opt/mlops"), false).unwrap();
    assert!(again.updated && again.chained.is_none());

    // A second foreign hook cannot be chained while the legacy slot is taken.
    std::fs::write(hooks.join("pre-commit"), "#!/bin/sh\necho other\n").unwrap();
    let err = install(d, Path::new("/opt/mlops"), false).unwrap_err();
    assert!(err.is_usage());
    assert!(err.to_string().contains("use --force"), "{err}");
    let forced = install(d, Path::new("/opt/mlops"), true).unwrap();
    assert!(forced.replaced);
    assert!(
        std::fs::read_to_string(hooks.join("pre-commit"))
            .unwrap()
            .contains(HOOK_MARKER)
    );
}

#[test]
fn install_outside_git_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let err = install(dir.path(), Path::new("/opt/mlops"), false).unwrap_err();
    assert!(err.to_string().contains("not a git repository"), "{err}");
}
