//! Computing named metrics over a predictions table: overall, per class, per segment (with the
//! gap between the best and worst segment), and bootstrap intervals.

use std::borrow::Cow;
use std::collections::BTreeMap;

use rand::{RngExt, SeedableRng};
use serde::Serialize;

use crate::classification::{
    self as cls, Average, ClassProbabilities, ConfusionMatrix, ZeroDivision,
};
use crate::error::{Error, Result};
use crate::labels::Label;
use crate::regression as reg;
use crate::table::{Predictions, Target};

/// Scalar classification metrics, by their names in reports and gates.
pub const CLASSIFICATION_METRICS: &[&str] = &[
    "accuracy",
    "balanced_accuracy",
    "precision",
    "recall",
    "f1",
    "precision_micro",
    "recall_micro",
    "f1_micro",
    "precision_macro",
    "recall_macro",
    "f1_macro",
    "precision_weighted",
    "recall_weighted",
    "f1_weighted",
    "matthews_corrcoef",
    "cohen_kappa",
    "roc_auc",
    "average_precision",
    "log_loss",
    "brier",
    "roc_auc_ovr",
    "roc_auc_ovr_weighted",
    "roc_auc_ovo",
    "roc_auc_ovo_weighted",
];

/// Per-class metrics (under `per_class` in reports; a gate names the class with `class`).
pub const PER_CLASS_METRICS: &[&str] = &["precision", "recall", "f1", "support"];

/// Regression metrics.
pub const REGRESSION_METRICS: &[&str] =
    &["mae", "mse", "rmse", "r2", "mape", "median_ae", "max_error"];

/// Whether a larger value of `metric` is better (losses and errors are lower-is-better).
pub fn higher_is_better(metric: &str) -> bool {
    !matches!(
        metric,
        "log_loss" | "brier" | "mae" | "mse" | "rmse" | "mape" | "median_ae" | "max_error"
    )
}

/// How metrics are computed.
#[derive(Debug, Clone, Default)]
pub struct MetricOptions {
    /// Value of precision/recall/F1 when a denominator is zero.
    pub zero_division: ZeroDivision,
    /// The positive label (as written) for binary averages and the binary score column. Default:
    /// the greater label when there are at most two, else none.
    pub pos_label: Option<String>,
    /// Which scalar metrics to compute overall; `None` = every one the table supports.
    pub metrics: Option<Vec<String>>,
    /// Which scalar metrics to compute per segment; `None` = the same as `metrics`.
    pub segment_metrics: Option<Vec<String>>,
}

/// A confusion matrix with its labels, for reports.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct LabeledMatrix {
    /// Row and column labels, sorted.
    pub labels: Vec<String>,
    /// Rows = true label, columns = predicted label.
    pub matrix: Vec<Vec<u64>>,
}

/// The spread of one metric over the values of a segment column (fairlearn's `between_groups`).
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Gap {
    /// The worst... smallest value over segments (NaN values are skipped).
    pub min: f64,
    /// The largest value.
    pub max: f64,
    /// `max - min`.
    pub difference: f64,
    /// `min / max`.
    pub ratio: f64,
}

/// Every metric computed for one table.
#[derive(Debug, Clone, Serialize, PartialEq, Default)]
pub struct MetricReport {
    /// Rows evaluated.
    pub rows: usize,
    /// Scalar metrics over all rows.
    pub overall: BTreeMap<String, f64>,
    /// Class labels in sorted order (classification).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub classes: Vec<String>,
    /// label → precision, recall, f1, support.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub per_class: BTreeMap<String, BTreeMap<String, f64>>,
    /// The confusion matrix (classification).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub confusion_matrix: Option<LabeledMatrix>,
    /// column → value → metric → value.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub segments: BTreeMap<String, BTreeMap<String, BTreeMap<String, f64>>>,
    /// column → metric → gap between segments.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub segment_gaps: BTreeMap<String, BTreeMap<String, Gap>>,
}

