//! The error type of mlops-cas.

use std::path::PathBuf;

/// A `Result` with this crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in content-addressed storage.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An I/O operation on `path` failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A TOML file (pointer, config) could not be parsed.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A value is not valid (a hash string, a remote URL, a config value, an untrusted manifest).
    #[error("{0}")]
    Invalid(String),
    /// No `.mlops/` folder was found from `start` upwards.
    #[error("not an mlops repository (no .mlops/ in {} or any parent); run `mlops init`", start.display())]
    NotARepo {
        /// Where the search started.
        start: PathBuf,
    },
    /// A path the user named is not usable (outside the repository, inside `.mlops/`, missing).
    #[error("{}: {reason}", path.display())]
    BadPath {
        /// The path as given.
        path: PathBuf,
        /// Why, and what to do.
        reason: String,
    },
    /// A remote name that is not configured.
    #[error("unknown remote `{name}`; configured remotes: {}", if known.is_empty() { "none (add one with `mlops remote add NAME URL`)".to_owned() } else { known.join(", ") })]
    UnknownRemote {
        /// The name asked for.
        name: String,
        /// The configured names.
        known: Vec<String>,
    },
    /// No remote was named and there is no default.
    #[error(
        "no remote given and no default remote set; use -r NAME or `mlops remote default NAME`"
    )]
    NoDefaultRemote,
    /// An object is not in the cache (and was needed).
    #[error("object {hash} for {} is not in the cache; run `mlops fetch` or `mlops pull`", path.display())]
    MissingObject {
        /// The object hash.
        hash: String,
        /// The tracked path it belongs to.
        path: PathBuf,
    },
    /// An object's content does not match its hash.
    #[error(
        "corrupt object {expected} at {}: its content hashes to {actual}",
        location
    )]
    Corrupt {
        /// The hash it should have.
        expected: String,
        /// The hash it has.
        actual: String,
        /// Where it was found (a cache path or a remote URL).
        location: String,
    },
    /// Another mutating command holds the repository lock.
    #[error("another mlops command is running in this repository (pid {pid}{}); wait for it or remove {} if that process is gone", if command.is_empty() { String::new() } else { format!(": {command}") }, path.display())]
    Locked {
        /// The holder's process id.
        pid: u32,
        /// The holder's command line, when known.
        command: String,
        /// The lock file.
        path: PathBuf,
    },
    /// A remote operation failed.
    #[error("remote {url}: {source}")]
    Remote {
        /// The remote URL (never credentials).
        url: String,
        /// The object-store error.
        #[source]
        source: Box<object_store::Error>,
    },
    /// Some transfers failed (after retries); the rest completed.
    #[error("{failed} of {total} transfers failed; first error: {first}")]
    Transfers {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// The first error message.
        first: String,
    },
}

impl Error {
    /// Whether this is the user's mistake (bad path, bad config, unknown name): exit code 2 in the
    /// CLI. Everything else is a runtime failure (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Parse { .. }
                | Self::Invalid(_)
                | Self::NotARepo { .. }
                | Self::BadPath { .. }
                | Self::UnknownRemote { .. }
                | Self::NoDefaultRemote
        )
    }

    /// An [`Error::Io`] for `path`.
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            path: path.into(),
            source,
        }
    }

    /// An [`Error::Parse`] from a `toml` deserialisation error, converting its byte span into a
    /// line and column of `text`.
    pub(crate) fn toml(path: impl Into<PathBuf>, text: &str, err: &toml::de::Error) -> Self {
        let (line, column) = err.span().map_or((1, 1), |s| line_column(text, s.start));
        Self::Parse {
            path: path.into(),
            line,
            column,
            message: err.message().to_owned(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
pub(crate) fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// Extension to attach a path to I/O results.
pub(crate) trait IoContext<T> {
    /// Maps an I/O error to [`Error::Io`] naming `path`.
    fn at(self, path: &std::path::Path) -> Result<T>;
}

impl<T> IoContext<T> for std::io::Result<T> {
    fn at(self, path: &std::path::Path) -> Result<T> {
        self.map_err(|e| Error::io(path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_column_counts_from_one() {
        let text = "a = 1\nbb = ?\n";
        assert_eq!(line_column(text, 0), (1, 1));
        assert_eq!(line_column(text, 6), (2, 1));
        assert_eq!(line_column(text, 11), (2, 6));
        assert_eq!(line_column(text, 999), (3, 1));
    }
}
