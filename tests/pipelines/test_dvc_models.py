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

from tests.pipelines.scratch_repo import scratch_repo, sh

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    return sh(cwd, *args, env=env)


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    def small(params: dict) -> None:
        params["generate"].update(customers=250, years=3)
        params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
        fast = {"n_estimators": 60, "learning_rate": 0.2, "early_stopping_rounds": 10}
        for kind in ("churn", "tier"):
            params["train"][kind].update(fast, min_child_samples=20)

    return scratch_repo(tmp_path_factory.mktemp("dvcmodels"), small)


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


@pytest.fixture
def own_copy(repo, reproduced, tmp_path) -> Path:
    """A committed copy of the reproduced repo (registry included) for a test that changes it.
    Its registry's artefact store stays the original's (an absolute path): both live as long."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    _sh(copy, "git", "add", "-A")
    _sh(copy, "git", "commit", "-qm", "reproduced")
    return copy


def _version(repo: Path, alias: str, kind: str = "churn") -> tuple[str, dict]:
    """(version, tags) behind tierwise-KIND@alias in the repo's registry."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{repo / 'mlruns.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    found = client.get_model_version_by_alias(f"tierwise-{kind}", alias)
    return str(found.version), dict(found.tags)


def test_an_experiment_of_another_task_is_registered_never_compared_nor_promoted(
    own_copy, tmp_path
):
    """The issue's `dvc exp run -S labels.horizon_days=90`: the 90-day versions are registered
    with their task, not compared with the 180-day champion, and (an experiment) move no
    champion alias; `tierwise score` with the 90-day params then refuses the 180-day champion,
    naming both values, and scores with the 90-day task's alias."""
    repo = own_copy
    _sh(repo, "dvc", "exp", "run", "evaluate", "-S", "labels.horizon_days=90", env=ENV)
    record = json.loads((repo / "reports/registry.json").read_text())["models"]["churn"]
    assert record["version"] == "2" and not record["champion"], record
    reason = record["reason"]
    assert "champion v1 is for task h180-a365" in reason and "not compared" in reason, reason
    assert "not promoted: a dvc exp run experiment" in reason, reason
    (champion, old), (latest, new) = _version(repo, "champion"), _version(repo, "challenger")
    assert champion == "1" and latest == "2"
    assert old["label.horizon_days"] == "180" and new["label.horizon_days"] == "90"
    for key in ("label.active_window_days", "label.definition_version", "feature_spec_hash",
                "test_set_fingerprint"):  # fmt: skip
        assert new[key], key
    task = new["task"]
    assert task.startswith("h90-a365-l1-") and _version(repo, f"challenger-{task}")[0] == "2"

    base = ("tierwise", "score", "--data", "data/world", "--as-of", "2022-12-31")
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    refused = subprocess.run(
        [*base, "--out", str(tmp_path / "s.csv")], cwd=repo, capture_output=True, text=True,
        env={**os.environ, "PATH": path, **ENV},
    )  # fmt: skip
    said = " ".join((refused.stdout + refused.stderr).split())
    assert refused.returncode == 2, said
    assert "label.horizon_days is 180 for the model but 90 in params" in said
    assert "Traceback" not in said and not (tmp_path / "s.csv").exists()
    models = ("--churn-model", f"models:/tierwise-churn@challenger-{task}",
              "--tier-model", f"models:/tierwise-tier@challenger-{task}")  # fmt: skip
    _sh(repo, *base, *models, "--explain", "none", "--out", str(tmp_path / "s.csv"), env=ENV)
    scores = pd.read_csv(tmp_path / "s.csv", keep_default_na=False)
    assert set(scores["churn_model_version"].astype(str)) == {"2"}
