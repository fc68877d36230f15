"""The dataq benchmark suite in pandas: read the needed columns (read included), then
not_null(age), between(age, 0, 120), unique(id), in_set(plan), in_set(churned), PSI of age
against the reference over 10 reference quantile bins. Prints the results as JSON."""

import json
import sys

import numpy as np
import pandas as pd

data, reference = sys.argv[1], sys.argv[2]
df = pd.read_parquet(data, columns=["id", "age", "plan", "churned"])
ref = pd.read_parquet(reference, columns=["age"])

age = df["age"]
nulls = int(age.isna().sum())
present = age.dropna()
outside = int((~present.between(0, 120)).sum())
duplicates = int(df["id"].duplicated().sum())
bad_plan = int((~df["plan"].dropna().isin(["basic", "pro", "enterprise"])).sum())
bad_churned = int((~df["churned"].dropna().isin([0, 1])).sum())

r = np.sort(ref["age"].dropna().to_numpy(dtype=np.float64))
c = present.to_numpy(dtype=np.float64)
edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
rb = np.bincount(np.searchsorted(edges, r, side="left"), minlength=len(edges) + 1) / len(r)
cb = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1) / len(c)
rb = np.where(rb == 0, 0.0001, rb)
cb = np.where(cb == 0, 0.0001, cb)
psi = float(np.sum((cb - rb) * np.log(cb / rb)))

print(json.dumps({"nulls": nulls, "outside": outside, "duplicates": duplicates, "bad_plan": bad_plan,
                  "bad_churned": bad_churned, "psi": psi}))
