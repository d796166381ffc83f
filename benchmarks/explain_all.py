"""The registered churn model on built features, one policy: wall and CPU seconds, rows explained.

    MLFLOW_TRACKING_URI=sqlite:///$PWD/mlruns.db python benchmarks/explain_all.py \\
        FEATURES.parquet --explain all [--model models:/tierwise-churn@champion]

FEATURES is the output of `tierwise features --data DIR --as-of DATE --out FEATURES.parquet`. It
is read in batches of ``--batch-rows`` (50,000) and each batch goes through the pyfunc with
``params={"explain": ...}``, as a batch scoring job calls it; the time excludes loading the model.
One line per run; compare codes by running it with each on ``PYTHONPATH``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

# not this folder (its features.py would shadow the package): tierwise from PYTHONPATH, else the
# installed checkout, so that two codes compare on the same script
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

import mlflow  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("features")
    parser.add_argument("--explain", default="all", choices=["all", "watch", "at_risk", "none"])
    parser.add_argument("--model", default="models:/tierwise-churn@champion")
    parser.add_argument("--batch-rows", type=int, default=50_000)
    args = parser.parse_args()
    model = mlflow.pyfunc.load_model(args.model)
    wall, cpu = time.perf_counter(), time.process_time()
    rows = explained = 0
    for batch in pq.ParquetFile(args.features).iter_batches(batch_size=args.batch_rows):
        out = model.predict(batch.to_pandas(), params={"explain": args.explain})
        rows, explained = rows + len(out), explained + int(out["reason_1"].notna().sum())
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(f"explain={args.explain} rows={rows} explained={explained} "
          f"wall_s={wall:.1f} cpu_s={cpu:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
