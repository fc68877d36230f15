//! `cargo xtask bench metrics`: 10M generated predictions (3 classes, a binary score column for
//! class 1, a segment column of 3 values) in Parquet. Computed: accuracy, f1 macro, f1 per class,
//! confusion matrix, ROC AUC of the score column, f1 macro per segment.
//!
//! - scikit-learn: `metrics_sklearn.py` reads the file (not timed) and times the computation
//!   itself, reporting it in a JSON file with the values.
//! - mlops, computation alone: the timing mode `crates/mlops-metrics/examples/timing.rs` (built
//!   in release) loads the table (not timed) and times `mlops_metrics::evaluate`, the same work
//!   as `mlops evaluate` minus the read, and the ROC AUC kernel alone.
//! - mlops, whole command: `mlops evaluate` including the Parquet read, config and rendering.
//!
//! Both sides' values are compared before anything is reported.

use std::fs::File;
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray};
use parquet::arrow::ArrowWriter;
use parquet::basic::Compression;
use parquet::file::properties::WriterProperties;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::harness::{self, BenchContext, Measurement, Report, Row, Sample};
use crate::util::{run_loud, workspace_root};

const SKLEARN: &str = include_str!("metrics_sklearn.py");
const ROWS: usize = 10_000_000;
const BATCH: usize = 1_000_000;

const CONFIG: &str = r#"[gates.bench]
predictions = "predictions.parquet"
score = "score"
pos_label = 1
segments = ["segment"]
metrics = ["accuracy", "f1_macro", "roc_auc"]
segment_metrics = ["f1_macro"]
requirements = [{ metric = "accuracy", min = 0.5 }]
"#;

/// Writes `rows` seeded predictions in row groups of one million.
fn generate(path: &Path, rows: usize) -> anyhow::Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(7);
    let props = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_max_row_group_row_count(Some(BATCH))
        .build();
    let mut writer: Option<ArrowWriter<File>> = None;
    let segments = ["north", "south", "west"];
    let mut done = 0;
    while done < rows {
        let n = BATCH.min(rows - done);
        let mut t = Vec::with_capacity(n);
        let mut p = Vec::with_capacity(n);
        let mut s = Vec::with_capacity(n);
        let mut g = Vec::with_capacity(n);
        for _ in 0..n {
            let truth: i64 = rng.random_range(0..3);
            let pred = if rng.random::<f64>() < 0.7 {
                truth
            } else {
                rng.random_range(0..3)
            };
            // Probability of class 1, on a 1e-4 grid so the ROC computation meets ties.
            let base = if truth == 1 { 0.35 } else { 0.0 };
            let score = ((base + 0.65 * rng.random::<f64>()) * 10_000.0).round() / 10_000.0;
            t.push(truth);
            p.push(pred);
            s.push(score);
            g.push(segments[rng.random_range(0..3)]);
        }
        let batch = RecordBatch::try_from_iter([
            ("y_true", Arc::new(Int64Array::from(t)) as ArrayRef),
            ("y_pred", Arc::new(Int64Array::from(p))),
            ("score", Arc::new(Float64Array::from(s))),
            ("segment", Arc::new(StringArray::from(g))),
        ])?;
        if writer.is_none() {
            writer = Some(ArrowWriter::try_new(
                File::create(path)?,
                batch.schema(),
                Some(props.clone()),
            )?);
        }
        if let Some(w) = writer.as_mut() {
            w.write(&batch)?;
        }
        done += n;
    }
    if let Some(w) = writer {
        w.close()?;
    }
    Ok(())
}

fn close(a: f64, b: f64, what: &str) -> anyhow::Result<()> {
    if (a - b).abs() > 1e-9 {
        bail!("mlops and scikit-learn disagree on {what}: {a} vs {b}");
    }
    Ok(())
}

/// Checks mlops's values against those scikit-learn wrote.
fn compare_values(report: &serde_json::Value, sk: &serde_json::Value) -> anyhow::Result<()> {
    let v = &sk["values"];
    let num = |x: &serde_json::Value| x.as_f64().context("missing number in the bench output");
    for key in ["accuracy", "f1_macro", "roc_auc"] {
        close(num(&report["overall"][key])?, num(&v[key])?, key)?;
    }
    let classes = report["classes"].as_array().context("classes")?;
    for (i, label) in classes.iter().enumerate() {
        let label = label.as_str().context("class label")?;
        close(
            num(&report["per_class"][label]["f1"])?,
            num(&v["f1_per_class"][i])?,
            "f1 per class",
        )?;
    }
    if report["confusion_matrix"]["matrix"] != v["confusion_matrix"] {
        bail!("mlops and scikit-learn disagree on the confusion matrix");
    }
    for (segment, f1) in v["segment_f1_macro"]
        .as_object()
        .context("segment values")?
    {
        close(
            num(&report["segments"]["segment"][segment]["f1_macro"])?,
            num(f1)?,
            "segment f1_macro",
        )?;
    }
    Ok(())
}

/// Builds the release timing mode and returns its path.
fn build_timing() -> anyhow::Result<std::path::PathBuf> {
    let root = workspace_root();
    run_loud(crate::util::cargo().args([
        "build",
        "--release",
        "--quiet",
        "-p",
        "mlops-metrics",
        "--example",
        "timing",
    ]))?;
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from);
    Ok(target.join("release").join("examples").join("timing"))
}

