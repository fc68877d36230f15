//! Promotion gates: the `[gates.NAME]` sections of `mlops.toml`, and their evaluation.
//!
//! ```toml
//! [gates.release]
//! predictions = "eval/candidate.parquet"
//! baseline = "eval/production.parquet"
//! score = "proba"
//! segments = ["region"]
//! requirements = [
//!   { metric = "f1_macro", min = 0.80, confidence = 0.95 },
//!   { metric = "f1_macro", max_regression = 0.01 },
//!   { metric = "f1_macro", segment = "region", max_segment_gap = 0.05 },
//!   "metrics/latency.json:p95_ms <= 50",
//! ]
//! ```

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::classification::ZeroDivision;
use crate::error::{Error, Result};
use crate::evaluate::{
    self, Bootstrap, Interval, MetricOptions, MetricReport, PER_CLASS_METRICS, Scope,
    higher_is_better,
};
use crate::table::{Columns, Predictions, Task};

/// What a requirement compares its observed value with.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Check {
    /// observed >= bound.
    Min(f64),
    /// observed <= bound.
    Max(f64),
    /// Not worse than the baseline by more than this tolerance (direction aware).
    MaxRegression(f64),
    /// Better than the baseline by at least this much (MLflow's `min_absolute_change`).
    MinAbsoluteChange(f64),
    /// Better than the baseline by at least this fraction of |baseline| (`min_relative_change`).
    MinRelativeChange(f64),
    /// The difference between the best and worst value of a segment column is at most this.
    MaxSegmentGap(f64),
}

impl Check {
    fn kind(&self) -> &'static str {
        match self {
            Self::Min(_) => "min",
            Self::Max(_) => "max",
            Self::MaxRegression(_) => "max_regression",
            Self::MinAbsoluteChange(_) => "min_absolute_change",
            Self::MinRelativeChange(_) => "min_relative_change",
            Self::MaxSegmentGap(_) => "max_segment_gap",
        }
    }

    fn bound(&self) -> f64 {
        match *self {
            Self::Min(x)
            | Self::Max(x)
            | Self::MaxRegression(x)
            | Self::MinAbsoluteChange(x)
            | Self::MinRelativeChange(x)
            | Self::MaxSegmentGap(x) => x,
        }
    }

    fn needs_baseline(&self) -> bool {
        matches!(
            self,
            Self::MaxRegression(_) | Self::MinAbsoluteChange(_) | Self::MinRelativeChange(_)
        )
    }
}

/// Where a requirement's number comes from.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Source {
    /// A computed metric in a scope (for `max_segment_gap`, `scope.segment` holds the column and
    /// an empty value).
    Metric {
        /// Metric name.
        name: String,
        /// Class and segment.
        scope: Scope,
    },
    /// A number in a JSON, TOML or YAML file, at a dotted key path.
    File {
        /// The file, relative to the folder of `mlops.toml`.
        path: PathBuf,
        /// Dotted key path, e.g. `latency.p95_ms`.
        key: String,
    },
}

/// One requirement of a gate.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirement {
    /// What is read.
    pub source: Source,
    /// How it is judged.
    pub check: Check,
    /// When set, the bound must hold for the whole bootstrap interval at this confidence.
    pub confidence: Option<f64>,
    /// 1-based line of the requirement in `mlops.toml`.
    pub line: usize,
}

/// A gate as configured.
#[derive(Debug, Clone)]
pub struct Gate {
    /// The `NAME` of `[gates.NAME]`.
    pub name: String,
    /// The candidate's predictions.
    pub predictions: PathBuf,
    /// The production model's predictions of the same rows.
    pub baseline: Option<PathBuf>,
    /// Classification or regression.
    pub task: Task,
    /// Column roles.
    pub columns: Columns,
    /// Metric options.
    pub options: MetricOptions,
    /// Bootstrap settings for requirements with `confidence`.
    pub bootstrap: Bootstrap,
    /// The requirements, in file order.
    pub requirements: Vec<Requirement>,
}

