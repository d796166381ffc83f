"""Survival model speed: training time against the binary churn model, and outputs per million.

Reads a feature table and validated tables (default: the workspace's DVC outputs), attaches churn
time and cause, trains the binary churn model and the survival model on the same split, then
times the survival outputs (hazards, survival, incidence, score columns) for N feature rows and
extrapolates to 1M. Prints one table.

    .venv/bin/python benchmarks/survival.py [--root DIR] [--rows 200000]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported (STACK-NOTES)

import argparse
import sys
import time
from pathlib import Path

# benchmarks/features.py would shadow the features package: the repository root comes first
sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np

from features.registry import feature_groups
from models.survival.train import fit_survival, score_columns
from models.training.train import train_models
from pipelines import survival
from pipelines.config import load_defaults
from pipelines.io import load_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rows", type=int, default=200_000)
    args = parser.parse_args()
    cfg = load_defaults(root=args.root)
    table = survival.with_events(cfg, load_frame(cfg.path(cfg.paths.features)))
    features = feature_groups(cfg.features)
    start = time.perf_counter()
    binary = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, features)
    binary_s = time.perf_counter() - start
    start = time.perf_counter()
    fitted = fit_survival(table, cfg.split, cfg.survival.model, cfg.survival.events, features)
    survival_s = time.perf_counter() - start
    rows = table.sample(args.rows, replace=len(table) < args.rows, random_state=0)
    start = time.perf_counter()
    out = fitted.model.predict(rows)
    score_columns(out, rows["as_of"], cfg.survival.events.month_days, 60)
    predict_s = time.perf_counter() - start
    print("| step | seconds |\n|---|---:|")
    print(f"| binary churn model (fit + calibration) | {binary.summary.seconds.churn:.1f} |")
    print(f"| all binary models (train_models) | {binary_s:.1f} |")
    print(f"| survival model + Aalen-Johansen (fit_survival) | {survival_s:.1f} |")
    print(f"| survival outputs, {args.rows:,} rows | {predict_s:.1f} |")
    print(f"| survival outputs, 1M rows (extrapolated) | {predict_s * 1e6 / args.rows:.1f} |")
    print(f"\nfit rows {fitted.fit_rows:,}, trees {fitted.model.booster.best_iteration}, "
          f"load {os.getloadavg()[0]:.1f}, {np.__version__=}")  # fmt: skip


if __name__ == "__main__":
    main()
