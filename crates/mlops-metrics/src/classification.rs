//! Classification metrics with scikit-learn's definitions, computed from integer-coded labels.
//!
//! Labels are codes `0..n_classes` into a sorted class list (see [`crate::labels`]); everything
//! that only needs counts goes through one [`ConfusionMatrix`], built in a single parallel pass.

use rayon::prelude::*;

use crate::error::{Error, Result};

/// Rows handled by one parallel task: large enough that merging per-task counts is free.
const CHUNK: usize = 1 << 16;

/// What a precision, recall or F-score is when its denominator is zero, as scikit-learn's
/// `zero_division`: `"warn"` and `0` give 0, `1` gives 1, `"nan"` gives NaN (and NaN entries are
/// then left out of macro and weighted averages).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum ZeroDivision {
    /// scikit-learn's default: 0 (scikit-learn also warns).
    #[default]
    Warn,
    /// 0.
    Zero,
    /// 1.
    One,
    /// NaN, ignored by averages.
    Nan,
}

impl ZeroDivision {
    fn value(self) -> f64 {
        match self {
            Self::Warn | Self::Zero => 0.0,
            Self::One => 1.0,
            Self::Nan => f64::NAN,
        }
    }
}

/// How per-class precision, recall and F1 are combined, as scikit-learn's `average`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Average {
    /// Only the positive class (its code, or `None` when the positive label is absent from both
    /// columns, which scikit-learn allows when at most one label is present).
    Binary(Option<usize>),
    /// Global counts of true positives, false positives and false negatives.
    Micro,
    /// Unweighted mean over classes.
    Macro,
    /// Mean over classes weighted by support (true count).
    Weighted,
}

/// Counts of (true class, predicted class) pairs; row = true class, column = predicted class,
/// classes in sorted label order (scikit-learn's `confusion_matrix`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfusionMatrix {
    n_classes: usize,
    counts: Vec<u64>,
}

impl ConfusionMatrix {
    /// An all-zero matrix for `n_classes` classes.
    pub fn zeros(n_classes: usize) -> Self {
        Self {
            n_classes,
            counts: vec![0; n_classes * n_classes],
        }
    }

    /// A matrix from row-major counts (`counts.len()` must be `n_classes²`; extra cells are
    /// dropped, missing ones are zero).
    pub fn from_counts(n_classes: usize, mut counts: Vec<u64>) -> Self {
        counts.resize(n_classes * n_classes, 0);
        Self { n_classes, counts }
    }

    /// Builds the matrix from codes in one parallel pass.
    ///
    /// Fails when the slices differ in length or a code is not below `n_classes`.
    pub fn from_codes(y_true: &[u32], y_pred: &[u32], n_classes: usize) -> Result<Self> {
        let mut all = confusion_by_segment(y_true, y_pred, None, 1, n_classes)?;
        Ok(all.pop().unwrap_or_else(|| Self::zeros(n_classes)))
    }

    /// The number of classes.
    pub fn n_classes(&self) -> usize {
        self.n_classes
    }

    /// The count of rows with true class `t` predicted as `p`.
    pub fn get(&self, t: usize, p: usize) -> u64 {
        self.counts[t * self.n_classes + p]
    }

    /// The matrix as rows (true class) of columns (predicted class).
    pub fn rows(&self) -> Vec<Vec<u64>> {
        self.counts
            .chunks(self.n_classes.max(1))
            .map(<[u64]>::to_vec)
            .collect()
    }