/// The metrics every table of this kind supports, in catalogue order.
fn available(p: &Predictions, opts: &MetricOptions) -> Vec<&'static str> {
    match &p.target {
        Target::Regression { .. } => REGRESSION_METRICS.to_vec(),
        Target::Classification { classes, .. } => {
            // A score that is not a probability (a margin, a logit) still ranks: ROC AUC and
            // average precision apply, log loss and Brier only when asked for (then they fail).
            let probabilities = p
                .score
                .as_ref()
                .is_none_or(|s| s.iter().all(|x| (0.0..=1.0).contains(x)));
            CLASSIFICATION_METRICS
                .iter()
                .copied()
                .filter(|m| unavailable(p, classes, opts, m).is_none())
                .filter(|m| {
                    probabilities || p.scores.is_some() || !matches!(*m, "log_loss" | "brier")
                })
                .collect()
        }
    }
}

/// Why `metric` cannot be computed for `p`, or `None` when it can.
fn unavailable(
    p: &Predictions,
    classes: &[Label],
    opts: &MetricOptions,
    metric: &str,
) -> Option<String> {
    let multi_scores = p.scores.as_ref().is_some_and(|s| s.classes.len() > 2);
    match metric {
        "precision" | "recall" | "f1" if classes.len() > 2 => Some(format!(
            "the binary average needs at most two labels and the table has {}; use {metric}_macro, _micro or _weighted",
            classes.len()
        )),
        "roc_auc" | "average_precision" => {
            if binary_scores(p).is_none() {
                Some(
                    "it needs a binary score column (`score`, or `scores` with two classes)"
                        .to_owned(),
                )
            } else {
                positive(classes, opts).err().map(|e| e.to_string())
            }
        }
        "log_loss" | "brier" => {
            if multi_scores {
                None
            } else if binary_scores(p).is_none() {
                Some("it needs probability columns (`score` or `scores`)".to_owned())
            } else {
                positive(classes, opts).err().map(|e| e.to_string())
            }
        }
        "roc_auc_ovr" | "roc_auc_ovr_weighted" | "roc_auc_ovo" | "roc_auc_ovo_weighted"
            if !multi_scores =>
        {
            Some(
                "it needs one probability column per class (`scores`) for three or more classes"
                    .to_owned(),
            )
        }
        _ => None,
    }
}

/// The binary score column: `score`, or the positive class's column of two `scores`.
fn binary_scores(p: &Predictions) -> Option<BinaryScore<'_>> {
    if let Some(s) = &p.score {
        return Some(BinaryScore::Column(s));
    }
    p.scores
        .as_ref()
        .filter(|s| s.classes.len() == 2)
        .map(|s| BinaryScore::Pair(&s.classes, &s.columns))
}

enum BinaryScore<'a> {
    Column(&'a [f64]),
    Pair(&'a [Label], &'a [Vec<f64>]),
}

/// The positive label: the configured one, or the greater of at most two labels.
fn positive(classes: &[Label], opts: &MetricOptions) -> Result<Option<Label>> {
    match &opts.pos_label {
        Some(want) => {
            let found = classes.iter().find(|c| c.to_string() == *want).cloned();
            if found.is_none() && classes.len() >= 2 {
                let names: Vec<String> = classes.iter().map(ToString::to_string).collect();
                return Err(Error::invalid(format!(
                    "pos_label {want} is not a label; labels: {}",
                    names.join(", ")
                )));
            }
            Ok(found)
        }
        None if classes.len() <= 2 => Ok(classes.last().cloned()),
        None => Err(Error::invalid(format!(
            "set pos_label: with {} labels it is not clear which one the score column is for",
            classes.len()
        ))),
    }
}

/// Checks metric names against the catalogue for this table.
fn check_names(p: &Predictions, opts: &MetricOptions, names: &[String]) -> Result<Vec<String>> {
    let (catalogue, classes) = match &p.target {
        Target::Regression { .. } => (REGRESSION_METRICS, None),
        Target::Classification { classes, .. } => (CLASSIFICATION_METRICS, Some(classes)),
    };
    for name in names {
        if !catalogue.contains(&name.as_str()) {
            return Err(Error::UnknownMetric {
                name: name.clone(),
                valid: catalogue.join(", "),
            });
        }
        if let Some(classes) = classes
            && let Some(reason) = unavailable(p, classes, opts, name)
        {
            return Err(Error::MetricUnavailable {
                name: name.clone(),
                reason,
            });
        }
    }
    Ok(names.to_vec())
}

/// Whether `metric` is a valid name for `task`-kind tables (classification scalar, per-class, or
/// regression). Used to validate gates before reading data.
pub fn is_known_metric(metric: &str) -> bool {
    CLASSIFICATION_METRICS.contains(&metric)
        || REGRESSION_METRICS.contains(&metric)
        || metric == "support"
}

