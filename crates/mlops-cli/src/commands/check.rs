//! `mlops check [SUITE|FILE…] [--fail-on warn] [--infer DATA]`: run data-quality suites from
//! `[checks.*]` in `mlops.toml` or from standalone suite files, or write a starting suite.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::{Args, ValueEnum};
use mlops_dataq::{CheckOptions, Severity, Suite, SuiteReport};
use serde::Serialize;

use crate::GlobalArgs;
use crate::exit::{self, Outcome};
use crate::output::{Table, print_json};

/// When `mlops check` exits 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum FailOn {
    /// A failed expectation with severity `error`.
    Error,
    /// Any failed expectation, warnings included.
    Warn,
}

/// Arguments of `mlops check`.
#[derive(Debug, Args)]
pub(crate) struct CheckArgs {
    /// Suite names from mlops.toml, or suite files (*.toml); all suites of mlops.toml when omitted.
    #[arg(value_name = "SUITE|FILE")]
    targets: Vec<String>,
    /// Exit 1 on failed warnings too, not only on failed errors.
    #[arg(long, value_enum, default_value_t = FailOn::Error)]
    fail_on: FailOn,
    /// Write a starting suite inferred from DATA (file, folder or glob) instead of checking.
    #[arg(long, value_name = "DATA", conflicts_with = "targets")]
    infer: Option<String>,
    /// The inferred suite's name (default: the data's file stem).
    #[arg(long, requires = "infer")]
    name: Option<String>,
    /// Write the inferred suite to FILE instead of stdout.
    #[arg(short, long, value_name = "FILE", requires = "infer")]
    output: Option<PathBuf>,
    /// "Now" for freshness checks, as an RFC 3339 timestamp (default: the clock).
    #[arg(long, value_name = "TIMESTAMP")]
    now: Option<String>,
    /// Decode every row group instead of answering from Parquet statistics.
    #[arg(long, hide = true)]
    no_statistics: bool,
}

#[derive(Serialize)]
struct CheckOutput<'a> {
    passed: bool,
    suites: &'a [SuiteReport],
}

/// Runs `mlops check`.
pub(crate) fn run(args: CheckArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let dir = global.work_dir()?;
    if let Some(data) = &args.infer {
        return infer(&dir, data, &args, global);
    }
    let mut opts = CheckOptions::default().with_statistics(!args.no_statistics);
    if let Some(now) = &args.now {
        let ts: mlops_dataq::Timestamp = now.parse().map_err(|e| {
            exit::usage(anyhow::anyhow!(
                "--now {now}: not an RFC 3339 timestamp ({e})"
            ))
        })?;
        opts = opts.with_now(ts);
    }
    let suites = select(&dir, &args.targets)?;
    let mut reports = Vec::with_capacity(suites.len());
    for suite in &suites {
        tracing::info!(suite = %suite.name, data = %suite.data, "checking");
        let report = mlops_dataq::run_suite(suite, &opts).map_err(|e| {
            let usage = e.is_usage();
            exit::classify(
                anyhow::Error::new(e).context(format!("suite `{}`", suite.name)),
                usage,
            )
        })?;
        reports.push(report);
    }
    let passed = reports.iter().all(|r| match args.fail_on {
        FailOn::Error => r.passed,
        FailOn::Warn => r.passed_strict(),
    });
    if global.json {
        print_json(&CheckOutput {
            passed,
            suites: &reports,
        })?;
    } else if !global.quiet || !passed {
        render(&reports);
    }
    Ok(Outcome::from_passed(passed))
}

