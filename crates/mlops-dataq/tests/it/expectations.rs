use mlops_dataq::{
    CheckOptions, Expectation, Kind, Scalar, Severity, Stat, Suite, TypeSpec, run_suite,
};
use proptest::prelude::*;
use serde_json::json;

use crate::*;

fn people(kind: Kind) -> mlops_dataq::ExpectationResult {
    run_one(&testdata(), "people.csv", kind).results.remove(0)
}

#[test]
fn not_null_counts_nulls_and_sentinels() {
    let r = people(Kind::NotNull {
        column: "age".into(),
        sentinels: vec![],
    });
    assert_eq!((r.unexpected_count, r.element_count), (1, 6));
    assert_eq!(r.failing_rows[0].row, 3);
    let r = people(Kind::NotNull {
        column: "age".into(),
        sentinels: vec![Scalar::Int(-3)],
    });
    assert_eq!(r.unexpected_count, 2);
    assert_eq!(r.failing_rows[1].value, json!(-3));
    let r = people(Kind::NotNull {
        column: "plan".into(),
        sentinels: vec![Scalar::Str("gold".into())],
    });
    assert_eq!(r.unexpected_count, 1);
    assert_eq!(r.failing_rows[0].row, 4);
}

#[test]
fn mostly_lets_a_fraction_fail() {
    let suite = Suite::new("t", "people.csv", testdata())
        .expect(
            Expectation::new(Kind::NotNull {
                column: "age".into(),
                sentinels: vec![],
            })
            .mostly(0.8),
        )
        .expect(
            Expectation::new(Kind::NotNull {
                column: "age".into(),
                sentinels: vec![],
            })
            .mostly(0.9),
        );
    let r = run_suite(&suite, &CheckOptions::default()).unwrap();
    assert!(r.results[0].passed, "5/6 = 0.83 >= 0.8");
    assert!(!r.results[1].passed, "0.83 < 0.9");
}

#[test]
fn warn_severity_does_not_fail_the_suite() {
    let suite = Suite::new("t", "people.csv", testdata())
        .expect(Expectation::new(between("age", 0.0, 120.0)).severity(Severity::Warn));
    let r = run_suite(&suite, &CheckOptions::default()).unwrap();
    assert!(r.passed);
    assert_eq!((r.errors, r.warnings), (0, 1));
    assert!(!r.passed_strict());
}

#[test]
fn sets_regex_and_length() {
    let r = people(Kind::InSet {
        column: "plan".into(),
        values: vec![
            Scalar::Str("basic".into()),
            Scalar::Str("pro".into()),
            Scalar::Str("enterprise".into()),
        ],
    });
    assert_eq!(r.unexpected_count, 1);
    assert_eq!(r.failing_rows[0].value, json!("gold"));
    let r = people(Kind::NotInSet {
        column: "plan".into(),
        values: vec![Scalar::Str("pro".into())],
    });
    assert_eq!(
        r.failing_rows.iter().map(|f| f.row).collect::<Vec<_>>(),
        vec![1, 5]
    );
    let r = people(Kind::InSet {
        column: "churned".into(),
        values: vec![Scalar::Int(0), Scalar::Int(1)],
    });
    assert!(r.passed);
    let r = people(Kind::Regex {
        column: "email".into(),
        pattern: "^[^@]+@[^@]+$".into(),
    });
    assert_eq!(r.failing_rows[0].value, json!("cy-at-example.com"));
    let r = people(Kind::LengthBetween {
        column: "name".into(),
        min: Some(3),
        max: None,
    });
    assert_eq!(r.unexpected_count, 3, "Cy, Di, Ed");
}

#[test]
fn in_set_with_strings_on_a_numeric_column_is_a_type_error() {
    let suite = Suite::new("t", "people.csv", testdata()).expect(Expectation::new(Kind::InSet {
        column: "age".into(),
        values: vec![Scalar::Str("x".into())],
    }));
    let err = run_suite(&suite, &CheckOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("`in_set` on column `age`"), "{err}");
}

