"""Benchmark: batch scoring (`tierwise score`): throughput, peak memory, what explanations cost.

Prepares, once, in ``--workdir`` (reused on later runs):
- ``project/``: the default world (params.yaml as committed: 10k customers, 5 years) trained and
  registered (its own MLflow store): the champions that score; ``project_depth6/``: the same with
  ``train.churn.max_depth: 6`` (the TreeSHAP-cost lever), registered in a store of its own;
- ``world_<N>/``: a synthetic portfolio of N customers over 3 years (contract tables), and
  ``features_<N>.parquet``: its feature rows as of the last day (for "features already built").

Then prints four tables (every measured step in a process of its own; peak RSS is its max RSS):
1. `tierwise score` end to end (validate, features, both models, write) per size and --explain;
2. scoring prebuilt features (both models through pyfunc, in chunks of 50k) per size and policy;
3. components on sampled active rows: predictions, pred_contrib (1 and 2 threads) against
   shap.TreeExplainer, the rest of explain_frame, for the champion and the max_depth 6 model;
4. the Spark engine (local[2]) against the pandas engine on the same data.

    .venv/bin/python benchmarks/scoring.py --sizes 100000 1000000            # about 45 minutes
    .venv/bin/python benchmarks/scoring.py --sizes 20000 --explain-all-max 20000 --spark-sizes 20000
    .venv/bin/python benchmarks/scoring.py --prebuilt-only --sizes 1000000  # none, at_risk, all
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # this script sits next to nothing named like a package, but be explicit

import yaml
from rich.console import Console
from rich.table import Table

AS_OF = "2022-12-31"  # the last day of a 3-year world starting 2020-01-01
BIN = Path(sys.executable).parent
STAGES = ("generate", "validate", "features", "train", "evaluate")
console = Console(width=200)
WORKDIR: Path | None = None  # --workdir, passed on to the child processes


def _env(project: Path) -> dict:
    path = f"{BIN}{os.pathsep}{os.environ['PATH']}"
    return {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlruns.db"}


def _process(cmd: list, cwd: Path, env: dict) -> tuple[str, float, float]:
    """Run ``cmd`` to the end: its stdout, wall seconds and peak RSS in GB; fails loudly."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"{cmd} failed:\n{err.read().decode()[-3000:]}")
        return out.read().decode(), seconds, usage.ru_maxrss / 1024**2


def run_child(*args: str) -> dict:
    """This script with ``args`` in a new process; its JSON answer plus seconds and peak RSS."""
    where = ["--workdir", str(WORKDIR)] if WORKDIR is not None else []
    out, seconds, peak = _process([sys.executable, __file__, *where, *args], ROOT, dict(os.environ))
    answer = json.loads(out.strip().splitlines()[-1])
    return {**answer, "process_s": round(seconds, 1), "peak_gb": round(peak, 2)}


# --- preparation ----------------------------------------------------------------------------------
def prepare_project(workdir: Path, name: str, churn_changes: dict) -> Path:
    project = workdir / name
    if (project / "reports/registry.json").exists():
        return project
    project.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["train"]["churn"] |= churn_changes
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for stage in STAGES:
        console.log(f"{name}: tierwise {stage}")
        _process([str(BIN / "tierwise"), stage], project, _env(project))
    return project


def one_world(workdir: Path, size: int, features: bool = True) -> dict:
    """Generate a portfolio and build its feature rows as of AS_OF (skipped when present;
    ``features`` False: the portfolio only)."""
    from dataclasses import replace

    import pandas as pd

    from features.build import iter_feature_table
    from features.synthetic import generate_world
    from features.validation import validate_tables
    from pipelines.config import load_config
    from pipelines.io import load_raw_tables, save_frame_chunks, save_tables

    world, out = workdir / f"world_{size}", workdir / f"features_{size}.parquet"
    timings = {}
    cfg = load_config(ROOT / "params.yaml")
    if not world.exists():
        start = time.perf_counter()
        spec = replace(cfg.generate, customers=size, years=3)
        save_tables(generate_world(spec).present(), world)
        timings["generate_s"] = round(time.perf_counter() - start, 1)
    if features and not out.exists():
        tables, _ = validate_tables(load_raw_tables(world))
        start = time.perf_counter()
        chunks = iter_feature_table(
            tables,
            pd.DatetimeIndex([AS_OF]),
            cfg.defs,
            cfg.features,
            chunk_customers=cfg.features.chunk_customers,
        )
        save_frame_chunks(chunks, out)
        timings["features_s"] = round(time.perf_counter() - start, 1)
    return timings


