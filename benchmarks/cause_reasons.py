"""Benchmark: the survival model's per-cause TreeSHAP (``cause_contributions``) on real rows.

Reads a registered tierwise-survival version's stored files (the directory with ``booster.txt``
and ``model.json``, under the store's ``mlartifacts/models/*/artifacts/artifacts``) and the first
``--rows`` rows of a feature table, gives them causes in turn, and prints the CPU and wall
seconds of ``cause_contributions``, best of ``--repeat`` (after one small call that loads or
compiles numba's walk). ``--save`` writes the contributions (.npy) to compare two checkouts:
run it with ``PYTHONPATH`` pointing at each.

    .venv/bin/python benchmarks/cause_reasons.py \
        STORE/mlartifacts/models/m-.../artifacts/artifacts \
        STORE/data/features/feature_table.parquet --save /tmp/new.npy
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# this checkout, or the first PYTHONPATH entry (not benchmarks/: features.py would shadow features)
sys.path[0] = os.environ.get("PYTHONPATH", "").split(os.pathsep)[0] or os.path.dirname(
    os.path.dirname(os.path.abspath(__file__))
)

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.explain.causes import cause_contributions


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", type=Path, help="a survival version's booster.txt directory")
    parser.add_argument("features", type=Path, help="a feature table (Parquet)")
    parser.add_argument("--rows", type=int, default=5_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--save", type=Path, help="write the contributions here (.npy)")
    args = parser.parse_args()

    spec = json.loads((args.model / "model.json").read_text())
    booster = lgb.Booster(model_file=str(args.model / "booster.txt"))
    X = pd.read_parquet(args.features, columns=spec["features"]).head(args.rows).astype(float)
    cause = np.arange(len(X)) % (booster.num_model_per_iteration() - 1)
    cause_contributions(booster, X.head(10), spec["months"], cause[:10])  # numba: load/compile
    runs = []
    for _ in range(args.repeat):
        cpu, wall = time.process_time(), time.perf_counter()
        got = cause_contributions(booster, X, spec["months"], cause)
        runs.append((time.process_time() - cpu, time.perf_counter() - wall))
    cpu, wall = min(runs)
    trees = booster.num_trees()
    print(f"{len(X):,} rows, {trees} trees: {cpu:.2f} CPU s, {wall:.2f} s wall (best of "
          f"{args.repeat}; {1e3 * cpu / len(X):.3f} CPU ms per customer)")  # fmt: skip
    if args.save is not None:
        np.save(args.save, got.to_numpy())


if __name__ == "__main__":
    main()
