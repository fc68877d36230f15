use mlops_dataq::{CheckOptions, CsvOptions, Dataset, Error, Expectation, Kind, Suite, run_suite};

use crate::*;

#[test]
fn csv_between_reports_first_failing_rows_with_values() {
    let r = run_one(&testdata(), "people.csv", between("age", 0.0, 120.0));
    let res = &r.results[0];
    assert!(!res.passed);
    assert_eq!(r.rows, 6);
    assert_eq!(
        res.element_count, 5,
        "the null age is not checked by between"
    );
    assert_eq!(res.unexpected_count, 2);
    let rows: Vec<u64> = res.failing_rows.iter().map(|f| f.row).collect();
    assert_eq!(rows, vec![1, 4]);
    assert_eq!(res.failing_rows[0].value, serde_json::json!(151));
    assert!(res.message.contains("at rows [1, 4]"), "{}", res.message);
}

#[test]
fn ragged_csv_row_names_its_line() {
    let err = run_one_err(&testdata(), "ragged.csv", between("age", 0.0, 100.0));
    let text = err.to_string();
    assert!(text.contains("ragged.csv"), "{text}");
    assert!(text.contains("line 4"), "{text}");
    assert!(!err.is_usage());
}

fn run_one_err(dir: &std::path::Path, data: &str, kind: Kind) -> Error {
    let suite = Suite::new("t", data, dir).expect(Expectation::new(kind));
    run_suite(&suite, &CheckOptions::default()).unwrap_err()
}

#[test]
fn missing_file_is_a_usage_error_naming_the_path() {
    let err = run_one_err(&testdata(), "nope.parquet", between("age", 0.0, 1.0));
    assert!(err.to_string().contains("nope.parquet"), "{err}");
    assert!(err.is_usage());
}

#[test]
fn unreadable_parquet_names_the_file() {
    let err = run_one_err(&testdata(), "broken.parquet", between("age", 0.0, 1.0));
    let text = err.to_string();
    assert!(
        text.contains("broken.parquet") && text.contains("unreadable parquet"),
        "{text}"
    );
}

#[test]
fn missing_column_lists_the_closest_names() {
    let err = run_one_err(&testdata(), "people.csv", between("agee", 0.0, 1.0));
    let text = err.to_string();
    assert!(text.contains("no column `agee`"), "{text}");
    assert!(text.contains("closest: `age`"), "{text}");
    assert!(err.is_usage());
}

#[test]
fn between_on_a_string_column_is_a_type_error() {
    let err = run_one_err(&testdata(), "people.csv", between("plan", 0.0, 1.0));
    let text = err.to_string();
    assert!(
        text.contains("`between` on column `plan` needs a numeric column, found string"),
        "{text}"
    );
}

#[test]
fn csv_types_are_inferred_and_can_be_declared() {
    let ds = Dataset::open("people.csv", &testdata(), &CsvOptions::default()).unwrap();
    let schema = ds.schema();
    assert_eq!(
        schema.field_with_name("age").unwrap().data_type(),
        &arrow::datatypes::DataType::Int64
    );
    assert!(matches!(
        schema.field_with_name("signup").unwrap().data_type(),
        arrow::datatypes::DataType::Timestamp(..)
    ));
    let mut csv = CsvOptions::default();
    csv.types
        .push(("age".into(), arrow::datatypes::DataType::Float64));
    let ds = Dataset::open("people.csv", &testdata(), &csv).unwrap();
    assert_eq!(
        ds.schema().field_with_name("age").unwrap().data_type(),
        &arrow::datatypes::DataType::Float64
    );
}

#[test]
fn declared_csv_type_that_does_not_parse_names_the_line() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("d.csv"), "a,b\n1,x\n2,y\nthree,z\n").unwrap();
    let mut suite =
        Suite::new("t", "d.csv", dir.path()).expect(Expectation::new(between("a", 0.0, 9.0)));
    suite
        .csv
        .types
        .push(("a".into(), arrow::datatypes::DataType::Int64));
    let err = run_suite(&suite, &CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("d.csv") && err.contains("line 4"), "{err}");
}

#[test]
fn a_directory_and_a_glob_read_as_one_dataset_in_path_order() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("parts");
    std::fs::create_dir(&sub).unwrap();
    write_parquet(
        &sub.join("part-0.parquet"),
        &batch(vec![("x", i64s(vec![Some(1), Some(2)]))]),
        10,
    );
    write_parquet(
        &sub.join("part-1.parquet"),
        &batch(vec![("x", i64s(vec![Some(500), Some(3)]))]),
        10,
    );
    std::fs::write(sub.join("_SUCCESS"), "").unwrap();
    for loc in ["parts", "parts/part-*.parquet"] {
        let r = run_one(dir.path(), loc, between("x", 0.0, 10.0));
        assert_eq!(r.rows, 4, "{loc}");
        assert_eq!(r.results[0].failing_rows[0].row, 2, "{loc}");
    }
    let err = run_one_err(dir.path(), "parts/*.csv", between("x", 0.0, 1.0)).to_string();
    assert!(err.contains("no files match"), "{err}");
}

#[test]
fn files_with_different_schemas_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("a.parquet"),
        &batch(vec![("x", i64s(vec![Some(1)]))]),
        10,
    );
    write_parquet(
        &dir.path().join("b.parquet"),
        &batch(vec![("y", i64s(vec![Some(1)]))]),
        10,
    );
    let err = run_one_err(dir.path(), "*.parquet", between("x", 0.0, 1.0)).to_string();
    assert!(
        err.contains("b.parquet") && err.contains("schema differs"),
        "{err}"
    );
}

#[test]
fn parquet_projection_reads_only_needed_columns_and_counts_rows() {
    let dir = tempfile::tempdir().unwrap();
    let n = 1000;
    let b = batch(vec![
        ("a", i64s((0..n).map(Some).collect())),
        ("s", strs((0..n).map(|_| Some("x")).collect())),
    ]);
    write_parquet(&dir.path().join("p.parquet"), &b, 128);
    let ds = Dataset::open("p.parquet", dir.path(), &CsvOptions::default()).unwrap();
    assert_eq!(ds.rows_from_metadata(), Some(1000));
    let r = run_one(
        dir.path(),
        "p.parquet",
        Kind::RowCount {
            min: Some(1000),
            max: Some(1000),
        },
    );
    assert!(r.results[0].passed);
}