# --- measurements ---------------------------------------------------------------------------------
def cli_score(
    workdir: Path, project: Path, size: int, explain: str, engine: str = "pandas"
) -> dict:
    suffix = "parquet"
    out = workdir / "out" / f"scores_{size}_{engine}_{explain}.{suffix}"
    cmd = [
        str(BIN / "tierwise"),
        "score",
        "--data",
        str(workdir / f"world_{size}"),
        "--as-of",
        AS_OF,
        "--out",
        str(out),
        "--explain",
        explain,
        "--overwrite",
        "--engine",
        engine,
    ]
    if engine == "spark":
        cmd += ["--master", "local[2]"]
    _, seconds, peak = _process(cmd, project, _env(project))
    rows = _rows(out)
    return {
        "size": size,
        "engine": engine,
        "explain": explain,
        "rows": rows,
        "seconds": round(seconds, 1),
        "customers_per_s": round(rows / seconds),
        "peak_gb": round(peak, 2),
    }


def _rows(path: Path) -> int:
    import pyarrow.parquet as pq

    return pq.ParquetDataset(path).read(columns=["customer_id"]).num_rows


def one_prebuilt(workdir: Path, project: Path, size: int, explain: str) -> dict:
    """Both champions through pyfunc on prebuilt feature rows, in chunks of 50k customers."""
    import pyarrow.parquet as pq

    from models.serving import registry
    from models.serving.score import Lineage, score_features

    churn = registry.load_model(project, "models:/tierwise-churn@champion")
    tier = registry.load_model(project, "models:/tierwise-tier@champion")
    lineage = Lineage(churn.name, churn.version, tier.name, tier.version)
    rows = explained = high = 0
    start = time.perf_counter()
    for batch in pq.ParquetFile(workdir / f"features_{size}.parquet").iter_batches(50_000):
        scores = score_features(batch.to_pandas(), churn.model, tier.model, lineage, explain)
        rows += len(scores)
        explained += int((scores["reason_1_contribution"].notna()).sum())
        high += int((scores["risk_band"] == "high").sum())
    seconds = time.perf_counter() - start
    return {
        "size": size,
        "explain": explain,
        "rows": rows,
        "seconds": round(seconds, 1),
        "customers_per_s": round(rows / seconds),
        "explained": explained,
        "high": high,
    }


def _timed(step, *args, **kwargs) -> tuple[object, float]:
    start = time.perf_counter()
    result = step(*args, **kwargs)
    return result, time.perf_counter() - start