/// Every valid metric name, comma separated (for error messages).
pub fn known_metrics() -> String {
    let mut all: Vec<&str> = CLASSIFICATION_METRICS
        .iter()
        .chain(REGRESSION_METRICS)
        .copied()
        .collect();
    all.push("support");
    all.join(", ")
}

/// Drops classes absent from both columns of this subset (scikit-learn computes the label set of
/// the rows it is given), returning the smaller matrix and its classes' original codes.
fn compact(cm: &ConfusionMatrix) -> (ConfusionMatrix, Vec<usize>) {
    let t = cm.true_counts();
    let p = cm.predicted_counts();
    let keep: Vec<usize> = (0..cm.n_classes())
        .filter(|&c| t[c] > 0 || p[c] > 0)
        .collect();
    let counts = keep
        .iter()
        .flat_map(|&a| keep.iter().map(move |&b| cm.get(a, b)))
        .collect();
    let out = ConfusionMatrix::from_counts(keep.len(), counts);
    (out, keep)
}

/// Scalar classification metrics from a (compacted) confusion matrix and the rows it counts.
struct ClassView<'a> {
    p: &'a Predictions,
    rows: Option<&'a [u32]>,
    cm: ConfusionMatrix,
    classes: Vec<Label>,
}

impl<'a> ClassView<'a> {
    /// The positive label's code among this subset's classes. The label itself is chosen from
    /// the whole table's classes, so a segment holding one class keeps the table's positive label.
    fn pos_code(&self, opts: &MetricOptions, all_classes: &[Label]) -> Result<Option<usize>> {
        let pos = positive(all_classes, opts)?;
        Ok(pos.and_then(|l| self.classes.iter().position(|c| *c == l)))
    }

    fn y_true(&self) -> Vec<u32> {
        let Target::Classification { y_true, .. } = &self.p.target else {
            return Vec::new();
        };
        match self.rows {
            None => y_true.clone(),
            Some(rows) => rows.iter().map(|&i| y_true[i as usize]).collect(),
        }
    }

