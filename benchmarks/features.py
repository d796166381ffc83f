"""Benchmark: generate, validate and build features at several world sizes.

Each size runs in its own process so that its peak memory (max RSS) is its own. Prints a table;
record the figures in benchmarks/README.md with the machine they ran on.

    .venv/bin/python benchmarks/features.py                      # 10k and 100k customers
    .venv/bin/python benchmarks/features.py --sizes 10000 100000 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# This script is named like the `features` package: put the project root first on the path.
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import pandas as pd
import pyarrow.parquet as pq
from rich.console import Console
from rich.table import Table

from features.build import iter_feature_table
from features.contract import data_end
from features.synthetic import generate_world
from features.validation import validate_tables
from pipelines.config import load_defaults
from pipelines.io import save_frame_chunks

CFG = load_defaults()  # params.yaml: every setting the arguments do not change


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def run_one(customers: int, years: int, snapshots: int, chunk_customers: int) -> dict:
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    world = generate_world(replace(CFG.generate, customers=customers, years=years))
    timings["generate_s"] = time.perf_counter() - t0
    rows = {name: len(df) for name, df in world.present().items()}

    t0 = time.perf_counter()
    tables, _ = validate_tables(world.present())
    timings["validate_s"] = time.perf_counter() - t0
    del world

    end = data_end(tables)
    dates = pd.date_range(end=end, periods=snapshots + 1, freq="ME")[-snapshots:]
    t0 = time.perf_counter()
    chunks = iter_feature_table(tables, dates, CFG.defs, CFG.features, end, chunk_customers)
    with tempfile.TemporaryDirectory() as tmp:
        out = save_frame_chunks(chunks, Path(tmp) / "feature_table.parquet")
        timings["features_s"] = time.perf_counter() - t0
        meta = pq.ParquetFile(out).metadata
    return {
        "customers": customers,
        "years": years,
        "snapshots": len(dates),
        "feature_rows": meta.num_rows,
        "feature_cols": meta.num_columns,
        **{f"{k}_rows": v for k, v in rows.items()},
        **{k: round(v, 1) for k, v in timings.items()},
        "peak_rss_gb": round(_peak_gb(), 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--snapshots", type=int, default=24)
    parser.add_argument("--chunk-customers", type=int, default=CFG.features.chunk_customers)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.years, args.snapshots, args.chunk_customers)))
        return
    results = []
    for size in args.sizes:
        cmd = [
            sys.executable,
            __file__,
            "--one",
            str(size),
            "--years",
            str(args.years),
            "--snapshots",
            str(args.snapshots),
        ]
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            Console(stderr=True).print(f"size {size} failed:\n{done.stderr[-2000:]}")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = Table(title=f"features benchmark ({os.cpu_count()} cores)")
    cols = [
        "customers",
        "loans_rows",
        "repayments_rows",
        "interactions_rows",
        "feature_rows",
        "generate_s",
        "validate_s",
        "features_s",
        "peak_rss_gb",
    ]
    for col in cols:
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(*(f"{r.get(c, '')}" for c in cols))
    Console(width=200).print(table)
    print(json.dumps(results))


if __name__ == "__main__":
    main()
