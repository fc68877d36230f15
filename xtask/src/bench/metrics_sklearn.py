"""scikit-learn side of `cargo xtask bench metrics`.

usage: python metrics_sklearn.py PREDICTIONS.parquet OUT.json

Reads the predictions with pyarrow (not timed), then times the same computation mlops does:
accuracy, f1 macro, f1 per class, confusion matrix, ROC AUC of the binary score column
(class 1 against the rest), and f1 macro per segment. Writes the timings and the values to
OUT.json so the benchmark can check both sides agree.
"""

import json
import sys
import time

import numpy as np
import pyarrow.parquet as pq
from sklearn import metrics as M

path, out = sys.argv[1], sys.argv[2]
table = pq.read_table(path, columns=["y_true", "y_pred", "score", "segment"])
y_true = table.column("y_true").to_numpy()
y_pred = table.column("y_pred").to_numpy()
score = table.column("score").to_numpy()
segment = table.column("segment").to_numpy(zero_copy_only=False).astype(str)

timings = {}
values = {}
start = time.perf_counter()

t = time.perf_counter()
values["accuracy"] = M.accuracy_score(y_true, y_pred)
timings["accuracy"] = time.perf_counter() - t

t = time.perf_counter()
values["f1_macro"] = M.f1_score(y_true, y_pred, average="macro")
timings["f1_macro"] = time.perf_counter() - t

t = time.perf_counter()
values["f1_per_class"] = M.f1_score(y_true, y_pred, average=None).tolist()
timings["f1_per_class"] = time.perf_counter() - t

t = time.perf_counter()
values["confusion_matrix"] = M.confusion_matrix(y_true, y_pred).tolist()
timings["confusion_matrix"] = time.perf_counter() - t

t = time.perf_counter()
values["roc_auc"] = M.roc_auc_score(y_true == 1, score)
timings["roc_auc"] = time.perf_counter() - t

t = time.perf_counter()
values["segment_f1_macro"] = {
    str(s): M.f1_score(y_true[segment == s], y_pred[segment == s], average="macro")
    for s in np.unique(segment)
}
timings["segment_f1_macro"] = time.perf_counter() - t

timings["total"] = time.perf_counter() - start
with open(out, "w") as f:
    json.dump({"timings": timings, "values": values}, f)
