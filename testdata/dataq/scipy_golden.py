"""Generates scipy_golden.json: reference values of the drift statistics from SciPy.

Run once with the peers' Python (`$HOME/.cache/mlops-peers/bin/python scipy_golden.py`) and commit
the JSON. Samples are made by integer formulas that the Rust test reproduces exactly, so only
the parameters and the expected values are stored.
"""

import json
import math
import pathlib

import numpy as np
import scipy
from scipy import stats
from scipy.spatial import distance


def sample(n, mult, add, mod, scale, shift, step):
    """x_i = floor(((i*mult + add) % mod) / step) * step * scale / mod + shift (ties when step > 1)."""
    out = []
    for i in range(n):
        r = (i * mult + add) % mod
        r = (r // step) * step
        out.append(r * scale / mod + shift)
    return np.array(out, dtype=np.float64)


def spec(n, mult, add, mod=10007, scale=10.0, shift=0.0, step=1):
    return {"n": n, "mult": mult, "add": add, "mod": mod, "scale": scale, "shift": shift, "step": step}


cases = []

ks_pairs = [
    ("exact, equal sizes", spec(50, 31, 7), spec(50, 37, 11, shift=0.8)),
    ("exact, unequal sizes", spec(80, 31, 7), spec(120, 37, 11, shift=0.5)),
    ("exact, ties", spec(300, 31, 7, step=1000), spec(250, 37, 11, step=1000, shift=1.0)),
    ("exact, identical", spec(40, 31, 7), spec(40, 31, 7)),
    ("exact, 10000 vs 7000", spec(10000, 7919, 13), spec(7000, 104729, 17, shift=0.05)),
    ("asymptotic, small shift", spec(20000, 7919, 13), spec(15000, 104729, 17, shift=0.03)),
    ("asymptotic, large shift", spec(20000, 7919, 13), spec(15000, 104729, 17, shift=0.6)),
    ("asymptotic, tiny second sample", spec(12000, 7919, 13), spec(5, 104729, 17, shift=1.0)),
    ("asymptotic, en about 60", spec(12000, 7919, 13), spec(60, 104729, 17, shift=1.5)),
    ("asymptotic, en about 300", spec(12000, 7919, 13), spec(310, 104729, 17, shift=0.9)),
]
for name, a, b in ks_pairs:
    xa = sample(**a)
    xb = sample(**b)
    r = stats.ks_2samp(xa, xb)
    cases.append({"kind": "ks", "name": name, "a": a, "b": b, "statistic": float(r.statistic), "pvalue": float(r.pvalue)})

for name, a, b in [
    ("wasserstein, shifted", spec(500, 31, 7), spec(300, 37, 11, shift=0.7)),
    ("wasserstein, ties", spec(400, 31, 7, step=500), spec(350, 37, 11, step=700)),
]:
    xa = sample(**a)
    xb = sample(**b)
    cases.append({"kind": "wasserstein", "name": name, "a": a, "b": b, "value": float(stats.wasserstein_distance(xa, xb))})

kstwo_points = [
    (10, 0.05), (10, 0.08), (200, 0.004), (10, 0.95), (10, 0.6), (50, 0.1), (50, 0.2), (50, 0.35),
    (1000, 0.06), (1000, 0.03), (1000, 0.012), (2000000, 0.002), (909091, 0.001), (909091, 0.0018),
    (100, 0.5), (140, 0.1), (141, 0.1),
]
for n, x in kstwo_points:
    cases.append({"kind": "kstwo_sf", "name": f"kstwo.sf({x}, {n})", "n": n, "x": x, "value": float(stats.kstwo.sf(x, n))})

for name, f_obs, f_exp in [
    ("chisquare, 3 categories", [10, 20, 30], [15, 15, 30]),
    ("chisquare, 6 categories", [5, 8, 12, 20, 30, 25], [10, 10, 10, 20, 25, 25]),
    ("chisquare, scaled expectation", [120, 80, 300], [100 * 1.25, 100 * 1.25, 200 * 1.25]),
    ("chisquare, near fit", [1000, 1001, 999, 1000], [1000, 1000, 1000, 1000]),
    ("chisquare, large statistic", [10, 500], [255, 255]),
]:
    s, p = stats.chisquare(f_obs, f_exp)
    cases.append({"kind": "chisquare", "name": name, "f_obs": f_obs, "f_exp": f_exp, "statistic": float(s), "pvalue": float(p)})

for name, p, q in [
    ("jensenshannon, overlap", [0.1, 0.4, 0.5], [0.3, 0.3, 0.4]),
    ("jensenshannon, unnormalised", [1, 2, 3, 4], [4, 3, 2, 1]),
    ("jensenshannon, zeros", [0.5, 0.5, 0.0], [0.0, 0.5, 0.5]),
    ("jensenshannon, disjoint", [1.0, 0.0], [0.0, 1.0]),
]:
    cases.append({"kind": "jensenshannon", "name": name, "p": p, "q": q, "value": float(distance.jensenshannon(p, q))})

out = {"scipy": scipy.__version__, "numpy": np.__version__, "cases": cases}
path = pathlib.Path(__file__).with_name("scipy_golden.json")
path.write_text(json.dumps(out, indent=1) + "\n")
print(f"wrote {len(cases)} cases to {path}")
