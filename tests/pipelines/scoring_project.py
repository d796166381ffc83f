"""The trained project the `tierwise score` tests share (test_score.py, test_score_spark.py):
a small world trained and registered, and the CLI run in its root. Each test module builds its
own (module-scoped fixtures), so the two files run in parallel under pytest-xdist."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines import evaluate, features, generate, train, validate
from pipelines.cli import app
from pipelines.config import Config, load_config

REPO = Path(__file__).resolve().parents[2]
AS_OF = "2022-12-31"
FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20,
        "min_child_samples": 20}  # fmt: skip


def write_params(root: Path, name: str, **changes: dict) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["generate"] |= {"customers": 400, "years": 3, "seed": 5}
    params["split"] |= {"test_snapshots": 3, "validation_snapshots": 2}
    params["train"]["churn"] |= FAST
    params["train"]["tier"] |= FAST
    for section, values in changes.items():
        params[section] |= values
    path = root / name
    path.write_text(yaml.safe_dump(params))
    return path


def trained_project(tmp_path_factory) -> Iterator[Config]:
    """A trained and registered small world; MLflow's store in the project root."""
    root = tmp_path_factory.mktemp("score")
    cfg = load_config(write_params(root, "params.yaml"))
    write_params(root, "chunked.yaml", features={"chunk_customers": 150})
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
    try:
        for stage in (generate, validate, features, train, evaluate):
            stage.run(cfg)
        yield cfg
    finally:
        mp.undo()


def score_cli(project: Config, monkeypatch):
    """Run `tierwise score` in the project root; returns (exit code, output)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project.root / 'mlruns.db'}")
    monkeypatch.chdir(project.root)

    def invoke(*args: str, params: str = "params.yaml"):
        base = ["score", "--data", "data/world", "--as-of", AS_OF, "-p", params]
        result = CliRunner().invoke(app, [*base, *args])
        return result.exit_code, result.output

    return invoke


def read_scores(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)