pub(crate) fn run(ctx: &BenchContext) -> anyhow::Result<Report> {
    let rows = ROWS / ctx.shrink;
    let dir = ctx.dir("metrics")?;
    let data = dir.join("predictions.parquet");
    eprintln!("generating {rows} predictions");
    generate(&data, rows)?;
    std::fs::write(dir.join("mlops.toml"), CONFIG)?;

    let timing = build_timing()?;
    let timing_out = dir.join("timing.json");

    let python = ctx.peer("python");
    let script = dir.join("metrics_sklearn.py");
    std::fs::write(&script, SKLEARN)?;
    let sk_out = dir.join("sklearn.json");
    let mlops_cmd = || {
        let mut c = Command::new(&ctx.mlops);
        c.arg("-C").arg(&dir).args(["-q", "evaluate", "bench"]);
        c
    };

    let mut ours_compute = Vec::new();
    let mut ours_auc = Vec::new();
    let mut ours_whole = Vec::new();
    let mut theirs = Vec::new();
    let mut theirs_auc = Vec::new();
    for run in 0..ctx.runs {
        // The timing mode prints its JSON on stdout; a shell redirect keeps /usr/bin/time's
        // stderr for the harness.
        let mut c = Command::new("sh");
        c.arg("-c")
            .arg("\"$0\" \"$1\" bench > \"$2\"")
            .arg(&timing)
            .arg(&dir)
            .arg(&timing_out);
        let sample = harness::time_once(&c)?;
        let report: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&timing_out)?)?;
        let secs = |k: &str| {
            report[k]
                .as_f64()
                .map(Duration::from_secs_f64)
                .context("timing output")
        };
        ours_compute.push(Sample {
            wall: secs("compute_s")?,
            max_rss_kib: sample.max_rss_kib,
        });
        ours_auc.push(Sample {
            wall: secs("roc_auc_s")?,
            max_rss_kib: sample.max_rss_kib,
        });
        let report = &report["report"];

        if let Some(python) = &python {
            let mut c = Command::new(python);
            c.arg(&script).arg(&data).arg(&sk_out);
            let sample = harness::time_once(&c)?;
            let sk: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&sk_out)?)?;
            if run == 0 {
                compare_values(report, &sk)?;
            }
            let secs = |k: &str| {
                sk["timings"][k]
                    .as_f64()
                    .map(Duration::from_secs_f64)
                    .context("timing")
            };
            theirs.push(Sample {
                wall: secs("total")?,
                max_rss_kib: sample.max_rss_kib,
            });
            theirs_auc.push(Sample {
                wall: secs("roc_auc")?,
                max_rss_kib: sample.max_rss_kib,
            });
        }
        ours_whole.push(harness::time_once(&mlops_cmd())?);
    }
    let peer = python.as_ref().map_or_else(
        || "scikit-learn".to_owned(),
        |p| {
            let v = Command::new(p)
                .args(["-c", "import sklearn; print(sklearn.__version__)"])
                .output()
                .ok()
                .and_then(|o| String::from_utf8(o.stdout).ok())
                .unwrap_or_default();
            format!("scikit-learn {} (computation only)", v.trim())
        },
    );
    let theirs_m = (!theirs.is_empty()).then(|| Measurement::of(&theirs));
    let label = if ctx.shrink == 1 {
        "10M".to_owned()
    } else {
        format!("{rows}")
    };
    let rows_out = vec![
        Row {
            workload: format!(
                "{label} predictions: accuracy, f1 macro + per class, confusion matrix, roc_auc, per-segment f1 (excl. read)"
            ),
            peer: peer.clone(),
            ours: Measurement::of(&ours_compute),
            theirs: theirs_m,
            goal: Some(25.0),
        },
        Row {
            workload: format!("the same, roc_auc alone ({label} scores, ties)"),
            peer: peer.clone(),
            ours: Measurement::of(&ours_auc),
            theirs: (!theirs_auc.is_empty()).then(|| Measurement::of(&theirs_auc)),
            goal: None,
        },
        Row {
            workload: "whole `mlops evaluate` incl. Parquet read vs scikit-learn computation alone"
                .to_owned(),
            peer,
            ours: Measurement::of(&ours_whole),
            theirs: theirs_m,
            goal: Some(10.0),
        },
    ];
    let mut notes = vec![format!(
        "Workload: {rows} rows, y_true/y_pred int64 in 0..3 (70% correct), score float64 on a 1e-4 grid (P(class 1)), segment string of 3 values, Parquet snappy, row groups of 1M ({:.0} MiB). Values of both sides checked equal (1e-9) before timing. mlops peak RSS for the computation rows is that of the timing process (table in memory).",
        std::fs::metadata(&data)
            .map(|m| m.len() as f64 / 1048576.0)
            .unwrap_or(0.0)
    )];
    if python.is_none() {
        notes.push("scikit-learn not installed: peer rows show `not installed`.".to_owned());
    }
    Ok(Report {
        rows: rows_out,
        notes,
    })
}