#[test]
fn unique_single_and_multi_column() {
    let r = people(Kind::Unique {
        columns: vec!["id".into()],
    });
    assert_eq!(r.unexpected_count, 1);
    assert_eq!(r.failing_rows[0].row, 5);
    assert_eq!(r.failing_rows[0].value, json!(3));
    let r = run_one(
        &testdata(),
        "train.csv",
        Kind::Unique {
            columns: vec!["day".into()],
        },
    )
    .results
    .remove(0);
    assert_eq!(r.unexpected_count, 2);
    let r = run_one(
        &testdata(),
        "train.csv",
        Kind::Unique {
            columns: vec!["day".into(), "user".into()],
        },
    )
    .results
    .remove(0);
    assert!(r.passed);
    let r = people(Kind::Unique {
        columns: vec!["plan".into(), "churned".into()],
    });
    assert_eq!(r.unexpected_count, 1, "(basic, 0) repeats at row 2");
    assert_eq!(
        r.failing_rows[0].value,
        json!({"plan": "basic", "churned": 0})
    );
}

#[test]
fn increasing_finds_decreases() {
    let r = people(Kind::Increasing {
        column: "id".into(),
        strict: false,
    });
    assert_eq!(r.unexpected_count, 1);
    assert_eq!(r.failing_rows[0].row, 5);
    let r = people(Kind::Increasing {
        column: "signup".into(),
        strict: true,
    });
    assert!(r.passed);
}

fn agg(col: &str, stat: Stat) -> mlops_dataq::ExpectationResult {
    people(Kind::Aggregate {
        column: col.into(),
        stat,
        min: Some(-1e18),
        max: Some(1e18),
    })
}

#[test]
fn aggregates_match_hand_computed_values() {
    // score: 0.5 0.7 0.1 0.9 0.3 0.6
    let close = |r: &mlops_dataq::ExpectationResult, v: f64| {
        let o = r.observed.as_f64().unwrap();
        assert!((o - v).abs() < 1e-12, "{} {o} != {v}", r.name);
    };
    close(&agg("score", Stat::Mean), 3.1 / 6.0);
    close(&agg("score", Stat::Sum), 3.1);
    close(&agg("score", Stat::Min), 0.1);
    close(&agg("score", Stat::Max), 0.9);
    close(&agg("score", Stat::Median), 0.55);
    let mean: f64 = 3.1 / 6.0;
    let var = [0.5, 0.7, 0.1, 0.9, 0.3, 0.6]
        .iter()
        .map(|x: &f64| (x - mean).powi(2))
        .sum::<f64>()
        / 5.0;
    close(&agg("score", Stat::Stddev), var.sqrt());
    close(&agg("plan", Stat::DistinctCount), 4.0);
    close(&agg("id", Stat::UniqueRatio), 5.0 / 6.0);
    let r = people(Kind::Quantiles {
        column: "score".into(),
        q: vec![0.25, 0.75],
        min: vec![0.0, 0.0],
        max: vec![0.2, 1.0],
    });
    assert!(!r.passed);
    assert_eq!(r.observed["0.25"], json!(0.35));
    let r = people(Kind::Aggregate {
        column: "score".into(),
        stat: Stat::Mean,
        min: Some(0.6),
        max: None,
    });
    assert!(!r.passed);
    assert!(r.message.contains("outside"), "{}", r.message);
}

#[test]
fn class_balance_checks_fractions_and_counts() {
    let r = people(Kind::ClassBalance {
        column: "churned".into(),
        min_fraction: Some(0.4),
        max_fraction: None,
        min_count: None,
    });
    assert!(!r.passed, "churned=1 is 2/6");
    assert_eq!(r.details["counts"]["0"], json!(4));
    let r = people(Kind::ClassBalance {
        column: "churned".into(),
        min_fraction: Some(0.3),
        max_fraction: Some(0.7),
        min_count: Some(2),
    });
    assert!(r.passed);
}

#[test]
fn no_overlap_reports_shared_keys_with_rows() {
    let r = run_one(
        &testdata(),
        "test.csv",
        Kind::NoOverlap {
            columns: vec!["user".into()],
            other: "train.csv".into(),
        },
    )
    .results
    .remove(0);
    assert!(!r.passed);
    assert_eq!(r.observed, json!(2));
    assert_eq!(
        r.failing_rows.iter().map(|f| f.row).collect::<Vec<_>>(),
        vec![1, 2]
    );
    let r = run_one(
        &testdata(),
        "test.csv",
        Kind::NoOverlap {
            columns: vec!["user".into(), "value".into()],
            other: "train.csv".into(),
        },
    )
    .results
    .remove(0);
    assert!(r.passed);
}