    fn column<'c>(&self, col: &'c [f64]) -> Cow<'c, [f64]> {
        match self.rows {
            None => Cow::Borrowed(col),
            Some(rows) => Cow::Owned(rows.iter().map(|&i| col[i as usize]).collect()),
        }
    }

    /// Positive indicator and binary score for this subset.
    fn binary(
        &self,
        opts: &MetricOptions,
        all_classes: &[Label],
    ) -> Result<(Vec<bool>, Cow<'a, [f64]>)> {
        let pos = positive(all_classes, opts)?;
        let pos_code = pos
            .as_ref()
            .and_then(|l| all_classes.iter().position(|c| c == l));
        let score = match binary_scores(self.p) {
            Some(BinaryScore::Column(s)) => self.column(s),
            Some(BinaryScore::Pair(labels, cols)) => {
                let at = pos
                    .as_ref()
                    .and_then(|l| labels.iter().position(|c| c == l))
                    .ok_or_else(|| {
                        Error::invalid("the positive label has no column in `scores`")
                    })?;
                self.column(&cols[at])
            }
            None => return Err(Error::invalid("no binary score column")),
        };
        let is_pos = match self.rows {
            None => {
                let Target::Classification { y_true, .. } = &self.p.target else {
                    return Err(Error::invalid("not classification"));
                };
                rayon_map(y_true, pos_code)
            }
            Some(_) => self
                .y_true()
                .iter()
                .map(|&c| Some(c as usize) == pos_code)
                .collect(),
        };
        Ok((is_pos, score))
    }

    /// y_true recoded to the probability columns' order, and those columns, for this subset.
    fn multiclass(&self, all_classes: &[Label]) -> Result<(Vec<u32>, Vec<Vec<f64>>)> {
        let scores = self
            .p
            .scores
            .as_ref()
            .ok_or_else(|| Error::invalid("no probability columns"))?;
        let map: Vec<Option<u32>> = all_classes
            .iter()
            .map(|c| scores.classes.iter().position(|s| s == c).map(|i| i as u32))
            .collect();
        let mut y = Vec::new();
        for code in self.y_true() {
            y.push(map[code as usize].ok_or_else(|| {
                Error::invalid(format!(
                    "y_true label {} has no probability column in `scores`",
                    all_classes[code as usize]
                ))
            })?);
        }
        let cols = scores
            .columns
            .iter()
            .map(|c| self.column(c).into_owned())
            .collect();
        Ok((y, cols))
    }

    fn value(&self, name: &str, opts: &MetricOptions, all_classes: &[Label]) -> Result<f64> {
        let zd = opts.zero_division;
        let cm = &self.cm;
        let prf =
            |avg: Average, pick: fn(&cls::ClassScores) -> f64| pick(&cls::averaged(cm, avg, zd));
        let (kind, avg) = match name.split_once('_') {
            Some((k @ ("precision" | "recall" | "f1"), a @ ("micro" | "macro" | "weighted"))) => {
                (k, Some(a))
            }
            _ => (name, None),
        };
        let pick: Option<fn(&cls::ClassScores) -> f64> = match kind {
            "precision" => Some(|s| s.precision),
            "recall" => Some(|s| s.recall),
            "f1" => Some(|s| s.f1),
            _ => None,
        };
        if let Some(pick) = pick {
            let average = match avg {
                Some("micro") => Average::Micro,
                Some("macro") => Average::Macro,
                Some("weighted") => Average::Weighted,
                _ => Average::Binary(self.pos_code(opts, all_classes)?),
            };
            return Ok(prf(average, pick));
        }
        Ok(match name {
            "accuracy" => cls::accuracy(cm),
            "balanced_accuracy" => cls::balanced_accuracy(cm),
            "matthews_corrcoef" => cls::matthews_corrcoef(cm),
            "cohen_kappa" => cls::cohen_kappa(cm),
            "roc_auc" => {
                let (y, s) = self.binary(opts, all_classes)?;
                cls::roc_auc(&y, &s)?
            }
            "average_precision" => {
                let (y, s) = self.binary(opts, all_classes)?;
                cls::average_precision(&y, &s)?
            }
            "log_loss" | "brier" if self.p.scores.as_ref().is_some_and(|s| s.classes.len() > 2) => {
                let (y, cols) = self.multiclass(all_classes)?;
                let proba = ClassProbabilities { columns: &cols };
                if name == "log_loss" {
                    cls::log_loss_multiclass(&y, proba)?
                } else {
                    cls::brier_multiclass(&y, proba)?
                }
            }
            "log_loss" => {
                let (y, s) = self.binary(opts, all_classes)?;
                cls::log_loss_binary(&y, &s)?
            }
            "brier" => {
                let (y, s) = self.binary(opts, all_classes)?;
                cls::brier_binary(&y, &s)?
            }
            "roc_auc_ovr" | "roc_auc_ovr_weighted" | "roc_auc_ovo" | "roc_auc_ovo_weighted" => {
                let (y, cols) = self.multiclass(all_classes)?;
                let proba = ClassProbabilities { columns: &cols };
                let weighted = name.ends_with("_weighted");
                if name.starts_with("roc_auc_ovr") {
                    cls::roc_auc_ovr(&y, proba, weighted)?
                } else {
                    cls::roc_auc_ovo(&y, proba, weighted)?
                }
            }
            other => {
                return Err(Error::UnknownMetric {
                    name: other.to_owned(),
                    valid: CLASSIFICATION_METRICS.join(", "),
                });
            }
        })
    }
}

fn rayon_map(y_true: &[u32], pos_code: Option<usize>) -> Vec<bool> {
    use rayon::prelude::*;
    y_true
        .par_iter()
        .map(|&c| Some(c as usize) == pos_code)
        .collect()
}

fn regression_value(name: &str, t: &[f64], p: &[f64]) -> Result<f64> {
    match name {
        "mae" => reg::mae(t, p),
        "mse" => reg::mse(t, p),
        "rmse" => reg::rmse(t, p),
        "r2" => reg::r2(t, p),
        "mape" => reg::mape(t, p),
        "median_ae" => reg::median_ae(t, p),
        "max_error" => reg::max_error(t, p),
        other => Err(Error::UnknownMetric {
            name: other.to_owned(),
            valid: REGRESSION_METRICS.join(", "),
        }),
    }
}

/// The classes present in a subset and their (compacted) confusion matrix.
type ClassCounts = (Vec<Label>, ConfusionMatrix);

