"""Benchmark: the champion churn model against the synthetic world's oracle.

For each world the script runs the pipeline (`tierwise generate validate features train
evaluate`) in a scratch project of its own (own params.yaml and MLflow store, reused when
already built), takes the champion churn model's predictions on the test rows
(reports/predictions.parquet, champion from reports/registry.json), samples up to ``--rows`` rows
per test snapshot and asks ``features.synthetic.oracle_churn`` for their true churn probability
(``--replicates`` simulated futures from each customer's latent state). Both are scored against
the realised labels on the same rows: ROC AUC, PR AUC, Brier and ECE per test snapshot and
pooled, and the fraction of the oracle's ROC AUC that the champion reaches. Two oracles: the
one that knows the world's realised macro future (market rate, industry stress) after t, and
the macro-blind one (``macro="resampled"``), which knows every customer's latent state at t but
draws the macro future anew, as any model must.

Worlds:
- ``default``: params.yaml as committed;
- ``shaped``: another shape — a left-truncated extract (13 simulated years, the extract from
  2020-01-01 on), long project-finance maturities, bullet loans and credit lines, another segment
  mix; snapshots start 2020-12-31 (a year of events after the extract start).

    .venv/bin/python benchmarks/oracle.py                       # both worlds, 2000 rows x 500
    .venv/bin/python benchmarks/oracle.py --worlds default --rows 500 --replicates 100
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import yaml
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from models.evaluation.metrics import compute_binary_metrics  # noqa: E402
from pipelines.config import load_config  # noqa: E402

BIN = Path(sys.executable).parent
STAGES = ("generate", "validate", "features", "train", "evaluate")
WORLDS = {
    "default": {},
    "shaped": {
        "generate": {
            "customers": 20000, "years": 13, "start": "2012-01-01",
            "extract_start": "2020-01-01", "long_maturity_share": 0.5, "bullet_share": 0.4,
            "revolving_share": 0.5, "segment_shares": [0.5, 0.3, 0.2],
        },
        "snapshots": {"start": "2020-12-31"},
    },
}  # fmt: skip
METRICS = ("roc_auc", "pr_auc", "brier", "ece")
console = Console(width=220)


def prepare_project(workdir: Path, name: str, scale: float) -> Path:
    """A scratch project with the world's params, run through the pipeline (once)."""
    project = workdir / name
    if (project / "reports/registry.json").exists():
        return project
    project.mkdir(parents=True, exist_ok=True)
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    for section, changes in WORLDS[name].items():
        params[section] |= changes
    params["generate"]["customers"] = round(params["generate"]["customers"] * scale)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{project}/mlruns.db"}  # fmt: skip
    for stage in STAGES:
        start = time.perf_counter()
        subprocess.run([str(BIN / "tierwise"), stage], cwd=project, env=env, check=True,
                       capture_output=True)  # fmt: skip
        console.log(f"{name}: tierwise {stage} {time.perf_counter() - start:.0f} s")
    return project


def champion_rows(project: Path) -> tuple[pd.DataFrame, str]:
    """Test rows with a churn label, the registered churn model's probability as ``p``, and
    its registry name and version (the scratch project's first model is its champion)."""
    churn = json.loads((project / "reports/registry.json").read_text())["models"]["churn"]
    if not churn["champion"]:
        raise RuntimeError(f"{project}: the churn model was not promoted: {churn['reason']}")
    predictions = pd.read_parquet(project / "reports/predictions.parquet")
    rows = predictions[predictions["churned"].notna()]
    return rows.assign(p=rows["churn_probability"]), f"{churn['name']} v{churn['version']}"


def sample_rows(rows: pd.DataFrame, per_snapshot: int, seed: int) -> pd.DataFrame:
    shuffled = rows.sample(frac=1.0, random_state=seed)
    return shuffled.groupby("as_of").head(per_snapshot).reset_index(drop=True)


def score_world(
    workdir: Path, name: str, per_snapshot: int, replicates: int, scale: float
) -> list[dict]:
    from features.synthetic import oracle_churn

    project = prepare_project(workdir, name, scale)
    cfg = load_config(project / "params.yaml")
    rows, champion = champion_rows(project)
    rows = sample_rows(rows, per_snapshot, seed=0)
    start = time.perf_counter()
    keys, horizon = rows[["customer_id", "as_of"]], cfg.labels.horizon_days
    oracle = oracle_churn(cfg.generate, keys, horizon, replicates=replicates)
    console.log(f"{name}: oracle for {len(rows)} rows in {time.perf_counter() - start:.0f} s")
    start = time.perf_counter()
    blind = oracle_churn(cfg.generate, keys, horizon, replicates=replicates, macro="resampled")
    console.log(f"{name}: macro-blind oracle in {time.perf_counter() - start:.0f} s")
    rows = rows.assign(oracle=oracle, blind=blind)
    groups = [(str(pd.Timestamp(d).date()), g) for d, g in rows.groupby("as_of")]
    results = []
    for snapshot, g in [*groups, ("pooled", rows)]:
        y = g["churned"].to_numpy(float)
        model = compute_binary_metrics(y, g["p"].to_numpy(), cfg.evaluate)
        truth = compute_binary_metrics(y, g["oracle"].to_numpy(), cfg.evaluate)
        fair = compute_binary_metrics(y, g["blind"].to_numpy(), cfg.evaluate)
        results.append({
            "world": name, "champion": champion, "snapshot": snapshot, "rows": len(g),
            "churn_rate": round(float(y.mean()), 4), "oracle_mean": round(g["oracle"].mean(), 4),
            **{f"model_{k}": model[k] for k in METRICS},
            **{f"oracle_{k}": truth[k] for k in METRICS},
            **{f"blind_{k}": fair[k] for k in METRICS},
            "auc_fraction": round(model["roc_auc"] / truth["roc_auc"], 4),
            "blind_auc_fraction": round(model["roc_auc"] / fair["roc_auc"], 4),
        })  # fmt: skip
    return results


def show(results: list[dict]) -> None:
    columns = ["world", "champion", "snapshot", "rows", "churn_rate", "oracle_mean",
               "model_roc_auc", "oracle_roc_auc", "auc_fraction", "blind_roc_auc",
               "blind_auc_fraction", "model_pr_auc", "oracle_pr_auc", "blind_pr_auc",
               "model_brier", "oracle_brier", "blind_brier", "model_ece", "oracle_ece",
               "blind_ece"]  # fmt: skip
    table = Table(title="champion vs oracle, test snapshots")
    for col in columns:
        table.add_column(
            col, justify="left" if col in ("world", "champion", "snapshot") else "right"
        )
    for row in results:
        table.add_row(
            *(f"{row[c]:.3f}" if isinstance(row[c], float) else str(row[c]) for c in columns)
        )
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/tierwise-bench-oracle"))
    parser.add_argument("--worlds", nargs="+", choices=sorted(WORLDS), default=list(WORLDS))
    parser.add_argument("--rows", type=int, default=2000, help="rows sampled per test snapshot")
    parser.add_argument("--replicates", type=int, default=500, help="futures per row")
    parser.add_argument("--scale", type=float, default=1.0, help="customers x this (dry runs)")
    args = parser.parse_args()
    workdir = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    results = [
        row
        for world in args.worlds
        for row in score_world(workdir, world, args.rows, args.replicates, args.scale)
    ]
    (workdir / "oracle.json").write_text(json.dumps(results, indent=2))
    show(results)


if __name__ == "__main__":
    main()
