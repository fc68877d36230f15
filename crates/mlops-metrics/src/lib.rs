//! Model-quality metrics with scikit-learn's exact definitions, per segment, with bootstrap
//! intervals and promotion gates.
//!
//! - [`table`]: read a predictions table (Parquet or CSV via Arrow) into coded columns
//!   ([`Predictions`]), pair it with a baseline table by id or position.
//! - [`classification`] and [`regression`]: the metric kernels (confusion matrix, precision /
//!   recall / F1 with every average and `zero_division`, ROC AUC, average precision, log loss,
//!   Brier, MCC, Cohen's kappa; MAE, MSE, RMSE, R², MAPE, median and max error).
//! - [`evaluate()`]: named metrics overall, per class, per segment, gaps between segments, and
//!   (paired) bootstrap intervals.
//! - [`gates`]: `[gates.NAME]` in `mlops.toml` and their verdicts.
//!
//! ```
//! use std::collections::HashMap;
//! use std::sync::Arc;
//! use arrow::array::{ArrayRef, Float64Array, Int64Array};
//! use mlops_metrics::{evaluate, Columns, MetricOptions, Predictions, Task};
//!
//! # fn main() -> mlops_metrics::Result<()> {
//! let mut columns: HashMap<String, ArrayRef> = HashMap::new();
//! columns.insert("y_true".into(), Arc::new(Int64Array::from(vec![0, 1, 1, 0])));
//! columns.insert("y_pred".into(), Arc::new(Int64Array::from(vec![0, 1, 0, 0])));
//! columns.insert("score".into(), Arc::new(Float64Array::from(vec![0.1, 0.9, 0.4, 0.3])));
//! let spec = Columns { score: Some("score".into()), ..Columns::default() };
//! let table = Predictions::from_arrays("example".as_ref(), &columns, &spec, Task::Classification)?;
//! let report = evaluate(&table, &MetricOptions::default())?;
//! assert_eq!(report.overall["accuracy"], 0.75);
//! assert_eq!(report.overall["roc_auc"], 1.0);
//! # Ok(())
//! # }
//! ```

pub mod classification;
mod decode;
mod error;
pub mod evaluate;
pub mod gates;
pub mod labels;
pub mod regression;
pub mod table;

pub use classification::{Average, ConfusionMatrix, ZeroDivision};
pub use error::{Error, Result};
pub use evaluate::{
    Bootstrap, Interval, MetricOptions, MetricReport, Scope, bootstrap_interval, evaluate,
    metric_value, paired_bootstrap_interval, paired_relative_bootstrap_interval,
    segment_gap_interval,
};
pub use gates::{Gate, GateReport, RequirementResult, evaluate_gate, load_gates, parse_gates};
pub use labels::Label;
pub use table::{Columns, Predictions, Target, Task};