/// Scalar metrics (and per-class values, when `per_class`) of the rows `rows` (all when `None`),
/// given their confusion matrix when classification.
fn scalar_metrics(
    p: &Predictions,
    rows: Option<&[u32]>,
    cm: Option<&ConfusionMatrix>,
    names: &[String],
    opts: &MetricOptions,
) -> Result<(BTreeMap<String, f64>, Option<ClassCounts>)> {
    let mut out = BTreeMap::new();
    match &p.target {
        Target::Regression { y_true, y_pred } => {
            let (t, pr): (Vec<f64>, Vec<f64>) = match rows {
                None => (y_true.clone(), y_pred.clone()),
                Some(r) => r
                    .iter()
                    .map(|&i| (y_true[i as usize], y_pred[i as usize]))
                    .unzip(),
            };
            for name in names {
                out.insert(name.clone(), regression_value(name, &t, &pr)?);
            }
            Ok((out, None))
        }
        Target::Classification { classes, .. } => {
            let full = match cm {
                Some(cm) => cm.clone(),
                None => return Err(Error::invalid("missing confusion matrix")),
            };
            let (small, keep) = compact(&full);
            let view = ClassView {
                p,
                rows,
                cm: small,
                classes: keep.iter().map(|&c| classes[c].clone()).collect(),
            };
            for name in names {
                out.insert(name.clone(), view.value(name, opts, classes)?);
            }
            Ok((out, Some((view.classes, view.cm))))
        }
    }
}

fn per_class_map(
    classes: &[Label],
    cm: &ConfusionMatrix,
    zd: ZeroDivision,
) -> BTreeMap<String, BTreeMap<String, f64>> {
    cls::per_class(cm, zd)
        .iter()
        .zip(classes)
        .map(|(s, label)| {
            let values = BTreeMap::from([
                ("precision".to_owned(), s.precision),
                ("recall".to_owned(), s.recall),
                ("f1".to_owned(), s.f1),
                ("support".to_owned(), s.support as f64),
            ]);
            (label.to_string(), values)
        })
        .collect()
}

/// Computes every requested metric: overall, per class, confusion matrix, per segment and the
/// gaps between segments.
///
/// Fails on unknown or unavailable metric names and invalid inputs (e.g. probabilities outside
/// [0, 1]).
pub fn evaluate(p: &Predictions, opts: &MetricOptions) -> Result<MetricReport> {
    let names = match &opts.metrics {
        Some(list) => check_names(p, opts, list)?,
        None => available(p, opts).into_iter().map(str::to_owned).collect(),
    };
    let segment_names = match &opts.segment_metrics {
        Some(list) => check_names(p, opts, list)?,
        None => names.clone(),
    };
    let mut report = MetricReport {
        rows: p.len(),
        ..MetricReport::default()
    };
    // One pass per segment column builds every segment's confusion matrix; the overall matrix is
    // their sum, so a table with segments is scanned once for counts.
    let mut segment_cms: Vec<Vec<ConfusionMatrix>> = Vec::new();
    let overall_cm = if let Target::Classification {
        classes,
        y_true,
        y_pred,
    } = &p.target
    {
        for seg in &p.segments {
            segment_cms.push(cls::confusion_by_segment(
                y_true,
                y_pred,
                Some(&seg.codes),
                seg.values.len(),
                classes.len(),
            )?);
        }
        Some(match segment_cms.first() {
            Some(cms) => {
                let mut sum = ConfusionMatrix::zeros(classes.len());
                for cm in cms {
                    sum.add(cm);
                }
                sum
            }
            None => ConfusionMatrix::from_codes(y_true, y_pred, classes.len())?,
        })
    } else {
        None
    };
    let (overall, class_view) = scalar_metrics(p, None, overall_cm.as_ref(), &names, opts)?;
    report.overall = overall;
    if let Some((classes, cm)) = class_view {
        report.classes = classes.iter().map(ToString::to_string).collect();
        report.per_class = per_class_map(&classes, &cm, opts.zero_division);
        report.confusion_matrix = Some(LabeledMatrix {
            labels: report.classes.clone(),
            matrix: cm.rows(),
        });
    }
    for (s, seg) in p.segments.iter().enumerate() {
        let needs_rows = segment_names.iter().any(|m| {
            !matches!(p.target, Target::Classification { .. })
                || matches!(
                    m.as_str(),
                    "roc_auc" | "average_precision" | "log_loss" | "brier"
                )
                || m.starts_with("roc_auc_")
        });
        let rows_by_value: Vec<Vec<u32>> = if needs_rows {
            group_rows(&seg.codes, seg.values.len())
        } else {
            Vec::new()
        };
        let mut by_value = BTreeMap::new();
        for (v, value) in seg.values.iter().enumerate() {
            let rows = rows_by_value.get(v).map(Vec::as_slice);
            let cm = segment_cms.get(s).and_then(|cms| cms.get(v));
            let (values, _) = scalar_metrics(p, rows, cm, &segment_names, opts)?;
            by_value.insert(value.to_string(), values);
        }
        let mut gaps = BTreeMap::new();
        for name in &segment_names {
            let values: Vec<f64> = by_value
                .values()
                .filter_map(|m| m.get(name).copied())
                .filter(|v| !v.is_nan())
                .collect();
            if let Some(gap) = gap_of(&values) {
                gaps.insert(name.clone(), gap);
            }
        }
        report.segments.insert(seg.name.clone(), by_value);
        report.segment_gaps.insert(seg.name.clone(), gaps);
    }
    Ok(report)
}

