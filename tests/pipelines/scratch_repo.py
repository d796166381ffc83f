"""A scratch copy of the project as its own git + DVC repository, for the tests that run DVC for
real (test_dvc*.py): the pipeline's code and params, a params edit, `git init`, `dvc init`, one
commit."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
COPY = ["dvc.yaml", "params.yaml", ".dvcignore", "features", "pipelines", "models"]
IGNORE = "__pycache__/\n/mlruns.db\n/mlartifacts/\n"


def run(cwd: Path, *args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """``args`` in ``cwd`` with this interpreter's bin first on PATH (tierwise, dvc)."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, **(env or {})}
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, check=False)


def sh(cwd: Path, *args: str, env: dict | None = None) -> str:
    """``run``, asserting success; its stdout and stderr."""
    done = run(cwd, *args, env=env)
    assert done.returncode == 0, f"{' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout + done.stderr


def scratch_repo(
    repo: Path,
    edit_params: Callable[[dict], None],
    prepare: Callable[[Path], None] | None = None,
    gitignore: str = IGNORE,
) -> Path:
    """The project copied into ``repo`` with ``edit_params`` applied to its params.yaml (and
    ``prepare(repo)`` run, e.g. to write a data directory), committed as a git + DVC repo."""
    repo.mkdir(parents=True, exist_ok=True)
    for name in COPY:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, repo / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(src, repo / name)
    if prepare is not None:
        prepare(repo)
    params = yaml.safe_load((repo / "params.yaml").read_text())
    edit_params(params)
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / ".gitignore").write_text(gitignore)
    for args in (("git", "init", "-q"), ("git", "config", "user.name", "tierwise test"),
                 ("git", "config", "user.email", "test@tierwise.invalid"), ("dvc", "init", "-q"),
                 ("dvc", "config", "core.analytics", "false"), ("git", "add", "-A"),
                 ("git", "commit", "-qm", "scratch")):  # fmt: skip
        sh(repo, *args)
    return repo
