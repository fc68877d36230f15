//! Property tests: invariants every metric keeps.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Float64Array, Int64Array};
use mlops_metrics::classification::{self as cls, Average, ConfusionMatrix, ZeroDivision};
use mlops_metrics::regression as reg;
use mlops_metrics::{
    Bootstrap, Columns, MetricOptions, Predictions, Scope, Task, bootstrap_interval, evaluate,
};
use proptest::prelude::*;

fn table(t: &[i64], p: &[i64], s: &[f64], seg: &[i64]) -> Predictions {
    let mut arrays: HashMap<String, ArrayRef> = HashMap::new();
    arrays.insert("y_true".into(), Arc::new(Int64Array::from(t.to_vec())));
    arrays.insert("y_pred".into(), Arc::new(Int64Array::from(p.to_vec())));
    arrays.insert("score".into(), Arc::new(Float64Array::from(s.to_vec())));
    arrays.insert("seg".into(), Arc::new(Int64Array::from(seg.to_vec())));
    let columns = Columns {
        score: Some("score".into()),
        segments: vec!["seg".into()],
        ..Columns::default()
    };
    Predictions::from_arrays("prop".as_ref(), &arrays, &columns, Task::Classification).unwrap()
}

/// Rows of (true in 0..2, pred in 0..3, score rounded to force ties, segment in 0..3).
fn rows() -> impl Strategy<Value = Vec<(i64, i64, f64, i64)>> {
    prop::collection::vec(
        (
            0i64..2,
            0i64..3,
            (0u32..20).prop_map(|x| f64::from(x) / 20.0),
            0i64..3,
        ),
        1..300,
    )
}

fn brute_force_auc(pos: &[bool], s: &[f64]) -> f64 {
    let (mut num, mut np, mut nn) = (0.0, 0.0, 0.0);
    for (i, &a) in pos.iter().enumerate() {
        if a {
            np += 1.0
        } else {
            nn += 1.0
        }
        for (j, &b) in pos.iter().enumerate() {
            if a && !b {
                num += if s[i] > s[j] {
                    1.0
                } else if s[i] == s[j] {
                    0.5
                } else {
                    0.0
                };
            }
            let _ = j;
        }
    }
    num / (np * nn)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn metrics_do_not_depend_on_row_order(rows in rows(), rotate in 0usize..300) {
        let (t, p, s, g): (Vec<_>, Vec<_>, Vec<_>, Vec<_>) = itertools_unzip4(&rows);
        let a = evaluate(&table(&t, &p, &s, &g), &MetricOptions { pos_label: Some("1".into()), ..MetricOptions::default() });
        let k = rotate % rows.len();
        let mut r2 = rows.clone();
        r2.rotate_left(k);
        r2.reverse();
        let (t, p, s, g) = itertools_unzip4(&r2);
        let b = evaluate(&table(&t, &p, &s, &g), &MetricOptions { pos_label: Some("1".into()), ..MetricOptions::default() });
        // Without label 1 in the table, pos_label 1 is an error: the same one in either order.
        let (a, b) = match (a, b) {
            (Ok(a), Ok(b)) => (a, b),
            (Err(x), Err(y)) => {
                prop_assert_eq!(x.to_string(), y.to_string());
                prop_assert!(x.to_string().contains("pos_label 1 is not a label"), "{}", x);
                return Ok(());
            }
            (a, b) => {
                prop_assert!(false, "row order changed the outcome: {:?} vs {:?}", a.is_ok(), b.is_ok());
                unreachable!()
            }
        };
        prop_assert_eq!(a.confusion_matrix, b.confusion_matrix);
        for (name, x) in &a.overall {
            let y = b.overall[name];
            prop_assert!((x.is_nan() && y.is_nan()) || (x - y).abs() < 1e-12, "{name}: {x} vs {y}");
        }
        prop_assert_eq!(a.segments.len(), b.segments.len());
    }

    #[test]
    fn binary_f1_is_the_harmonic_mean_of_precision_and_recall(rows in rows()) {
        let t: Vec<u32> = rows.iter().map(|r| r.0 as u32).collect();
        let p: Vec<u32> = rows.iter().map(|r| (r.1 % 2) as u32).collect();
        let cm = ConfusionMatrix::from_codes(&t, &p, 2).unwrap();
        let s = cls::averaged(&cm, Average::Binary(Some(1)), ZeroDivision::Zero);
        if s.precision + s.recall > 0.0 {
            let h = 2.0 * s.precision * s.recall / (s.precision + s.recall);
            prop_assert!((s.f1 - h).abs() < 1e-12);
        }
        let micro = cls::averaged(&cm, Average::Micro, ZeroDivision::Zero);
        prop_assert!((micro.precision - cls::accuracy(&cm)).abs() < 1e-15);
        prop_assert!((micro.f1 - cls::accuracy(&cm)).abs() < 1e-12);
        prop_assert_eq!(cm.total(), rows.len() as u64);
    }

    #[test]
    fn roc_auc_counts_pairs_with_half_credit_for_ties(rows in rows(), pad in 0usize..600) {
        // Padding past 256 rows exercises the radix sort as well as the small-input path.
        let mut pos: Vec<bool> = rows.iter().map(|r| r.0 == 1).collect();
        let mut s: Vec<f64> = rows.iter().map(|r| r.2 - 0.3).collect();
        for i in 0..pad {
            pos.push(i % 3 == 0);
            s.push(((i * 37) % 11) as f64 / 7.0 - 0.5);
        }
        let auc = cls::roc_auc(&pos, &s).unwrap();
        let has_both = pos.iter().any(|&x| x) && pos.iter().any(|&x| !x);
        if has_both {
            prop_assert!((auc - brute_force_auc(&pos, &s)).abs() < 1e-12);
            let flipped: Vec<f64> = s.iter().map(|x| -x).collect();
            prop_assert!((cls::roc_auc(&pos, &flipped).unwrap() - (1.0 - auc)).abs() < 1e-12);
            let ap = cls::average_precision(&pos, &s).unwrap();
            prop_assert!((0.0..=1.0).contains(&ap));
        } else {
            prop_assert!(auc.is_nan());
        }
    }

    #[test]
    fn regression_metrics_are_consistent(pairs in prop::collection::vec((-1e3f64..1e3, -1e3f64..1e3), 1..200)) {
        let (t, p): (Vec<f64>, Vec<f64>) = pairs.into_iter().unzip();
        let mse = reg::mse(&t, &p).unwrap();
        prop_assert!((reg::rmse(&t, &p).unwrap().powi(2) - mse).abs() <= 1e-9 * mse.max(1.0));
        prop_assert!(reg::mae(&t, &p).unwrap() <= reg::max_error(&t, &p).unwrap() + 1e-9);
        prop_assert!(reg::median_ae(&t, &p).unwrap() <= reg::max_error(&t, &p).unwrap());
        if t.len() >= 2 {
            prop_assert_eq!(reg::r2(&t, &t).unwrap(), 1.0);
        } else {
            prop_assert!(reg::r2(&t, &t).unwrap().is_nan());
        }
    }

    #[test]
    fn gate_parsing_never_panics(text in "\\PC{0,200}") {
        let _ = mlops_metrics::parse_gates("mlops.toml".as_ref(), &text);
        let gate = format!("[gates.g]\npredictions = \"p.csv\"\nrequirements = [{text}]\n");
        let _ = mlops_metrics::parse_gates("mlops.toml".as_ref(), &gate);
    }
}

