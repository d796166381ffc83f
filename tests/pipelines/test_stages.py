"""Stages run through `run(cfg)` and the CLI, with every path in tmp_path (params checks:
test_config.py; CLI exit codes on a tiny world: test_cli.py)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from pipelines import features as features_stage
from pipelines import generate, validate
from pipelines.cli import EXIT_EXISTS, EXIT_INVALID, app
from pipelines.config import config_with, load_config
from pipelines.io import load_json, load_tables

runner = CliRunner()
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


@pytest.fixture(scope="module")
def cfg(tmp_path_factory):
    root = tmp_path_factory.mktemp("stages")
    base = load_config(PARAMS, root=root)
    return config_with(
        base, generate={"customers": 300, "years": 3}, data={"dir": root / "data/world"}
    )


@pytest.fixture(scope="module")
def built(cfg):
    generate.run(cfg)
    validate.run(cfg)
    return pd.read_parquet(features_stage.run(cfg))


def test_stages_write_their_outputs(cfg, built):
    for path in (
        cfg.paths.world / "loans.parquet",
        cfg.paths.validation_report,
        cfg.paths.features,
    ):
        assert cfg.path(path).exists(), path
    table = pd.read_parquet(cfg.path(cfg.paths.features))
    assert len(table) == len(built)
    assert table[["customer_id", "as_of"]].duplicated().sum() == 0
    assert table["churned"].notna().sum() > 0
    summary = load_json(cfg.path(cfg.paths.features_summary))
    labelled = table[table["label_available"] & table["churned"].notna()]
    assert summary["rows"] == len(table) and summary["labelled_rows"] == len(labelled)
    assert summary["churn_rate"] == round(labelled["churned"].mean(), 4)
    tables = load_tables(cfg.path(cfg.paths.validated))
    assert tables.repayments is not None and len(tables.loans) > 0


def _params_for(tmp_path, data_dir) -> str:
    text = PARAMS.read_text().replace("dir: data/world", f"dir: {data_dir}")
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return str(path)


def test_cli_features_for_one_date_and_no_silent_overwrite(tmp_path, cfg, built, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params_for(tmp_path, cfg.path(cfg.paths.world))
    out = tmp_path / "one.csv"
    args = [
        "features",
        "--params",
        params,
        "--data",
        str(cfg.path(cfg.paths.world)),
        "--as-of",
        "2022-06-30",
        "--out",
        str(out),
    ]
    assert runner.invoke(app, args).exit_code == 0
    rows = pd.read_csv(out)
    grid = built[built["as_of"] == "2022-06-30"]
    assert len(rows) == len(grid) and set(rows["customer_id"]) == set(grid["customer_id"])
    merged = rows.merge(grid, on="customer_id", suffixes=("", "_grid"))
    assert (merged["loan_exposure"] - merged["loan_exposure_grid"]).abs().max() < 1e-6
    before = out.read_bytes()
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_EXISTS and out.read_bytes() == before
    assert runner.invoke(app, [*args, "--overwrite"]).exit_code == 0
    not_a_date = [a if a != "2022-06-30" else "last friday" for a in args]
    assert runner.invoke(app, [*not_a_date, "--overwrite"]).exit_code == EXIT_INVALID