fn group_rows(codes: &[u32], n_values: usize) -> Vec<Vec<u32>> {
    let mut rows = vec![Vec::new(); n_values];
    for (i, &c) in codes.iter().enumerate() {
        rows[c as usize].push(i as u32);
    }
    rows
}

/// The gap over segment values: min, max, difference and ratio (`None` when there are none).
pub fn gap_of(values: &[f64]) -> Option<Gap> {
    let min = values.iter().copied().reduce(f64::min)?;
    let max = values.iter().copied().reduce(f64::max)?;
    Some(Gap {
        min,
        max,
        difference: max - min,
        ratio: min / max,
    })
}

/// Where a single metric is read: overall, for one class, and/or within one segment value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// A class label (as written): the metric is read from `per_class`.
    pub class: Option<String>,
    /// (segment column, value): the metric is computed over those rows only.
    pub segment: Option<(String, String)>,
}

/// The rows of `p` inside the scope's segment (all rows when unscoped).
///
/// Fails when the segment column is not configured or the value does not occur.
pub fn scope_rows(p: &Predictions, scope: &Scope) -> Result<Option<Vec<u32>>> {
    let Some((column, value)) = &scope.segment else {
        return Ok(None);
    };
    let seg = p
        .segments
        .iter()
        .find(|s| s.name == *column)
        .ok_or_else(|| {
            Error::invalid(format!(
                "segment column `{column}` is not among the gate's segments"
            ))
        })?;
    let code = seg
        .values
        .iter()
        .position(|v| v.to_string() == *value)
        .ok_or_else(|| {
            let values: Vec<String> = seg.values.iter().map(ToString::to_string).collect();
            Error::invalid(format!(
                "segment `{column}` has no value `{value}`; values: {}",
                values.join(", ")
            ))
        })? as u32;
    Ok(Some(
        (0..p.len() as u32)
            .filter(|&i| seg.codes[i as usize] == code)
            .collect(),
    ))
}

/// One metric over the rows `rows` of `p` (all when `None`), within `scope.class` if set.
///
/// Fails on unknown or unavailable metric names and invalid inputs.
pub fn metric_value(
    p: &Predictions,
    rows: Option<&[u32]>,
    scope: &Scope,
    metric: &str,
    opts: &MetricOptions,
) -> Result<f64> {
    let cm = match &p.target {
        Target::Classification {
            classes,
            y_true,
            y_pred,
        } => Some(match rows {
            None => ConfusionMatrix::from_codes(y_true, y_pred, classes.len())?,
            Some(r) => {
                let t: Vec<u32> = r.iter().map(|&i| y_true[i as usize]).collect();
                let q: Vec<u32> = r.iter().map(|&i| y_pred[i as usize]).collect();
                ConfusionMatrix::from_codes(&t, &q, classes.len())?
            }
        }),
        Target::Regression { .. } => None,
    };
    if let Some(class) = &scope.class {
        if !PER_CLASS_METRICS.contains(&metric) {
            return Err(Error::invalid(format!(
                "metric `{metric}` has no per-class value; per-class metrics: {}",
                PER_CLASS_METRICS.join(", ")
            )));
        }
        let Some(cm) = cm else {
            return Err(Error::invalid(
                "per-class metrics need a classification table",
            ));
        };
        let (_, view) = scalar_metrics(p, rows, Some(&cm), &[], opts)?;
        let Some((classes, small)) = view else {
            return Ok(f64::NAN);
        };
        let map = per_class_map(&classes, &small, opts.zero_division);
        return Ok(map
            .get(class)
            .and_then(|m| m.get(metric))
            .copied()
            .unwrap_or(f64::NAN));
    }
    let names = check_names(p, opts, &[metric.to_owned()])?;
    let (values, _) = scalar_metrics(p, rows, cm.as_ref(), &names, opts)?;
    Ok(values.get(metric).copied().unwrap_or(f64::NAN))
}

