//! Agreement with scikit-learn and fairlearn on the cases in `testdata/metrics/golden.json`
//! (made by `testdata/metrics/golden.py`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array, StringArray};
use mlops_metrics::{Columns, MetricOptions, Predictions, Task, ZeroDivision, evaluate};
use serde_json::Value;

fn golden() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../testdata/metrics/golden.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn array(values: &Value) -> ArrayRef {
    let list = values.as_array().unwrap();
    if list.iter().all(Value::is_i64) {
        Arc::new(Int64Array::from(
            list.iter().map(|v| v.as_i64().unwrap()).collect::<Vec<_>>(),
        ))
    } else if list.iter().all(Value::is_number) {
        Arc::new(Float64Array::from(
            list.iter().map(|v| v.as_f64().unwrap()).collect::<Vec<_>>(),
        ))
    } else {
        Arc::new(StringArray::from(
            list.iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect::<Vec<_>>(),
        ))
    }
}

fn tolerance(metric: &str) -> f64 {
    if metric.starts_with("roc_auc") || metric == "log_loss" || metric == "average_precision" {
        1e-9
    } else {
        1e-12
    }
}

fn check(case: &str, what: &str, expected: &Value, actual: Option<f64>) {
    let actual = actual.unwrap_or_else(|| panic!("{case}: {what} was not computed"));
    match expected.as_f64() {
        None => assert!(
            actual.is_nan(),
            "{case}: {what}: expected NaN (undefined), got {actual}"
        ),
        Some(e) => {
            let metric = what.rsplit('/').next().unwrap_or(what);
            let tol = tolerance(metric);
            assert!(
                (e - actual).abs() <= tol * e.abs().max(1.0),
                "{case}: {what}: sklearn {e}, mlops {actual} (diff {})",
                (e - actual).abs()
            );
        }
    }
}

#[test]
fn golden_cases_match_scikit_learn_and_fairlearn() {
    let golden = golden();
    let cases = golden["cases"].as_array().unwrap();
    assert!(cases.len() >= 30, "the golden file lost cases");
    let mut compared = 0;
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let mut arrays: HashMap<String, ArrayRef> = HashMap::new();
        arrays.insert("y_true".into(), array(&case["y_true"]));
        arrays.insert("y_pred".into(), array(&case["y_pred"]));
        let mut columns = Columns::default();
        if let Some(score) = case.get("score") {
            arrays.insert("score".into(), array(score));
            columns.score = Some("score".into());
        }
        if let Some(scores) = case.get("scores").and_then(Value::as_object) {
            for (label, values) in scores {
                let col = format!("p_{label}");
                arrays.insert(col.clone(), array(values));
                columns.scores.push((label.clone(), col));
            }
        }
        if let Some(segments) = case.get("segments").and_then(Value::as_object) {
            for (col, values) in segments {
                arrays.insert(col.clone(), array(values));
                columns.segments.push(col.clone());
            }
        }
        let task = if case["task"] == "regression" {
            Task::Regression
        } else {
            Task::Classification
        };
        let table = Predictions::from_arrays(name.as_ref(), &arrays, &columns, task).unwrap();
        let zero_division = match &case["zero_division"] {
            Value::String(s) if s == "nan" => ZeroDivision::Nan,
            Value::Number(n) if n.as_f64() == Some(0.0) => ZeroDivision::Zero,
            Value::Number(n) if n.as_f64() == Some(1.0) => ZeroDivision::One,
            _ => ZeroDivision::Warn,
        };
        let opts = MetricOptions {
            zero_division,
            pos_label: case
                .get("pos_label")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ..MetricOptions::default()
        };
        let report = evaluate(&table, &opts).unwrap_or_else(|e| panic!("{name}: {e}"));
        let expected = &case["expected"];
        for (metric, value) in expected["overall"].as_object().unwrap() {
            check(name, metric, value, report.overall.get(metric).copied());
            compared += 1;
        }
        if let Some(per_class) = expected.get("per_class").and_then(Value::as_object) {
            assert_eq!(per_class.len(), report.per_class.len(), "{name}: label set");
            for (label, values) in per_class {
                for (metric, value) in values.as_object().unwrap() {
                    let got = report
                        .per_class
                        .get(label)
                        .and_then(|m| m.get(metric))
                        .copied();
                    check(name, &format!("per_class/{label}/{metric}"), value, got);
                    compared += 1;
                }
            }
        }
        if let Some(cm) = expected.get("confusion_matrix") {
            let want: Vec<Vec<u64>> = serde_json::from_value(cm.clone()).unwrap();
            assert_eq!(
                report.confusion_matrix.as_ref().unwrap().matrix,
                want,
                "{name}: confusion matrix"
            );
        }
        if let Some(segments) = expected.get("segments").and_then(Value::as_object) {
            for (col, by_value) in segments {
                for (value, metrics) in by_value.as_object().unwrap() {
                    for (metric, v) in metrics.as_object().unwrap() {
                        let got = report.segments[col]
                            .get(value)
                            .and_then(|m| m.get(metric))
                            .copied();
                        check(name, &format!("segments/{col}={value}/{metric}"), v, got);
                        compared += 1;
                    }
                }
            }
            for (col, gaps) in expected["gaps"].as_object().unwrap() {
                for (metric, gap) in gaps.as_object().unwrap() {
                    let got = report.segment_gaps[col].get(metric).copied();
                    check(
                        name,
                        &format!("gap/{col}/{metric}/difference"),
                        &gap["difference"],
                        got.map(|g| g.difference),
                    );
                    check(
                        name,
                        &format!("gap/{col}/{metric}/ratio"),
                        &gap["ratio"],
                        got.map(|g| g.ratio),
                    );
                    compared += 2;
                }
            }
        }
    }
    assert!(compared > 1000, "only {compared} values compared");
}