#[derive(Deserialize)]
struct ConfigFile {
    #[serde(default)]
    gates: BTreeMap<String, Spanned<GateSpec>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GateSpec {
    predictions: String,
    baseline: Option<String>,
    task: Option<Spanned<String>>,
    y_true: Option<String>,
    y_pred: Option<String>,
    score: Option<String>,
    scores: Option<BTreeMap<String, String>>,
    #[serde(default)]
    segments: Vec<String>,
    id: Option<String>,
    pos_label: Option<toml::Value>,
    zero_division: Option<Spanned<toml::Value>>,
    metrics: Option<Vec<Spanned<String>>>,
    segment_metrics: Option<Vec<Spanned<String>>>,
    bootstrap: Option<BootstrapSpec>,
    #[serde(default)]
    requirements: Vec<Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BootstrapSpec {
    samples: Option<usize>,
    seed: Option<u64>,
}

/// Turns byte offsets in the source into 1-based line and column.
struct Locator<'a> {
    path: &'a Path,
    text: &'a str,
}

impl Locator<'_> {
    fn position(&self, offset: usize) -> (usize, usize) {
        let before = &self.text[..offset.min(self.text.len())];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }

    fn error(&self, span: Range<usize>, message: impl Into<String>) -> Error {
        let (line, column) = self.position(span.start);
        Error::Config {
            path: self.path.to_owned(),
            line,
            column,
            message: message.into(),
        }
    }
}

/// Reads the `[gates.*]` sections of `mlops.toml` (other sections are ignored).
///
/// Fails when the file cannot be read, or with the line and column of a malformed or invalid
/// gate (unknown keys, unknown metric names, a requirement without a bound, a baseline check
/// without a baseline).
pub fn load_gates(path: &Path) -> Result<Vec<Gate>> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    parse_gates(path, &text)
}

/// Parses the `[gates.*]` sections of `text` (the contents of `path`, named in errors).
///
/// Fails like [`load_gates`].
pub fn parse_gates(path: &Path, text: &str) -> Result<Vec<Gate>> {
    let loc = Locator { path, text };
    let file: ConfigFile = toml::from_str(text).map_err(|e| {
        let span = e.span().unwrap_or(0..0);
        loc.error(span, e.message().trim().to_owned())
    })?;
    let mut gates = Vec::new();
    for (name, spec) in file.gates {
        let span = spec.span();
        gates.push(gate_from_spec(&loc, name, spec.into_inner(), span)?);
    }
    Ok(gates)
}

fn label_text(value: &toml::Value) -> Option<String> {
    match value {
        toml::Value::String(s) => Some(s.clone()),
        toml::Value::Integer(i) => Some(i.to_string()),
        toml::Value::Boolean(b) => Some(i64::from(*b).to_string()),
        _ => None,
    }
}