#[test]
fn freshness_uses_the_injected_now() {
    let suite =
        Suite::new("t", "people.csv", testdata()).expect(Expectation::new(Kind::Freshness {
            column: "signup".into(),
            max_age: std::time::Duration::from_secs(3 * 86_400),
        }));
    let fresh = run_suite(
        &suite,
        &CheckOptions::default().with_now("2026-11-26T15:00:00Z".parse().unwrap()),
    )
    .unwrap();
    assert!(fresh.results[0].passed, "{}", fresh.results[0].message);
    assert_eq!(fresh.results[0].observed, json!("2026-11-25T15:00:00Z"));
    let stale = run_suite(
        &suite,
        &CheckOptions::default().with_now("2026-12-01T15:00:00Z".parse().unwrap()),
    )
    .unwrap();
    assert!(!stale.results[0].passed);
    assert_eq!(stale.results[0].details["age_seconds"], json!(518_400.0));
}

#[test]
fn schema_required_strict_and_forbidden() {
    let kind = Kind::Schema {
        columns: vec![
            ("id".into(), TypeSpec::Integer),
            ("age".into(), TypeSpec::parse("float64").unwrap()),
            ("zip".into(), TypeSpec::String),
        ],
        strict: false,
        forbidden: vec!["em*".into()],
    };
    let r = people(kind);
    assert!(!r.passed);
    let problems = r.details["problems"].as_array().unwrap();
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert!(r.message.contains("column `age` is int64"), "{}", r.message);
    assert!(r.message.contains("missing column `zip`"), "{}", r.message);
    assert!(
        r.message.contains("forbidden column `email`"),
        "{}",
        r.message
    );
    let r = people(Kind::Schema {
        columns: vec![("id".into(), TypeSpec::Integer)],
        strict: true,
        forbidden: vec![],
    });
    assert_eq!(r.unexpected_count, 7);
}

#[test]
fn empty_dataset_passes_row_checks_and_fails_aggregates() {
    let suite = Suite::new("t", "header_only.csv", testdata())
        .expect(Expectation::new(Kind::NotNull {
            column: "age".into(),
            sentinels: vec![],
        }))
        .expect(Expectation::new(Kind::Aggregate {
            column: "age".into(),
            stat: Stat::Mean,
            min: Some(0.0),
            max: None,
        }))
        .expect(Expectation::new(Kind::RowCount {
            min: Some(1),
            max: None,
        }));
    let r = run_suite(&suite, &CheckOptions::default()).unwrap();
    assert_eq!(r.rows, 0);
    assert!(r.results[0].passed);
    assert!(!r.results[1].passed);
    assert!(r.results[1].message.contains("no non-null values"));
    assert!(!r.results[2].passed);
}

#[test]
fn nan_counts_as_missing_and_infinities_are_values() {
    let suite = Suite::new("t", "special.csv", testdata())
        .expect(Expectation::new(Kind::NotNull {
            column: "x".into(),
            sentinels: vec![],
        }))
        .expect(Expectation::new(between("x", -10.0, 10.0)))
        .expect(Expectation::new(Kind::Aggregate {
            column: "x".into(),
            stat: Stat::Max,
            min: None,
            max: Some(1e300),
        }))
        .expect(Expectation::new(Kind::NotNull {
            column: "y".into(),
            sentinels: vec![],
        }))
        .expect(Expectation::new(Kind::Aggregate {
            column: "y".into(),
            stat: Stat::Mean,
            min: None,
            max: Some(1.0),
        }));
    let r = run_suite(&suite, &CheckOptions::default()).unwrap();
    assert_eq!(r.results[0].unexpected_count, 1, "NaN is missing");
    assert_eq!(r.results[0].failing_rows[0].value, json!("NaN"));
    assert_eq!(
        r.results[1].unexpected_count, 2,
        "+inf and -inf are outside"
    );
    assert_eq!(
        r.results[1].element_count, 4,
        "NaN is not checked by between"
    );
    assert_eq!(r.results[2].observed, json!("inf"));
    assert!(!r.results[2].passed);
    assert_eq!(r.results[3].unexpected_count, 5, "all-null column");
    assert!(!r.results[4].passed, "mean of an all-null column fails");
}

