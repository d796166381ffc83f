"""A left-truncated extract of the synthetic world (generate.extract_start) runs through the whole
`dvc repro` to a report, in a scratch repo on a small world.

The extract starts 2020-01-01 after two years of burn-in, so loans open on that day keep their
older origination dates while repayments, interactions and surveys start on it. The snapshots are
set to start a year into the extract (snapshots.start; data.start comes with issue 10's
observation window)."""

from __future__ import annotations

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
FIRST = pd.Timestamp("2020-01-01")

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str) -> str:
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "MLFLOW_TRACKING_URI": ""}  # the repo's own sqlite store
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("dvcextract")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"].update(customers=500, years=5, start="2018-01-01",
                              extract_start=str(FIRST.date()), long_maturity_share=0.5,
                              bullet_share=0.3, revolving_share=0.3)  # fmt: skip
    params["snapshots"]["start"] = "2020-12-31"
    params["split"] = {"test_snapshots": 3, "validation_snapshots": 2}
    fast = {"n_estimators": 40, "learning_rate": 0.2, "early_stopping_rounds": 10}
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


@pytest.fixture(scope="module")
def reproduced(repo) -> str:
    return _sh(repo, "dvc", "repro")


def test_a_left_truncated_extract_runs_through_dvc_repro_to_a_report(repo, reproduced):
    assert "Running stage 'report'" in reproduced
    assert (repo / "reports/report.html").stat().st_size > 0
    loans = pd.read_parquet(repo / "data/world/loans.parquet")
    repayments = pd.read_parquet(repo / "data/world/repayments.parquet")
    assert (loans["origination_date"] < FIRST).any()  # the book open at the extract start
    assert repayments["due_date"].min() >= FIRST  # ... without its earlier installments
    predictions = pd.read_parquet(repo / "reports/predictions.parquet")
    assert predictions["as_of"].min() >= pd.Timestamp("2020-12-31")
    assert predictions["churn_probability"].notna().any()
    assert "Running stage" not in _sh(repo, "dvc", "repro")
