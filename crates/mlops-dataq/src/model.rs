//! What a suite declares: the dataset, options and a list of expectations.

use std::path::PathBuf;
use std::time::Duration;

use arrow::datatypes::{DataType, TimeUnit};
use serde::Serialize;

use crate::dataset::CsvOptions;

/// A named list of expectations over one dataset.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Suite {
    /// The suite's name (`[checks.NAME]`, or the standalone file's stem).
    pub name: String,
    /// The dataset: file, directory or glob, relative to `base_dir`.
    pub data: String,
    /// The default reference dataset for drift expectations.
    pub reference: Option<String>,
    /// The folder relative paths are resolved against (the suite file's folder).
    pub base_dir: PathBuf,
    /// How CSV files are read.
    pub csv: CsvOptions,
    /// How many failing rows each result lists (default 10).
    pub sample_rows: usize,
    /// The expectations, evaluated together in one scan.
    pub expectations: Vec<Expectation>,
}

impl Suite {
    /// A suite over `data` with no expectations, resolving paths against `base_dir`.
    pub fn new(
        name: impl Into<String>,
        data: impl Into<String>,
        base_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            name: name.into(),
            data: data.into(),
            reference: None,
            base_dir: base_dir.into(),
            csv: CsvOptions::default(),
            sample_rows: 10,
            expectations: Vec::new(),
        }
    }

    /// Adds an expectation (builder style).
    #[must_use]
    pub fn expect(mut self, expectation: Expectation) -> Self {
        self.expectations.push(expectation);
        self
    }
}

/// How bad a failed expectation is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Fails the suite (exit 1).
    #[default]
    Error,
    /// Reported; fails the suite only with `--fail-on warn`.
    Warn,
}

/// One expectation: what must hold, how much of it (`mostly`) and how bad a failure is.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Expectation {
    /// What must hold.
    pub kind: Kind,
    /// The fraction of checked values that must pass (row-level expectations; default 1.0).
    pub mostly: f64,
    /// Error (default) or warning.
    pub severity: Severity,
    /// A display name (default: `kind(columns)`).
    pub name: Option<String>,
}

impl Expectation {
    /// An expectation of `kind` with `mostly = 1.0` and severity error.
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            mostly: 1.0,
            severity: Severity::Error,
            name: None,
        }
    }

    /// Sets `mostly` (builder style).
    #[must_use]
    pub fn mostly(mut self, mostly: f64) -> Self {
        self.mostly = mostly;
        self
    }

    /// Sets the severity (builder style).
    #[must_use]
    pub fn severity(mut self, severity: Severity) -> Self {
        self.severity = severity;
        self
    }

    /// The display name: the given one, or `kind(col, …)`.
    pub fn display_name(&self) -> String {
        if let Some(n) = &self.name {
            return n.clone();
        }
        let cols = self.kind.columns();
        if cols.is_empty() {
            self.kind.type_name().to_owned()
        } else {
            format!("{}({})", self.kind.type_name(), cols.join(", "))
        }
    }
}

/// A literal value in a suite: a set member, a sentinel.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Scalar {
    /// `true` / `false`.
    Bool(bool),
    /// An integer.
    Int(i64),
    /// A float.
    Float(f64),
    /// A string.
    Str(String),
}

impl Scalar {
    /// The value as f64 when numeric.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Self::Int(i) => Some(*i as f64),
            Self::Float(f) => Some(*f),
            _ => None,
        }
    }
}

/// A column aggregate compared against bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Stat {
    /// Arithmetic mean.
    Mean,
    /// Median (exact, linear interpolation between the two middle values).
    Median,
    /// Sample standard deviation (ddof = 1, as pandas).
    Stddev,
    /// Minimum.
    Min,
    /// Maximum.
    Max,
    /// Sum.
    Sum,
    /// Number of distinct non-null values.
    DistinctCount,
    /// Distinct non-null values / non-null values.
    UniqueRatio,
}

