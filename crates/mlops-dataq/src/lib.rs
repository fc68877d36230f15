//! Data-quality suites over Arrow batches from Parquet or CSV: schema, nulls, ranges, sets,
//! uniqueness, aggregates, label balance, train/test leakage, distribution drift and freshness,
//! evaluated in one streaming, parallel scan.
//!
//! A [`Suite`] (parsed from `[checks.NAME]` in `mlops.toml` with [`parse_config`], or built in
//! code) names a dataset and a list of [`Expectation`]s; [`run_suite`] reads only the columns the
//! expectations need, evaluates Parquet row groups (or CSV files) on all cores with mergeable
//! partial states, and returns a [`SuiteReport`] with one [`ExpectationResult`] per expectation:
//! pass/fail, the observed value, unexpected count and fraction, and the first failing rows.
//!
//! ```
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use mlops_dataq::{CheckOptions, Expectation, Kind, Suite, run_suite};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("people.csv"), "id,age\n1,34\n2,151\n3,27\n")?;
//! let suite = Suite::new("people", "people.csv", dir.path())
//!     .expect(Expectation::new(Kind::Between {
//!         column: "age".into(),
//!         min: Some(0.0),
//!         max: Some(120.0),
//!         strict_min: false,
//!         strict_max: false,
//!     }))
//!     .expect(Expectation::new(Kind::Unique { columns: vec!["id".into()] }));
//! let report = run_suite(&suite, &CheckOptions::default())?;
//! assert!(!report.passed);
//! assert_eq!(report.results[0].unexpected_count, 1);
//! assert_eq!(report.results[0].failing_rows[0].row, 1);
//! assert!(report.results[1].passed);
//! # Ok(())
//! # }
//! ```
//!
//! Memory: `not_null`, `between`, sets, `regex`, `length_between`, `increasing`, `mean`, `sum`,
//! `stddev`, `min`, `max`, `class_balance`, `freshness` and PSI drift keep bounded state per
//! expectation, as does `unique` on an integer column whose Parquet footers give a dense range
//! (a bitmap). Other `unique` checks keep every key (integers: 8 bytes per row plus a sorted
//! copy while checking); `distinct_count` and `unique_ratio` keep the distinct values; `median`,
//! `quantiles` and KS, Wasserstein and numeric Jensen-Shannon drift keep every non-null value as
//! f64. All results are exact. See `docs/dataq.md`.

mod column;
mod dataset;
mod engine;
mod error;
mod infer;
mod model;
#[cfg(feature = "object-store")]
mod remote;
mod report;
pub mod stats;
mod suite;

pub use column::closest_names;
pub use dataset::{CsvOptions, Dataset, Format};
pub use engine::{CheckOptions, run_suite};
pub use error::{Error, Result};
pub use infer::infer_suite;
/// The timestamp type of [`CheckOptions::now`] (from `jiff`), parsed from RFC 3339 text.
pub use jiff::Timestamp;
pub use model::{
    DriftMethod, Expectation, Kind, Scalar, Severity, Stat, Suite, TypeSpec, type_name,
};
pub use report::{ExpectationResult, FailingRow, SuiteReport};
pub use suite::{load_suite_file, parse_config, parse_suite_file};