fn gate_from_spec(
    loc: &Locator<'_>,
    name: String,
    spec: GateSpec,
    span: Range<usize>,
) -> Result<Gate> {
    let task = match &spec.task {
        None => Task::Classification,
        Some(t) => match t.get_ref().as_str() {
            "classification" => Task::Classification,
            "regression" => Task::Regression,
            other => {
                return Err(loc.error(
                    t.span(),
                    format!("task `{other}`: use \"classification\" or \"regression\""),
                ));
            }
        },
    };
    let zero_division = match &spec.zero_division {
        None => ZeroDivision::Warn,
        Some(v) => match v.get_ref() {
            toml::Value::String(s) if s == "warn" => ZeroDivision::Warn,
            toml::Value::String(s) if s == "nan" => ZeroDivision::Nan,
            toml::Value::Integer(0) => ZeroDivision::Zero,
            toml::Value::Float(f) if *f == 0.0 => ZeroDivision::Zero,
            toml::Value::Integer(1) => ZeroDivision::One,
            toml::Value::Float(f) if *f == 1.0 => ZeroDivision::One,
            _ => return Err(loc.error(v.span(), "zero_division must be \"warn\", 0, 1 or \"nan\"")),
        },
    };
    let pos_label =
        match &spec.pos_label {
            None => None,
            Some(v) => Some(label_text(v).ok_or_else(|| {
                loc.error(span.clone(), "pos_label must be a string or an integer")
            })?),
        };
    let names = |list: &Option<Vec<Spanned<String>>>| -> Result<Option<Vec<String>>> {
        let Some(list) = list else { return Ok(None) };
        let mut out = Vec::new();
        for m in list {
            if !evaluate::is_known_metric(m.get_ref()) || m.get_ref() == "support" {
                return Err(loc.error(
                    m.span(),
                    format!(
                        "unknown metric `{}`; valid names: {}",
                        m.get_ref(),
                        evaluate::known_metrics()
                    ),
                ));
            }
            out.push(m.get_ref().clone());
        }
        Ok(Some(out))
    };
    let columns = Columns {
        y_true: spec.y_true.clone().unwrap_or_else(|| "y_true".to_owned()),
        y_pred: spec.y_pred.clone().unwrap_or_else(|| "y_pred".to_owned()),
        score: spec.score.clone(),
        scores: spec
            .scores
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        segments: spec.segments.clone(),
        id: spec.id.clone(),
    };
    let bootstrap = Bootstrap {
        samples: spec
            .bootstrap
            .as_ref()
            .and_then(|b| b.samples)
            .unwrap_or(1000),
        seed: spec.bootstrap.as_ref().and_then(|b| b.seed).unwrap_or(0),
    };
    let mut requirements = Vec::new();
    for req in &spec.requirements {
        requirements.extend(requirement(loc, req, &columns)?);
    }
    for r in &requirements {
        if r.check.needs_baseline() && spec.baseline.is_none() {
            return Err(Error::Config {
                path: loc.path.to_owned(),
                line: r.line,
                column: 1,
                message: format!(
                    "{} compares with the production model: set `baseline` in [gates.{name}]",
                    r.check.kind()
                ),
            });
        }
    }
    Ok(Gate {
        name,
        predictions: PathBuf::from(spec.predictions),
        baseline: spec.baseline.map(PathBuf::from),
        task,
        columns,
        options: MetricOptions {
            zero_division,
            pos_label,
            metrics: names(&spec.metrics)?,
            segment_metrics: names(&spec.segment_metrics)?,
        },
        bootstrap,
        requirements,
    })
}

/// `path.json:key.path` when the part before `:` names a JSON, TOML or YAML file.
fn file_reference(text: &str) -> Option<(PathBuf, String)> {
    let (file, key) = text.rsplit_once(':')?;
    let lower = file.to_ascii_lowercase();
    [".json", ".toml", ".yaml", ".yml"]
        .iter()
        .any(|e| lower.ends_with(e))
        .then(|| (PathBuf::from(file), key.to_owned()))
}

const CHECK_KEYS: &[&str] = &[
    "min",
    "max",
    "max_regression",
    "min_absolute_change",
    "min_relative_change",
    "max_segment_gap",
];

