//! Gates from mlops.toml.

use std::path::Path;

use mlops_metrics::{Error, GateReport, evaluate_gate, load_gates, parse_gates};

/// A folder with a candidate and a baseline of 200 rows (candidate accuracy 0.9, baseline 0.8),
/// a region segment where the candidate is worse in `us`, and a latency file.
fn repo() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    let mut cand = String::from("id,y_true,y_pred,score,region\n");
    let mut base = String::from("id,y_true,y_pred,score,region\n");
    for i in 0..200 {
        let t = i % 2;
        let region = if i % 4 < 2 { "eu" } else { "us" };
        let c_wrong = if region == "us" {
            i % 10 == 2 || i % 10 == 3
        } else {
            false
        };
        let b_wrong = i % 5 == 0;
        let cp = if c_wrong { 1 - t } else { t };
        let bp = if b_wrong { 1 - t } else { t };
        let cs = if cp == 1 { 0.8 } else { 0.2 };
        let bs = if bp == 1 { 0.6 } else { 0.4 };
        cand.push_str(&format!("{i},{t},{cp},{cs},{region}\n"));
        base.push_str(&format!("{},{t},{bp},{bs},{region}\n", i));
    }
    std::fs::write(d.path().join("cand.csv"), cand).unwrap();
    std::fs::write(d.path().join("base.csv"), base).unwrap();
    std::fs::create_dir(d.path().join("metrics")).unwrap();
    std::fs::write(
        d.path().join("metrics/latency.json"),
        r#"{"p95_ms": 42.5, "nested": {"cost": 3}}"#,
    )
    .unwrap();
    std::fs::write(d.path().join("metrics/cost.yaml"), "usd:\n  per_1k: 0.7\n").unwrap();
    d
}

fn run(dir: &Path, toml: &str) -> GateReport {
    let path = dir.join("mlops.toml");
    std::fs::write(&path, toml).unwrap();
    let gates = load_gates(&path).unwrap();
    evaluate_gate(dir, &gates[0]).unwrap()
}

const HEAD: &str = r#"
[stages.train]
cmd = "python train.py"

[gates.release]
predictions = "cand.csv"
baseline = "base.csv"
id = "id"
score = "score"
segments = ["region"]
bootstrap = { samples = 200, seed = 1 }
"#;

fn verdicts(r: &GateReport) -> Vec<(String, bool)> {
    r.requirements
        .iter()
        .map(|q| (q.requirement.clone(), q.passed))
        .collect()
}

#[test]
fn absolute_bounds_classes_segments_and_files() {
    let d = repo();
    let r = run(
        d.path(),
        &format!(
            "{HEAD}requirements = [\n  {{ metric = \"accuracy\", min = 0.85 }},\n  {{ metric = \"accuracy\", min = 0.95 }},\n  {{ metric = \"log_loss\", max = 0.1 }},\n  {{ metric = \"recall\", class = \"1\", min = 0.9 }},\n  {{ metric = \"accuracy\", segment = \"region\", value = \"us\", min = 0.9 }},\n  \"metrics/latency.json:p95_ms <= 50\",\n  \"metrics/latency.json:nested.cost >= 4\",\n  \"metrics/cost.yaml:usd.per_1k <= 1\",\n  \"f1_macro >= 0.5\",\n]\n"
        ),
    );
    let v = verdicts(&r);
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![true, false, false, true, false, true, false, true, true],
        "{v:?}"
    );
    assert!(!r.passed);
    assert_eq!(r.requirements[0].observed, 0.9);
    assert_eq!(r.requirements[4].observed, 0.8);
    assert_eq!(r.requirements[5].observed, 42.5);
    assert_eq!(r.metrics.segments["region"]["eu"]["accuracy"], 1.0);
    assert!(r.baseline.is_some());
}