impl Stat {
    /// The expectation type name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mean => "mean",
            Self::Median => "median",
            Self::Stddev => "stddev",
            Self::Min => "min",
            Self::Max => "max",
            Self::Sum => "sum",
            Self::DistinctCount => "distinct_count",
            Self::UniqueRatio => "unique_ratio",
        }
    }

    /// Whether the statistic needs a numeric column.
    pub fn numeric(self) -> bool {
        !matches!(self, Self::DistinctCount | Self::UniqueRatio)
    }
}

/// A drift statistic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum DriftMethod {
    /// Population stability index over quantile bins of the reference.
    Psi,
    /// Two-sample Kolmogorov-Smirnov test (p-value).
    Ks,
    /// Wasserstein distance divided by the reference's standard deviation.
    Wasserstein,
    /// Jensen-Shannon distance of binned or categorical distributions.
    JensenShannon,
    /// Chi-square test of category counts (p-value).
    Chi2,
    /// Chosen per column as Evidently does.
    Auto,
}

impl DriftMethod {
    /// The method's name in suites and reports.
    pub fn name(self) -> &'static str {
        match self {
            Self::Psi => "psi",
            Self::Ks => "ks",
            Self::Wasserstein => "wasserstein",
            Self::JensenShannon => "jensen_shannon",
            Self::Chi2 => "chi2",
            Self::Auto => "auto",
        }
    }

    /// Default threshold: p-value below it (ks, chi2) or statistic at or above it (others).
    pub fn default_threshold(self) -> f64 {
        match self {
            Self::Ks | Self::Chi2 => 0.05,
            Self::Psi | Self::Wasserstein | Self::JensenShannon | Self::Auto => 0.1,
        }
    }

    /// Whether drift is detected by a small p-value (rather than a large statistic).
    pub fn is_test(self) -> bool {
        matches!(self, Self::Ks | Self::Chi2)
    }
}

/// A column type a `schema` expectation requires.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum TypeSpec {
    /// Exactly this Arrow type.
    Exact(DataType),
    /// Any integer type.
    Integer,
    /// Any floating-point type.
    Float,
    /// Any integer or floating-point type.
    Numeric,
    /// Any string type (also dictionary-encoded).
    String,
    /// Any timestamp type.
    Timestamp,
}

impl TypeSpec {
    /// Parses a type name: `int64`, `float32`, `string`, `bool`, `date`, `timestamp`, or a family
    /// (`integer`, `float`, `numeric`).
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name.to_ascii_lowercase().as_str() {
            "integer" | "int" => Self::Integer,
            "float" | "double" => Self::Float,
            "numeric" | "number" => Self::Numeric,
            "string" | "str" | "utf8" => Self::String,
            "timestamp" | "datetime" => Self::Timestamp,
            other => Self::Exact(exact_type(other)?),
        })
    }

    /// Whether `dt` satisfies the spec.
    pub fn matches(&self, dt: &DataType) -> bool {
        match self {
            Self::Exact(t) => t == dt,
            Self::Integer => dt.is_integer(),
            Self::Float => dt.is_floating(),
            Self::Numeric => dt.is_numeric(),
            Self::String => is_string(dt),
            Self::Timestamp => matches!(dt, DataType::Timestamp(..)),
        }
    }

    /// The Arrow type to declare for a CSV column.
    pub fn csv_type(&self) -> DataType {
        match self {
            Self::Exact(t) => t.clone(),
            Self::Integer => DataType::Int64,
            Self::Float | Self::Numeric => DataType::Float64,
            Self::String => DataType::Utf8,
            Self::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        }
    }
}

/// Whether `dt` holds strings (plain, large, view or dictionary-encoded).
pub(crate) fn is_string(dt: &DataType) -> bool {
    match dt {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => true,
        DataType::Dictionary(_, v) => is_string(v),
        _ => false,
    }
}