fn requirement(
    loc: &Locator<'_>,
    req: &Spanned<toml::Value>,
    columns: &Columns,
) -> Result<Vec<Requirement>> {
    let span = req.span();
    let (line, _) = loc.position(span.start);
    let err = |m: String| loc.error(span.clone(), m);
    match req.get_ref() {
        toml::Value::String(text) => {
            let (lhs, op, rhs) = ["<=", ">="]
                .iter()
                .find_map(|op| text.split_once(op).map(|(l, r)| (l.trim(), *op, r.trim())))
                .ok_or_else(|| err(format!("requirement `{text}`: write `METRIC >= NUMBER` or `FILE:KEY <= NUMBER`")))?;
            let bound: f64 = rhs.parse().map_err(|_| err(format!("requirement `{text}`: `{rhs}` is not a number")))?;
            let check = if op == ">=" { Check::Min(bound) } else { Check::Max(bound) };
            Ok(vec![Requirement { source: source_of(lhs, Scope::default(), &err)?, check, confidence: None, line }])
        }
        toml::Value::Table(t) => {
            for key in t.keys() {
                if !CHECK_KEYS.contains(&key.as_str()) && !["metric", "class", "segment", "value", "confidence"].contains(&key.as_str()) {
                    return Err(err(format!(
                        "unknown key `{key}` in requirement; keys: metric, class, segment, value, confidence, {}",
                        CHECK_KEYS.join(", ")
                    )));
                }
            }
            let text_of = |k: &str| -> Result<Option<String>> {
                match t.get(k) {
                    None => Ok(None),
                    Some(v) => label_text(v).map(Some).ok_or_else(|| err(format!("`{k}` must be a string"))),
                }
            };
            let number = |k: &str| -> Result<Option<f64>> {
                match t.get(k) {
                    None => Ok(None),
                    Some(toml::Value::Float(f)) => Ok(Some(*f)),
                    Some(toml::Value::Integer(i)) => Ok(Some(*i as f64)),
                    Some(_) => Err(err(format!("`{k}` must be a number"))),
                }
            };
            let metric = text_of("metric")?.ok_or_else(|| err("requirement without `metric`".to_owned()))?;
            let class = text_of("class")?;
            let segment = text_of("segment")?;
            let value = text_of("value")?;
            let confidence = number("confidence")?;
            if let Some(c) = confidence
                && !(c > 0.0 && c < 1.0)
            {
                return Err(err(format!("confidence must be between 0 and 1, got {c}")));
            }
            if let Some(seg) = &segment
                && !columns.segments.contains(seg)
            {
                return Err(err(format!("segment `{seg}` is not in the gate's `segments` ({})", columns.segments.join(", "))));
            }
            let mut checks = Vec::new();
            for key in CHECK_KEYS {
                if let Some(x) = number(key)? {
                    checks.push(match *key {
                        "min" => Check::Min(x),
                        "max" => Check::Max(x),
                        "max_regression" => Check::MaxRegression(x),
                        "min_absolute_change" => Check::MinAbsoluteChange(x),
                        "min_relative_change" => Check::MinRelativeChange(x),
                        _ => Check::MaxSegmentGap(x),
                    });
                }
            }
            if checks.is_empty() {
                return Err(err(format!("requirement on `{metric}` has no bound; add one of {}", CHECK_KEYS.join(", "))));
            }
            let gap = checks.iter().any(|c| matches!(c, Check::MaxSegmentGap(_)));
            if gap && (segment.is_none() || value.is_some() || checks.len() > 1) {
                return Err(err("max_segment_gap needs `segment` (a column), no `value`, and no other bound".to_owned()));
            }
            if value.is_some() && segment.is_none() {
                return Err(err("`value` needs `segment` (the column it is a value of)".to_owned()));
            }
            if !gap && segment.is_some() && value.is_none() {
                return Err(err("`segment` needs `value` (or use max_segment_gap)".to_owned()));
            }
            if let Some(c) = &class
                && !PER_CLASS_METRICS.contains(&metric.as_str())
            {
                return Err(err(format!(
                    "`class = \"{c}\"` needs a per-class metric ({}), not `{metric}`",
                    PER_CLASS_METRICS.join(", ")
                )));
            }
            let scope = Scope { class, segment: segment.map(|s| (s, value.unwrap_or_default())) };
            let source = source_of(&metric, scope, &err)?;
            if matches!(source, Source::File { .. })
                && (confidence.is_some() || checks.iter().any(|c| !matches!(c, Check::Min(_) | Check::Max(_))))
            {
                return Err(err("a number read from a file takes only `min` and `max`".to_owned()));
            }
            Ok(checks.into_iter().map(|check| Requirement { source: source.clone(), check, confidence, line }).collect())
        }
        _ => Err(err("a requirement is a table ({ metric = \"f1_macro\", min = 0.8 }) or a string (\"accuracy >= 0.9\")".to_owned())),
    }
}

