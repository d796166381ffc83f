"""Benchmark: explanation throughput (rows/s) and pred_contrib against shap.TreeExplainer.

Builds a synthetic world's feature table, repeats its active rows up to ``--rows``, trains a
``--trees`` x ``--leaves`` LightGBM churn model (no early stopping) and times each step of
``explain_frame``: TreeSHAP contributions (pred_contrib, 1 and 2 threads), group sums, reason
texts and strategies, then ``shap.TreeExplainer`` on ``--small-rows`` rows and the tier model's
downgrade view. Prints a table; record the figures in benchmarks/README.md with the machine.

    .venv/bin/python benchmarks/explain.py                       # 100k rows, 300 trees, 31 leaves
    .venv/bin/python benchmarks/explain.py --rows 20000 --trees 100

``--levers FEATURES.parquet`` measures what makes exact TreeSHAP faster (issue 15): for each
model shape in ``--shapes`` (num_leaves:max_depth) it fits the churn model as the train stage
does (fit slice, early stopping on validation, params.yaml otherwise) on a prebuilt feature table
(benchmarks/training.py --build), reports the out-of-time test ROC AUC and trees, and times
``pred_contrib`` with 1 and 2 threads and ``shap.TreeExplainer`` on active test rows, checking
that the two agree. A shape is a lever only at an equal out-of-time AUC.

    .venv/bin/python benchmarks/explain.py --levers /work/bench-data/features_100000.parquet
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import lightgbm as lgb
import numpy as np
import pandas as pd
from rich.console import Console
from rich.table import Table

from features.build import build_feature_table
from features.contract import data_end
from features.labels import CHURNED, LABEL_AVAILABLE, NEXT_TIER
from features.registry import STATE_COLUMNS, feature_groups, feature_names
from features.snapshots import snapshot_dates
from features.spec import TIERS
from features.synthetic import generate_world
from models.explain.frame import (
    downgrade_contributions,
    explain_frame,
    feature_contributions,
    group_contributions,
    shap_contributions,
)
from models.explain.reasons import reason_codes
from models.strategies.catalog import load_catalog, recommend_frame
from models.training.estimators import make_churn_classifier, make_tier_classifier
from pipelines.config import load_defaults

CFG = load_defaults()  # params.yaml: every setting the arguments do not change


def _table(customers: int) -> pd.DataFrame:
    tables = generate_world(replace(CFG.generate, customers=customers, years=3))
    end = data_end(tables)
    dates = snapshot_dates(tables, None, None, CFG.defs.active_window_days, end)
    return build_feature_table(tables, dates, CFG.defs, CFG.features, data_end=end)


def _model(X, y, objective: str, args: argparse.Namespace) -> lgb.Booster:
    """The project's estimator (params.yaml defaults) with a fixed tree count, no early stop."""
    base = CFG.train.churn if objective == "binary" else CFG.train.tier
    params = replace(base, num_leaves=args.leaves, n_estimators=args.trees,
                     num_threads=args.threads)  # fmt: skip
    make = make_churn_classifier if objective == "binary" else make_tier_classifier
    return make(params, seed=0).fit(X, y).booster_


def _timed(step, *args, **kwargs):
    start = time.perf_counter()
    result = step(*args, **kwargs)
    return result, time.perf_counter() - start


