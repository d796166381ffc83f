"""Drift scenarios of the synthetic world against one model trained before the drift starts:
what the monitor flags at DATE (drift, estimated ROC AUC) and what the realised backtest shows
once the label windows have matured. Prints the table recorded in benchmarks/README.md.

    .venv/bin/python benchmarks/monitor_scenarios.py [--customers 3000] [--root /tmp/scenarios]

The world runs 2020-01-01 .. 2024-12-31; the switches act from DRIFT_START; the model is trained
on the tables cut at the day before (data.end), so it never saw drifted data.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import sys
import time
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from pipelines import evaluate, features, generate, monitor, train, validate  # noqa: E402
from pipelines.config import config_with, load_defaults  # noqa: E402
from pipelines.io import save_tables  # noqa: E402

DRIFT_START = "2023-01-01"
SCENARIOS = {
    "none": {},
    "rate_shock": {"rate_shock": -0.03},
    "segment_mix": {"segment_mix": [0.2, 0.3, 0.5]},
    "principal_thousands": {"principal_thousands": True},
    "channel_rename": {"channel_rename": ["call", "phone"]},
}


def drift_params(name: str) -> dict:
    off = {"start": "", "rate_shock": 0.0, "segment_mix": [], "principal_thousands": False,
           "channel_rename": []}  # fmt: skip
    return off | ({"start": DRIFT_START} | SCENARIOS[name] if SCENARIOS[name] else {})


def trained_project(root: Path, customers: int):
    """The undrifted world, cut the day before the drift, trained and registered."""
    cfg = config_with(
        load_defaults(root),
        generate={"customers": customers, "years": 5, "seed": 21},
        data={"end": str((pd.Timestamp(DRIFT_START) - pd.Timedelta(days=1)).date())},
        split={"test_snapshots": 2, "validation_snapshots": 2},
    )  # params.yaml's models: the tests' fast settings overfit at this size (test ECE 0.065)
    os.environ["MLFLOW_TRACKING_URI"] = f"sqlite:///{root / 'mlruns.db'}"
    for stage in (generate, validate, features, train, evaluate):
        stage.run(cfg)
    return cfg


def monitor_scenario(cfg, root: Path, name: str, dates: list[str]) -> list[dict]:
    world = config_with(cfg, generate={"drift": drift_params(name)}, data={"end": ""})
    folder = root / f"world-{name}"
    from features.synthetic import generate_world

    save_tables(generate_world(world.generate).present(), folder)
    rows = []
    for as_of in dates:
        out = root / f"{name}-{as_of}.json"
        request = monitor.MonitorRequest(folder, pd.Timestamp(as_of), out, overwrite=True,
                                         log_run=False)  # fmt: skip
        start = time.perf_counter()
        report = monitor.run(world, request)
        groups = sorted(report["groups"], key=lambda g: -g["psi_max"])[:2]
        rows.append(
            {
                "scenario": name,
                "as_of": as_of,
                "verdict": report["verdict"],
                "drift_share": report["drift_share"],
                "weighted": report["weighted_drift_share"],
                "ref_auc": (
                    report["estimated"]["reference_roc_auc"],
                    report["reference_realised_roc_auc"],
                ),
                "top_groups": ", ".join(f"{g['group']} {g['psi_max']:.2f}" for g in groups),
                "est_auc": report["estimated"]["roc_auc"]["value"],
                "est_drop": report["estimated"]["roc_auc_drop"],
                "realised": [(r["as_of"], r["realised"]["roc_auc"]) for r in report["realised"]],
                "reasons": report["reasons"],
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--root", type=Path, default=Path("/tmp/tierwise-scenarios"))
    ap.add_argument("--scenarios", nargs="*", default=list(SCENARIOS))
    args = ap.parse_args()
    args.root.mkdir(parents=True, exist_ok=True)
    cfg = trained_project(args.root, args.customers)
    for name in args.scenarios:
        for row in monitor_scenario(cfg, args.root, name, ["2023-06-30", "2024-06-30"]):
            print(row, flush=True)


if __name__ == "__main__":
    main()
