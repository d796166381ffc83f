"""DVC runs for real: repro is idempotent, a param change re-runs only what is downstream, and
`dvc exp run -S` works. The pipeline up to `features` runs on a small world in a scratch repo."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COPY = ["dvc.yaml", "params.yaml", ".dvcignore", "features", "pipelines", "models"]

pytestmark = pytest.mark.slow


def _sh(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("dvcrepo")
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["generate"].update(customers=250, years=3)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text("__pycache__/\n")
    _sh(repo, "git", "init", "-q")
    _sh(repo, "git", "config", "user.name", "tierwise test")
    _sh(repo, "git", "config", "user.email", "test@tierwise.invalid")
    _sh(repo, "dvc", "init", "-q")
    _sh(repo, "dvc", "config", "core.analytics", "false")
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-qm", "scratch")
    return repo


def test_repro_twice_does_nothing_the_second_time(repo):
    first = _sh(repo, "dvc", "repro", "features")
    assert "Running stage 'generate'" in first and "Running stage 'features'" in first
    second = _sh(repo, "dvc", "repro", "features")
    assert "Running stage" not in second


def test_a_param_change_reruns_only_downstream_stages(repo):
    _sh(repo, "dvc", "repro", "features")
    params = yaml.safe_load((repo / "params.yaml").read_text())
    params["labels"]["horizon_days"] = 120
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    out = _sh(repo, "dvc", "repro", "features")
    assert "Running stage 'features'" in out
    assert "Running stage 'generate'" not in out and "Running stage 'validate'" not in out


def test_dvc_exp_run_with_a_param(repo):
    _sh(repo, "git", "add", "-A")
    _sh(repo, "git", "commit", "-qm", "lock")
    out = _sh(repo, "dvc", "exp", "run", "features", "-S", "labels.horizon_days=90")
    assert "Running stage 'features'" in out
    shown = _sh(repo, "dvc", "exp", "show", "--no-pager", "--csv")
    assert "labels.horizon_days" in shown and ",90," in shown