def run(args: argparse.Namespace) -> list[tuple[str, int, float]]:
    import shap  # noqa: F401  (imported up front: its import is not explanation time)

    names, groups = feature_names(CFG.features), feature_groups(CFG.features)
    catalog = load_catalog()
    table = _table(args.customers)
    active = table[table[CHURNED].notna()]
    booster = _model(active[names], active[CHURNED].to_numpy(int), "binary", args)
    rows = active.sample(args.rows, replace=len(active) < args.rows, random_state=0)
    rows = rows.reset_index(drop=True)
    X, few = rows[names], rows[names].iloc[: args.small_rows]
    out: list[tuple[str, int, float]] = []

    def time_it(label: str, n: int, step, *a, **kw):
        start = time.perf_counter()
        result = step(*a, **kw)
        out.append((label, n, time.perf_counter() - start))
        return result

    time_it("predict (raw score)", len(X), booster.predict, X, raw_score=True)
    for threads in (1, 2):
        time_it(f"pred_contrib, {threads} thread(s)", len(few), booster.predict, few,
                pred_contrib=True, num_threads=threads)  # fmt: skip
    time_it("shap.TreeExplainer", len(few), shap_contributions, booster, few)
    time_it("explain_frame (end to end)", len(X), explain_frame, booster, rows, names, groups,
            catalog)  # fmt: skip
    contribs = time_it("  feature_contributions", len(X), feature_contributions, booster, X)
    grouped = time_it("  group_contributions", len(X), group_contributions, contribs, groups)
    time_it("  reason_codes (texts)", len(X), reason_codes, contribs, grouped, X, groups, 3)
    drivers = pd.concat([grouped, rows[list(STATE_COLUMNS)]], axis=1)
    time_it("  recommend_frame (strategies)", len(X), recommend_frame, catalog, drivers, 3)
    time_it("  explain_frame given contributions", len(X), explain_frame, booster, rows, names,
            groups, catalog, contributions=contribs)  # fmt: skip
    labelled = table[table[LABEL_AVAILABLE].astype(bool)]
    codes = pd.Categorical(labelled[NEXT_TIER], TIERS).codes
    tier = _model(labelled[names], codes, "multiclass", args)
    time_it("downgrade_contributions (tier model)", len(few), downgrade_contributions, tier, few,
            rows["tier"].iloc[: args.small_rows])  # fmt: skip
    return out


def _shape(text: str) -> tuple[int, int]:
    leaves, depth = text.split(":")
    return int(leaves), int(depth)


def _pred_contrib(booster: lgb.Booster, X: np.ndarray, threads: int) -> np.ndarray:
    return booster.predict(X, pred_contrib=True, num_threads=threads)


def _shap_internal(explainer, X: np.ndarray, threads: int) -> np.ndarray:
    """shap's own C++ TreeSHAP (as ``shap_contributions``), on ``threads`` row blocks at once."""
    from concurrent.futures import ThreadPoolExecutor

    blocks = np.array_split(X, threads)
    with ThreadPoolExecutor(threads) as pool:
        parts = pool.map(lambda b: explainer.shap_values(b, check_additivity=False), blocks)
        return np.concatenate(list(parts))


def _explainers(booster: lgb.Booster) -> dict:
    """The explainers, built before timing (parsing the trees is not explanation time): shap's
    own TreeSHAP, and FastTreeSHAP v1 and v2 when installed (optional, not a dependency:
    ``pip install --no-deps fasttreeshap-fixed``)."""
    import shap

    out = {"shap": shap.TreeExplainer(booster)}
    try:
        import fasttreeshap_fixed as fasttreeshap
    except ImportError:
        fasttreeshap = None
    for algorithm in ("v1", "v2") if fasttreeshap else ():
        out[algorithm] = fasttreeshap.TreeExplainer(booster, algorithm=algorithm, n_jobs=2)
    for explainer in out.values():
        explainer.model.model_type = "internal"  # not LightGBM's pred_contrib (see frame.py)
    return out


def _fasttreeshap(explainer, X: np.ndarray) -> np.ndarray:
    return np.asarray(explainer.shap_values(X, check_additivity=False))