fn source_of(text: &str, scope: Scope, err: &dyn Fn(String) -> Error) -> Result<Source> {
    if let Some((path, key)) = file_reference(text) {
        return Ok(Source::File { path, key });
    }
    if !evaluate::is_known_metric(text) || (text == "support" && scope.class.is_none()) {
        return Err(err(format!(
            "unknown metric `{text}`; valid names: {}",
            evaluate::known_metrics()
        )));
    }
    Ok(Source::Metric {
        name: text.to_owned(),
        scope,
    })
}

/// The verdict on one requirement.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RequirementResult {
    /// The requirement in words, e.g. `f1_macro[segment region=eu] >= 0.8`.
    pub requirement: String,
    /// The metric name or `file:key`.
    pub metric: String,
    /// The class, when per class.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub class: Option<String>,
    /// The segment column.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub segment: Option<String>,
    /// The segment value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// `min`, `max`, `max_regression`, `min_absolute_change`, `min_relative_change` or
    /// `max_segment_gap`.
    pub kind: String,
    /// The configured number.
    pub bound: f64,
    /// The candidate's value (for `max_segment_gap`, the gap); null when undefined.
    pub observed: f64,
    /// The baseline's value, for comparisons.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The bootstrap interval judged (of the value, or of candidate - baseline).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interval: Option<Interval>,
    /// Whether the requirement holds.
    pub passed: bool,
    /// Why it failed, when that is not just the numbers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The outcome of one gate.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct GateReport {
    /// The gate's name.
    pub name: String,
    /// Whether every requirement holds.
    pub passed: bool,
    /// The candidate's metrics.
    pub metrics: MetricReport,
    /// The baseline's metrics, when a baseline is configured.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<MetricReport>,
    /// Each requirement's verdict.
    pub requirements: Vec<RequirementResult>,
}

fn describe(r: &Requirement) -> String {
    let (what, scope) = match &r.source {
        Source::File { path, key } => (format!("{}:{key}", path.display()), String::new()),
        Source::Metric { name, scope } => {
            let mut s = String::new();
            if let Some(c) = &scope.class {
                s.push_str(&format!("[class {c}]"));
            }
            if let Some((col, v)) = &scope.segment {
                if v.is_empty() {
                    s.push_str(&format!("[segments {col}]"));
                } else {
                    s.push_str(&format!("[{col}={v}]"));
                }
            }
            (name.clone(), s)
        }
    };
    let bound = r.check.bound();
    let rule = match r.check {
        Check::Min(_) => format!(">= {bound}"),
        Check::Max(_) => format!("<= {bound}"),
        Check::MaxRegression(_) => format!("max_regression {bound} vs baseline"),
        Check::MinAbsoluteChange(_) => format!("min_absolute_change {bound} vs baseline"),
        Check::MinRelativeChange(_) => format!("min_relative_change {bound} vs baseline"),
        Check::MaxSegmentGap(_) => format!("gap <= {bound}"),
    };
    let conf = r
        .confidence
        .map(|c| format!(" at {}% confidence", c * 100.0))
        .unwrap_or_default();
    format!("{what}{scope} {rule}{conf}")
}

/// Reads a number at a dotted key path from a JSON, TOML or YAML file.
///
/// Fails when the file cannot be read or parsed, or the key is absent or not a number.
pub fn read_metrics_file(path: &Path, key: &str) -> Result<f64> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::Io {
        path: path.to_owned(),
        source,
    })?;
    let bad = |message: String| Error::MetricsFile {
        path: path.to_owned(),
        message,
    };
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let value: serde_json::Value = match ext.as_str() {
        "json" => serde_json::from_str(&text).map_err(|e| {
            bad(format!(
                "malformed json at line {}, column {}: {e}",
                e.line(),
                e.column()
            ))
        })?,
        "toml" => {
            let v: toml::Value = toml::from_str(&text)
                .map_err(|e| bad(format!("malformed toml: {}", e.message())))?;
            serde_json::to_value(v).map_err(|e| bad(e.to_string()))?
        }
        _ => serde_yaml::from_str(&text).map_err(|e| {
            let at = e
                .location()
                .map(|l| format!(" at line {}, column {}", l.line(), l.column()))
                .unwrap_or_default();
            bad(format!("malformed yaml{at}: {e}"))
        })?,
    };
    let mut at = &value;
    for part in key.split('.') {
        at = at
            .get(part)
            .ok_or_else(|| bad(format!("no key `{key}` (missing `{part}`)")))?;
    }
    at.as_f64()
        .ok_or_else(|| bad(format!("`{key}` is {at}, not a number")))
}