fn itertools_unzip4(rows: &[(i64, i64, f64, i64)]) -> (Vec<i64>, Vec<i64>, Vec<f64>, Vec<i64>) {
    (
        rows.iter().map(|r| r.0).collect(),
        rows.iter().map(|r| r.1).collect(),
        rows.iter().map(|r| r.2).collect(),
        rows.iter().map(|r| r.3).collect(),
    )
}

#[test]
fn bootstrap_is_reproducible_for_a_seed() {
    let t: Vec<i64> = (0..200).map(|i| i % 2).collect();
    let p: Vec<i64> = (0..200)
        .map(|i| if i % 7 == 0 { 1 - i % 2 } else { i % 2 })
        .collect();
    let s: Vec<f64> = (0..200).map(|i| f64::from(i % 10) / 10.0).collect();
    let g = vec![0; 200];
    let table = table(&t, &p, &s, &g);
    let opts = MetricOptions::default();
    let boot = Bootstrap {
        samples: 200,
        seed: 7,
    };
    let a = bootstrap_interval(&table, &Scope::default(), "accuracy", &opts, boot, 0.9).unwrap();
    let b = bootstrap_interval(&table, &Scope::default(), "accuracy", &opts, boot, 0.9).unwrap();
    assert_eq!(a, b);
    let c = bootstrap_interval(
        &table,
        &Scope::default(),
        "accuracy",
        &opts,
        Bootstrap { seed: 8, ..boot },
        0.9,
    )
    .unwrap();
    assert_ne!(a, c);
    let point = evaluate(&table, &opts).unwrap().overall["accuracy"];
    assert!(a.low < point && point < a.high, "{a:?} around {point}");
    assert!(bootstrap_interval(&table, &Scope::default(), "accuracy", &opts, boot, 1.5).is_err());
}
