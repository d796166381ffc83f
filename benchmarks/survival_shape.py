"""Benchmark: the survival model's tree shape against its test-window quality and the cost of its
per-cause reasons (exact TreeSHAP, ``models.explain.causes.cause_contributions``).

Reads a workspace's feature table (default: its DVC outputs). For each seed and each shape
(``num_leaves:max_depth[:learning_rate]``; every other setting from params.yaml) fits the
survival model on the survival split as the `survival` stage does, scores the survival test
window and reports the trees kept, the test-window figures and the champion rule's two metrics
(``models.survival.evaluation.PROMOTION_RULE``). With several seeds it prints each shape's
paired differences against the first shape and how often the shape would pass the champion rule
against it. Then (seed: the first) it times ``cause_contributions`` on the same ``--time-rows``
test rows for every shape, each model's own most likely cause as the pipeline does, in this
process, alternating the shapes (order reversed every other round), minimum of ``--reps`` rounds,
by CPU time (all threads) and wall time. Prints tables.

    .venv/bin/python benchmarks/survival_shape.py [--root DIR] [--shapes 31:-1 15:5 15:6 7:4]
        [--seeds 42 7 1 2] [--time-rows 5000] [--reps 3] [--no-time]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before lightgbm is imported (STACK-NOTES)

import argparse
import dataclasses
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])

import numpy as np
import pandas as pd

from features.registry import feature_groups
from features.spec import CAUSES
from models.evaluation.champion import beats_champion
from models.explain.causes import cause_contributions
from models.survival.evaluation import PROMOTION_RULE, compute_survival_evaluation, rule_metrics
from models.survival.train import (
    EXPECTED_MONTHS,
    churn_column,
    fit_survival,
    outcome_rows,
    predict_survival_test,
    survival_split,
)
from pipelines import survival
from pipelines.config import load_defaults
from pipelines.io import load_frame

QUALITY = ("auc_3m", "auc_6m", "auc_12m", "c_index", "brier_churn", "ibs", "cause_acc")


def _booster(base, text: str):
    leaves, depth, *rate = text.split(":")
    spec = dataclasses.replace(base, num_leaves=int(leaves), max_depth=int(depth))
    return dataclasses.replace(spec, learning_rate=float(rate[0])) if rate else spec


def _mean_depth(booster, iterations: int) -> float:
    """Mean over the trees of the longest root-to-leaf path, in splits."""

    def depth(node) -> int:
        if "split_index" not in node:
            return 0
        return 1 + max(depth(node["left_child"]), depth(node["right_child"]))

    trees = booster.dump_model(num_iteration=iterations)["tree_info"]
    return float(np.mean([depth(t["tree_structure"]) for t in trees]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--shapes", nargs="+", default=["31:-1", "15:5", "15:6", "7:4"])
    parser.add_argument("--seeds", type=int, nargs="+", default=None)
    parser.add_argument("--time-rows", type=int, default=5000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--no-time", action="store_true")
    args = parser.parse_args()
    cfg = load_defaults(root=args.root)
    table, end = survival.with_events(cfg, load_frame(cfg.path(cfg.paths.features)))
    features = feature_groups(cfg.features)
    base, events = cfg.survival.model, cfg.survival.events
    split = survival_split(table, cfg.survival.split, cfg.split, events, end)
    month = max(1, round(cfg.labels.horizon_days / events.month_days))
    seeds = args.seeds or [base.seed]
    print(f"load at start {os.getloadavg()[0]:.1f}; H = {month} months", flush=True)

    results, models = {}, {}
    print("| seed | shape | trees | mean depth | fit s | AUC 3 / 6 / 12 m | C-index | "
          f"Brier {month} m (rule) | IBS | cause acc |\n"
          "|---:|---|---:|---:|---:|---|---:|---:|---:|---:|")  # fmt: skip
    for seed in seeds:
        for shape in args.shapes:
            spec = dataclasses.replace(base, booster=_booster(base.booster, shape), seed=seed)
            start = time.perf_counter()
            fitted = fit_survival(table, split, spec, events, features)
            fit_s = time.perf_counter() - start
            rows = predict_survival_test(fitted, table, spec, events.month_days)
            head, _, _ = compute_survival_evaluation(
                rows, spec.horizons_months, events.months, month, cfg.evaluate.bins
            )
            ours = head["lightgbm"]
            rule = rule_metrics(rows, rows[churn_column(month)].to_numpy(),
                                rows[EXPECTED_MONTHS].to_numpy(), month, events.months)  # fmt: skip
            booster = fitted.model.booster
            iterations = booster.best_iteration or booster.current_iteration()
            r = {f"auc_{h}m": ours[f"churn_{h}m"]["auc"] for h in (3, 6, 12)}
            r |= {"c_index": rule["c_index"], "brier_churn": rule["brier_churn"],
                  "ibs": ours["integrated_brier"],
                  "cause_acc": head["cause_accuracy_among_churners"]}  # fmt: skip
            results[seed, shape] = r
            trees = iterations * booster.num_model_per_iteration()
            print(
                f"| {seed} | {shape} | {trees} | {_mean_depth(booster, iterations):.2f} | "
                f"{fit_s:.1f} | {r['auc_3m']:.4f} / {r['auc_6m']:.4f} / {r['auc_12m']:.4f} | "
                f"{r['c_index']:.4f} | {r['brier_churn']:.5f} | {r['ibs']:.5f} | "
                f"{r['cause_acc']:.3f} |",
                flush=True,
            )
            if seed == seeds[0]:
                models[shape] = fitted.model

    ref = args.shapes[0]
    print(
        f"\nPaired differences against {ref} over seeds {seeds} (mean [min, max]); 'passes' "
        "counts the seeds on which the shape beats it by the champion rule "
        f"({', '.join(PROMOTION_RULE)}, tolerance {cfg.evaluate.promotion_tolerance}).\n"
    )
    print("| shape | " + " | ".join(f"Δ {k}" for k in QUALITY) + " | passes |\n"
          "|---|" + "---:|" * (len(QUALITY) + 1))  # fmt: skip
    for shape in args.shapes[1:]:
        cells = []
        for key in QUALITY:
            d = np.array([results[s, shape][key] - results[s, ref][key] for s in seeds])
            cells.append(f"{d.mean():+.4f} [{d.min():+.4f}, {d.max():+.4f}]")
        wins = sum(beats_champion(results[s, shape], results[s, ref], PROMOTION_RULE,
                                  cfg.evaluate.promotion_tolerance) for s in seeds)  # fmt: skip
        print(f"| {shape} | " + " | ".join(cells) + f" | {wins}/{len(seeds)} |")
    if len(seeds) > 1:
        spread = {k: np.std([results[s, ref][k] for s in seeds], ddof=1) for k in QUALITY}
        print(f"\n{ref} from seed to seed (sd): "
              + ", ".join(f"{k} {v:.4f}" for k, v in spread.items()))  # fmt: skip
    if args.no_time:
        return

    test = outcome_rows(split[0].rows(table, "test")).reset_index(drop=True)
    pick = test.sample(min(args.time_rows, len(test)), random_state=0).reset_index(drop=True)
    inputs = {}
    for shape, model in models.items():
        cause = pd.Categorical(model.predict(pick).likely_cause(), categories=CAUSES).codes
        inputs[shape] = (pick[list(model.features)].astype(np.float64), cause.astype(np.int64))
        cause_contributions(
            model.booster, inputs[shape][0].head(10), events.months, inputs[shape][1][:10]
        )  # builds and caches the per-cause parts
    walls = {shape: [] for shape in models}
    cpus = {shape: [] for shape in models}
    for rep in range(args.reps):
        for shape in list(models) if rep % 2 == 0 else list(models)[::-1]:
            X, cause = inputs[shape]
            wall, cpu = time.perf_counter(), time.process_time()
            cause_contributions(models[shape].booster, X, events.months, cause)
            walls[shape].append(time.perf_counter() - wall)
            cpus[shape].append(time.process_time() - cpu)
    print(
        f"\nCause reasons of {len(pick)} test rows (seed {seeds[0]}), min of {args.reps} "
        f"rounds; load at the end {os.getloadavg()[0]:.1f}\n"
    )
    print("| shape | wall s | CPU s | ms CPU / customer | CPU speed-up vs first |\n"
          "|---|---:|---:|---:|---:|")  # fmt: skip
    for shape in models:
        cpu = min(cpus[shape])
        print(
            f"| {shape} | {min(walls[shape]):.2f} | {cpu:.2f} | "
            f"{1000 * cpu / len(pick):.2f} | {min(cpus[ref]) / cpu:.2f}x |"
        )


if __name__ == "__main__":
    main()
