"""Generate golden values for mlops-metrics from scikit-learn and fairlearn.

Run with the peers' venv:  $HOME/.cache/mlops-peers/bin/python testdata/metrics/golden.py
Writes testdata/metrics/golden.json (committed). Cases are seeded: rerunning gives the same file
for the same library versions. The Rust test `golden` (crates/mlops-metrics/tests/it/golden.rs)
asserts agreement to 1e-12 (1e-9 for ROC AUC, average precision and log loss).
"""

import json
import math
import pathlib
import warnings

import numpy as np
import sklearn
import fairlearn
from fairlearn.metrics import MetricFrame
from sklearn import metrics as M

warnings.filterwarnings("ignore")
rng = np.random.default_rng(20261127)
cases = []


def clean(x):
    """JSON-safe: NaN -> None, numpy -> python."""
    if isinstance(x, dict):
        return {str(k): clean(v) for k, v in x.items()}
    if isinstance(x, (list, tuple, np.ndarray)):
        return [clean(v) for v in x]
    if isinstance(x, (np.integer,)):
        return int(x)
    if isinstance(x, (float, np.floating)):
        x = float(x)
        return None if math.isnan(x) else x
    return x


def zd_arg(zd):
    return {"warn": "warn", "nan": np.nan, 0: 0.0, 1: 1.0}[zd]


def classification_case(name, y_true, y_pred, score=None, scores=None, segments=None, zd="warn", pos_label=None):
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    z = zd_arg(zd)
    labels = np.unique(np.concatenate([y_true, y_pred]))
    overall = {
        "accuracy": M.accuracy_score(y_true, y_pred),
        "balanced_accuracy": M.balanced_accuracy_score(y_true, y_pred),
        "matthews_corrcoef": M.matthews_corrcoef(y_true, y_pred),
        "cohen_kappa": M.cohen_kappa_score(y_true, y_pred),
    }
    for avg in ["micro", "macro", "weighted"]:
        p, r, f, _ = M.precision_recall_fscore_support(y_true, y_pred, average=avg, zero_division=z)
        overall[f"precision_{avg}"] = p
        overall[f"recall_{avg}"] = r
        overall[f"f1_{avg}"] = f
    pos = pos_label
    if pos is None and len(labels) <= 2:
        pos = labels[-1]
    if len(labels) <= 2:
        p, r, f, _ = M.precision_recall_fscore_support(
            y_true, y_pred, average="binary", pos_label=pos, zero_division=z
        )
        overall.update({"precision": p, "recall": r, "f1": f})
    if score is not None:
        score = np.asarray(score)
        is_pos = y_true == pos
        overall["roc_auc"] = M.roc_auc_score(is_pos, score) if len(np.unique(is_pos)) == 2 else float("nan")
        overall["average_precision"] = M.average_precision_score(is_pos, score)
        overall["brier"] = M.brier_score_loss(is_pos, score)
        if len(np.unique(is_pos)) == 2:
            overall["log_loss"] = M.log_loss(is_pos, score)
    if scores is not None:
        classes = sorted(scores.keys())
        mat = np.column_stack([scores[c] for c in classes])
        overall["log_loss"] = M.log_loss(y_true, mat, labels=classes)
        overall["brier"] = M.brier_score_loss(y_true, mat, labels=classes)
        overall["roc_auc_ovr"] = M.roc_auc_score(y_true, mat, multi_class="ovr", labels=classes)
        overall["roc_auc_ovr_weighted"] = M.roc_auc_score(
            y_true, mat, multi_class="ovr", average="weighted", labels=classes
        )
        overall["roc_auc_ovo"] = M.roc_auc_score(y_true, mat, multi_class="ovo", labels=classes)
        overall["roc_auc_ovo_weighted"] = M.roc_auc_score(
            y_true, mat, multi_class="ovo", average="weighted", labels=classes
        )
    p, r, f, s = M.precision_recall_fscore_support(y_true, y_pred, average=None, labels=labels, zero_division=z)
    per_class = {
        str(l): {"precision": p[i], "recall": r[i], "f1": f[i], "support": s[i]} for i, l in enumerate(labels)
    }
    case = {
        "name": name,
        "task": "classification",
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "zero_division": zd,
        "expected": {
            "overall": overall,
            "per_class": per_class,
            "confusion_matrix": M.confusion_matrix(y_true, y_pred).tolist(),
        },
    }
    if pos_label is not None:
        case["pos_label"] = str(pos_label)
    if score is not None:
        case["score"] = score.tolist()
    if scores is not None:
        case["scores"] = {str(k): np.asarray(v).tolist() for k, v in scores.items()}
    if segments is not None:
        case["segments"] = {}
        seg_expected = {}
        gaps = {}
        for col, values in segments.items():
            values = np.asarray(values)
            case["segments"][col] = values.tolist()
            frame = MetricFrame(
                metrics={
                    "accuracy": M.accuracy_score,
                    "f1_macro": lambda t, p: M.f1_score(t, p, average="macro", zero_division=z),
                    "recall_weighted": lambda t, p: M.recall_score(t, p, average="weighted", zero_division=z),
                    "matthews_corrcoef": M.matthews_corrcoef,
                },
                y_true=y_true,
                y_pred=y_pred,
                sensitive_features=values,
            )
            by_group = frame.by_group
            seg_expected[col] = {
                str(g): {m: by_group.loc[g, m] for m in by_group.columns} for g in by_group.index
            }
            diff = frame.difference(method="between_groups")
            ratio = frame.ratio(method="between_groups")
            gaps[col] = {m: {"difference": diff[m], "ratio": ratio[m]} for m in by_group.columns}
        case["expected"]["segments"] = seg_expected
        case["expected"]["gaps"] = gaps
    cases.append(case)