/// Bootstrap settings: how many resamples and the seed (results are reproducible).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bootstrap {
    /// Number of resamples.
    pub samples: usize,
    /// Seed of the ChaCha8 generator.
    pub seed: u64,
}

impl Default for Bootstrap {
    fn default() -> Self {
        Self {
            samples: 1000,
            seed: 0,
        }
    }
}

/// A two-sided percentile interval.
#[derive(Debug, Clone, Copy, Serialize, PartialEq)]
pub struct Interval {
    /// Lower bound.
    pub low: f64,
    /// Upper bound.
    pub high: f64,
    /// Its confidence level, e.g. 0.95.
    pub confidence: f64,
}

/// numpy's default (linear) percentile of sorted values, `q` in [0, 1].
fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

fn interval_of(mut values: Vec<f64>, confidence: f64) -> Interval {
    values.retain(|v| !v.is_nan());
    values.sort_unstable_by(f64::total_cmp);
    let alpha = 1.0 - confidence;
    Interval {
        low: percentile(&values, alpha / 2.0),
        high: percentile(&values, 1.0 - alpha / 2.0),
        confidence,
    }
}

fn resamples(rows: usize, boot: Bootstrap) -> impl Iterator<Item = Vec<u32>> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(boot.seed);
    (0..boot.samples).map(move |_| {
        (0..rows)
            .map(|_| rng.random_range(0..rows as u32))
            .collect()
    })
}

/// Percentile bootstrap interval of one metric within `scope` (rows resampled with replacement;
/// resamples where the metric is undefined are dropped).
///
/// Fails like [`metric_value`], or when `confidence` is not in (0, 1).
pub fn bootstrap_interval(
    p: &Predictions,
    scope: &Scope,
    metric: &str,
    opts: &MetricOptions,
    boot: Bootstrap,
    confidence: f64,
) -> Result<Interval> {
    check_confidence(confidence)?;
    let base = scope_rows(p, scope)?.unwrap_or_else(|| (0..p.len() as u32).collect());
    let mut values = Vec::with_capacity(boot.samples);
    for sample in resamples(base.len(), boot) {
        let rows: Vec<u32> = sample.iter().map(|&i| base[i as usize]).collect();
        values.push(metric_value(p, Some(&rows), scope, metric, opts)?);
    }
    Ok(interval_of(values, confidence))
}

/// Paired bootstrap interval of `candidate - baseline` for one metric: the same resampled rows
/// are scored in both tables (`baseline` aligned to the candidate's rows, see
/// [`Predictions::align`]).
///
/// Fails like [`bootstrap_interval`].
pub fn paired_bootstrap_interval(
    candidate: &Predictions,
    baseline: &Predictions,
    scope: &Scope,
    metric: &str,
    opts: &MetricOptions,
    boot: Bootstrap,
    confidence: f64,
) -> Result<Interval> {
    let pair = Pair {
        candidate,
        baseline,
        scope,
        metric,
        opts,
    };
    paired_interval(&pair, boot, confidence, |c, b| c - b)
}