def one_components(workdir: Path, project: Path, label: str, size: int, n: int) -> dict:
    """Rows/s of each scoring step on ``n`` sampled active customers of world ``size``."""
    import pandas as pd

    from models.explain.frame import explain_frame, feature_contributions, shap_contributions
    from models.serving import registry
    from models.serving.pyfunc import CHURN_POPULATION

    table = pd.read_parquet(workdir / f"features_{size}.parquet")
    rows = table[table["lifecycle_state"].isin(CHURN_POPULATION)].sample(n, random_state=0)
    rows = rows.reset_index(drop=True)
    churn = registry.load_model(project, "models:/tierwise-churn@champion")
    tier = registry.load_model(project, "models:/tierwise-tier@champion")
    inner = churn.model.unwrap_python_model()
    X, small = inner.matrix(rows), max(n // 4, 1)
    out, times = {"model": label, "trees": inner.num_iteration, "rows": n}, {}
    none = {"explain": "none"}
    _, times["pyfunc churn, explain=none"] = _timed(churn.model.predict, rows, params=none)
    _, times["churn probability only"] = _timed(inner.probability, rows)
    _, times["pyfunc tier"] = _timed(tier.model.predict, rows)
    for threads in (1, 2):
        _, seconds = _timed(
            inner.booster.predict,
            X.iloc[:small],
            pred_contrib=True,
            num_iteration=inner.num_iteration,
            num_threads=threads,
        )
        times[f"pred_contrib, {threads} thread(s)"] = seconds * n / small
    import shap  # noqa: F401  (imported before timing: the import alone takes seconds)

    _, seconds = _timed(shap_contributions, inner.booster, X.iloc[:small])
    times["shap.TreeExplainer"] = seconds * n / small
    contribs = feature_contributions(inner.booster, X, num_iteration=inner.num_iteration)
    catalog = inner.outputs.catalog
    _, times["explain_frame given contributions"] = _timed(
        explain_frame,
        None,
        rows,
        inner.features,
        inner.groups,
        catalog,
        3,
        contributions=contribs,
        link=inner.calibrator.predict,
    )
    out["rows_per_s"] = {k: round(n / v) for k, v in times.items()}
    return out


# --- tables ---------------------------------------------------------------------------------------
def show(title: str, rows: list[dict], columns: list[str]) -> None:
    table = Table(title=title)
    for column in columns:
        table.add_column(column, justify="right")
    for row in rows:
        table.add_row(*(f"{row.get(c, '')}" for c in columns))
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tierwise-bench-scoring"))
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument(
        "--explain-all-max",
        type=int,
        default=100_000,
        help="explain=all only up to this many customers (TreeSHAP for all)",
    )
    parser.add_argument("--spark-sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--component-rows", type=int, default=20_000)
    parser.add_argument(
        "--cli-only",
        action="store_true",
        help="only `tierwise score` end to end (none, at_risk): the bounded-memory figures",
    )
    parser.add_argument(
        "--prebuilt-only",
        action="store_true",
        help="only scoring prebuilt features (none, at_risk, all): the explain-all target",
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    global WORKDIR
    WORKDIR = workdir
    if args.child:
        kind, *rest = args.child
        steps = {
            "world": lambda s, f="1": one_world(workdir, int(s), f == "1"),
            "prebuilt": lambda p, s, e: one_prebuilt(workdir, Path(p), int(s), e),
            "components": lambda p, label, s, n: one_components(
                workdir, Path(p), label, int(s), int(n)
            ),
        }
        print(json.dumps(steps[kind](*rest)))
        return
    workdir.mkdir(parents=True, exist_ok=True)
    project = prepare_project(workdir, "project", {})
    if args.cli_only:
        return main_cli(workdir, project, args.sizes)
    if args.prebuilt_only:
        return main_prebuilt(project, args.sizes)
    depth6 = prepare_project(workdir, "project_depth6", {"max_depth": 6})
    results: dict[str, list] = {
        "worlds": [],
        "cli": [],
        "prebuilt": [],
        "components": [],
        "spark": [],
    }
    for size in args.sizes:
        results["worlds"].append({"size": size, **run_child("--child", "world", str(size))})

    def policies(size: int) -> tuple[str, ...]:
        return ("none", "at_risk", "all") if size <= args.explain_all_max else ("none", "at_risk")

    for size in args.sizes:
        for explain in policies(size):
            results["prebuilt"].append(
                run_child("--child", "prebuilt", str(project), str(size), explain)
            )
            console.log(results["prebuilt"][-1])
    for size in args.sizes:
        for explain in policies(size):
            results["cli"].append(cli_score(workdir, project, size, explain))
            console.log(results["cli"][-1])
    sample = min(args.sizes)
    for label, proj in (("champion", project), ("max_depth 6", depth6)):
        results["components"].append(
            run_child(
                "--child", "components", str(proj), label, str(sample), str(args.component_rows)
            )
        )
    for size in args.spark_sizes:
        for explain in ("none", "at_risk"):
            results["spark"].append(cli_score(workdir, project, size, explain, "spark"))
            console.log(results["spark"][-1])
    (workdir / "scoring.json").write_text(json.dumps(results, indent=2))
    show(
        "tierwise score, end to end (pandas engine)",
        results["cli"],
        ["size", "explain", "rows", "seconds", "customers_per_s", "peak_gb"],
    )
    show(
        "scoring prebuilt features (both models, pyfunc)",
        results["prebuilt"],
        ["size", "explain", "rows", "explained", "high", "seconds", "customers_per_s", "peak_gb"],
    )
    for comp in results["components"]:
        show(
            f"components, {comp['model']} ({comp['trees']} trees), rows/s",
            [{"step": k, "rows_per_s": v} for k, v in comp["rows_per_s"].items()],
            ["step", "rows_per_s"],
        )
    show(
        "Spark local[2] vs pandas",
        results["spark"] + [r for r in results["cli"] if r["size"] in args.spark_sizes],
        ["size", "engine", "explain", "rows", "seconds", "customers_per_s", "peak_gb"],
    )
    print(json.dumps(results))


def main_cli(workdir: Path, project: Path, sizes: list[int]) -> None:
    """`tierwise score` end to end per size, ``--explain none`` and ``at_risk`` (the issue-15
    targets: peak RSS at 1M within 1.5x the 100k peak; 1M under 90 s / 150 s)."""
    rows = []
    for size in sizes:
        run_child("--child", "world", str(size), "0")
        for explain in ("none", "at_risk"):
            rows.append(cli_score(workdir, project, size, explain) | {"load": _load()})
            console.log(rows[-1])
    show(
        "tierwise score, end to end (pandas engine)",
        rows,
        ["size", "explain", "rows", "seconds", "customers_per_s", "peak_gb", "load"],
    )
    print(json.dumps(rows))


def main_prebuilt(project: Path, sizes: list[int]) -> None:
    """Both models on prebuilt feature rows per size, ``--explain none``, ``at_risk`` and ``all``
    (issue 15's target: all at 1M, features built, under 2 minutes on 2 cores)."""
    rows = []
    for size in sizes:
        console.log(run_child("--child", "world", str(size)))
        for explain in ("none", "at_risk", "all"):
            rows.append(
                run_child("--child", "prebuilt", str(project), str(size), explain)
                | {"load": _load()}
            )
            console.log(rows[-1])
    show(
        "scoring prebuilt features (both models, pyfunc)",
        rows,
        ["size", "explain", "rows", "explained", "high", "seconds", "customers_per_s", "peak_gb",
         "load"],
    )  # fmt: skip
    print(json.dumps(rows))


def _load() -> str:
    """The 1-minute load average after a measurement (the VM is shared)."""
    return f"{os.getloadavg()[0]:.1f}"


if __name__ == "__main__":
    main()