    /// The number of rows counted.
    pub fn total(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// Per class: how many rows truly are that class (support).
    pub fn true_counts(&self) -> Vec<u64> {
        (0..self.n_classes)
            .map(|t| (0..self.n_classes).map(|p| self.get(t, p)).sum())
            .collect()
    }

    /// Per class: how many rows were predicted as that class.
    pub fn predicted_counts(&self) -> Vec<u64> {
        (0..self.n_classes)
            .map(|p| (0..self.n_classes).map(|t| self.get(t, p)).sum())
            .collect()
    }

    /// Per class: true positives (the diagonal).
    pub fn diagonal(&self) -> Vec<u64> {
        (0..self.n_classes).map(|c| self.get(c, c)).collect()
    }

    /// Adds `other`'s counts (same class count) to this matrix.
    pub fn add(&mut self, other: &Self) {
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
    }
}

/// One confusion matrix per segment code in a single parallel pass over the rows: row `i` counts
/// in matrix `segments[i]` (or matrix 0 when `segments` is `None`).
///
/// Fails when lengths differ or a code is out of range.
pub fn confusion_by_segment(
    y_true: &[u32],
    y_pred: &[u32],
    segments: Option<&[u32]>,
    n_segments: usize,
    n_classes: usize,
) -> Result<Vec<ConfusionMatrix>> {
    if y_true.len() != y_pred.len() || segments.is_some_and(|s| s.len() != y_true.len()) {
        return Err(Error::invalid(format!(
            "y_true has {} rows but y_pred has {}",
            y_true.len(),
            y_pred.len()
        )));
    }
    let k = n_classes;
    let cells = k * k;
    let size = cells * n_segments.max(1);
    let k32 = u32::try_from(k).map_err(|_| Error::invalid("too many classes"))?;
    let nseg32 = u32::try_from(n_segments).map_err(|_| Error::invalid("too many segments"))?;
    let counts = y_true
        .par_chunks(CHUNK)
        .zip(y_pred.par_chunks(CHUNK))
        .enumerate()
        .try_fold(
            || vec![0u64; size],
            |mut acc, (chunk, (t, p))| {
                let mut bad = false;
                match segments {
                    None => {
                        for (&t, &p) in t.iter().zip(p) {
                            bad |= t >= k32 || p >= k32;
                            if let Some(c) = acc.get_mut((t as usize) * k + p as usize) {
                                *c += 1;
                            }
                        }
                    }
                    Some(seg) => {
                        let start = chunk * CHUNK;
                        let s = &seg[start..start + t.len()];
                        for ((&t, &p), &s) in t.iter().zip(p).zip(s) {
                            bad |= t >= k32 || p >= k32 || s >= nseg32;
                            let at = (s as usize) * cells + (t as usize) * k + p as usize;
                            if let Some(c) = acc.get_mut(at) {
                                *c += 1;
                            }
                        }
                    }
                }
                if bad {
                    Err(Error::invalid("a label or segment code is out of range"))
                } else {
                    Ok(acc)
                }
            },
        )
        .try_reduce(
            || vec![0u64; size],
            |mut a, b| {
                for (x, y) in a.iter_mut().zip(&b) {
                    *x += y;
                }
                Ok(a)
            },
        )?;
    Ok(counts
        .chunks(cells.max(1))
        .take(n_segments.max(1))
        .map(|c| ConfusionMatrix {
            n_classes: k,
            counts: c.to_vec(),
        })
        .collect())
}

fn divide(num: f64, den: f64, zero_division: ZeroDivision) -> f64 {
    if den == 0.0 {
        zero_division.value()
    } else {
        num / den
    }
}

/// Precision, recall, F1 and support of one class.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassScores {
    /// tp / (tp + fp).
    pub precision: f64,
    /// tp / (tp + fn).
    pub recall: f64,
    /// 2 tp / (2 tp + fp + fn), computed from counts as scikit-learn does.
    pub f1: f64,
    /// How many rows truly are this class.
    pub support: u64,
}

fn scores_from_counts(tp: u64, pred: u64, truth: u64, zd: ZeroDivision) -> ClassScores {
    ClassScores {
        precision: divide(tp as f64, pred as f64, zd),
        recall: divide(tp as f64, truth as f64, zd),
        f1: divide(2.0 * tp as f64, (truth + pred) as f64, zd),
        support: truth,
    }
}

/// Per-class precision, recall, F1 and support (scikit-learn's `average=None`).
pub fn per_class(cm: &ConfusionMatrix, zero_division: ZeroDivision) -> Vec<ClassScores> {
    let tp = cm.diagonal();
    let pred = cm.predicted_counts();
    let truth = cm.true_counts();
    (0..cm.n_classes())
        .map(|c| scores_from_counts(tp[c], pred[c], truth[c], zero_division))
        .collect()
}