#[test]
fn baseline_comparisons_are_direction_aware() {
    let d = repo();
    let r = run(
        d.path(),
        &format!(
            "{HEAD}requirements = [\n  {{ metric = \"accuracy\", max_regression = 0.0 }},\n  {{ metric = \"log_loss\", max_regression = 0.0 }},\n  {{ metric = \"accuracy\", min_absolute_change = 0.05 }},\n  {{ metric = \"accuracy\", min_absolute_change = 0.2 }},\n  {{ metric = \"accuracy\", min_relative_change = 0.1 }},\n  {{ metric = \"accuracy\", min_relative_change = 0.2 }},\n  {{ metric = \"brier\", min_absolute_change = 0.01 }},\n]\n"
        ),
    );
    let v = verdicts(&r);
    // candidate 0.9 vs baseline 0.8: +0.1 absolute, +12.5% relative; log loss and brier lower.
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![true, true, true, false, true, false, true],
        "{v:?}"
    );
    assert_eq!(r.requirements[0].baseline, Some(0.8));
}

#[test]
fn segment_gaps_and_confidence_intervals() {
    let d = repo();
    let r = run(
        d.path(),
        &format!(
            "{HEAD}requirements = [\n  {{ metric = \"accuracy\", segment = \"region\", max_segment_gap = 0.25 }},\n  {{ metric = \"accuracy\", segment = \"region\", max_segment_gap = 0.1 }},\n  {{ metric = \"accuracy\", min = 0.88 }},\n  {{ metric = \"accuracy\", min = 0.88, confidence = 0.95 }},\n  {{ metric = \"accuracy\", max_regression = 0.0, confidence = 0.95 }},\n]\n"
        ),
    );
    let v = verdicts(&r);
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![true, false, true, false, true],
        "{v:?}"
    );
    assert!((r.requirements[0].observed - 0.2).abs() < 1e-12);
    let interval = r.requirements[3].interval.unwrap();
    assert!(interval.low < 0.88 && interval.high > 0.9, "{interval:?}");
    assert!(
        r.requirements[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("interval")
    );
    assert!(r.requirements[4].interval.unwrap().low > 0.0);
    // The JSON shape the CLI prints.
    let json = serde_json::to_value(&r).unwrap();
    assert!(json["metrics"]["overall"]["f1_macro"].is_number());
    assert!(json["metrics"]["per_class"]["1"]["recall"].is_number());
    assert!(json["metrics"]["segments"]["region"]["us"]["accuracy"].is_number());
    assert_eq!(json["requirements"][1]["passed"], false);
}

#[test]
fn confidence_for_relative_changes_and_segment_gaps() {
    let d = repo();
    let toml = format!(
        "{HEAD}requirements = [\n  {{ metric = \"accuracy\", min_relative_change = 0.0, confidence = 0.95 }},\n  {{ metric = \"accuracy\", min_relative_change = 0.1, confidence = 0.95 }},\n  {{ metric = \"log_loss\", min_relative_change = 0.05, confidence = 0.95 }},\n  {{ metric = \"accuracy\", segment = \"region\", max_segment_gap = 0.25, confidence = 0.95 }},\n  {{ metric = \"accuracy\", segment = \"region\", max_segment_gap = 0.4, confidence = 0.95 }},\n]\n"
    );
    let r = run(d.path(), &toml);
    let v = verdicts(&r);
    // Accuracy 0.9 vs 0.8 (+12.5%); the candidate's log loss is ~39% lower; the region gap is 0.2
    // (eu 1.0, us 0.8 on 100 rows).
    assert_eq!(
        v.iter().map(|x| x.1).collect::<Vec<_>>(),
        vec![true, false, true, false, true],
        "{v:?}"
    );
    let interval = |i: usize| r.requirements[i].interval.unwrap();
    assert!(interval(0).low > 0.0 && interval(0).low < 0.1 && interval(0).high > 0.125);
    assert!(
        r.requirements[1]
            .reason
            .as_deref()
            .unwrap()
            .contains("interval")
    );
    // Lower-is-better: the relative change is negative, its upper end below -0.05.
    assert!(interval(2).high < -0.05, "{:?}", interval(2));
    assert!((r.requirements[3].observed - 0.2).abs() < 1e-12);
    assert!(
        interval(3).low < 0.2 && interval(3).high > 0.25,
        "{:?}",
        interval(3)
    );
    assert!(
        r.requirements[3]
            .reason
            .as_deref()
            .unwrap()
            .contains("interval")
    );
    assert!(interval(4).high < 0.4 && interval(4).confidence == 0.95);
    // Seeded: the same intervals again.
    let again = run(d.path(), &toml);
    for (a, b) in r.requirements.iter().zip(&again.requirements) {
        assert_eq!(a.interval, b.interval);
    }
}

