//! Integration tests of the public API: readers, expectations, statistics path, drift, suites.
#![allow(
    clippy::unwrap_used,
    reason = "test helpers panic on unexpected results"
)]

mod drift;
mod expectations;
mod golden;
mod readers;
#[cfg(feature = "object-store")]
mod remote;
mod suites;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use mlops_dataq::{CheckOptions, Expectation, Kind, Suite, SuiteReport, run_suite};
use parquet::arrow::ArrowWriter;
use parquet::file::properties::WriterProperties;

/// The committed fixtures folder.
pub(crate) fn testdata() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../testdata/dataq")
}

/// Writes `batch` as Parquet with row groups of `rg` rows.
pub(crate) fn write_parquet(path: &Path, batch: &RecordBatch, rg: usize) {
    let props = WriterProperties::builder()
        .set_max_row_group_row_count(Some(rg))
        .build();
    let file = std::fs::File::create(path).unwrap();
    let mut w = ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(batch).unwrap();
    w.close().unwrap();
}

/// A batch of columns.
pub(crate) fn batch(cols: Vec<(&str, ArrayRef)>) -> RecordBatch {
    let fields: Vec<Field> = cols
        .iter()
        .map(|(n, a)| Field::new(*n, a.data_type().clone(), true))
        .collect();
    RecordBatch::try_new(
        Arc::new(Schema::new(fields)),
        cols.into_iter().map(|(_, a)| a).collect(),
    )
    .unwrap()
}

pub(crate) fn i64s(v: Vec<Option<i64>>) -> ArrayRef {
    Arc::new(Int64Array::from(v))
}
pub(crate) fn i32s(v: Vec<Option<i32>>) -> ArrayRef {
    Arc::new(Int32Array::from(v))
}
pub(crate) fn f64s(v: Vec<Option<f64>>) -> ArrayRef {
    Arc::new(Float64Array::from(v))
}
pub(crate) fn strs(v: Vec<Option<&str>>) -> ArrayRef {
    Arc::new(StringArray::from(v))
}

/// Runs one expectation over `data` in `dir`.
pub(crate) fn run_one(dir: &Path, data: &str, kind: Kind) -> SuiteReport {
    let suite = Suite::new("t", data, dir).expect(Expectation::new(kind));
    run_suite(&suite, &CheckOptions::default()).unwrap()
}

pub(crate) fn between(col: &str, min: f64, max: f64) -> Kind {
    Kind::Between {
        column: col.into(),
        min: Some(min),
        max: Some(max),
        strict_min: false,
        strict_max: false,
    }
}

#[test]
fn datatype_names_round_trip_through_type_spec() {
    for dt in [
        DataType::Int32,
        DataType::Int64,
        DataType::Float64,
        DataType::Boolean,
        DataType::Date32,
    ] {
        let spec = mlops_dataq::TypeSpec::parse(&mlops_dataq::type_name(&dt)).unwrap();
        assert!(spec.matches(&dt), "{dt}");
    }
}
