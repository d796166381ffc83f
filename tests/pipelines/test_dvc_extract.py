"""A left-truncated extract of the synthetic world (generate.extract_start) runs through the whole
`dvc repro` to a report, in a scratch repo on a small world.

The extract starts 2020-01-01 after two years of burn-in, so loans open on that day keep their
older origination dates while repayments, interactions and surveys start on it. The snapshots are
set to start a year into the extract (snapshots.start; data.start comes with issue 10's
observation window)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.pipelines.scratch_repo import scratch_repo, sh

FIRST = pd.Timestamp("2020-01-01")

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str) -> str:
    return sh(cwd, *args, env={"MLFLOW_TRACKING_URI": ""})  # the repo's own sqlite store


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    def extract(params: dict) -> None:
        params["generate"].update(customers=500, years=5, start="2018-01-01",
                                  extract_start=str(FIRST.date()), long_maturity_share=0.5,
                                  bullet_share=0.3, revolving_share=0.3)  # fmt: skip
        params["snapshots"]["start"] = "2020-12-31"
        params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
        fast = {"n_estimators": 40, "learning_rate": 0.2, "early_stopping_rounds": 10}
        for kind in ("churn", "tier"):
            params["train"][kind].update(fast, min_child_samples=20)

    return scratch_repo(tmp_path_factory.mktemp("dvcextract"), extract)


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
