//! `mlops evaluate [GATE…] [--write PATH]`: compute model-quality metrics from predictions tables
//! and judge the requirements of `[gates.NAME]` in `mlops.toml`.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Args;
use mlops_metrics::{Gate, GateReport, MetricReport};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};

/// Arguments of `mlops evaluate`.
#[derive(Debug, Args)]
pub(crate) struct EvaluateArgs {
    /// Gates of mlops.toml to evaluate (all when omitted).
    #[arg(value_name = "GATE")]
    gates: Vec<String>,
    /// Also write every computed metric as JSON to PATH (declare it under a stage's `metrics`).
    #[arg(long, value_name = "PATH")]
    write: Option<PathBuf>,
}

#[derive(Serialize)]
struct EvaluateOutput<'a> {
    passed: bool,
    gates: &'a [GateReport],
}

/// Runs `mlops evaluate`.
pub(crate) fn run(args: EvaluateArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let dir = global.work_dir()?;
    let gates = select(&dir, &args.gates)?;
    let mut reports = Vec::with_capacity(gates.len());
    for gate in &gates {
        tracing::info!(gate = %gate.name, predictions = %gate.predictions.display(), "evaluating");
        let report = mlops_metrics::evaluate_gate(&dir, gate).map_err(|e| {
            let usage = e.is_usage();
            exit::classify(
                anyhow::Error::new(e).context(format!("gate `{}`", gate.name)),
                usage,
            )
        })?;
        reports.push(report);
    }
    if let Some(path) = &args.write {
        let path = if path.is_absolute() {
            path.clone()
        } else {
            dir.join(path)
        };
        write_metrics(&path, &reports).map_err(exit::runtime)?;
    }
    let passed = reports.iter().all(|r| r.passed);
    if global.json {
        print_json(&EvaluateOutput {
            passed,
            gates: &reports,
        })?;
    } else if !global.quiet || !passed {
        for report in &reports {
            render(report);
        }
    }
    Ok(Outcome::from_passed(passed))
}

/// The gates named by `names`, or every gate of mlops.toml.
fn select(dir: &Path, names: &[String]) -> anyhow::Result<Vec<Gate>> {
    let path = dir.join("mlops.toml");
    if !path.is_file() {
        return Err(exit::usage(anyhow::anyhow!(
            "{}: not found; add [gates.NAME] sections to mlops.toml (see docs/metrics.md)",
            path.display()
        )));
    }
    let all = mlops_metrics::load_gates(&path).map_err(|e| {
        let usage = e.is_usage();
        exit::classify(e, usage)
    })?;
    if all.is_empty() {
        return Err(exit::usage(anyhow::anyhow!(
            "{}: no [gates.NAME] sections",
            path.display()
        )));
    }
    if names.is_empty() {
        return Ok(all);
    }
    let mut chosen = Vec::new();
    for name in names {
        let gate = all.iter().find(|g| g.name == *name).ok_or_else(|| {
            let valid: Vec<&str> = all.iter().map(|g| g.name.as_str()).collect();
            exit::usage(mlops_metrics::Error::UnknownGate {
                name: name.clone(),
                valid: valid.join(", "),
            })
        })?;
        chosen.push(gate.clone());
    }
    Ok(chosen)
}

/// Writes `{gate: {overall, per_class, confusion_matrix, segments, segment_gaps}}` to `path`
/// through a temporary file renamed into place.
fn write_metrics(path: &Path, reports: &[GateReport]) -> anyhow::Result<()> {
    let all: BTreeMap<&str, &MetricReport> = reports
        .iter()
        .map(|r| (r.name.as_str(), &r.metrics))
        .collect();
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut text = serde_json::to_vec_pretty(&all)?;
    text.push(b'\n');
    let result = std::fs::File::create(&tmp)
        .and_then(|mut f| f.write_all(&text).and_then(|()| f.sync_all()))
        .and_then(|()| std::fs::rename(&tmp, path));
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result.with_context(|| format!("writing {}", path.display()))
}

fn num(x: f64) -> String {
    if x.is_nan() {
        "undefined".to_owned()
    } else if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{x:.0}")
    } else {
        format!("{x:.4}")
    }
}

fn render(report: &GateReport) {
    let verdict = if report.passed { "passed" } else { "FAILED" };
    println!(
        "gate {}: {verdict} ({} rows)",
        report.name, report.metrics.rows
    );
    let m = &report.metrics;
    let mut overall = Table::new(["metric", "candidate", "baseline"]);
    for (name, value) in &m.overall {
        let base = report
            .baseline
            .as_ref()
            .and_then(|b| b.overall.get(name))
            .map_or_else(String::new, |v| num(*v));
        overall.row([name.clone(), num(*value), base]);
    }
    print!("{}", overall.render());
    if !m.per_class.is_empty() {
        println!();
        let mut t = Table::new(["class", "precision", "recall", "f1", "support"]);
        for label in &m.classes {
            if let Some(v) = m.per_class.get(label) {
                let g = |k: &str| v.get(k).map_or_else(String::new, |x| num(*x));
                t.row([
                    label.clone(),
                    g("precision"),
                    g("recall"),
                    g("f1"),
                    g("support"),
                ]);
            }
        }
        print!("{}", t.render());
    }
    if let Some(cm) = &m.confusion_matrix {
        println!();
        let mut t = Table::new(
            std::iter::once("true \\ predicted".to_owned()).chain(cm.labels.iter().cloned()),
        );
        for (label, row) in cm.labels.iter().zip(&cm.matrix) {
            t.row(std::iter::once(label.clone()).chain(row.iter().map(ToString::to_string)));
        }
        print!("{}", t.render());
    }
    for (column, by_value) in &m.segments {
        let names: Vec<String> = by_value
            .values()
            .next()
            .map(|v| v.keys().cloned().collect())
            .unwrap_or_default();
        println!();
        let mut t = Table::new(std::iter::once(column.clone()).chain(names.iter().cloned()));
        for (value, metrics) in by_value {
            t.row(
                std::iter::once(value.clone()).chain(
                    names
                        .iter()
                        .map(|n| metrics.get(n).map_or_else(String::new, |x| num(*x))),
                ),
            );
        }
        if let Some(gaps) = m.segment_gaps.get(column) {
            t.row(
                std::iter::once("difference".to_owned()).chain(
                    names
                        .iter()
                        .map(|n| gaps.get(n).map_or_else(String::new, |g| num(g.difference))),
                ),
            );
            t.row(
                std::iter::once("ratio".to_owned()).chain(
                    names
                        .iter()
                        .map(|n| gaps.get(n).map_or_else(String::new, |g| num(g.ratio))),
                ),
            );
        }
        print!("{}", t.render());
    }
    if !report.requirements.is_empty() {
        println!();
        let mut t = Table::new(["requirement", "observed", "baseline", "interval", "verdict"]);
        for r in &report.requirements {
            let interval = r.interval.map_or_else(String::new, |i| {
                format!("[{}, {}]", num(i.low), num(i.high))
            });
            let base = r.baseline.map_or_else(String::new, num);
            let verdict = match (&r.reason, r.passed) {
                (_, true) => "pass".to_owned(),
                (Some(reason), false) => format!("FAIL: {reason}"),
                (None, false) => "FAIL".to_owned(),
            };
            t.row([
                r.requirement.clone(),
                num(r.observed),
                base,
                interval,
                verdict,
            ]);
        }
        print!("{}", t.render());
    }
    println!();
}
