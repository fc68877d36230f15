//! Reading Parquet and CSV tables, baselines.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use arrow::record_batch::RecordBatch;
use mlops_metrics::{Columns, Error, Label, MetricOptions, Predictions, Target, Task, evaluate};

pub(crate) fn write_parquet(path: &Path, columns: Vec<(&str, ArrayRef)>, row_group: usize) {
    let batch = RecordBatch::try_from_iter(columns).unwrap();
    let file = std::fs::File::create(path).unwrap();
    let props = parquet::file::properties::WriterProperties::builder()
        .set_max_row_group_row_count(Some(row_group))
        .build();
    let mut w = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), Some(props)).unwrap();
    w.write(&batch).unwrap();
    w.close().unwrap();
}

fn dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn csv(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn parquet_with_many_row_groups_reads_in_order() {
    let d = dir();
    let path = d.path().join("p.parquet");
    let n = 1000;
    let t: Vec<i64> = (0..n).map(|i| i % 3).collect();
    let p: Vec<i64> = (0..n).map(|i| (i / 2) % 3).collect();
    let seg: Vec<String> = (0..n)
        .map(|i| ["eu", "us"][(i % 5 == 0) as usize].to_owned())
        .collect();
    write_parquet(
        &path,
        vec![
            ("label", Arc::new(Int64Array::from(t.clone())) as ArrayRef),
            ("pred", Arc::new(Int64Array::from(p.clone()))),
            ("region", Arc::new(StringArray::from(seg))),
            (
                "unused",
                Arc::new(Float64Array::from(vec![0.0; n as usize])),
            ),
        ],
        64,
    );
    let columns = Columns {
        y_true: "label".into(),
        y_pred: "pred".into(),
        segments: vec!["region".into()],
        ..Columns::default()
    };
    let table = Predictions::read(&path, &columns, Task::Classification).unwrap();
    let Target::Classification {
        classes,
        y_true,
        y_pred,
    } = &table.target
    else {
        panic!()
    };
    assert_eq!(classes, &[Label::Int(0), Label::Int(1), Label::Int(2)]);
    assert!(y_true.iter().zip(&t).all(|(&c, &v)| c as i64 == v));
    assert!(y_pred.iter().zip(&p).all(|(&c, &v)| c as i64 == v));
    let report = evaluate(&table, &MetricOptions::default()).unwrap();
    assert_eq!(report.rows, 1000);
    assert_eq!(
        report.segments["region"]["us"].len(),
        report.segments["region"]["eu"].len()
    );
}

#[test]
fn csv_with_string_labels_and_configured_columns() {
    let d = dir();
    let path = csv(
        d.path(),
        "p.csv",
        "id,truth,guess,p_spam\n1,ham,ham,0.1\n2,spam,spam,0.8\n3,spam,ham,0.4\n4,ham,spam,0.6\n",
    );
    let columns = Columns {
        y_true: "truth".into(),
        y_pred: "guess".into(),
        score: Some("p_spam".into()),
        ..Columns::default()
    };
    let table = Predictions::read(&path, &columns, Task::Classification).unwrap();
    let report = evaluate(&table, &MetricOptions::default()).unwrap();
    assert_eq!(report.classes, vec!["ham", "spam"]);
    assert_eq!(report.overall["accuracy"], 0.5);
    assert_eq!(report.overall["roc_auc"], 0.75);
    assert_eq!(report.overall["precision"], 0.5);
}

#[test]
fn missing_columns_are_named_with_the_available_ones() {
    let d = dir();
    let path = csv(d.path(), "p.csv", "a,b\n1,2\n");
    let err = Predictions::read(&path, &Columns::default(), Task::Classification).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::MissingColumn { .. }));
    assert!(
        msg.contains("no column `y_pred`") || msg.contains("no column `y_true`"),
        "{msg}"
    );
    assert!(msg.contains("a, b"), "{msg}");
    let pq = d.path().join("p.parquet");
    write_parquet(
        &pq,
        vec![("y_true", Arc::new(Int64Array::from(vec![1])) as ArrayRef)],
        10,
    );
    let msg = Predictions::read(&pq, &Columns::default(), Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("no column `y_pred`") && msg.contains("y_true"),
        "{msg}"
    );
}

#[test]
fn bad_labels_scores_and_empty_tables_are_errors() {
    let d = dir();
    let nan = csv(d.path(), "nan.csv", "y_true,y_pred\n1.0,1\nNaN,0\n");
    let msg = Predictions::read(&nan, &Columns::default(), Task::Classification)
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("column `y_true`") && msg.contains("row 1 is NaN"),
        "{msg}"
    );
    let empty = csv(d.path(), "empty.csv", "y_true,y_pred\n");
    let err = Predictions::read(&empty, &Columns::default(), Task::Classification).unwrap_err();
    assert!(err.to_string().contains("empty"), "{err}");
    let out = csv(
        d.path(),
        "out.csv",
        "y_true,y_pred,score\n1,1,1.5\n0,0,0.2\n",
    );
    let table = Predictions::read(
        &out,
        &Columns {
            score: Some("score".into()),
            ..Columns::default()
        },
        Task::Classification,
    )
    .unwrap();
    let opts = MetricOptions {
        metrics: Some(vec!["log_loss".into()]),
        ..MetricOptions::default()
    };
    let msg = evaluate(&table, &opts).unwrap_err().to_string();
    assert!(msg.contains("outside [0, 1]"), "{msg}");
    let bad = csv(d.path(), "bad.txt", "x");
    assert!(matches!(
        Predictions::read(&bad, &Columns::default(), Task::Classification),
        Err(Error::UnsupportedFormat { .. })
    ));
    let missing = Predictions::read(
        &d.path().join("nope.csv"),
        &Columns::default(),
        Task::Classification,
    )
    .unwrap_err();
    assert!(!missing.is_usage());
}

