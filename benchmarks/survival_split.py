"""Benchmark: the survival model's test-window figures against the survival split's validation
purge (``survival.split.validation_purge_days``) and the survivor share.

Reads a workspace's feature table and validated tables (default: its DVC outputs), attaches churn
time and cause, and for each ``--purge-days`` value (0 = no validation purge, as the old rule did
when the purge left too few fit snapshots) fits the survival model and the binary baseline on that
split as the `survival` stage does, then scores both on the survival test window (the same rows
for every value: the test purge is always the whole window). Metric-only. Prints one table.

    .venv/bin/python benchmarks/survival_split.py [--root DIR] [--purge-days 365 183]
        [--survivor-share 0.15]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported (STACK-NOTES)

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # before benchmarks/features.py

from features.registry import feature_groups
from models.survival.evaluation import compute_survival_evaluation
from models.survival.train import (
    attach_binary,
    fit_binary_baseline,
    fit_survival,
    predict_survival_test,
    survival_split,
)
from models.training import split as splitting
from pipelines import survival
from pipelines.config import load_defaults
from pipelines.io import load_frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--purge-days", type=int, nargs="+", default=[0, 365, 274, 183])
    parser.add_argument("--survivor-share", type=float, nargs="+", default=None)
    args = parser.parse_args()
    cfg = load_defaults(root=args.root)
    table, end = survival.with_events(cfg, load_frame(cfg.path(cfg.paths.features)))
    features = feature_groups(cfg.features)
    events, spec = cfg.survival.events, cfg.survival.model
    shares = args.survivor_share or [spec.survivor_share]
    binary_month = max(1, round(cfg.labels.horizon_days / events.month_days))
    print("| validation purge (days) | survivor share | fit snapshots | trees | fit s | "
          "AUC 3 / 6 / 12 months | C-index | IBS | binary AUC at H |\n"
          "|---:|---:|---:|---:|---:|---|---:|---:|---:|")  # fmt: skip
    for days in args.purge_days:
        split_spec = dataclasses.replace(cfg.survival.split, validation_purge_days=days or None)
        minimum = splitting.MIN_PURGED_FIT
        if days == 0:  # no validation purge: the rule's fallback, forced
            splitting.MIN_PURGED_FIT = 10**6
        split = survival_split(table, split_spec, cfg.split, events, end)
        splitting.MIN_PURGED_FIT = minimum
        binary, _ = fit_binary_baseline(table, split[0], features, cfg.train)
        for share in shares:
            model_spec = dataclasses.replace(spec, survivor_share=share)
            start = time.perf_counter()
            fitted = fit_survival(table, split, model_spec, events, features)
            seconds = time.perf_counter() - start
            rows = predict_survival_test(fitted, table, model_spec, events.month_days)
            rows = attach_binary(rows, table, binary)
            head, _, _ = compute_survival_evaluation(
                rows, model_spec.horizons_months, events.months, binary_month, cfg.evaluate.bins
            )
            ours, theirs = head["lightgbm"], head.get("binary", {})
            auc = " / ".join(f"{ours[f'churn_{h}m']['auc']:.3f}" for h in (3, 6, 12))
            binary_auc = theirs.get(f"churn_{binary_month}m", {}).get("auc", float("nan"))
            print(f"| {days} | {share} | {len(fitted.split.fit)} | "
                  f"{fitted.model.booster.best_iteration} | {seconds:.1f} | {auc} | "
                  f"{ours['c_index']:.3f} | {ours['integrated_brier']:.4f} | "
                  f"{binary_auc:.3f} |", flush=True)  # fmt: skip
    print(f"\nload {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
