//! Errors of data-quality suites: malformed suites, unreadable data, expectations that do not fit
//! the data. Messages are lowercase and name the file, line and column, or the data column.

use std::path::PathBuf;

/// The result type of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong loading a suite, reading data or evaluating expectations.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A suite file is malformed: TOML syntax or an invalid expectation.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Suite {
        /// The suite file (`mlops.toml` or a standalone suite).
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A suite is valid TOML but asks for something impossible (unknown suite name, bad option).
    #[error("{0}")]
    Config(String),
    /// The suite names a column the data does not have.
    #[error("{data}: no column `{column}`{}", suggest(.closest))]
    MissingColumn {
        /// The dataset.
        data: String,
        /// The missing column.
        column: String,
        /// The closest existing column names.
        closest: Vec<String>,
    },
    /// An expectation does not fit the column's type (e.g. `between` on a string column).
    #[error(
        "{data}: expectation `{expectation}` on column `{column}` needs {needs}, found {found}"
    )]
    TypeMismatch {
        /// The dataset.
        data: String,
        /// The expectation kind.
        expectation: String,
        /// The column.
        column: String,
        /// What the expectation needs.
        needs: String,
        /// The column's type.
        found: String,
    },
    /// No file matched a path, directory or glob.
    #[error("{0}: no such file or no files match")]
    NotFound(String),
    /// Reading a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file is unreadable.
    #[error("{}: unreadable parquet: {source}", path.display())]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A CSV file is malformed (ragged row, unparsable value); the message names the line.
    #[error("{}: {message}", path.display())]
    Csv {
        /// The file.
        path: PathBuf,
        /// What is wrong, with the line number.
        message: String,
    },
    /// Arrow failed on data (e.g. a cast).
    #[error("{context}: {source}")]
    Arrow {
        /// Where.
        context: String,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The files of one dataset disagree on their schema.
    #[error("{}: schema differs from the first file of the dataset ({first})", path.display())]
    SchemaMismatch {
        /// The differing file.
        path: PathBuf,
        /// The first file.
        first: String,
    },
    /// Object-store access failed.
    #[error("{url}: {message}")]
    ObjectStore {
        /// The URL.
        url: String,
        /// The cause.
        message: String,
    },
}

impl Error {
    /// Whether the error is the user's to fix in a suite or command line (exit 2) rather than a
    /// runtime failure reading data (exit 3).
    pub fn is_usage(&self) -> bool {
        matches!(
            self,
            Self::Suite { .. }
                | Self::Config(_)
                | Self::MissingColumn { .. }
                | Self::TypeMismatch { .. }
                | Self::NotFound(_)
        )
    }
}

fn suggest(closest: &[String]) -> String {
    if closest.is_empty() {
        String::new()
    } else {
        let names: Vec<String> = closest.iter().map(|c| format!("`{c}`")).collect();
        format!("; closest: {}", names.join(", "))
    }
}