#[test]
fn unknown_and_unavailable_metric_names_list_the_valid_ones() {
    let d = dir();
    let path = csv(d.path(), "p.csv", "y_true,y_pred\n0,1\n1,2\n2,2\n");
    let table = Predictions::read(&path, &Columns::default(), Task::Classification).unwrap();
    let opts = MetricOptions {
        metrics: Some(vec!["f2_macro".into()]),
        ..MetricOptions::default()
    };
    let msg = evaluate(&table, &opts).unwrap_err().to_string();
    assert!(
        msg.contains("unknown metric `f2_macro`") && msg.contains("f1_macro"),
        "{msg}"
    );
    let opts = MetricOptions {
        metrics: Some(vec!["f1".into()]),
        ..MetricOptions::default()
    };
    let msg = evaluate(&table, &opts).unwrap_err().to_string();
    assert!(msg.contains("3") && msg.contains("f1_macro"), "{msg}");
    let opts = MetricOptions {
        metrics: Some(vec!["roc_auc".into()]),
        ..MetricOptions::default()
    };
    assert!(
        evaluate(&table, &opts)
            .unwrap_err()
            .to_string()
            .contains("score")
    );
}

#[test]
fn baselines_join_by_id_or_position_and_report_what_does_not_join() {
    let d = dir();
    let cand = csv(d.path(), "c.csv", "id,y_true,y_pred\n1,0,0\n2,1,1\n3,1,0\n");
    let base = csv(d.path(), "b.csv", "id,y_true,y_pred\n3,1,1\n1,0,1\n2,1,1\n");
    let by_id = Columns {
        id: Some("id".into()),
        ..Columns::default()
    };
    let c = Predictions::read(&cand, &by_id, Task::Classification).unwrap();
    let b = Predictions::read(&base, &by_id, Task::Classification).unwrap();
    let aligned = c.align(&b).unwrap();
    let Target::Classification {
        classes, y_pred, ..
    } = &aligned.target
    else {
        panic!()
    };
    let preds: Vec<String> = y_pred
        .iter()
        .map(|&i| classes[i as usize].to_string())
        .collect();
    assert_eq!(preds, vec!["1", "1", "1"]);

    let other = csv(
        d.path(),
        "o.csv",
        "id,y_true,y_pred\n1,0,0\n9,1,1\n8,1,1\n7,1,1\n",
    );
    let o = Predictions::read(&other, &by_id, Task::Classification).unwrap();
    let msg = c.align(&o).unwrap_err().to_string();
    assert!(
        msg.contains("2 of 3 candidate rows") && msg.contains("3 baseline rows match no candidate"),
        "{msg}"
    );

    let short = csv(d.path(), "s.csv", "y_true,y_pred\n0,0\n");
    let c = Predictions::read(&cand, &Columns::default(), Task::Classification).unwrap();
    let s = Predictions::read(&short, &Columns::default(), Task::Classification).unwrap();
    let msg = c.align(&s).unwrap_err().to_string();
    assert!(msg.contains("has 1 rows but the candidate has 3"), "{msg}");

    let differ = csv(d.path(), "d.csv", "y_true,y_pred\n1,0\n1,1\n1,0\n");
    let x = Predictions::read(&differ, &Columns::default(), Task::Classification).unwrap();
    let msg = c.align(&x).unwrap_err().to_string();
    assert!(
        msg.contains("y_true differs from the candidate's in 1 of 3"),
        "{msg}"
    );
}

#[test]
fn margins_get_ranking_metrics_but_not_probability_metrics_by_default() {
    let d = dir();
    let path = csv(
        d.path(),
        "m.csv",
        "y_true,y_pred,score\n1,1,2.5\n0,0,-1.0\n1,0,0.3\n0,1,0.7\n",
    );
    let columns = Columns {
        score: Some("score".into()),
        ..Columns::default()
    };
    let table = Predictions::read(&path, &columns, Task::Classification).unwrap();
    let report = evaluate(&table, &MetricOptions::default()).unwrap();
    assert_eq!(report.overall["roc_auc"], 0.75);
    assert!(report.overall.contains_key("average_precision"));
    assert!(!report.overall.contains_key("log_loss") && !report.overall.contains_key("brier"));
}

#[test]
fn a_segment_with_one_class_keeps_the_tables_positive_label() {
    let d = dir();
    // Segment `a` holds only negatives, all predicted right: scikit-learn's binary f1 there is
    // 0 (pos_label 1 never occurs), not 1.
    let path = csv(
        d.path(),
        "s.csv",
        "y_true,y_pred,g\n0,0,a\n0,0,a\n1,1,b\n0,1,b\n",
    );
    let columns = Columns {
        segments: vec!["g".into()],
        ..Columns::default()
    };
    let table = Predictions::read(&path, &columns, Task::Classification).unwrap();
    let report = evaluate(&table, &MetricOptions::default()).unwrap();
    assert_eq!(report.segments["g"]["a"]["f1"], 0.0);
    assert_eq!(report.segments["g"]["a"]["precision"], 0.0);
    assert!((report.segments["g"]["b"]["f1"] - 2.0 / 3.0).abs() < 1e-15);
}
