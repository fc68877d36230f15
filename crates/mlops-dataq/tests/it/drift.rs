use mlops_dataq::{CheckOptions, DriftMethod, Expectation, Kind, Suite, run_suite};
use serde_json::json;

use crate::*;

fn drift(
    dir: &std::path::Path,
    cols: &[&str],
    method: DriftMethod,
) -> mlops_dataq::ExpectationResult {
    let mut suite = Suite::new("t", "cur.parquet", dir).expect(Expectation::new(Kind::Drift {
        columns: cols.iter().map(|c| c.to_string()).collect(),
        method,
        threshold: None,
        drift_share: 0.5,
        bins: 10,
        reference: None,
    }));
    suite.reference = Some("ref.parquet".into());
    run_suite(&suite, &CheckOptions::default())
        .unwrap()
        .results
        .remove(0)
}

fn write_pair(dir: &std::path::Path, shift: f64, n_ref: i64, n_cur: i64) {
    let mk = |n: i64, shift: f64| {
        batch(vec![
            (
                "x",
                f64s(
                    (0..n)
                        .map(|i| Some(((i * 7919) % 1000) as f64 / 10.0 + shift))
                        .collect(),
                ),
            ),
            (
                "c",
                strs(
                    (0..n)
                        .map(|i| Some(if i % 3 == 0 { "a" } else { "b" }))
                        .collect(),
                ),
            ),
            ("k", i64s((0..n).map(|i| Some(i % 3)).collect())),
        ])
    };
    write_parquet(&dir.join("ref.parquet"), &mk(n_ref, 0.0), 1000);
    write_parquet(&dir.join("cur.parquet"), &mk(n_cur, shift), 700);
}

#[test]
fn shifted_numeric_column_drifts_under_every_method() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), 30.0, 5000, 3000);
    for m in [
        DriftMethod::Psi,
        DriftMethod::Ks,
        DriftMethod::Wasserstein,
        DriftMethod::JensenShannon,
        DriftMethod::Auto,
    ] {
        let r = drift(dir.path(), &["x"], m);
        assert!(!r.passed, "{m:?}: {}", r.message);
        assert_eq!(r.details["columns"][0]["drifted"], json!(true));
    }
    write_pair(dir.path(), 0.0, 5000, 3000);
    for m in [
        DriftMethod::Psi,
        DriftMethod::Ks,
        DriftMethod::Wasserstein,
        DriftMethod::JensenShannon,
        DriftMethod::Auto,
    ] {
        let r = drift(dir.path(), &["x"], m);
        assert!(r.passed, "{m:?}: {}", r.message);
    }
}

#[test]
fn auto_picks_methods_as_evidently() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), 0.0, 5000, 3000);
    let r = drift(dir.path(), &["x", "c", "k"], DriftMethod::Auto);
    let methods: Vec<&str> = r.details["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(
        methods,
        vec!["wasserstein", "jensen_shannon", "jensen_shannon"]
    );
    write_pair(dir.path(), 0.0, 800, 3000);
    let r = drift(dir.path(), &["x", "c", "k"], DriftMethod::Auto);
    let methods: Vec<&str> = r.details["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["method"].as_str().unwrap())
        .collect();
    assert_eq!(methods, vec!["ks", "chi2", "chi2"]);
}

#[test]
fn dataset_drift_follows_the_share_rule() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), 30.0, 5000, 3000);
    // x drifts, c and k do not: 1/3 < 0.5.
    let r = drift(dir.path(), &["x", "c", "k"], DriftMethod::Auto);
    assert!(r.passed, "{}", r.message);
    assert_eq!(r.unexpected_count, 1);
    assert!((r.observed.as_f64().unwrap() - 1.0 / 3.0).abs() < 1e-12);
    assert_eq!(r.details["dataset_drift"], json!(false));
}

#[test]
fn categories_with_no_overlap_drift_maximally() {
    let dir = tempfile::tempdir().unwrap();
    write_parquet(
        &dir.path().join("ref.parquet"),
        &batch(vec![("c", strs(vec![Some("a"), Some("b"), Some("a")]))]),
        10,
    );
    write_parquet(
        &dir.path().join("cur.parquet"),
        &batch(vec![("c", strs(vec![Some("x"), Some("y")]))]),
        10,
    );
    let r = drift(dir.path(), &["c"], DriftMethod::JensenShannon);
    let s = r.details["columns"][0]["statistic"].as_f64().unwrap();
    assert!((s - std::f64::consts::LN_2.sqrt()).abs() < 1e-12, "{s}");
    let r = drift(dir.path(), &["c"], DriftMethod::Chi2);
    assert_eq!(r.details["columns"][0]["p_value"], json!(0));
    assert!(!r.passed);
}

#[test]
fn drift_without_a_reference_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), 0.0, 10, 10);
    let suite = Suite::new("t", "cur.parquet", dir.path()).expect(Expectation::new(Kind::Drift {
        columns: vec![],
        method: DriftMethod::Auto,
        threshold: None,
        drift_share: 0.5,
        bins: 10,
        reference: None,
    }));
    let err = run_suite(&suite, &CheckOptions::default()).unwrap_err();
    assert!(err.is_usage());
    assert!(
        err.to_string().contains("needs a reference dataset"),
        "{err}"
    );
}

#[test]
fn psi_on_a_string_column_is_a_type_error() {
    let dir = tempfile::tempdir().unwrap();
    write_pair(dir.path(), 0.0, 10, 10);
    let mut suite =
        Suite::new("t", "cur.parquet", dir.path()).expect(Expectation::new(Kind::Drift {
            columns: vec!["c".into()],
            method: DriftMethod::Psi,
            threshold: None,
            drift_share: 0.5,
            bins: 10,
            reference: None,
        }));
    suite.reference = Some("ref.parquet".into());
    let err = run_suite(&suite, &CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("needs a numeric column for `psi`"), "{err}");
}