/// scikit-learn's `_nanaverage`: NaN entries are dropped; all NaN (or nothing) gives NaN; zero
/// total weight falls back to the plain mean.
fn nan_average(values: &[f64], weights: Option<&[u64]>) -> f64 {
    let kept: Vec<(f64, f64)> = values
        .iter()
        .enumerate()
        .filter(|(_, v)| !v.is_nan())
        .map(|(i, &v)| (v, weights.map_or(1.0, |w| w[i] as f64)))
        .collect();
    if kept.is_empty() {
        return f64::NAN;
    }
    let total: f64 = kept.iter().map(|(_, w)| w).sum();
    if total == 0.0 {
        return kept.iter().map(|(v, _)| v).sum::<f64>() / kept.len() as f64;
    }
    kept.iter().map(|(v, w)| v * w).sum::<f64>() / total
}

/// Averaged precision, recall and F1 (scikit-learn's `precision_recall_fscore_support` with an
/// `average`). The F1 of an average is the average of per-class F1, not the harmonic mean of the
/// averaged precision and recall (except for `micro` and `binary`).
pub fn averaged(
    cm: &ConfusionMatrix,
    average: Average,
    zero_division: ZeroDivision,
) -> ClassScores {
    match average {
        Average::Binary(pos) => match pos {
            Some(c) => per_class(cm, zero_division)[c],
            None => scores_from_counts(0, 0, 0, zero_division),
        },
        Average::Micro => {
            let tp: u64 = cm.diagonal().iter().sum();
            let total = cm.total();
            scores_from_counts(tp, total, total, zero_division)
        }
        Average::Macro | Average::Weighted => {
            let classes = per_class(cm, zero_division);
            let support: Vec<u64> = classes.iter().map(|c| c.support).collect();
            let weights = (average == Average::Weighted).then_some(support.as_slice());
            let pick = |f: fn(&ClassScores) -> f64| {
                let v: Vec<f64> = classes.iter().map(f).collect();
                nan_average(&v, weights)
            };
            ClassScores {
                precision: pick(|c| c.precision),
                recall: pick(|c| c.recall),
                f1: pick(|c| c.f1),
                support: support.iter().sum(),
            }
        }
    }
}

/// Fraction of rows predicted correctly; NaN for an empty matrix.
pub fn accuracy(cm: &ConfusionMatrix) -> f64 {
    let total = cm.total();
    if total == 0 {
        f64::NAN
    } else {
        cm.diagonal().iter().sum::<u64>() as f64 / total as f64
    }
}

/// Mean recall over the classes present in `y_true` (scikit-learn drops classes seen only in
/// `y_pred`, with a warning).
pub fn balanced_accuracy(cm: &ConfusionMatrix) -> f64 {
    let tp = cm.diagonal();
    let truth = cm.true_counts();
    let recalls: Vec<f64> = (0..cm.n_classes())
        .filter(|&c| truth[c] > 0)
        .map(|c| tp[c] as f64 / truth[c] as f64)
        .collect();
    if recalls.is_empty() {
        f64::NAN
    } else {
        recalls.iter().sum::<f64>() / recalls.len() as f64
    }
}

/// Matthews correlation coefficient, multiclass form; 0 when undefined (as scikit-learn).
pub fn matthews_corrcoef(cm: &ConfusionMatrix) -> f64 {
    let t: Vec<f64> = cm.true_counts().iter().map(|&x| x as f64).collect();
    let p: Vec<f64> = cm.predicted_counts().iter().map(|&x| x as f64).collect();
    let correct = cm.diagonal().iter().sum::<u64>() as f64;
    let n: f64 = p.iter().sum();
    let dot = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f64>();
    let cov_tp = correct * n - dot(&t, &p);
    let cov_pp = n * n - dot(&p, &p);
    let cov_tt = n * n - dot(&t, &t);
    let denom = cov_pp * cov_tt;
    if denom == 0.0 {
        0.0
    } else {
        cov_tp / denom.sqrt()
    }
}

/// Cohen's kappa (unweighted) between `y_true` and `y_pred`; NaN when undefined (scikit-learn's
/// default `replace_undefined_by=np.nan`).
pub fn cohen_kappa(cm: &ConfusionMatrix) -> f64 {
    let sum0: Vec<f64> = cm.predicted_counts().iter().map(|&x| x as f64).collect();
    let sum1: Vec<f64> = cm.true_counts().iter().map(|&x| x as f64).collect();
    let total: f64 = sum0.iter().sum();
    if total == 0.0 {
        return f64::NAN;
    }
    let mut observed = 0.0;
    let mut expected = 0.0;
    for (i, s0) in sum0.iter().enumerate() {
        for (j, s1) in sum1.iter().enumerate() {
            if i != j {
                observed += cm.get(i, j) as f64;
                expected += s0 * s1 / total;
            }
        }
    }
    if expected == 0.0 {
        f64::NAN
    } else {
        1.0 - observed / expected
    }
}