/// Evaluates one gate: reads its tables (paths relative to `root`), computes the metrics and
/// judges every requirement.
///
/// Fails when a table or metrics file cannot be read or is invalid, or a metric cannot be
/// computed for the table; a requirement that does not hold is not an error (see `passed`).
pub fn evaluate_gate(root: &Path, gate: &Gate) -> Result<GateReport> {
    let candidate = Predictions::read(&root.join(&gate.predictions), &gate.columns, gate.task)?;
    let baseline = match &gate.baseline {
        None => None,
        Some(path) => {
            let base = Predictions::read(&root.join(path), &gate.columns, gate.task)?;
            Some(candidate.align(&base)?)
        }
    };
    let mut options = gate.options.clone();
    // Metrics named by requirements are always computed, even when `metrics` lists others.
    for r in &gate.requirements {
        if let Source::Metric { name, scope } = &r.source
            && scope.class.is_none()
        {
            let list = if scope.segment.is_some() {
                &mut options.segment_metrics
            } else {
                &mut options.metrics
            };
            if let Some(list) = list
                && !list.contains(name)
            {
                list.push(name.clone());
            }
        }
    }
    let metrics = evaluate::evaluate(&candidate, &options)?;
    let base_metrics = baseline
        .as_ref()
        .map(|b| evaluate::evaluate(b, &options))
        .transpose()?;
    let mut results = Vec::new();
    for r in &gate.requirements {
        results.push(judge(
            root,
            gate,
            r,
            &candidate,
            baseline.as_ref(),
            &metrics,
            &options,
        )?);
    }
    Ok(GateReport {
        name: gate.name.clone(),
        passed: results.iter().all(|r| r.passed),
        metrics,
        baseline: base_metrics,
        requirements: results,
    })
}