/// The suite name of an Arrow type (what `--infer` writes).
pub fn type_name(dt: &DataType) -> String {
    match dt {
        DataType::Int8 => "int8".into(),
        DataType::Int16 => "int16".into(),
        DataType::Int32 => "int32".into(),
        DataType::Int64 => "int64".into(),
        DataType::UInt8 => "uint8".into(),
        DataType::UInt16 => "uint16".into(),
        DataType::UInt32 => "uint32".into(),
        DataType::UInt64 => "uint64".into(),
        DataType::Float32 => "float32".into(),
        DataType::Float64 => "float64".into(),
        DataType::Boolean => "bool".into(),
        DataType::Date32 => "date".into(),
        DataType::Timestamp(..) => "timestamp".into(),
        t if is_string(t) => "string".into(),
        other => other.to_string(),
    }
}

fn exact_type(name: &str) -> Option<DataType> {
    Some(match name {
        "int8" => DataType::Int8,
        "int16" => DataType::Int16,
        "int32" => DataType::Int32,
        "int64" => DataType::Int64,
        "uint8" => DataType::UInt8,
        "uint16" => DataType::UInt16,
        "uint32" => DataType::UInt32,
        "uint64" => DataType::UInt64,
        "float32" => DataType::Float32,
        "float64" => DataType::Float64,
        "bool" | "boolean" => DataType::Boolean,
        "date" | "date32" => DataType::Date32,
        _ => return None,
    })
}

/// What an expectation checks.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub enum Kind {
    /// The number of rows is within bounds.
    RowCount {
        /// Inclusive lower bound.
        min: Option<u64>,
        /// Inclusive upper bound.
        max: Option<u64>,
    },
    /// Required columns with types; `strict` = no other columns; forbidden column globs.
    Schema {
        /// Required columns and their types.
        columns: Vec<(String, TypeSpec)>,
        /// No columns besides the required ones.
        strict: bool,
        /// Globs no column name may match (e.g. `pii_*`).
        forbidden: Vec<String>,
    },
    /// No two rows share the same values in `columns` (rows with a null are skipped).
    Unique {
        /// One or several columns forming the key.
        columns: Vec<String>,
    },
    /// No nulls (and no NaN, and none of the sentinel values).
    NotNull {
        /// The column.
        column: String,
        /// Values that also count as missing (e.g. `-1`, `"N/A"`).
        sentinels: Vec<Scalar>,
    },
    /// Every non-null value within bounds.
    Between {
        /// The column (numeric).
        column: String,
        /// Lower bound.
        min: Option<f64>,
        /// Upper bound.
        max: Option<f64>,
        /// Lower bound excluded.
        strict_min: bool,
        /// Upper bound excluded.
        strict_max: bool,
    },
    /// Every non-null value in the set.
    InSet {
        /// The column.
        column: String,
        /// Allowed values.
        values: Vec<Scalar>,
    },
    /// No non-null value in the set.
    NotInSet {
        /// The column.
        column: String,
        /// Forbidden values.
        values: Vec<Scalar>,
    },
    /// Every non-null string matches the pattern (anywhere; anchor with `^…$`).
    Regex {
        /// The column (string).
        column: String,
        /// The pattern (Rust `regex` syntax).
        pattern: String,
    },
    /// Every non-null string's length (in characters) within bounds.
    LengthBetween {
        /// The column (string).
        column: String,
        /// Inclusive lower bound.
        min: Option<u64>,
        /// Inclusive upper bound.
        max: Option<u64>,
    },
    /// Each non-null value at least (`strict`: greater than) the previous non-null value.
    Increasing {
        /// The column (numeric or temporal).
        column: String,
        /// Strictly increasing.
        strict: bool,
    },
    /// A column statistic within bounds.
    Aggregate {
        /// The column.
        column: String,
        /// Which statistic.
        stat: Stat,
        /// Inclusive lower bound.
        min: Option<f64>,
        /// Inclusive upper bound.
        max: Option<f64>,
    },
    /// Quantiles within bounds (exact, linear interpolation like numpy's default).
    Quantiles {
        /// The column (numeric).
        column: String,
        /// The quantiles, each in [0, 1].
        q: Vec<f64>,
        /// Lower bounds, one per quantile.
        min: Vec<f64>,
        /// Upper bounds, one per quantile.
        max: Vec<f64>,
    },
    /// Each class's fraction within bounds and each class with at least `min_count` rows.
    ClassBalance {
        /// The label column.
        column: String,
        /// Lowest allowed fraction of any class.
        min_fraction: Option<f64>,
        /// Highest allowed fraction of any class.
        max_fraction: Option<f64>,
        /// Fewest rows any class may have.
        min_count: Option<u64>,
    },
    /// No key of this dataset occurs in `other` (train vs test leakage).
    NoOverlap {
        /// The key columns.
        columns: Vec<String>,
        /// The other dataset.
        other: String,
    },
    /// Distribution drift against a reference dataset.
    Drift {
        /// The columns compared (all common columns when empty).
        columns: Vec<String>,
        /// The statistic.
        method: DriftMethod,
        /// Drift threshold (default per method).
        threshold: Option<f64>,
        /// Dataset drift when at least this share of columns drifted (default 0.5).
        drift_share: f64,
        /// Quantile bins for PSI (default 10).
        bins: usize,
        /// The reference dataset (default: the suite's `reference`).
        reference: Option<String>,
    },
    /// The newest timestamp is younger than `max_age`.
    Freshness {
        /// The column (timestamp or date).
        column: String,
        /// Maximum age of the newest value.
        max_age: Duration,
    },
}

