//! Results: one per expectation, gathered per suite. Serialised as the stable JSON of
//! `mlops check --json` (documented in `docs/dataq.md`).

use serde::Serialize;
use serde_json::Value;

use crate::model::Severity;

/// A failing row: its 0-based row number in the dataset (files in path order) and its value.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FailingRow {
    /// 0-based row number in the dataset.
    pub row: u64,
    /// The offending value (an object of column values for multi-column keys).
    pub value: Value,
}

/// The result of one expectation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ExpectationResult {
    /// The expectation type, e.g. `between`.
    pub expectation: String,
    /// The display name, e.g. `between(age)`.
    pub name: String,
    /// The columns it read.
    pub columns: Vec<String>,
    /// `error` or `warn`.
    pub severity: Severity,
    /// Whether it held.
    pub passed: bool,
    /// The observed value: a statistic, a count, a share, or an object of values.
    pub observed: Value,
    /// How many values (rows, non-null values, classes, columns) were checked.
    pub element_count: u64,
    /// How many of them failed.
    pub unexpected_count: u64,
    /// `unexpected_count / element_count` (0 when nothing was checked).
    pub unexpected_fraction: f64,
    /// The fraction that had to pass.
    pub mostly: f64,
    /// The first failing rows, in row order (row-level expectations).
    pub failing_rows: Vec<FailingRow>,
    /// Expectation-specific detail (per-column drift, per-class counts, schema problems).
    pub details: Value,
    /// A one-line summary for people.
    pub message: String,
}

/// The results of one suite.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteReport {
    /// The suite's name.
    pub suite: String,
    /// The dataset location.
    pub data: String,
    /// Rows in the dataset.
    pub rows: u64,
    /// No `error` expectation failed.
    pub passed: bool,
    /// Failed expectations with severity `error`.
    pub errors: usize,
    /// Failed expectations with severity `warn`.
    pub warnings: usize,
    /// One result per expectation, in suite order.
    pub results: Vec<ExpectationResult>,
}

impl SuiteReport {
    /// Whether the suite passes when warnings also fail (`--fail-on warn`).
    pub fn passed_strict(&self) -> bool {
        self.errors == 0 && self.warnings == 0
    }
}
