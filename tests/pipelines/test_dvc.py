"""DVC runs for real: repro is idempotent, a param change re-runs only what is downstream, and
`dvc exp run -S` works. The pipeline up to `features` runs on a small world in a scratch repo.

One module fixture reproduces the pipeline once and commits the lock; a test that changes params
works on its own copy of that repo, so every test passes alone and in any order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from tests.pipelines.scratch_repo import scratch_repo, sh

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str) -> str:
    return sh(cwd, *args)


def _set_param(repo: Path, section: str, key: str, value) -> None:
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params[section][key] = value
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    def small(params: dict) -> None:
        params["generate"].update(customers=250, years=3)

    return scratch_repo(
        tmp_path_factory.mktemp("dvcrepo") / "repo", small, gitignore="__pycache__/\n"
    )


@pytest.fixture(scope="module")
def first_repro(repo) -> str:
    """`dvc repro features` once, on the fresh repo; the lock is committed. Its output."""
    out = _sh(repo, "dvc", "repro", "features")
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-qm", "lock")
    return out


@pytest.fixture
def own_copy(repo, first_repro, tmp_path) -> Path:
    """A copy of the reproduced repo (workspace, lock, DVC cache) for a test that changes it."""
    copy = tmp_path / "repo"
    shutil.copytree(repo, copy, symlinks=True)
    return copy


def test_repro_twice_does_nothing_the_second_time(repo, first_repro):
    assert "Running stage 'generate'" in first_repro and "Running stage 'features'" in first_repro
    second = _sh(repo, "dvc", "repro", "features")
    assert "Running stage" not in second


def test_a_param_change_reruns_only_downstream_stages(own_copy):
    assert "Running stage" not in _sh(own_copy, "dvc", "repro", "features")  # the copy is current
    _set_param(own_copy, "labels", "horizon_days", 120)
    out = _sh(own_copy, "dvc", "repro", "features")
    assert "Running stage 'features'" in out
    assert "Running stage 'generate'" not in out and "Running stage 'validate'" not in out


def test_dvc_exp_run_with_a_param(own_copy):
    out = _sh(own_copy, "dvc", "exp", "run", "features", "-S", "labels.horizon_days=90")
    assert "Running stage 'features'" in out
    assert "Running stage 'generate'" not in out
    shown = _sh(own_copy, "dvc", "exp", "show", "--no-pager", "--csv")
    assert "labels.horizon_days" in shown and ",90," in shown


def test_dvc_exp_run_with_observation_dates_given_as_strings(own_copy):
    """`-S data.start=2021-01-01 -S snapshots.start=2021-06-30`: DVC hands the dates over as
    strings; the features stage parses them, masks windows before data.start and warns that the
    snapshots start inside the warm-up."""
    args = ("-S", "data.start=2021-01-01", "-S", "snapshots.start=2021-06-30")
    out = _sh(own_copy, "dvc", "exp", "run", "features", *args)
    assert "Running stage 'features'" in out and "Running stage 'generate'" not in out
    params = yaml.safe_load((own_copy / "params.yaml").read_text())
    assert str(params["data"]["start"]) == "2021-01-01"
    summary = yaml.safe_load((own_copy / "reports/features_summary.json").read_text())
    assert summary["data_start"] == "2021-01-01"
    assert any("snapshots.start 2021-06-30" in w and "data.start 2021-01-01" in w
               for w in summary["warnings"])  # fmt: skip
    import pandas as pd

    table = pd.read_parquet(own_copy / "data/features/feature_table.parquet")
    first = table[table["as_of"] == table["as_of"].min()]
    assert str(first["as_of"].iloc[0].date()) == "2021-06-30"
    assert first["pay_late_n_365"].isna().all() and first["pay_late_n_90"].notna().any()