def regression_case(name, y_true, y_pred, segments=None):
    y_true = np.asarray(y_true, dtype=float)
    y_pred = np.asarray(y_pred, dtype=float)
    overall = {
        "mae": M.mean_absolute_error(y_true, y_pred),
        "mse": M.mean_squared_error(y_true, y_pred),
        "rmse": M.root_mean_squared_error(y_true, y_pred),
        "r2": M.r2_score(y_true, y_pred),
        "mape": M.mean_absolute_percentage_error(y_true, y_pred),
        "median_ae": M.median_absolute_error(y_true, y_pred),
        "max_error": M.max_error(y_true, y_pred),
    }
    case = {
        "name": name,
        "task": "regression",
        "y_true": y_true.tolist(),
        "y_pred": y_pred.tolist(),
        "expected": {"overall": overall},
    }
    if segments is not None:
        case["segments"] = {}
        case["expected"]["segments"] = {}
        case["expected"]["gaps"] = {}
        for col, values in segments.items():
            values = np.asarray(values)
            case["segments"][col] = values.tolist()
            frame = MetricFrame(
                metrics={"mae": M.mean_absolute_error, "r2": M.r2_score},
                y_true=y_true,
                y_pred=y_pred,
                sensitive_features=values,
            )
            by_group = frame.by_group
            case["expected"]["segments"][col] = {
                str(g): {m: by_group.loc[g, m] for m in by_group.columns} for g in by_group.index
            }
            diff = frame.difference(method="between_groups")
            ratio = frame.ratio(method="between_groups")
            case["expected"]["gaps"][col] = {
                m: {"difference": diff[m], "ratio": ratio[m]} for m in by_group.columns
            }
    cases.append(case)


def noisy_labels(y, k, accuracy):
    wrong = rng.random(len(y)) > accuracy
    return np.where(wrong, rng.integers(0, k, len(y)), y)


# Binary: random, with tied scores (rounded to one decimal), every zero_division option.
for i, zd in enumerate(["warn", 0, 1, "nan"]):
    n = int(rng.integers(40, 160))
    y = rng.integers(0, 2, n)
    pred = noisy_labels(y, 2, 0.7)
    score = np.clip(np.round(0.5 * y + 0.5 * rng.random(n), 1), 0, 1)
    seg = rng.choice(["north", "south", "west"], n)
    classification_case(f"binary_ties_{i}", y, pred, score=score, segments={"region": seg}, zd=zd)

