"""Survival model speed: training time against the binary churn model, and outputs per million.

Reads a feature table and validated tables (default: the workspace's DVC outputs), attaches churn
time and cause, trains the binary churn model (the train stage's recipe) and the survival model
on the same survival split (as the `survival` stage does), and the train stage's models on its
own split; then times the survival outputs (hazards, survival, incidence, the score columns and
the cause's play) for N feature rows already built (drawn from the feature table with
replacement). Prints one table.

    .venv/bin/python benchmarks/survival.py [--root DIR] [--rows 1000000]
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

from features.registry import feature_groups
from models.serving.survival import RegisteredSurvivalModel
from models.survival.train import fit_binary_baseline, fit_survival, survival_split
from models.training.train import train_models
from pipelines import survival
from pipelines.config import load_defaults
from pipelines.io import load_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()
    cfg = load_defaults(root=args.root)
    table, end = survival.with_events(cfg, load_frame(cfg.path(cfg.paths.features)))
    features = feature_groups(cfg.features)
    events, spec = cfg.survival.events, cfg.survival.model
    start = time.perf_counter()
    binary = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, features)
    binary_s = time.perf_counter() - start
    split = survival_split(table, cfg.survival.split, cfg.split, events, end)
    _, baseline_s = fit_binary_baseline(table, split[0], features, cfg.train)
    start = time.perf_counter()
    fitted = fit_survival(table, split, spec, events, features)
    survival_s = time.perf_counter() - start
    rows = table.sample(args.rows, replace=len(table) < args.rows, random_state=0)
    model = RegisteredSurvivalModel(fitted.model, events.month_days, spec.act_lead_days)
    start = time.perf_counter()
    out = model.predict_frame(rows)
    predict_s = time.perf_counter() - start
    print("| step | seconds |\n|---|---:|")
    churn_s = binary.summary.seconds.churn
    print(f"| train stage: binary churn model (fit + calibration) | {churn_s:.1f} |")
    print(f"| train stage: all models (train_models) | {binary_s:.1f} |")
    print(f"| binary churn model on the survival split (fit_binary_baseline) | {baseline_s:.1f} |")
    print(f"| survival model + Aalen-Johansen (fit_survival) | {survival_s:.1f} |")
    print(f"| survival outputs + plays, {args.rows:,} rows (predict_frame) | {predict_s:.1f} |")
    print(f"\nratio survival / binary on the same split {survival_s / baseline_s:.2f}; "
          f"fit rows {fitted.fit_rows:,}, trees {fitted.model.booster.best_iteration}, "
          f"output columns {out.shape[1]}, load {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
