"""Benchmark: features for one as_of date, Spark local against the pandas engine.

Each size runs in its own process (its own SparkSession and peak memory). The pandas engine is
``build_feature_table`` over the whole book (what ``pipelines.features.build_as_of`` runs); the
Spark engine is ``spark_features_as_of`` written to Parquet with ``write_parquet_atomic``, run
twice (the first run starts the Python workers). The Spark output is read back and checked equal
to the pandas table. Prints a table; record the figures with the machine they ran on.

    .venv/bin/python benchmarks/spark_features.py                      # 10k and 100k customers
    .venv/bin/python benchmarks/spark_features.py --sizes 10000 --master 'local[2]'
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
sys.path[0] = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

import pandas as pd
from rich.console import Console
from rich.table import Table

from features.build import build_feature_table
from features.contract import CUSTOMER_ID, data_end
from features.spark import spark_features_as_of
from features.synthetic import generate_world
from features.validation import validate_tables
from pipelines.config import load_defaults
from pipelines.io import write_parquet_atomic
from pipelines.spark_session import spark_session


def _peak_gb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def _timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - t0, 1)


def run_one(customers: int, years: int, master: str, partitions: int | None) -> dict:
    cfg = load_defaults()  # params.yaml's settings; the world's size from the arguments
    defs, spec = cfg.defs, cfg.features
    tables, _ = validate_tables(
        generate_world(replace(cfg.generate, customers=customers, years=years)).present()
    )
    as_of = data_end(tables) + pd.offsets.MonthEnd(0) - pd.offsets.MonthEnd(1)
    rows = {f"{name}_rows": len(df) for name, df in tables.present().items()}
    expected, pandas_s = _timed(
        lambda: build_feature_table(tables, pd.DatetimeIndex([as_of]), defs, spec)
    )
    pandas_gb = _peak_gb()
    spark, session_s = _timed(lambda: spark_session(master))
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(2):
            out = Path(tmp) / f"features_{i}.parquet"
            frame, plan_s = _timed(
                lambda: spark_features_as_of(spark, tables, as_of, defs, spec, partitions)
            )
            _, write_s = _timed(lambda: write_parquet_atomic(frame, out))  # noqa: B023
            runs.append((plan_s, write_s))
        got = pd.read_parquet(out).astype(expected.dtypes.to_dict())
    partitions_used = frame.rdd.getNumPartitions()
    spark.stop()
    got = got.sort_values(CUSTOMER_ID, ignore_index=True)
    pd.testing.assert_frame_equal(
        got, expected.sort_values(CUSTOMER_ID, ignore_index=True), check_exact=False, rtol=1e-9
    )
    return {
        "customers": customers,
        "as_of": str(as_of.date()),
        "feature_rows": len(expected),
        **rows,
        "pandas_s": pandas_s,
        "pandas_peak_gb": round(pandas_gb, 2),
        "session_s": session_s,
        "partitions": partitions_used,
        "spark_cold_s": round(sum(runs[0]), 1),
        "spark_warm_s": round(sum(runs[1]), 1),
        "spark_driver_side_s": runs[1][0],
        "peak_rss_gb": round(_peak_gb(), 2),
        "equal": True,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--years", type=int, default=3)
    parser.add_argument("--master", default="local[2]")
    parser.add_argument("--partitions", type=int, default=None)
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.years, args.master, args.partitions)))
        return
    results = []
    for size in args.sizes:
        cmd = [sys.executable, __file__, "--one", str(size), "--years", str(args.years)]
        cmd += ["--master", args.master]
        cmd += ["--partitions", str(args.partitions)] if args.partitions else []
        done = subprocess.run(cmd, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            Console(stderr=True).print(f"size {size} failed:\n{done.stderr[-3000:]}")
            continue
        results.append(json.loads(done.stdout.strip().splitlines()[-1]))
    table = Table(
        title=f"one-date features, Spark {args.master} vs pandas ({os.cpu_count()} cores)"
    )
    cols = [
        "customers",
        "loans_rows",
        "repayments_rows",
        "feature_rows",
        "pandas_s",
        "session_s",
        "partitions",
        "spark_cold_s",
        "spark_warm_s",
        "spark_driver_side_s",
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