# Binary with continuous scores and a constant block of ties.
n = 120
y = rng.integers(0, 2, n)
score = rng.random(n)
score[:40] = 0.5
classification_case("binary_continuous", y, noisy_labels(y, 2, 0.8), score=score)

# Multiclass with 2..10 classes, probability columns (Dirichlet), segments.
for k in range(2, 11):
    n = int(rng.integers(60, 200))
    y = rng.integers(0, k, n)
    y[:k] = np.arange(k)  # every class present in y_true (probability metrics need it)
    pred = noisy_labels(y, k, 0.6)
    alpha = np.ones(k)
    proba = rng.dirichlet(alpha, n)
    proba[np.arange(n), y] += 0.5
    proba = proba / proba.sum(axis=1, keepdims=True)
    proba = np.round(proba, 3)
    proba[:, -1] = 1.0 - proba[:, :-1].sum(axis=1)
    proba = np.clip(proba, 0, 1)
    scores = {int(c): proba[:, c] for c in range(k)} if k > 2 else None
    score = proba[:, 1] if k == 2 else None
    seg = rng.choice([1, 2, 3, 4], n)
    classification_case(f"multiclass_{k}", y, pred, score=score, scores=scores, segments={"device": seg})

# Absent classes: y_pred has a label never seen in y_true; y_true has a class never predicted.
for i, zd in enumerate(["warn", 0, 1, "nan"]):
    y = np.array([0, 0, 1, 1, 2, 2, 2, 0, 1, 2])
    pred = np.array([0, 3, 1, 0, 0, 3, 0, 0, 1, 3])
    classification_case(f"absent_classes_{i}", y, pred, zd=zd)

# Single class everywhere, and a binary case whose positive class is never present or predicted.
for zd in ["warn", "nan", 1]:
    classification_case(f"single_class_{zd}", [1] * 8, [1] * 8, score=np.linspace(0, 1, 8), zd=zd)
    classification_case(f"all_zero_denominators_{zd}", [0] * 6, [0] * 6, zd=zd, pos_label=1)
classification_case("pred_only_positive", [0, 0, 0, 0], [0, 1, 0, 1], zd="nan")

# String labels, sorted lexicographically; the positive label is the greater one.
y = rng.choice(["ham", "spam"], 80)
pred = np.where(rng.random(80) < 0.75, y, np.where(y == "ham", "spam", "ham"))
score = np.round(np.where(y == "spam", 0.6, 0.4) + 0.4 * (rng.random(80) - 0.5), 2)
classification_case("string_labels", y, pred, score=score)
y = rng.choice(["cat", "dog", "eel"], 90)
classification_case("string_multiclass", y, noisy_labels_str := np.where(rng.random(90) < 0.7, y, rng.choice(["cat", "dog", "eel", "fox"], 90)))

# Regression: random, constant targets (force_finite), zeros in y_true (mape eps guard), segments.
n = 150
t = rng.normal(10, 3, n)
regression_case("regression_random", t, t + rng.normal(0, 1, n), segments={"site": rng.choice(["a", "b"], n)})
regression_case("regression_constant_perfect", [2.0] * 5, [2.0] * 5)
regression_case("regression_constant_imperfect", [2.0] * 5, [2.0, 2.0, 3.0, 2.0, 2.0])
regression_case("regression_zeros", [0.0, 1.0, 0.0, 2.0], [0.5, 1.0, 0.0, 1.0])
regression_case("regression_even_median", [1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 5.0, 8.0])

out = pathlib.Path(__file__).with_name("golden.json")
out.write_text(
    json.dumps(
        {"sklearn": sklearn.__version__, "fairlearn": fairlearn.__version__, "cases": clean(cases)},
        separators=(",", ":"),
    )
    + "\n"
)
print(f"wrote {len(cases)} cases to {out} ({out.stat().st_size} bytes)")
