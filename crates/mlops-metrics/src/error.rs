//! The crate's error type. Messages are lowercase, name the file, line and column or the column
//! name, and say how to fix the problem where that is not obvious.

use std::path::PathBuf;

/// Everything that can go wrong while reading predictions, computing metrics or evaluating gates.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A file could not be read.
    #[error("cannot read {path}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A Parquet file could not be decoded.
    #[error("{path}: malformed parquet")]
    Parquet {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: parquet::errors::ParquetError,
    },
    /// A CSV file (or an Arrow conversion) failed.
    #[error("{path}: malformed csv")]
    Arrow {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: arrow::error::ArrowError,
    },
    /// The predictions file has an extension we cannot read.
    #[error("{path}: unsupported predictions format (use .parquet or .csv)")]
    UnsupportedFormat {
        /// The file.
        path: PathBuf,
    },
    /// A configured column is absent from the table.
    #[error(
        "{path}: no column `{column}` (the table has: {available}); set the column name in the gate"
    )]
    MissingColumn {
        /// The file.
        path: PathBuf,
        /// The column that was asked for.
        column: String,
        /// The columns the table has, comma separated.
        available: String,
    },
    /// A column holds values that cannot serve its role (wrong type, NaN, null).
    #[error("{path}: column `{column}`: {message}")]
    BadColumn {
        /// The file.
        path: PathBuf,
        /// The column.
        column: String,
        /// What is wrong, e.g. `row 17 is NaN`.
        message: String,
    },
    /// The table has no rows.
    #[error("{path}: the predictions table is empty")]
    EmptyTable {
        /// The file.
        path: PathBuf,
    },
    /// Candidate and baseline rows cannot be paired.
    #[error("baseline {path}: {message}")]
    BaselineJoin {
        /// The baseline file.
        path: PathBuf,
        /// How many rows do not join, and why.
        message: String,
    },
    /// Inputs of a metric function are inconsistent (lengths, classes, probabilities).
    #[error("{0}")]
    InvalidInput(String),
    /// A metric name is not known; the message lists the valid names.
    #[error("unknown metric `{name}`; valid names: {valid}")]
    UnknownMetric {
        /// The name that was given.
        name: String,
        /// The valid names, comma separated.
        valid: String,
    },
    /// A metric cannot be computed for this table (e.g. `roc_auc` without a score column).
    #[error("metric `{name}` is not available: {reason}")]
    MetricUnavailable {
        /// The metric.
        name: String,
        /// Why.
        reason: String,
    },
    /// `mlops.toml` (or a metrics file) is malformed or has a bad value.
    #[error("{path}:{line}:{column}: {message}")]
    Config {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What is wrong and how to fix it.
        message: String,
    },
    /// A gate name was asked for that `mlops.toml` does not define.
    #[error("unknown gate `{name}`; gates in mlops.toml: {valid}")]
    UnknownGate {
        /// The name that was given.
        name: String,
        /// The gates defined, comma separated.
        valid: String,
    },
    /// A metrics file referenced by a requirement lacks the key or is not a number there.
    #[error("{path}: {message}")]
    MetricsFile {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl Error {
    /// Whether the error comes from the user's input or configuration (exit 2 in the CLI) rather
    /// than from the environment (I/O, exit 3).
    pub fn is_usage(&self) -> bool {
        !matches!(self, Self::Io { .. })
    }

    pub(crate) fn invalid(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