/// The suites named by `targets` (files or names in mlops.toml), or every suite of mlops.toml.
fn select(dir: &Path, targets: &[String]) -> anyhow::Result<Vec<Suite>> {
    let config_path = dir.join("mlops.toml");
    let mut config: Option<Vec<Suite>> = None;
    let mut load_config = || -> anyhow::Result<Vec<Suite>> {
        if let Some(c) = &config {
            return Ok(c.clone());
        }
        let text = match std::fs::read_to_string(&config_path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(exit::usage(anyhow::anyhow!(
                    "{}: not found; name a suite file (mlops check suite.toml) or add [checks.NAME] to mlops.toml",
                    config_path.display()
                )));
            }
            Err(e) => {
                return Err(exit::runtime(
                    anyhow::Error::new(e).context(config_path.display().to_string()),
                ));
            }
        };
        let suites = mlops_dataq::parse_config(&config_path, &text).map_err(exit::usage)?;
        config = Some(suites.clone());
        Ok(suites)
    };
    if targets.is_empty() {
        let suites = load_config()?;
        if suites.is_empty() {
            return Err(exit::usage(anyhow::anyhow!(
                "{}: no [checks.NAME] suites; add one or name a suite file",
                config_path.display()
            )));
        }
        return Ok(suites);
    }
    let mut out = Vec::new();
    for t in targets {
        let path = dir.join(t);
        if t.ends_with(".toml") || path.is_file() {
            if !path.is_file() {
                return Err(exit::usage(anyhow::anyhow!("{t}: no such suite file")));
            }
            let suites = mlops_dataq::load_suite_file(&path).map_err(|e| {
                let usage = e.is_usage();
                exit::classify(e, usage)
            })?;
            out.extend(suites);
        } else {
            let suites = load_config()?;
            match suites.iter().find(|s| &s.name == t) {
                Some(s) => out.push(s.clone()),
                None => {
                    let names: Vec<&str> = suites.iter().map(|s| s.name.as_str()).collect();
                    return Err(exit::usage(anyhow::anyhow!(
                        "unknown suite `{t}`; suites in mlops.toml: {}",
                        if names.is_empty() {
                            "(none)".to_owned()
                        } else {
                            names.join(", ")
                        }
                    )));
                }
            }
        }
    }
    Ok(out)
}

fn infer(dir: &Path, data: &str, args: &CheckArgs, global: &GlobalArgs) -> anyhow::Result<Outcome> {
    let name = args.name.clone().unwrap_or_else(|| {
        Path::new(data)
            .file_stem()
            .map(|s| {
                s.to_string_lossy()
                    .replace(['*', '?', '[', ']', '{', '}'], "")
            })
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "data".to_owned())
    });
    let text = mlops_dataq::infer_suite(&name, data, dir).map_err(|e| {
        let usage = e.is_usage();
        exit::classify(e, usage)
    })?;
    match &args.output {
        Some(out) => {
            let out = dir.join(out);
            let parent = out.parent().map_or_else(|| dir.to_owned(), Path::to_owned);
            let tmp = parent.join(format!(
                ".{}.tmp",
                out.file_name()
                    .map_or_else(|| "suite".into(), |n| n.to_string_lossy())
            ));
            std::fs::write(&tmp, &text)
                .with_context(|| format!("writing {}", tmp.display()))
                .map_err(exit::runtime)?;
            std::fs::rename(&tmp, &out)
                .with_context(|| format!("writing {}", out.display()))
                .map_err(exit::runtime)?;
            if global.json {
                print_json(&serde_json::json!({ "suite": name, "output": out }))?;
            } else if !global.quiet {
                eprintln!("wrote suite `{name}` to {}", out.display());
            }
        }
        None => {
            if global.json {
                print_json(&serde_json::json!({ "suite": name, "toml": text }))?;
            } else {
                print!("{text}");
            }
        }
    }
    Ok(Outcome::Success)
}

fn short(v: &serde_json::Value) -> String {
    let s = match v {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Null => "-".to_owned(),
        serde_json::Value::Number(n) => match n.as_f64() {
            Some(f) if n.is_f64() => format!("{f:.6}")
                .trim_end_matches('0')
                .trim_end_matches('.')
                .to_owned(),
            _ => n.to_string(),
        },
        other => other.to_string(),
    };
    if s.chars().count() > 40 {
        format!("{}…", s.chars().take(39).collect::<String>())
    } else {
        s
    }
}

fn render(reports: &[SuiteReport]) {
    for (i, r) in reports.iter().enumerate() {
        if i > 0 {
            println!();
        }
        let verdict = if r.errors > 0 {
            "FAILED"
        } else if r.warnings > 0 {
            "passed with warnings"
        } else {
            "passed"
        };
        println!("suite {} ({}, {} rows): {verdict}", r.suite, r.data, r.rows);
        let mut t = Table::new(["status", "expectation", "observed", "unexpected", "detail"]);
        for res in &r.results {
            let status = match (res.passed, res.severity) {
                (true, _) => "ok",
                (false, Severity::Error) => "FAIL",
                (false, _) => "warn",
            };
            let unexpected = if res.element_count == 0 && res.unexpected_count == 0 {
                "-".to_owned()
            } else {
                format!(
                    "{} ({:.2}%)",
                    res.unexpected_count,
                    res.unexpected_fraction * 100.0
                )
            };
            t.row([
                status.to_owned(),
                res.name.clone(),
                short(&res.observed),
                unexpected,
                res.message.clone(),
            ]);
        }
        t.print();
    }
}
