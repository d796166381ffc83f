"""A shape unlike the synthetic world, end to end through `dvc repro`: an 18-month, loans-only
history of point events (a retail purchase log put in the contract: closed_date =
origination_date, no other table) with labels.horizon_days = 90.

Nobody can be core within the first year, so the fit slice has one next-tier class: the tier
model falls back to the Markov baseline (and every record says so) while the churn model, which
the data support, trains, registers and scores. One module fixture runs the repro; the tests
only read its results."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from tests.pipelines.scratch_repo import scratch_repo

START, END = pd.Timestamp("2023-01-01"), pd.Timestamp("2024-06-30")

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": ""}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    if check:
        assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done


def purchase_log(customers: int = 300, seed: int = 5) -> pd.DataFrame:
    """Purchases as point-event loans: each customer buys at their own rate until they lapse."""
    rng = np.random.default_rng(seed)
    span = (END - START).days
    rows = []
    for i in range(customers):
        first = int(rng.integers(0, span - 60))
        lapse = first + int(rng.exponential(300))
        gaps = np.cumsum(rng.exponential(rng.uniform(15, 120), 60)).astype(int)
        days = [first, *(first + g for g in gaps if first + g < min(lapse, span))]
        for j, day in enumerate(days):
            when = START + pd.Timedelta(days=day)
            rows.append((f"P{i}-{j}", f"C{i:04d}", when, round(float(rng.lognormal(3, 1)), 2)))
    log = pd.DataFrame(rows, columns=["loan_id", "customer_id", "origination_date", "principal"])
    log["origination_date"] = log["origination_date"].dt.strftime("%Y-%m-%d")
    return log.assign(closed_date=log["origination_date"])


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    def retail(repo: Path) -> None:
        (repo / "data/retail").mkdir(parents=True)
        purchase_log().to_csv(repo / "data/retail/loans.csv", index=False)

    def short(params: dict) -> None:
        params["data"]["dir"] = "data/retail"
        params["labels"]["horizon_days"] = 90
        params["snapshots"]["warmup_days"] = 90  # 18 months leave no room for a year of warm-up
        fast = {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10}
        for kind in ("churn", "tier"):
            params["train"][kind].update(fast, min_child_samples=20)

    return scratch_repo(tmp_path_factory.mktemp("dvcshort"), short, retail)


@pytest.fixture(scope="module")
def reproduced(repo) -> str:
    """`dvc repro report`: every stage the report needs (the synthetic world is not one)."""
    done = _sh(repo, "dvc", "repro", "report")
    return done.stdout + done.stderr


def _json(repo: Path, name: str) -> dict:
    return json.loads((repo / "reports" / name).read_text(encoding="utf-8"))


def test_the_short_history_runs_to_a_report_with_the_markov_tier_model(repo, reproduced):
    assert "Running stage 'generate'" not in reproduced
    for stage in ("validate", "features", "train", "evaluate", "explain", "report"):
        assert f"Running stage '{stage}'" in reproduced
    train = _json(repo, "train.json")
    assert (
        train["tier"]["model"] == "markov_baseline"
        and "next-tier class" in train["tier"]["fallback"]
    )
    assert train["churn"]["trees"] >= 1 and train["test_rows"]["churn"] > 0
    assert any("Markov baseline" in w for w in train["warnings"])
    html = (repo / "reports/report.html").read_text(encoding="utf-8")
    assert "Warning: tier model" in html


def test_the_registry_and_the_run_record_the_baseline(repo, reproduced):
    from mlflow.tracking import MlflowClient

    registered = _json(repo, "registry.json")
    # recorded relative to the repo (sqlite:///mlruns.db, issue 11): open it from there
    uri = registered["tracking_uri"].replace("sqlite:///mlruns.db", f"sqlite:///{repo}/mlruns.db")
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)  # not the session's registry
    tier = registered["models"]["tier"]
    version = client.get_model_version(tier["name"], tier["version"])
    assert version.tags["baseline"] == "markov"
    run = client.get_run(registered["run_id"])
    assert (
        run.data.tags["tier_model"] == "markov_baseline" and "Markov" in run.data.tags["warnings"]
    )
    churn = registered["models"]["churn"]
    assert "baseline" not in client.get_model_version(churn["name"], churn["version"]).tags


def test_validation_and_features_state_the_observation_window(repo, reproduced):
    observation = _json(repo, "validation.json")["observation"]
    first = pd.read_csv(repo / "data/retail/loans.csv")["origination_date"].min()
    assert observation["inferred"] and observation["data_start"] == first  # loans only
    assert observation["left_truncation"]["loans_originated_before_start"] == 0
    summary = _json(repo, "features_summary.json")
    assert summary["data_start"] == first and summary["warmup_days"] == 90
    split = _json(repo, "train.json")["split"]
    assert split["horizon_days"] == 90 and split["test"]["snapshots"] >= 1


def test_default_warm_up_is_too_short_for_18_months_one_exit_2_message(repo, reproduced):
    """With a year of warm-up the split has too few snapshots: exit 2, no traceback, the
    minimum span and the params to change."""
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["snapshots"]["warmup_days"] = ""
    own = {"features": "data/warm/features.parquet", "features_summary": "data/warm/summary.json"}
    other = repo / "params_default_warmup.yaml"
    other.write_text(yaml.safe_dump({**params, "paths": {**params["paths"], **own}}))
    _sh(repo, "tierwise", "features", "--params", str(other))
    done = _sh(repo, "tierwise", "train", "--params", str(other), check=False)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    text = " ".join((done.stdout + done.stderr).split())
    assert "the data span is too short" in text and "Minimum span" in text
    assert "labels.horizon_days" in text and "snapshots.warmup_days" in text