def levers(args: argparse.Namespace) -> None:
    """Model shape x TreeSHAP implementation x threads, at the shape's out-of-time AUC."""
    import shap  # noqa: F401  (imported up front: its import is not explanation time)
    from sklearn.metrics import roc_auc_score

    from models.training.split import churn_rows, split_snapshots
    from models.training.train import fit_churn_model

    groups = feature_groups(CFG.features)
    table = pd.read_parquet(args.levers)
    split = split_snapshots(table, CFG.split, CFG.labels.horizon_days)
    fit, validation, test = (
        churn_rows(split.rows(table, p)) for p in ("fit", "validation", "test")
    )
    del table
    rows = test.sample(min(args.small_rows, len(test)), random_state=0)
    report = Table(title=f"TreeSHAP levers: {len(fit):,} fit rows, {len(rows):,} explained rows, "
                   f"{os.cpu_count()} cores")  # fmt: skip
    impls = ("pred_contrib 1t", "pred_contrib 2t", "shap own 1t", "shap own 2t",
             "fasttreeshap v1 2j", "fasttreeshap v2 2j")  # fmt: skip
    columns = ("leaves:depth", "trees", "test AUC", "fit s", "raw score rows/s",
               *(f"{i} rows/s" for i in impls), "max |diff| (v2)", "1M active s")  # fmt: skip
    for column in columns:
        report.add_column(column, justify="right")
    for leaves, depth in map(_shape, args.shapes):
        churn = replace(CFG.train.churn, num_leaves=leaves, max_depth=depth)
        spec = replace(CFG.train, churn=churn)
        (model, info), fit_s = _timed(fit_churn_model, fit, validation, groups, spec)
        auc = roc_auc_score(test[CHURNED].to_numpy(int), model.probability(test))
        X = model.matrix(rows).to_numpy()
        _, raw_s = _timed(model.raw_score, rows)
        trimmed = lgb.Booster(model_str=model.model_text())  # only the trees kept
        explainers = _explainers(trimmed)
        steps = {
            "pred_contrib 1t": (_pred_contrib, trimmed, X, 1),
            "pred_contrib 2t": (_pred_contrib, trimmed, X, 2),
            "shap own 1t": (_shap_internal, explainers["shap"], X, 1),
            "shap own 2t": (_shap_internal, explainers["shap"], X, 2),
        }
        steps |= {f"fasttreeshap {a} 2j": (_fasttreeshap, explainers[a], X)
                  for a in ("v1", "v2") if a in explainers}  # fmt: skip
        rates, values = {}, {}
        for name, (step, *step_args) in steps.items():
            out, seconds = _timed(step, *step_args)
            rates[name], values[name] = len(X) / seconds, np.asarray(out)
        exact = values["pred_contrib 2t"][:, :-1]
        diffs = {n: float(np.abs(v.reshape(exact.shape[0], -1)[:, : exact.shape[1]] - exact).max())
                 for n, v in values.items()}  # fmt: skip
        exact_rates = [r for n, r in rates.items() if diffs[n] < 1e-9]
        active_1m = 527_512 / max(exact_rates) + 1_000_000 * raw_s / len(rows)
        cells = [f"{rates[i]:,.0f}" if i in rates else "–" for i in impls]
        worst = max(d for n, d in diffs.items() if not n.endswith("v2 2j"))
        v2 = f"{diffs['fasttreeshap v2 2j']:.1e}" if "fasttreeshap v2 2j" in diffs else "–"
        report.add_row(f"{leaves}:{depth}", str(info["trees"]), f"{auc:.4f}", f"{fit_s:.0f}",
                       f"{len(rows) / raw_s:,.0f}", *cells, f"{worst:.1e} ({v2})",
                       f"{active_1m:.0f}")  # fmt: skip
        Console(width=250).print(report)  # after every shape: a slow run shows progress
        print(
            json.dumps(
                {
                    "shape": f"{leaves}:{depth}",
                    "trees": info["trees"],
                    "auc": auc,
                    "rates": rates,
                    "diffs": diffs,
                    "load": os.getloadavg(),
                }
            ),
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--levers", help="a prebuilt feature table (Parquet): measure the levers")
    parser.add_argument("--shapes", nargs="+", default=["31:-1", "15:-1", "7:-1", "31:6", "15:4"],
                        help="num_leaves:max_depth of each churn model (--levers)")  # fmt: skip
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--customers", type=int, default=6_000, help="world size for the rows")
    parser.add_argument("--trees", type=int, default=300)
    parser.add_argument("--leaves", type=int, default=31)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--small-rows", type=int, default=10_000, help="rows for the slow steps")
    args = parser.parse_args()
    if args.levers:
        levers(args)
        return
    n_features = len(feature_names(CFG.features))
    title = f"explanations: {args.trees} trees x {args.leaves} leaves, {n_features} features"
    report = Table(title=f"{title}, {os.cpu_count()} cores")
    for column in ("step", "rows", "seconds", "rows/s"):
        report.add_column(column, justify="left" if column == "step" else "right")
    for step, n, seconds in run(args):
        report.add_row(step, f"{n:,}", f"{seconds:.2f}", f"{n / seconds:,.0f}")
    Console().print(report)


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
