"""Benchmark: the train stage at 100k and 1M customers, and what customer sampling costs.

``--build N`` writes a synthetic world's feature table (``--years`` long, every month-end
snapshot, as the `features` stage builds it) to ``--data``/features_N.parquet once; the other
modes read it. Each training run is a process of its own, so its peak memory (max RSS) is its
own. Prints a table; record the figures in benchmarks/README.md with the machine and load.

    .venv/bin/python benchmarks/training.py --data /work/bench-data --build 100000 1000000
    .venv/bin/python benchmarks/training.py --data /work/bench-data --sizes 100000 \
        --samples 0.1 0.3 1.0                        # the sampling accuracy curve
    .venv/bin/python benchmarks/training.py --data /work/bench-data --sizes 1000000
    .venv/bin/python benchmarks/training.py --data /work/bench-3y --years 3 --build 20000
    .venv/bin/python benchmarks/training.py --data /work/bench-3y --years 3 --sizes 20000 \
        --tier-refit false true                      # the tier model with and without its refit
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import resource
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

from rich.console import Console
from rich.table import Table

from pipelines.config import load_defaults

CFG = load_defaults()  # params.yaml: every setting the arguments do not change


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def feature_file(data: Path, customers: int) -> Path:
    return data / f"features_{customers}.parquet"


def build(data: Path, customers: int, years: int, save_world: Path | None = None) -> dict:
    from features.build import iter_feature_table
    from features.contract import data_end
    from features.snapshots import snapshot_dates
    from features.synthetic import generate_world
    from features.validation import validate_tables
    from pipelines.io import save_frame_chunks, save_tables

    start = time.perf_counter()
    phases = {}

    def phase(name: str) -> None:  # seconds since start and peak RSS so far, per phase
        phases[name] = [round(time.perf_counter() - start, 1), round(_peak_gb(), 2)]

    world = generate_world(replace(CFG.generate, customers=customers, years=years)).present()
    phase("generate")
    if save_world:  # the contract tables too, e.g. as benchmarks/scoring.py's world_<N>/
        save_tables(world, save_world)
        phase("save_world")
    tables, _ = validate_tables(world)
    del world
    phase("validate")
    end = data_end(tables)
    dates = snapshot_dates(tables, None, None, CFG.defs.active_window_days, end)
    chunks = iter_feature_table(
        tables, dates, CFG.defs, CFG.features, data_end=end,
        chunk_customers=CFG.features.chunk_customers,
    )  # fmt: skip
    save_frame_chunks(chunks, feature_file(data, customers))
    phase("features")
    seconds = round(time.perf_counter() - start, 1)
    return {"customers": customers, "years": years, "build_s": seconds,
            "peak_rss_gb": round(_peak_gb(), 2), "phases_s_gb": phases,
            "load": round(os.getloadavg()[0], 1)}  # fmt: skip


def train_one(
    data: Path, customers: int, fraction: float, max_rows: int, path: str, refit: bool
) -> dict:
    """One train-stage run on the prebuilt table: seconds, peak RSS, test ROC AUC and rows."""
    from sklearn.metrics import roc_auc_score

    from features.labels import CHURNED
    from features.registry import feature_groups
    from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
    from models.evaluation.metrics import compute_multiclass_metrics
    from models.training.train import MARKOV_COLUMNS, train_models
    from pipelines.config import config_with
    from pipelines.io import load_frame
    from pipelines.train import train_parquet

    sample = {"fraction": fraction, "max_rows": max_rows}
    cfg = config_with(CFG, train={"sample": sample, "tier_refit": refit})
    source = feature_file(data, customers)
    start = time.perf_counter()
    if path == "batched":
        result = train_parquet(cfg, source)
    else:  # the whole table in memory, as the train stage read it before issue 15
        table = load_frame(source)
        result = train_models(
            table, cfg.split, cfg.train, cfg.labels.horizon_days, feature_groups(cfg.features)
        )
    seconds = time.perf_counter() - start
    p = result.predictions
    active = p[p[CHURNED].notna()]
    tier = compute_multiclass_metrics(p["next_tier"], p[list(NEXT_TIER_COLUMNS)].to_numpy())
    markov = compute_multiclass_metrics(p["next_tier"], p[list(MARKOV_COLUMNS)].to_numpy())
    s = result.summary
    return {
        "customers": customers, "path": path, "fraction": fraction, "max_rows": max_rows,
        "tier_refit": refit,
        "fit_rows": s.churn.fit_rows, "tier_fit_rows": s.tier.fit_rows,
        "test_rows": s.test_rows.tier, "churn_trees": s.churn.trees, "tier_trees": s.tier.trees,
        "churn_s": s.seconds.churn, "logistic_s": s.seconds.logistic, "tier_s": s.seconds.tier,
        "seconds": round(seconds, 1), "peak_rss_gb": round(_peak_gb(), 2),
        "churn_auc": round(float(roc_auc_score(active[CHURNED].astype(int),
                                               active[CHURN_PROBABILITY])), 4),
        "tier_log_loss": round(float(tier["log_loss"]), 4),
        "markov_log_loss": round(float(markov["log_loss"]), 4),
        "load": round(os.getloadavg()[0], 1),
    }  # fmt: skip


COLUMNS = ("customers", "path", "fraction", "max_rows", "tier_refit", "fit_rows", "tier_fit_rows",
           "test_rows", "churn_trees", "tier_trees", "churn_s", "logistic_s", "tier_s", "seconds",
           "peak_rss_gb", "churn_auc", "tier_log_loss", "markov_log_loss", "load")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="folder of the feature tables")
    parser.add_argument("--build", type=int, nargs="*", help="build these sizes' tables first")
    parser.add_argument("--years", type=int, default=4)
    parser.add_argument("--sizes", type=int, nargs="*", default=[])
    parser.add_argument("--samples", type=float, nargs="+", default=[CFG.train.sample.fraction])
    parser.add_argument("--max-rows", type=int, default=CFG.train.sample.max_rows)
    parser.add_argument("--path", choices=("batched", "memory"), default="batched")
    parser.add_argument(
        "--tier-refit", nargs="+", choices=("true", "false"),
        default=[str(CFG.train.tier_refit).lower()], help="train.tier_refit, one run each",
    )  # fmt: skip
    parser.add_argument(
        "--save-world",
        type=Path,
        help="--build also saves the contract tables "
        "to SAVE_WORLD/world_<N> (benchmarks/scoring.py's world, when 3 years)",
    )
    parser.add_argument("--one", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        kind, size, fraction, max_rows, path, refit = args.one
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
        if kind == "build":
            world = args.save_world / f"world_{size}" if args.save_world else None
            print(json.dumps(build(args.data, int(size), args.years, world)))
        else:
            run = (args.data, int(size), float(fraction), int(max_rows), path, refit == "true")
            print(json.dumps(train_one(*run)))
        return
    results = []
    jobs = [("build", size, 1.0, "true") for size in args.build or []]
    jobs += [
        ("train", size, f, r) for size in args.sizes for f in args.samples for r in args.tier_refit
    ]
    for kind, size, fraction, refit in jobs:
        cmd = [sys.executable, __file__, "--data", str(args.data), "--years", str(args.years),
               "--one", kind, str(size), str(fraction), str(args.max_rows), args.path,
               refit]  # fmt: skip
        if args.save_world:
            cmd += ["--save-world", str(args.save_world)]
        # the child's log (stages, slices, sample) goes to stderr as it runs
        done = subprocess.run(cmd, stdout=subprocess.PIPE, text=True, check=False)
        if done.returncode != 0:
            Console(stderr=True).print(f"{kind} {size} failed (exit {done.returncode})")
            continue
        result = json.loads(done.stdout.strip().splitlines()[-1])
        print(json.dumps(result), flush=True)
        if kind == "train":
            results.append(result)
    table = Table(title=f"train stage ({os.cpu_count()} cores)")
    for column in COLUMNS:
        table.add_column(column, justify="right")
    for r in results:
        table.add_row(*(f"{r.get(c, '')}" for c in COLUMNS))
    Console(width=250).print(table)


if __name__ == "__main__":
    main()