fn judge(
    root: &Path,
    gate: &Gate,
    r: &Requirement,
    candidate: &Predictions,
    baseline: Option<&Predictions>,
    metrics: &MetricReport,
    opts: &MetricOptions,
) -> Result<RequirementResult> {
    let mut out = RequirementResult {
        requirement: describe(r),
        metric: String::new(),
        class: None,
        segment: None,
        value: None,
        kind: r.check.kind().to_owned(),
        bound: r.check.bound(),
        observed: f64::NAN,
        baseline: None,
        interval: None,
        passed: false,
        reason: None,
    };
    let (name, scope) = match &r.source {
        Source::File { path, key } => {
            out.metric = format!("{}:{key}", path.display());
            out.observed = read_metrics_file(&root.join(path), key)?;
            out.passed = match r.check {
                Check::Min(b) => out.observed >= b,
                Check::Max(b) => out.observed <= b,
                _ => false,
            };
            return Ok(out);
        }
        Source::Metric { name, scope } => (name, scope),
    };
    out.metric = name.clone();
    out.class = scope.class.clone();
    if let Some((col, v)) = &scope.segment {
        out.segment = Some(col.clone());
        out.value = (!v.is_empty()).then(|| v.clone());
    }
    if let Check::MaxSegmentGap(bound) = r.check {
        let column = scope
            .segment
            .as_ref()
            .map(|(c, _)| c.as_str())
            .unwrap_or_default();
        let gap = metrics.segment_gaps.get(column).and_then(|g| g.get(name));
        out.observed = gap.map_or(f64::NAN, |g| g.difference);
        out.passed = out.observed <= bound;
        if gap.is_none() {
            out.reason = Some(format!(
                "`{name}` is undefined in every segment of `{column}`"
            ));
            return Ok(out);
        }
        if let Some(confidence) = r.confidence {
            let interval = evaluate::segment_gap_interval(
                candidate,
                column,
                name,
                opts,
                gate.bootstrap,
                confidence,
            )?;
            let held = interval.high <= bound;
            if out.passed && !held {
                out.reason = Some(interval_reason(&interval));
            }
            out.passed = out.passed && held;
            out.interval = Some(interval);
        }
        return Ok(out);
    }
    let rows = evaluate::scope_rows(candidate, scope)?;
    let observed = if scope.class.is_none() && scope.segment.is_none() {
        match metrics.overall.get(name) {
            Some(v) => *v,
            None => evaluate::metric_value(candidate, None, scope, name, opts)?,
        }
    } else {
        evaluate::metric_value(candidate, rows.as_deref(), scope, name, opts)?
    };
    out.observed = observed;
    let base_value = match baseline {
        Some(b) if r.check.needs_baseline() => Some(evaluate::metric_value(
            b,
            rows.as_deref(),
            scope,
            name,
            opts,
        )?),
        _ => None,
    };
    out.baseline = base_value;
    let hib = higher_is_better(name);
    // `improvement` > 0 means the candidate is better than the baseline.
    let improvement = |c: f64, b: f64| if hib { c - b } else { b - c };
    let point = match (r.check.clone(), base_value) {
        (Check::Min(b), _) => observed >= b,
        (Check::Max(b), _) => observed <= b,
        (Check::MaxRegression(tol), Some(base)) => improvement(observed, base) >= -tol,
        (Check::MinAbsoluteChange(x), Some(base)) => improvement(observed, base) >= x,
        (Check::MinRelativeChange(x), Some(base)) => {
            if base == 0.0 {
                out.reason =
                    Some("relative change is undefined: the baseline value is 0".to_owned());
                false
            } else {
                improvement(observed, base) / base.abs() >= x
            }
        }
        _ => false,
    };
    out.passed = point;
    if observed.is_nan() {
        out.passed = false;
        out.reason = Some(format!("`{name}` is undefined for these rows"));
        return Ok(out);
    }
    if let Some(confidence) = r.confidence {
        let interval = match (&r.check, baseline) {
            (Check::Min(_) | Check::Max(_), _) => evaluate::bootstrap_interval(
                candidate,
                scope,
                name,
                opts,
                gate.bootstrap,
                confidence,
            )?,
            (Check::MinRelativeChange(_), Some(b)) => evaluate::paired_relative_bootstrap_interval(
                candidate,
                b,
                scope,
                name,
                opts,
                gate.bootstrap,
                confidence,
            )?,
            (_, Some(b)) => evaluate::paired_bootstrap_interval(
                candidate,
                b,
                scope,
                name,
                opts,
                gate.bootstrap,
                confidence,
            )?,
            (_, None) => return Err(Error::invalid("a baseline comparison needs a baseline")),
        };
        // For comparisons the interval is of candidate - baseline (relative: divided by
        // |baseline|); judge its worst end.
        let held = match r.check {
            Check::Min(b) => interval.low >= b,
            Check::Max(b) => interval.high <= b,
            Check::MaxRegression(tol) => {
                if hib {
                    interval.low >= -tol
                } else {
                    interval.high <= tol
                }
            }
            Check::MinAbsoluteChange(x) | Check::MinRelativeChange(x) => {
                if hib {
                    interval.low >= x
                } else {
                    interval.high <= -x
                }
            }
            Check::MaxSegmentGap(_) => false,
        };
        if point && !held {
            out.reason = Some(interval_reason(&interval));
        }
        out.passed = point && held;
        out.interval = Some(interval);
    }
    Ok(out)
}

/// Why a requirement whose point estimate passes fails at its confidence.
fn interval_reason(interval: &Interval) -> String {
    format!(
        "the point estimate passes but the {}% interval [{:.6}, {:.6}] does not",
        interval.confidence * 100.0,
        interval.low,
        interval.high
    )
}
