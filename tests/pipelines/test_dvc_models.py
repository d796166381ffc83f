"""`dvc repro` through train and evaluate in a scratch repo on a small world: models registered,
`dvc metrics show` and `dvc plots show` work, and a second repro does nothing.

One module fixture runs the repro; the tests only read its results (scores go to tmp_path), so
each passes alone and in any order. Few, fast trees: the test is about DVC and MLflow wiring."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COPY = ["dvc.yaml", "params.yaml", ".dvcignore", "features", "pipelines", "models"]

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, **(env or {})}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("dvcmodels")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"].update(customers=250, years=3)
    params["split"] = {"test_snapshots": 3, "validation_snapshots": 2}
    fast = {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10}
    for kind in ("churn", "tier"):
        params["train"][kind].update(fast, min_child_samples=20)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("__pycache__/\n/mlruns.db\n/mlartifacts/\n")
    for args in (("git", "init", "-q"), ("git", "config", "user.name", "tierwise test"),
                 ("git", "config", "user.email", "test@tierwise.invalid"), ("dvc", "init", "-q"),
                 ("dvc", "config", "core.analytics", "false"), ("git", "add", "-A"),
                 ("git", "commit", "-qm", "scratch")):  # fmt: skip
        _sh(repo, *args)
    return repo


ENV = {"MLFLOW_TRACKING_URI": ""}  # unset: the default sqlite:///mlruns.db in the root


@pytest.fixture(scope="module")
def reproduced(repo) -> str:
    """`dvc repro` of the whole pipeline, once; its output."""
    return _sh(repo, "dvc", "repro", env=ENV)


def test_repro_trains_evaluates_registers_and_shows_metrics_and_plots(repo, reproduced):
    out = reproduced
    assert "Running stage 'train'" in out and "Running stage 'evaluate'" in out
    assert (repo / "mlruns.db").exists() and (repo / "mlartifacts").is_dir()
    registered = json.loads((repo / "reports/registry.json").read_text())
    assert registered["models"]["churn"]["version"] == "1"
    assert registered["tracking_uri"] == "sqlite:///mlruns.db"  # relative: no machine's path
    assert str(repo.resolve()) not in (repo / "reports/registry.json").read_text()

    metrics = json.loads(_sh(repo, "dvc", "metrics", "show", "--json"))
    shown = json.dumps(metrics)
    assert "roc_auc" in shown and "log_loss" in shown and "clv_mean" in shown
    # only the headline file is a metric: no per-snapshot table, no summary
    assert "2022-" not in shown and "tier_counts" not in shown
    assert "reports/metrics.json" in shown and "metrics_by_snapshot" not in shown
    _sh(repo, "dvc", "plots", "show", "-o", "plots_html")
    html = (repo / "plots_html" / "index.html").read_text()
    for plot in ("ROC", "Precision-recall", "Calibration", "Lift", "Tier_transitions",
                 "ROC_AUC_by_snapshot", "Log_loss_by_snapshot"):  # fmt: skip
        assert f"vegaEmbed('#{plot}'" in html
    assert "Running stage" not in _sh(repo, "dvc", "repro", env=ENV)


def test_after_repro_the_champions_score_the_portfolio(repo, reproduced, tmp_path):
    """The batch job after `dvc repro`: the champions just registered, from the default store."""
    args = ("tierwise", "score", "--data", "data/world", "--as-of", "2022-12-31")
    _sh(repo, *args, "--out", str(tmp_path / "scores.csv"), env=ENV)
    scores = pd.read_csv(tmp_path / "scores.csv", keep_default_na=False)
    customers = pd.read_parquet(repo / "data/world/customers.parquet")
    assert len(scores) == scores["customer_id"].nunique() == len(customers)  # all known by then
    assert set(scores["churn_model_version"].astype(str)) == {"1"}
    assert set(scores["risk_band"]) <= {"", "low", "medium", "high"}
    high = scores["risk_band"] == "high"
    assert (scores.loc[high, "reason_1"] != "").all()  # --explain at_risk, the params' default