/// A Parquet file with nulls spread over many row groups, read both through the statistics fast
/// path and by a full scan: every result is identical.
#[test]
fn statistics_path_gives_identical_results_to_the_scan_path() {
    let dir = tempfile::tempdir().unwrap();
    let n = 5000i64;
    let b = batch(vec![
        ("id", i64s((0..n).map(Some).collect())),
        // Nulls only in the last row groups; out-of-range values only in one row group.
        (
            "age",
            i32s(
                (0..n)
                    .map(|i| {
                        if i > 4500 && i % 7 == 0 {
                            None
                        } else if i == 3333 {
                            Some(200)
                        } else {
                            Some((i % 90) as i32)
                        }
                    })
                    .collect(),
            ),
        ),
        (
            "score",
            f64s((0..n).map(|i| Some(i as f64 / 10.0)).collect()),
        ),
        // 0/1 flags with one 2: in_set is proven by the footers except in that row group.
        (
            "flag",
            i64s(
                (0..n)
                    .map(|i| Some(if i == 4321 { 2 } else { i % 2 }))
                    .collect(),
            ),
        ),
        // Repeats from row 4000 on, and a few nulls: unique via the bitmap (statistics) and
        // via the sort (scan) must agree.
        (
            "k",
            i64s(
                (0..n)
                    .map(|i| {
                        if i % 1000 == 999 {
                            None
                        } else {
                            Some(i % 4000 + 1_000_000)
                        }
                    })
                    .collect(),
            ),
        ),
    ]);
    write_parquet(&dir.path().join("d.parquet"), &b, 500);
    let suite = Suite::new("t", "d.parquet", dir.path())
        .expect(Expectation::new(Kind::NotNull {
            column: "age".into(),
            sentinels: vec![],
        }))
        .expect(Expectation::new(Kind::NotNull {
            column: "id".into(),
            sentinels: vec![],
        }))
        .expect(Expectation::new(between("age", 0.0, 120.0)))
        .expect(Expectation::new(between("id", 0.0, 1e9)))
        .expect(Expectation::new(Kind::Between {
            column: "id".into(),
            min: Some(0.0),
            max: Some(4999.0),
            strict_min: true,
            strict_max: false,
        }))
        .expect(Expectation::new(Kind::RowCount {
            min: Some(5000),
            max: None,
        }))
        .expect(Expectation::new(Kind::Unique {
            columns: vec!["k".into()],
        }))
        .expect(Expectation::new(Kind::Unique {
            columns: vec!["id".into()],
        }))
        .expect(Expectation::new(Kind::InSet {
            column: "flag".into(),
            values: vec![Scalar::Int(0), Scalar::Int(1)],
        }));
    let fast = run_suite(&suite, &CheckOptions::default()).unwrap();
    let scan = run_suite(&suite, &CheckOptions::default().with_statistics(false)).unwrap();
    assert_eq!(fast, scan);
    assert_eq!(
        fast.results[0].unexpected_count,
        (4501..5000).filter(|i| i % 7 == 0).count() as u64
    );
    assert_eq!(fast.results[2].failing_rows[0].row, 3333);
    assert!(fast.results[3].passed);
    assert_eq!(
        fast.results[4].failing_rows[0].row, 0,
        "strict min excludes id 0"
    );
    let dups = &fast.results[6];
    assert_eq!(
        dups.unexpected_count,
        1000 - 1,
        "rows 4000..5000 repeat, one of them is null"
    );
    assert_eq!(dups.failing_rows[0].row, 4000);
    assert_eq!(dups.details["distinct"], serde_json::json!(4000 - 4));
    assert!(fast.results[7].passed);
    assert_eq!(fast.results[8].unexpected_count, 1);
    assert_eq!(fast.results[8].failing_rows[0].row, 4321);
    assert_eq!(fast.results[8].element_count, 5000);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]
    /// Splitting the same rows into row groups of any size changes nothing: partial states merge
    /// in row order (first failing rows, duplicates across groups, decreases across boundaries).
    #[test]
    fn results_do_not_depend_on_row_group_size(values in proptest::collection::vec(proptest::option::of(-5i64..40), 1..300), rg in 1usize..64) {
        let dir = tempfile::tempdir().unwrap();
        let b = batch(vec![("v", i64s(values.clone()))]);
        write_parquet(&dir.path().join("one.parquet"), &b, 100_000);
        write_parquet(&dir.path().join("many.parquet"), &b, rg);
        let suite = |data: &str| Suite::new("t", data, dir.path())
            .expect(Expectation::new(between("v", 0.0, 30.0)))
            .expect(Expectation::new(Kind::Unique { columns: vec!["v".into()] }))
            .expect(Expectation::new(Kind::Increasing { column: "v".into(), strict: false }))
            .expect(Expectation::new(Kind::NotNull { column: "v".into(), sentinels: vec![] }))
            .expect(Expectation::new(Kind::Aggregate { column: "v".into(), stat: Stat::Stddev, min: None, max: Some(1e9) }))
            .expect(Expectation::new(Kind::Aggregate { column: "v".into(), stat: Stat::Median, min: None, max: Some(1e9) }));
        let one = run_suite(&suite("one.parquet"), &CheckOptions::default()).unwrap();
        let many = run_suite(&suite("many.parquet"), &CheckOptions::default()).unwrap();
        for (a, b) in one.results.iter().zip(&many.results) {
            prop_assert_eq!(&a.failing_rows, &b.failing_rows);
            prop_assert_eq!(a.unexpected_count, b.unexpected_count);
            match (a.observed.as_f64(), b.observed.as_f64()) {
                (Some(x), Some(y)) => prop_assert!((x - y).abs() <= 1e-9 * x.abs().max(1.0)),
                _ => prop_assert_eq!(&a.observed, &b.observed),
            }
        }
        // Against a direct computation.
        let mut seen = std::collections::HashSet::new();
        let dups: Vec<u64> = values.iter().enumerate().filter_map(|(i, v)| v.and_then(|v| (!seen.insert(v)).then_some(i as u64))).collect();
        prop_assert_eq!(many.results[1].unexpected_count, dups.len() as u64);
        let firsts: Vec<u64> = many.results[1].failing_rows.iter().map(|f| f.row).collect();
        prop_assert_eq!(firsts, dups.into_iter().take(10).collect::<Vec<_>>());
    }
}