fn config_error(toml: &str) -> (usize, usize, String) {
    match parse_gates("mlops.toml".as_ref(), toml).unwrap_err() {
        Error::Config {
            line,
            column,
            message,
            ..
        } => (line, column, message),
        other => panic!("not a config error: {other}"),
    }
}

#[test]
fn config_errors_name_line_and_column() {
    let base = "[gates.g]\npredictions = \"p.csv\"\n";
    let (line, col, msg) = config_error(&format!(
        "{base}requirements = [\n  {{ metric = \"f1_makro\", min = 0.8 }},\n]\n"
    ));
    assert_eq!((line, col), (4, 3));
    assert!(
        msg.contains("unknown metric `f1_makro`") && msg.contains("f1_macro"),
        "{msg}"
    );
    let (line, _, msg) = config_error(&format!("{base}colour = 1\n"));
    assert_eq!(line, 3);
    assert!(msg.contains("colour"), "{msg}");
    let (line, _, msg) = config_error(&format!(
        "{base}requirements = [{{ metric = \"accuracy\", max_regression = 0.01 }}]\n"
    ));
    assert_eq!(line, 3);
    assert!(msg.contains("set `baseline`"), "{msg}");
    let (_, _, msg) = config_error(&format!(
        "{base}requirements = [{{ metric = \"accuracy\" }}]\n"
    ));
    assert!(msg.contains("no bound"), "{msg}");
    let (_, _, msg) = config_error(&format!("{base}requirements = [\"accuracy ~ 3\"]\n"));
    assert!(msg.contains("METRIC >= NUMBER"), "{msg}");
    let (_, _, msg) = config_error(&format!(
        "{base}requirements = [{{ metric = \"accuracy\", segment = \"x\", value = \"a\", min = 1 }}]\n"
    ));
    assert!(msg.contains("not in the gate's `segments`"), "{msg}");
    let (_, _, msg) = config_error(&format!(
        "{base}requirements = [{{ metric = \"accuracy\", class = \"1\", min = 1 }}]\n"
    ));
    assert!(msg.contains("per-class metric"), "{msg}");
    let (_, _, msg) = config_error(&format!("{base}zero_division = 2\n"));
    assert!(msg.contains("zero_division"), "{msg}");
    let (_, _, msg) = config_error(&format!(
        "{base}requirements = [{{ metric = \"accuracy\", min = 1, confidence = 2 }}]\n"
    ));
    assert!(msg.contains("confidence"), "{msg}");
    let (line, _, _) = config_error("[gates.g\n");
    assert_eq!(line, 1);
    assert!(
        parse_gates("mlops.toml".as_ref(), "[stages.a]\ncmd = 'x'\n")
            .unwrap()
            .is_empty()
    );
}

#[test]
fn metrics_file_errors_name_the_key() {
    let d = repo();
    let path = d.path().join("mlops.toml");
    std::fs::write(
        &path,
        format!("{HEAD}requirements = [\"metrics/latency.json:p99_ms <= 50\"]\n"),
    )
    .unwrap();
    let gates = load_gates(&path).unwrap();
    let msg = evaluate_gate(d.path(), &gates[0]).unwrap_err().to_string();
    assert!(
        msg.contains("latency.json") && msg.contains("no key `p99_ms`"),
        "{msg}"
    );
}