impl Kind {
    /// The expectation's type name as written in suites.
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RowCount { .. } => "row_count",
            Self::Schema { .. } => "schema",
            Self::Unique { .. } => "unique",
            Self::NotNull { .. } => "not_null",
            Self::Between { .. } => "between",
            Self::InSet { .. } => "in_set",
            Self::NotInSet { .. } => "not_in_set",
            Self::Regex { .. } => "regex",
            Self::LengthBetween { .. } => "length_between",
            Self::Increasing { .. } => "increasing",
            Self::Aggregate { stat, .. } => stat.name(),
            Self::Quantiles { .. } => "quantiles",
            Self::ClassBalance { .. } => "class_balance",
            Self::NoOverlap { .. } => "no_overlap",
            Self::Drift { .. } => "drift",
            Self::Freshness { .. } => "freshness",
        }
    }

    /// The data columns the expectation reads.
    pub fn columns(&self) -> Vec<String> {
        match self {
            Self::RowCount { .. } => Vec::new(),
            Self::Schema { columns, .. } => columns.iter().map(|(c, _)| c.clone()).collect(),
            Self::Unique { columns }
            | Self::NoOverlap { columns, .. }
            | Self::Drift { columns, .. } => columns.clone(),
            Self::NotNull { column, .. }
            | Self::Between { column, .. }
            | Self::InSet { column, .. }
            | Self::NotInSet { column, .. }
            | Self::Regex { column, .. }
            | Self::LengthBetween { column, .. }
            | Self::Increasing { column, .. }
            | Self::Aggregate { column, .. }
            | Self::Quantiles { column, .. }
            | Self::ClassBalance { column, .. }
            | Self::Freshness { column, .. } => vec![column.clone()],
        }
    }

    /// Whether `mostly` applies (row-level expectations and `unique`).
    pub fn row_level(&self) -> bool {
        matches!(
            self,
            Self::Unique { .. }
                | Self::NotNull { .. }
                | Self::Between { .. }
                | Self::InSet { .. }
                | Self::NotInSet { .. }
                | Self::Regex { .. }
                | Self::LengthBetween { .. }
                | Self::Increasing { .. }
                | Self::NoOverlap { .. }
        )
    }
}