/// Maps a score to a `u64` whose unsigned order is the numeric order (with -0 equal to +0).
fn order_key(x: f64) -> u64 {
    let bits = (x + 0.0).to_bits();
    if bits >> 63 == 1 {
        !bits
    } else {
        bits | (1 << 63)
    }
}

/// LSD radix sort of `keys` with 11-bit digits, skipping digits that are the same for every key.
fn radix_sort(keys: &mut Vec<u64>) {
    const BITS: u32 = 11;
    const BUCKETS: usize = 1 << BITS;
    const PASSES: usize = 6;
    if keys.len() < 256 {
        keys.sort_unstable();
        return;
    }
    let mut hist = vec![[0usize; BUCKETS]; PASSES];
    for &k in keys.iter() {
        for (pass, h) in hist.iter_mut().enumerate() {
            h[((k >> (pass as u32 * BITS)) as usize) & (BUCKETS - 1)] += 1;
        }
    }
    let n = keys.len();
    let mut other = vec![0u64; n];
    for (pass, h) in hist.iter().enumerate() {
        if h.contains(&n) {
            continue;
        }
        let mut offsets = [0usize; BUCKETS];
        let mut sum = 0;
        for (o, &c) in offsets.iter_mut().zip(h.iter()) {
            *o = sum;
            sum += c;
        }
        let shift = pass as u32 * BITS;
        for &k in keys.iter() {
            let b = ((k >> shift) as usize) & (BUCKETS - 1);
            other[offsets[b]] = k;
            offsets[b] += 1;
        }
        std::mem::swap(keys, &mut other);
    }
}

/// Sorted order keys of the positive and of the negative rows' scores.
fn split_sorted(is_positive: &[bool], scores: &[f64]) -> Result<(Vec<u64>, Vec<u64>)> {
    if is_positive.len() != scores.len() {
        return Err(Error::invalid(format!(
            "y_true has {} rows but the scores have {}",
            is_positive.len(),
            scores.len()
        )));
    }
    if scores.par_iter().any(|s| s.is_nan()) {
        return Err(Error::invalid("scores contain NaN"));
    }
    let n_pos = is_positive.par_iter().filter(|&&p| p).count();
    let mut pos = Vec::with_capacity(n_pos);
    let mut neg = Vec::with_capacity(scores.len() - n_pos);
    for (&p, &s) in is_positive.iter().zip(scores) {
        if p {
            pos.push(order_key(s))
        } else {
            neg.push(order_key(s))
        }
    }
    rayon::join(|| radix_sort(&mut pos), || radix_sort(&mut neg));
    Ok((pos, neg))
}

/// Calls `f(positives, negatives)` for each distinct score, from the highest to the lowest.
fn tie_groups_descending(pos: &[u64], neg: &[u64], mut f: impl FnMut(u64, u64)) {
    let (mut i, mut j) = (pos.len(), neg.len());
    while i > 0 || j > 0 {
        let top = match (i > 0, j > 0) {
            (true, true) => pos[i - 1].max(neg[j - 1]),
            (true, false) => pos[i - 1],
            _ => neg[j - 1],
        };
        let (mut p, mut q) = (0u64, 0u64);
        while i > 0 && pos[i - 1] == top {
            i -= 1;
            p += 1;
        }
        while j > 0 && neg[j - 1] == top {
            j -= 1;
            q += 1;
        }
        f(p, q);
    }
}

/// Area under the ROC curve for a binary target. Tied scores get half credit (the trapezoid
/// across a tied block, as scikit-learn's `roc_curve` + `auc`). NaN when only one class is
/// present (scikit-learn warns and returns NaN).
///
/// Fails on a length mismatch or NaN scores.
pub fn roc_auc(is_positive: &[bool], scores: &[f64]) -> Result<f64> {
    let (pos, neg) = split_sorted(is_positive, scores)?;
    Ok(roc_auc_sorted(&pos, &neg))
}