/// Paired bootstrap interval of the relative change `(candidate - baseline) / |baseline|` for one
/// metric (MLflow's relative change, not direction aware), over the same resampled rows of both
/// tables; resamples where the baseline value is 0 are dropped (the change is undefined there).
///
/// Fails like [`bootstrap_interval`].
pub fn paired_relative_bootstrap_interval(
    candidate: &Predictions,
    baseline: &Predictions,
    scope: &Scope,
    metric: &str,
    opts: &MetricOptions,
    boot: Bootstrap,
    confidence: f64,
) -> Result<Interval> {
    let pair = Pair {
        candidate,
        baseline,
        scope,
        metric,
        opts,
    };
    paired_interval(&pair, boot, confidence, |c, b| {
        if b == 0.0 {
            f64::NAN
        } else {
            (c - b) / b.abs()
        }
    })
}

/// One metric compared between two aligned tables.
struct Pair<'a> {
    candidate: &'a Predictions,
    baseline: &'a Predictions,
    scope: &'a Scope,
    metric: &'a str,
    opts: &'a MetricOptions,
}

/// Paired percentile interval of `combine(candidate value, baseline value)` over resamples.
fn paired_interval(
    pair: &Pair<'_>,
    boot: Bootstrap,
    confidence: f64,
    combine: fn(f64, f64) -> f64,
) -> Result<Interval> {
    check_confidence(confidence)?;
    let base = scope_rows(pair.candidate, pair.scope)?
        .unwrap_or_else(|| (0..pair.candidate.len() as u32).collect());
    let mut values = Vec::with_capacity(boot.samples);
    for sample in resamples(base.len(), boot) {
        let rows: Vec<u32> = sample.iter().map(|&i| base[i as usize]).collect();
        let c = metric_value(
            pair.candidate,
            Some(&rows),
            pair.scope,
            pair.metric,
            pair.opts,
        )?;
        let b = metric_value(
            pair.baseline,
            Some(&rows),
            pair.scope,
            pair.metric,
            pair.opts,
        )?;
        values.push(combine(c, b));
    }
    Ok(interval_of(values, confidence))
}

/// Bootstrap interval of the gap between segments: `max - min` of `metric` over the values of
/// segment column `column`, as in [`MetricReport::segment_gaps`]. Each value's rows are resampled
/// with replacement within that value (every value keeps its size in every resample); values
/// where the metric is undefined are skipped, resamples where it is undefined for every value
/// are dropped.
///
/// Fails like [`bootstrap_interval`], or when `column` is not a segment column of `p`.
pub fn segment_gap_interval(
    p: &Predictions,
    column: &str,
    metric: &str,
    opts: &MetricOptions,
    boot: Bootstrap,
    confidence: f64,
) -> Result<Interval> {
    check_confidence(confidence)?;
    let seg = p
        .segments
        .iter()
        .find(|s| s.name == column)
        .ok_or_else(|| {
            Error::invalid(format!(
                "segment column `{column}` is not among the gate's segments"
            ))
        })?;
    let groups = group_rows(&seg.codes, seg.values.len());
    let whole = Scope::default();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(boot.seed);
    let mut gaps = Vec::with_capacity(boot.samples);
    for _ in 0..boot.samples {
        let mut per_value = Vec::with_capacity(groups.len());
        for rows in groups.iter().filter(|r| !r.is_empty()) {
            let sample: Vec<u32> = (0..rows.len())
                .map(|_| rows[rng.random_range(0..rows.len())])
                .collect();
            let v = metric_value(p, Some(&sample), &whole, metric, opts)?;
            if !v.is_nan() {
                per_value.push(v);
            }
        }
        gaps.push(gap_of(&per_value).map_or(f64::NAN, |g| g.difference));
    }
    Ok(interval_of(gaps, confidence))
}

fn check_confidence(confidence: f64) -> Result<()> {
    if confidence > 0.0 && confidence < 1.0 {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "confidence must be between 0 and 1 (exclusive), got {confidence}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_interpolates_like_numpy() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.5);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert!((percentile(&v, 0.025) - 1.075).abs() < 1e-12);
    }

    #[test]
    fn gaps_are_max_minus_min_and_min_over_max() {
        let g = gap_of(&[0.5, 0.8, 0.4]).unwrap();
        assert_eq!((g.min, g.max), (0.4, 0.8));
        assert!((g.difference - 0.4).abs() < 1e-15 && (g.ratio - 0.5).abs() < 1e-15);
        assert!(gap_of(&[]).is_none());
    }

    #[test]
    fn direction_of_losses_is_lower_is_better() {
        assert!(
            higher_is_better("f1_macro")
                && !higher_is_better("log_loss")
                && !higher_is_better("mae")
        );
    }
}
