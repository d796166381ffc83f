"""Benchmark: the survival model's cause-specific incidence against the synthetic world's oracle.

Reads the `survival` stage's test rows of a workspace (reports/survival_predictions.parquet: the
survival test window, every row followed for K months; the model's and the Aalen–Johansen
baseline's cumulative incidence per cause), samples up to ``--rows`` rows per test snapshot and
asks ``features.synthetic.oracle_incidence`` for their true incidence (``--replicates`` simulated
futures from each customer's latent state, the world of the workspace's params.yaml). All three
are scored against the realised churn month and cause on the same rows with the stage's own
metrics (models/survival/metrics.py: IPCW AUC and Brier per cause and horizon, per snapshot, then
the mean), and the share of the oracle's AUC the model reaches. Prints one table.

    .venv/bin/python benchmarks/survival_oracle.py [--root DIR] [--rows 500] [--replicates 200]
        [--predictions FILE]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path[0] = str(Path(__file__).resolve().parents[1])  # before benchmarks/features.py

import numpy as np
import pandas as pd

from features.events import SURV_CAUSE, SURV_EVENT, SURV_MONTHS
from features.spec import CAUSES
from features.synthetic import oracle_incidence
from models.survival.metrics import cause_metrics, censoring_survival
from models.survival.train import cause_column, churn_column
from pipelines.config import load_defaults
from pipelines.io import load_frame


def _score(rows: pd.DataFrame, predicted: dict[str, np.ndarray], horizons, K: int) -> list[dict]:
    """One record per (snapshot, model, cause, horizon): AUC and Brier."""
    out = []
    for day, idx in rows.groupby("as_of").indices.items():
        t = rows[SURV_MONTHS].to_numpy(np.int64)[idx]
        event = rows[SURV_EVENT].to_numpy()[idx] == 1.0
        G = censoring_survival(t, event, K)
        for model, columns in predicted.items():
            for h in horizons:
                for cause in ("churn", *CAUSES):
                    is_cause = (np.ones(len(idx), bool) if cause == "churn"
                                else (rows[SURV_CAUSE].to_numpy()[idx] == cause))  # fmt: skip
                    m = cause_metrics(t, event, is_cause, columns[(cause, h)][idx], h, G, 10)
                    out.append({"as_of": day, "model": model, "cause": cause, "h": h,
                                "auc": m["auc"], "brier": m["brier"]})  # fmt: skip
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--rows", type=int, default=500, help="rows per test snapshot")
    parser.add_argument("--replicates", type=int, default=200)
    parser.add_argument("--predictions", type=Path, default=None,
                        help="a copy of the stage's test rows (default: the root's)")  # fmt: skip
    args = parser.parse_args()
    cfg = load_defaults(root=args.root)
    events, horizons = cfg.survival.events, cfg.survival.model.horizons_months
    test = load_frame(args.predictions or cfg.path(cfg.paths.survival_predictions))
    rows = (test.groupby("as_of", group_keys=False)
            .apply(lambda g: g.sample(min(len(g), args.rows), random_state=0))
            .reset_index(drop=True))  # fmt: skip
    start = time.perf_counter()
    oracle = oracle_incidence(cfg.generate, rows, events, args.replicates, seed=1)
    oracle_s = time.perf_counter() - start
    predicted = {"oracle": {}, "lightgbm": {}, "aalen_johansen": {}}
    for h in horizons:
        predicted["oracle"][("churn", h)] = oracle[:, h - 1, :].sum(axis=1)
        for c, cause in enumerate(CAUSES):
            predicted["oracle"][(cause, h)] = oracle[:, h - 1, c]
        for model, prefix in (("lightgbm", ""), ("aalen_johansen", "aj_")):
            predicted[model][("churn", h)] = rows[prefix + churn_column(h)].to_numpy()
            for cause in CAUSES:
                predicted[model][(cause, h)] = rows[prefix + cause_column(cause, h)].to_numpy()
    scored = pd.DataFrame(_score(rows, predicted, horizons, events.months))
    mean = scored.groupby(["cause", "h", "model"])[["auc", "brier"]].mean().unstack("model")
    print("| cause | months | AUC model / AJ / oracle | share of oracle AUC | "
          "Brier model / AJ / oracle |\n|---|---:|---|---:|---|")  # fmt: skip
    for (cause, h), r in mean.iterrows():
        auc, brier = r["auc"], r["brier"]
        share = auc["lightgbm"] / auc["oracle"]
        print(f"| {cause} | {h} | {auc['lightgbm']:.3f} / {auc['aalen_johansen']:.3f} / "
              f"{auc['oracle']:.3f} | {share:.3f} | {brier['lightgbm']:.4f} / "
              f"{brier['aalen_johansen']:.4f} / {brier['oracle']:.4f} |")  # fmt: skip
    print(f"\n{len(rows):,} rows over {rows['as_of'].nunique()} test snapshots "
          f"({rows['as_of'].min().date()} .. {rows['as_of'].max().date()}), "
          f"{args.replicates} replicates, oracle {oracle_s:.0f} s, "
          f"load {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