fn roc_auc_sorted(pos: &[u64], neg: &[u64]) -> f64 {
    if pos.is_empty() || neg.is_empty() {
        return f64::NAN;
    }
    // Twice the area, in exact integer arithmetic: each positive beats the negatives below it
    // (2 each) and ties with the negatives at its score (1 each).
    let mut neg_above: u128 = 0;
    let mut area2: u128 = 0;
    let n_neg = neg.len() as u128;
    tie_groups_descending(pos, neg, |p, q| {
        neg_above += u128::from(q);
        let below = n_neg - neg_above;
        area2 += u128::from(p) * (2 * below + u128::from(q));
    });
    area2 as f64 / (2.0 * pos.len() as f64 * neg.len() as f64)
}

/// Average precision, step-wise (scikit-learn's `average_precision_score`): the sum over
/// thresholds of the recall increase times the precision there. 0 when there is no positive row.
///
/// Fails on a length mismatch or NaN scores.
pub fn average_precision(is_positive: &[bool], scores: &[f64]) -> Result<f64> {
    let (pos, neg) = split_sorted(is_positive, scores)?;
    if pos.is_empty() {
        return Ok(0.0);
    }
    let total = pos.len() as f64;
    let (mut tp, mut fp) = (0u64, 0u64);
    let mut prev_recall = 0.0;
    let mut ap = 0.0;
    tie_groups_descending(&pos, &neg, |p, q| {
        tp += p;
        fp += q;
        let recall = tp as f64 / total;
        ap += (recall - prev_recall) * (tp as f64 / (tp + fp) as f64);
        prev_recall = recall;
    });
    Ok(ap.max(0.0))
}

fn check_probability(p: f64) -> Result<()> {
    if (0.0..=1.0).contains(&p) {
        Ok(())
    } else {
        Err(Error::invalid(format!("probability {p} is outside [0, 1]")))
    }
}

/// Mean negative log-likelihood of a binary target given the positive class's probability,
/// clipped to `[eps, 1 - eps]` like scikit-learn.
///
/// Fails on a length mismatch, an empty input or probabilities outside [0, 1].
pub fn log_loss_binary(is_positive: &[bool], proba: &[f64]) -> Result<f64> {
    same_len(is_positive.len(), proba.len())?;
    let eps = f64::EPSILON;
    let mut sum = 0.0;
    for (&y, &p) in is_positive.iter().zip(proba) {
        check_probability(p)?;
        let q = if y { p } else { 1.0 - p };
        sum -= q.clamp(eps, 1.0 - eps).ln();
    }
    Ok(sum / is_positive.len() as f64)
}

/// Mean squared difference between the positive indicator and its probability.
///
/// Fails on a length mismatch, an empty input or probabilities outside [0, 1].
pub fn brier_binary(is_positive: &[bool], proba: &[f64]) -> Result<f64> {
    same_len(is_positive.len(), proba.len())?;
    let mut sum = 0.0;
    for (&y, &p) in is_positive.iter().zip(proba) {
        check_probability(p)?;
        let d = f64::from(u8::from(y)) - p;
        sum += d * d;
    }
    Ok(sum / is_positive.len() as f64)
}

fn same_len(a: usize, b: usize) -> Result<()> {
    if a != b {
        return Err(Error::invalid(format!(
            "y_true has {a} rows but the scores have {b}"
        )));
    }
    if a == 0 {
        return Err(Error::invalid("no rows"));
    }
    Ok(())
}

/// Probabilities per class: `columns[c][i]` is row `i`'s probability of class code `c`.
#[derive(Debug, Clone, Copy)]
pub struct ClassProbabilities<'a> {
    /// One column per class, in class-code order.
    pub columns: &'a [Vec<f64>],
}

impl ClassProbabilities<'_> {
    /// Checks that values are in [0, 1] and rows sum to 1 (relative tolerance `sqrt(eps)`, as
    /// scikit-learn); scikit-learn only warns for the sum, we refuse (the result would mislead).
    fn validate(&self, rows: usize) -> Result<()> {
        for col in self.columns {
            if col.len() != rows {
                return Err(Error::invalid(format!(
                    "y_true has {rows} rows but a probability column has {}",
                    col.len()
                )));
            }
        }
        let tol = f64::EPSILON.sqrt();
        for i in 0..rows {
            let mut sum = 0.0;
            for col in self.columns {
                check_probability(col[i])?;
                sum += col[i];
            }
            if (sum - 1.0).abs() > tol {
                return Err(Error::invalid(format!(
                    "row {i}: class probabilities sum to {sum}, not 1"
                )));
            }
        }
        Ok(())
    }
}

