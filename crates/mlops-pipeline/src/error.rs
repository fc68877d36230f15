//! The crate's error type. Every message is lowercase, names the file (with line and column when
//! there is one) or the stage, and says how to fix it when that is not obvious.

use std::path::PathBuf;

use crate::executor::ExecError;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong loading, planning or running a pipeline.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// There is no `mlops.toml` where one was expected.
    #[error("{}: no such file; declare stages with `mlops stage add` or write [stages.NAME] tables", path.display())]
    NoSpec {
        /// Where it was looked for.
        path: PathBuf,
    },
    /// A structured file (`mlops.toml`, `mlops.lock`, a params or metrics file) is malformed or a
    /// value in it is invalid.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Syntax {
        /// The file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A `file:key` parameter names a key the file does not have.
    #[error("{}: no key `{key}` (used by stage {stage}); check the key path, e.g. `model.lr`", file.display())]
    ParamKey {
        /// The params file.
        file: PathBuf,
        /// The dotted key path.
        key: String,
        /// The stage that asked for it.
        stage: String,
    },
    /// The pipeline graph is invalid (cycle, overlapping outputs, self dependency).
    #[error("{0}")]
    Graph(String),
    /// A stage name given on the command line does not exist.
    #[error("unknown stage `{name}`; stages: {known}")]
    UnknownStage {
        /// The name asked for.
        name: String,
        /// The stages that exist, comma-separated (possibly shortened).
        known: String,
    },
    /// A stage depends on a file that does not exist and that no stage produces.
    #[error("stage {stage}: dependency {} does not exist and no stage produces it", path.display())]
    MissingDep {
        /// The stage.
        stage: String,
        /// The dependency, relative to the repository root.
        path: PathBuf,
    },
    /// A path leaves the repository (absolute, or too many `..`).
    #[error(
        "stage {stage}: path {path} is outside the repository; use a path relative to the stage's wdir"
    )]
    PathOutside {
        /// The stage.
        stage: String,
        /// The path as written.
        path: String,
    },
    /// A Git command failed (unknown revision, not a Git repository).
    #[error("git {args}: {message}")]
    Git {
        /// The arguments.
        args: String,
        /// Git's error output.
        message: String,
    },
    /// The content-addressed store failed.
    #[error(transparent)]
    Cas(#[from] mlops_cas::Error),
    /// An executor could not run a stage.
    #[error(transparent)]
    Exec(#[from] ExecError),
    /// The user interrupted the run (Ctrl-C); finished stages are recorded.
    #[error("interrupted: {finished} finished stage(s) recorded in mlops.lock, {stopped} stopped")]
    Cancelled {
        /// Stages that finished and were recorded during this run.
        finished: usize,
        /// Stages that were running and were stopped.
        stopped: usize,
    },
}

impl Error {
    /// Whether this is a usage or configuration error (exit 2) rather than a runtime failure.
    pub fn is_usage(&self) -> bool {
        match self {
            Self::NoSpec { .. }
            | Self::Syntax { .. }
            | Self::ParamKey { .. }
            | Self::Graph(_)
            | Self::UnknownStage { .. }
            | Self::MissingDep { .. }
            | Self::PathOutside { .. }
            | Self::Git { .. } => true,
            Self::Cas(e) => e.is_usage(),
            Self::Exec(ExecError::Refused { .. }) => true,
            Self::Io { .. } | Self::Exec(_) | Self::Cancelled { .. } => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// A [`Syntax`](Self::Syntax) error at byte `offset` of `text`.
    pub(crate) fn at_offset(
        file: impl Into<PathBuf>,
        text: &str,
        offset: usize,
        message: impl Into<String>,
    ) -> Self {
        let (line, column) = line_column(text, offset);
        Self::Syntax {
            file: file.into(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before.get(line_start..).map_or(0, |s| s.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 9), (2, 3));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