/// A string column only used by set checks is read dictionary-encoded; with another check on
/// the same column it is read as plain strings. Both give the same set results.
#[test]
fn dictionary_read_of_set_columns_matches_plain_strings() {
    let dir = tempfile::tempdir().unwrap();
    let plans = ["basic", "pro", "gold", "enterprise"];
    let b = batch(vec![(
        "plan",
        strs(
            (0..3000)
                .map(|i| {
                    if i % 97 == 0 {
                        None
                    } else {
                        Some(plans[(i * 7 % 13) % 4])
                    }
                })
                .collect(),
        ),
    )]);
    write_parquet(&dir.path().join("p.parquet"), &b, 700);
    let set = || Kind::InSet {
        column: "plan".into(),
        values: vec![
            Scalar::Str("basic".into()),
            Scalar::Str("pro".into()),
            Scalar::Str("enterprise".into()),
        ],
    };
    let alone = Suite::new("t", "p.parquet", dir.path())
        .expect(Expectation::new(set()))
        .expect(Expectation::new(Kind::NotInSet {
            column: "plan".into(),
            values: vec![Scalar::Str("pro".into())],
        }));
    let mixed = Suite::new("t", "p.parquet", dir.path())
        .expect(Expectation::new(set()))
        .expect(Expectation::new(Kind::NotInSet {
            column: "plan".into(),
            values: vec![Scalar::Str("pro".into())],
        }))
        .expect(Expectation::new(Kind::Regex {
            column: "plan".into(),
            pattern: "^[a-z]+$".into(),
        }));
    let a = run_suite(&alone, &CheckOptions::default()).unwrap();
    let m = run_suite(&mixed, &CheckOptions::default()).unwrap();
    assert_eq!(a.results[0], m.results[0]);
    assert_eq!(a.results[1], m.results[1]);
    let gold = (0..3000)
        .filter(|i| i % 97 != 0 && (i * 7 % 13) % 4 == 2)
        .count() as u64;
    assert_eq!(a.results[0].unexpected_count, gold);
    assert_eq!(a.results[0].failing_rows[0].value, json!("gold"));
    assert_eq!(a.results[0].element_count, 3000 - 31);
}
