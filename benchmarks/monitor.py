"""Benchmark: the monitor's speed on 1M customers' features (already built), and its false-alarm
rate on undrifted resamples at 1k, 10k and 100k customers.

Prepares once: a synthetic world (``--customers``, 5 years), its feature table, a churn model
trained on it (the test's fast settings) and the reference profile of its validation snapshots,
as the evaluate stage stores it. Then:

1. **speed**: ``--rows`` feature rows drawn with replacement from the last snapshot (all
   customers known then), scored by the in-process churn model, then monitored (counts on the
   profile's bins in slices of 50k rows, CBPE with its draws, the report). Prints the seconds of
   each part; scoring is shown apart (it is `tierwise score`'s cost, paid once by the batch job).
2. **false alarms**: ``--resamples`` pairs of independent bootstrap samples of n rows from that
   snapshot (one distribution, no drift): the profile of one, the report of the other. Prints how
   often a feature is drifted and how often the verdict is not ok, with and without
   ``size_aware``.

    .venv/bin/python benchmarks/monitor.py                      # speed at 1M + false alarms
    .venv/bin/python benchmarks/monitor.py --rows 100000 --sizes 1000 --resamples 10   # quick
    (pairings: reference and book from the same snapshot, and --gap-months 12 apart)
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.build import build_feature_table
from features.contract import AS_OF, data_end
from features.registry import STATE_COLUMNS, feature_groups
from features.snapshots import snapshot_dates
from features.synthetic import generate_world
from models.monitoring.book import BookMonitor
from models.monitoring.reference import reference_profile, with_importance
from models.serving.pyfunc import ChurnOutputs, RegisteredChurnModel
from models.strategies.catalog import load_catalog
from models.training.train import train_models
from pipelines.config import config_with, load_defaults

console = Console(width=160)
FAST = {"n_estimators": 300, "learning_rate": 0.1, "early_stopping_rounds": 30}


def prepare(customers: int):
    cfg = config_with(load_defaults(), generate={"customers": customers},
                      train={"churn": FAST, "tier": FAST})  # fmt: skip
    world = generate_world(cfg.generate)
    end = data_end(world)
    dates = snapshot_dates(world, None, None, cfg.labels.active_window_days, end)
    table = build_feature_table(world, dates, cfg.defs, cfg.features, data_end=end)
    groups = feature_groups(cfg.features)
    result = train_models(table, cfg.split, cfg.train, cfg.labels.horizon_days, groups)
    outputs = ChurnOutputs.from_spec(cfg.score, load_catalog(), cfg.explain.k)
    model = RegisteredChurnModel(result.models.churn, outputs)
    last = table[table[AS_OF] == table[AS_OF].max()].reset_index(drop=True)
    return cfg, model, last, groups, table


def profile_of(cfg, model, rows, groups, spec):
    scores = model.predict_frame(rows, explain="none").reset_index(drop=True)
    ref = {"kind": "benchmark", "start": "-", "end": str(rows[AS_OF].max().date())}
    profile = reference_profile(rows, scores, rows, groups, STATE_COLUMNS, None, spec,
                                cfg.evaluate.bins, ref)  # fmt: skip
    churn = model.model
    gain = churn.booster.feature_importance("gain", iteration=churn.num_iteration)
    return with_importance(profile, dict(zip(churn.features, gain, strict=True))), scores


def speed(cfg, model, last, groups, n_rows: int) -> None:
    rng = np.random.default_rng(1)
    rows = last.iloc[rng.integers(0, len(last), n_rows)].reset_index(drop=True)
    profile, _ = profile_of(cfg, model, last, groups, cfg.monitor)
    start = time.perf_counter()
    scores = model.predict_frame(rows, explain="none").reset_index(drop=True)
    scored = time.perf_counter() - start
    start = time.perf_counter()
    book = BookMonitor(profile)
    for part in np.array_split(np.arange(n_rows), max(1, n_rows // 50_000)):
        book.add(rows.iloc[part].reset_index(drop=True), scores.iloc[part].reset_index(drop=True))
    counted = time.perf_counter() - start
    start = time.perf_counter()
    report = book.report({}, cfg.monitor, last[AS_OF].max(), cfg.evaluate.bins)
    reported = time.perf_counter() - start
    table = Table("rows", "scored (churn population)", "score s", "counts s", "CBPE + report s",
                  "monitor s (counts + report)", "verdict", title="monitor speed")  # fmt: skip
    table.add_row(f"{n_rows:,}", f"{report['estimated']['rows']:,}", f"{scored:.1f}",
                  f"{counted:.1f}", f"{reported:.1f}", f"{counted + reported:.1f}",
                  report["verdict"])  # fmt: skip
    console.print(table)


def false_alarms(cfg, model, earlier, last, groups, sizes, resamples: int, pairing: str) -> None:
    """Reference resampled from ``earlier``, the monitored book from ``last`` (the same snapshot,
    or one ``--gap-months`` later: the undrifted book ageing as it does between the training
    window and a scoring date)."""
    scores_all = model.predict_frame(last, explain="none").reset_index(drop=True)
    table = Table("pairing", "customers", "size_aware", "resamples", "any feature drifted",
                  "mean drift share", "score drifted", "verdict warn", "verdict retrain",
                  "max PSI (median)", "most often drifted",
                  title="false alarms on undrifted resamples")  # fmt: skip
    for n in sizes:
        found = {False: [], True: []}  # size_aware -> one dict per resample
        for i in range(resamples):
            rng = np.random.default_rng(1000 * n + i)
            a, b = rng.integers(0, len(earlier), n), rng.integers(0, len(last), n)
            spec = replace(cfg.monitor, draws=100)
            ref_rows = earlier.iloc[a].reset_index(drop=True)
            profile, _ = profile_of(cfg, model, ref_rows, groups, spec)
            book = BookMonitor(profile)
            book.add(last.iloc[b].reset_index(drop=True), scores_all.iloc[b].reset_index(drop=True))
            for aware, runs in found.items():
                r = book.report({}, replace(spec, size_aware=aware), last[AS_OF].max(),
                                cfg.evaluate.bins)  # fmt: skip
                psi = [f["psi"] for f in r["features"] if f["psi"] is not None]
                names = [f["name"] for f in r["features"] if f["drifted"]]
                runs.append({"any": any(f["drifted"] for f in r["features"]),
                             "share": r["drift_share"], "score": r["score"]["drifted"],
                             "warn": r["verdict"] == "warn", "retrain": r["verdict"] == "retrain",
                             "top": max(psi),
                             "names": names})  # fmt: skip
        for aware, runs in found.items():
            m = pd.DataFrame(runs)
            share = f"{m['share'].mean():.3f}"
            rates = [f"{m[k].mean():.0%}" for k in ("any", "score", "warn", "retrain")]
            rates.insert(1, share)
            often = pd.Series([x for names in m["names"] for x in names]).value_counts()
            named = ", ".join(f"{k} {v / resamples:.0%}" for k, v in often.head(3).items())
            top = f"{m['top'].median():.3f}"
            row = (pairing, f"{n:,}", str(aware), str(resamples), *rates, top, named or "-")
            table.add_row(*row)
            console.print("| " + " | ".join(row) + " |", highlight=False)  # as it goes
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=10_000)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--sizes", type=int, nargs="*", default=[1_000, 10_000, 100_000])
    ap.add_argument("--resamples", type=int, default=100)
    ap.add_argument(
        "--gap-months",
        type=int,
        nargs="*",
        default=[0, 12],
        help="months between the reference's snapshot and the monitored one",
    )
    ap.add_argument("--skip-speed", action="store_true")
    args = ap.parse_args()
    start = time.perf_counter()
    cfg, model, last, groups, table = prepare(args.customers)
    console.print(f"prepared in {time.perf_counter() - start:.0f} s: {len(last):,} rows at "
                  f"{last[AS_OF].max().date()}")  # fmt: skip
    if not args.skip_speed:
        speed(cfg, model, last, groups, args.rows)
    for gap in args.gap_months if args.sizes else []:
        then = last[AS_OF].max() - pd.offsets.MonthEnd(gap) if gap else last[AS_OF].max()
        earlier = table[table[AS_OF] == then].reset_index(drop=True)
        pairing = f"{gap} months apart" if gap else "same snapshot"
        false_alarms(cfg, model, earlier, last, groups, args.sizes, args.resamples, pairing)


if __name__ == "__main__":
    pd.set_option("mode.copy_on_write", True)
    main()
