"""The dataq benchmark suite as a pandera schema (read included, lazy validation collecting every
failure), plus PSI of age in numpy. Prints the number of failure cases and the PSI."""

import json
import sys
import warnings

import numpy as np
import pandas as pd

warnings.filterwarnings("ignore")
import pandera.pandas as pa  # noqa: E402

data, reference = sys.argv[1], sys.argv[2]
df = pd.read_parquet(data, columns=["id", "age", "plan", "churned"])
ref = pd.read_parquet(reference, columns=["age"])

schema = pa.DataFrameSchema(
    {
        "id": pa.Column(int, unique=True),
        "age": pa.Column(float, pa.Check.in_range(0, 120), nullable=False, coerce=True),
        "plan": pa.Column(str, pa.Check.isin(["basic", "pro", "enterprise"])),
        "churned": pa.Column(int, pa.Check.isin([0, 1])),
    }
)
failures = 0
try:
    schema.validate(df, lazy=True)
except pa.errors.SchemaErrors as err:
    failures = len(err.failure_cases)

r = np.sort(ref["age"].dropna().to_numpy(dtype=np.float64))
c = df["age"].dropna().to_numpy(dtype=np.float64)
edges = np.unique(np.quantile(r, np.arange(1, 10) / 10))
rb = np.bincount(np.searchsorted(edges, r, side="left"), minlength=len(edges) + 1) / len(r)
cb = np.bincount(np.searchsorted(edges, c, side="left"), minlength=len(edges) + 1) / len(c)
rb = np.where(rb == 0, 0.0001, rb)
cb = np.where(cb == 0, 0.0001, cb)
print(json.dumps({"failure_cases": failures, "psi": float(np.sum((cb - rb) * np.log(cb / rb)))}))