/// Multiclass log loss: `y_true` codes index the probability columns.
///
/// Fails on inconsistent lengths, codes without a column, or invalid probabilities.
pub fn log_loss_multiclass(y_true: &[u32], proba: ClassProbabilities<'_>) -> Result<f64> {
    same_len(y_true.len(), proba.columns.first().map_or(0, Vec::len))?;
    proba.validate(y_true.len())?;
    let eps = f64::EPSILON;
    let mut sum = 0.0;
    for (i, &y) in y_true.iter().enumerate() {
        let col = proba
            .columns
            .get(y as usize)
            .ok_or_else(|| Error::invalid("a class has no probability column"))?;
        sum -= col[i].clamp(eps, 1.0 - eps).ln();
    }
    Ok(sum / y_true.len() as f64)
}

/// Multiclass Brier score: mean over rows of the summed squared differences to the one-hot
/// target; halved for two classes (scikit-learn's `scale_by_half="auto"`).
///
/// Fails on inconsistent lengths or invalid probabilities.
pub fn brier_multiclass(y_true: &[u32], proba: ClassProbabilities<'_>) -> Result<f64> {
    same_len(y_true.len(), proba.columns.first().map_or(0, Vec::len))?;
    proba.validate(y_true.len())?;
    let mut sum = 0.0;
    for (i, &y) in y_true.iter().enumerate() {
        for (c, col) in proba.columns.iter().enumerate() {
            let d = f64::from(u8::from(c == y as usize)) - col[i];
            sum += d * d;
        }
    }
    let mut score = sum / y_true.len() as f64;
    if proba.columns.len() < 3 {
        score *= 0.5;
    }
    Ok(score)
}

/// Multiclass ROC AUC, one-vs-rest: per class, the binary AUC of "is this class" against its
/// probability column; averaged unweighted (`weighted = false`) or by support. A class absent
/// from `y_true` makes the macro average NaN, as in scikit-learn.
///
/// Fails on inconsistent lengths or invalid probabilities.
pub fn roc_auc_ovr(y_true: &[u32], proba: ClassProbabilities<'_>, weighted: bool) -> Result<f64> {
    same_len(y_true.len(), proba.columns.first().map_or(0, Vec::len))?;
    proba.validate(y_true.len())?;
    let mut values = Vec::new();
    let mut support = Vec::new();
    for (c, col) in proba.columns.iter().enumerate() {
        let is_c: Vec<bool> = y_true.iter().map(|&y| y as usize == c).collect();
        support.push(is_c.iter().filter(|&&b| b).count() as f64);
        values.push(roc_auc(&is_c, col)?);
    }
    if weighted {
        let total: f64 = support.iter().sum();
        Ok(values.iter().zip(&support).map(|(v, w)| v * w).sum::<f64>() / total)
    } else {
        Ok(values.iter().sum::<f64>() / values.len() as f64)
    }
}

