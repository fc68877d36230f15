//! `mlops hooks install`: the Git `pre-commit` hook that runs `mlops hooks run --staged`.
//!
//! An existing hook that mlops did not write is kept as `pre-commit.legacy` and run first
//! (its failure stops the commit), unless the install is forced.

use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::git::Git;

/// The line that marks a hook as written by mlops.
pub const HOOK_MARKER: &str = "# installed by mlops hooks install";

/// What `install` did.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Installed {
    /// The hook file written.
    pub hook: PathBuf,
    /// Where a previous hook not written by mlops was moved (it runs first).
    pub chained: Option<PathBuf>,
    /// Whether a previous hook not written by mlops was overwritten (`force`).
    pub replaced: bool,
    /// Whether an earlier mlops hook was updated.
    pub updated: bool,
}

fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The hook script for the `mlops` binary at `mlops`.
pub fn script(mlops: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         {HOOK_MARKER}: checks staged files before each commit.\n\
         # A hook that was here before mlops was kept as pre-commit.legacy and runs first.\n\
         HERE=\"$(dirname \"$0\")\"\n\
         if [ -x \"$HERE/pre-commit.legacy\" ]; then\n    \"$HERE/pre-commit.legacy\" \"$@\" || exit $?\nfi\n\
         MLOPS={}\n\
         if [ ! -x \"$MLOPS\" ]; then MLOPS=mlops; fi\n\
         exec \"$MLOPS\" hooks run --staged\n",
        shell_quote(&mlops.to_string_lossy())
    )
}

/// Writes the `pre-commit` hook of the repository containing `dir`, calling `mlops` (an
/// absolute path; `mlops` on `PATH` is the fallback when it disappears).
///
/// # Errors
/// [`Error::NotAGitRepo`]; [`Error::HookInstall`] when a foreign hook exists, `force` is not
/// set and it cannot be kept (a `pre-commit.legacy` is already there); [`Error::Io`].
pub fn install(dir: &Path, mlops: &Path, force: bool) -> Result<Installed> {
    let git = Git::discover(dir)?.ok_or_else(|| Error::NotAGitRepo {
        dir: dir.to_owned(),
    })?;
    let hooks = git.hooks_dir()?;
    std::fs::create_dir_all(&hooks).map_err(|e| Error::io(&hooks, e))?;
    let hook = hooks.join("pre-commit");
    let legacy = hooks.join("pre-commit.legacy");
    let mut result = Installed {
        hook: hook.clone(),
        chained: None,
        replaced: false,
        updated: false,
    };
    match std::fs::read(&hook) {
        Ok(existing) => {
            let ours = memchr::memmem::find(&existing, HOOK_MARKER.as_bytes()).is_some();
            if ours {
                result.updated = true;
            } else if force {
                result.replaced = true;
            } else if legacy.exists() {
                return Err(Error::HookInstall {
                    path: hook,
                    message: format!(
                        "a pre-commit hook not written by mlops exists and {} is taken; \
                         merge them by hand or use --force to replace the hook",
                        legacy.display()
                    ),
                });
            } else {
                std::fs::rename(&hook, &legacy).map_err(|e| Error::io(&hook, e))?;
                result.chained = Some(legacy);
            }
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(Error::io(&hook, e)),
    }
    crate::fix::write_atomic(&hook, script(mlops).as_bytes())?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755))
            .map_err(|e| Error::io(&hook, e))?;
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_quotes_the_binary_path() {
        let s = script(Path::new("/opt/it's here/mlops"));
        assert!(s.contains(r"MLOPS='/opt/it'\''s here/mlops'"), "{s}");
        assert!(s.starts_with("#!/bin/sh\n"));
        assert!(s.contains(HOOK_MARKER));
        assert!(s.contains("hooks run --staged"));
    }
}
