//! Errors of the hooks library: configuration, Git, and file access.

use std::path::PathBuf;

/// What can go wrong while selecting files, loading configuration or running checks.
///
/// A failing *check* is not an error: it is a [`crate::Finding`] in the [`crate::Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A Git-based selection (staged, all files, refs) was asked for outside a Git repository.
    #[error(
        "{dir}: not a git repository (run inside one, or name the files to check: mlops hooks run FILE...)"
    )]
    NotAGitRepo {
        /// The folder that was searched from.
        dir: PathBuf,
    },
    /// `git` could not be started.
    #[error("could not run git (is it installed and on PATH?)")]
    GitSpawn {
        /// Why the process did not start.
        #[source]
        source: std::io::Error,
    },
    /// A `git` command failed.
    #[error("git {args} failed: {stderr}")]
    Git {
        /// The arguments given to git.
        args: String,
        /// What git wrote to stderr, trimmed.
        stderr: String,
    },
    /// `git cat-file --batch` returned something that is not a blob.
    #[error("git cat-file: unexpected answer for {oid}: {answer}")]
    CatFile {
        /// The object asked for.
        oid: String,
        /// The header line git returned.
        answer: String,
    },
    /// A revision given to `--from-ref` / `--to-ref` does not name a commit.
    #[error("unknown revision `{rev}`: give a branch, tag or commit that exists")]
    BadRef {
        /// The revision as given.
        rev: String,
    },
    /// The `[hooks]` section of `mlops.toml` (or another configuration file) is malformed.
    #[error("{path}:{line}:{column}: {message}")]
    Config {
        /// The configuration file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A check id that does not exist was named (`--only`, `--skip`, `disable`).
    #[error("unknown check `{name}` (known checks: {known})")]
    UnknownCheck {
        /// The name as given.
        name: String,
        /// The known ids, comma separated.
        known: String,
    },
    /// A file named on the command line does not exist or is not a regular file.
    #[error("{path}: {reason}")]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// Why it cannot be checked.
        reason: String,
    },
    /// The secrets baseline file is malformed.
    #[error("{path}: malformed secrets baseline: {message}")]
    Baseline {
        /// The baseline file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// `hooks install` found a pre-commit hook it did not write and was not told to replace it.
    #[error("{path}: {message}")]
    HookInstall {
        /// The hook file.
        path: PathBuf,
        /// What happened and what to do.
        message: String,
    },
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The content store (pointer checks) failed.
    #[error("stale-pointers: {0}")]
    Cas(#[from] mlops_cas::Error),
}

impl Error {
    /// Whether the error is the user's to fix (bad flag, bad config, unknown name): exit code 2.
    /// Everything else is a runtime failure (exit code 3).
    pub fn is_usage(&self) -> bool {
        match self {
            Self::NotAGitRepo { .. }
            | Self::BadRef { .. }
            | Self::Config { .. }
            | Self::UnknownCheck { .. }
            | Self::BadPath { .. }
            | Self::Baseline { .. }
            | Self::HookInstall { .. } => true,
            Self::Cas(e) => e.is_usage(),
            Self::GitSpawn { .. } | Self::Git { .. } | Self::CatFile { .. } | Self::Io { .. } => {
                false
            }
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