/// Multiclass ROC AUC, one-vs-one (Hand & Till 2001): for every pair of classes present in
/// `y_true`, the mean of the two binary AUCs on the rows of those two classes; averaged
/// unweighted or by the pair's prevalence.
///
/// Fails on inconsistent lengths or invalid probabilities.
pub fn roc_auc_ovo(y_true: &[u32], proba: ClassProbabilities<'_>, weighted: bool) -> Result<f64> {
    same_len(y_true.len(), proba.columns.first().map_or(0, Vec::len))?;
    proba.validate(y_true.len())?;
    let k = proba.columns.len();
    let mut present = vec![false; k];
    for &y in y_true {
        if let Some(p) = present.get_mut(y as usize) {
            *p = true;
        }
    }
    let classes: Vec<usize> = (0..k).filter(|&c| present[c]).collect();
    let mut scores = Vec::new();
    let mut prevalence = Vec::new();
    for (ai, &a) in classes.iter().enumerate() {
        for &b in &classes[ai + 1..] {
            let rows: Vec<usize> = (0..y_true.len())
                .filter(|&i| y_true[i] as usize == a || y_true[i] as usize == b)
                .collect();
            let a_true: Vec<bool> = rows.iter().map(|&i| y_true[i] as usize == a).collect();
            let b_true: Vec<bool> = a_true.iter().map(|&x| !x).collect();
            let a_score: Vec<f64> = rows.iter().map(|&i| proba.columns[a][i]).collect();
            let b_score: Vec<f64> = rows.iter().map(|&i| proba.columns[b][i]).collect();
            let pair = (roc_auc(&a_true, &a_score)? + roc_auc(&b_true, &b_score)?) / 2.0;
            scores.push(pair);
            prevalence.push(rows.len() as f64 / y_true.len() as f64);
        }
    }
    if scores.is_empty() {
        return Ok(f64::NAN);
    }
    if weighted {
        let total: f64 = prevalence.iter().sum();
        Ok(scores
            .iter()
            .zip(&prevalence)
            .map(|(v, w)| v * w)
            .sum::<f64>()
            / total)
    } else {
        Ok(scores.iter().sum::<f64>() / scores.len() as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cm(t: &[u32], p: &[u32], k: usize) -> ConfusionMatrix {
        ConfusionMatrix::from_codes(t, p, k).unwrap()
    }

    #[test]
    fn confusion_matrix_counts_pairs() {
        let m = cm(&[0, 0, 1, 2, 2], &[0, 1, 1, 2, 0], 3);
        assert_eq!(m.rows(), vec![vec![1, 1, 0], vec![0, 1, 0], vec![1, 0, 1]]);
        assert_eq!(m.total(), 5);
    }

    #[test]
    fn out_of_range_codes_are_an_error() {
        assert!(ConfusionMatrix::from_codes(&[0, 3], &[0, 1], 3).is_err());
        assert!(ConfusionMatrix::from_codes(&[0], &[0, 1], 3).is_err());
    }

    #[test]
    fn zero_division_options_fill_empty_denominators() {
        // class 1 is never predicted: its precision is 0/0
        let m = cm(&[0, 1], &[0, 0], 2);
        assert_eq!(per_class(&m, ZeroDivision::Warn)[1].precision, 0.0);
        assert_eq!(per_class(&m, ZeroDivision::One)[1].precision, 1.0);
        assert!(per_class(&m, ZeroDivision::Nan)[1].precision.is_nan());
        // nan is left out of the macro average
        let macro_nan = averaged(&m, Average::Macro, ZeroDivision::Nan);
        assert!((macro_nan.precision - 0.5).abs() < 1e-15);
        let macro_zero = averaged(&m, Average::Macro, ZeroDivision::Zero);
        assert!((macro_zero.precision - 0.25).abs() < 1e-15);
    }

    #[test]
    fn roc_auc_gives_ties_half_credit() {
        let y = [true, false, true, false];
        assert_eq!(roc_auc(&y, &[0.5, 0.5, 0.5, 0.5]).unwrap(), 0.5);
        assert_eq!(roc_auc(&y, &[0.9, 0.1, 0.8, 0.2]).unwrap(), 1.0);
        assert_eq!(roc_auc(&y, &[0.9, 0.9, 0.1, 0.0]).unwrap(), 0.625);
        assert!(roc_auc(&[true, true], &[0.1, 0.2]).unwrap().is_nan());
        assert!(roc_auc(&[true, false], &[f64::NAN, 0.2]).is_err());
    }

    #[test]
    fn radix_sort_matches_std_sort_on_large_inputs() {
        let mut keys: Vec<u64> = (0..5000u64)
            .map(|i| order_key(((i * 7919) % 1013) as f64 / 17.0 - 20.0))
            .collect();
        let mut expect = keys.clone();
        expect.sort_unstable();
        radix_sort(&mut keys);
        assert_eq!(keys, expect);
        assert!(order_key(-1.0) < order_key(-0.0) && order_key(-0.0) == order_key(0.0));
        assert!(
            order_key(0.0) < order_key(1e-300) && order_key(f64::NEG_INFINITY) < order_key(-1e300)
        );
    }

    #[test]
    fn log_loss_rejects_out_of_range_probabilities() {
        let err = log_loss_binary(&[true], &[1.5]).unwrap_err();
        assert!(err.to_string().contains("outside [0, 1]"), "{err}");
        let cols = vec![vec![0.5], vec![0.6]];
        let err = log_loss_multiclass(&[0], ClassProbabilities { columns: &cols }).unwrap_err();
        assert!(err.to_string().contains("sum to"), "{err}");
    }
}
