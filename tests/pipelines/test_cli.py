"""pipelines/cli.py through typer's CliRunner: `--help` lists every stage, and the exit codes of
the module docstring: 0 success, 2 invalid params or data, 3 an output that exists."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from pipelines.cli import EXIT_EXISTS, EXIT_INVALID, STAGES, app

runner = CliRunner()
PARAMS = Path(__file__).resolve().parents[2] / "params.yaml"


def _params(folder: Path, **sections: dict) -> str:
    raw = yaml.safe_load(PARAMS.read_text())
    for name, values in sections.items():
        raw[name].update(values)
    path = folder / "params.yaml"
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """A scratch project with a tiny generated world: `tierwise generate` exits 0."""
    root = tmp_path_factory.mktemp("cli")
    params = _params(root, generate={"customers": 40, "years": 2})
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        result = runner.invoke(app, ["generate", "--params", params])
    assert result.exit_code == 0, result.output
    return root


def test_help_lists_every_stage():
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    stages = yaml.safe_load((PARAMS.parent / "dvc.yaml").read_text())["stages"]
    for name in [*STAGES, *stages, "features", "score", "promote"]:
        assert f" {name} " in result.output, name


def test_generate_writes_the_world(project):
    assert sorted(p.name for p in (project / "data/world").iterdir()) == [
        f"{name}.parquet"
        for name in ("campaigns", "customers", "interactions", "loans", "repayments", "surveys")
    ]


def test_invalid_params_exit_2_and_name_the_key(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = tmp_path / "params.yaml"
    params.write_text(PARAMS.read_text().replace("horizon_days:", "horizon_dayz:"))
    for command in ("generate", "validate", "features", "train"):
        result = runner.invoke(app, [command, "--params", str(params)])
        assert result.exit_code == EXIT_INVALID, command
        assert "labels.horizon_dayz" in result.output
    assert list(tmp_path.iterdir()) == [params]


def test_missing_input_exits_2(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["train", "--params", _params(tmp_path)])
    assert result.exit_code == EXIT_INVALID and "missing input" in result.output


def test_one_date_features_exit_0_then_3_without_overwrite(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    out = tmp_path / "one.parquet"
    args = ["features", "--params", str(project / "params.yaml"), "--data", "data/world"]
    args += ["--as-of", "2021-06-30", "--out", str(out)]
    assert runner.invoke(app, args).exit_code == 0
    before = out.read_bytes()
    assert len(pd.read_parquet(out)) > 0
    again = runner.invoke(app, args)
    assert again.exit_code == EXIT_EXISTS and "refusing to overwrite" in again.output
    assert out.read_bytes() == before
    bad_date = runner.invoke(app, [*args[:-3], "--as-of", "someday", "--out", str(out)])
    assert bad_date.exit_code == EXIT_INVALID


def test_cli_rejects_bad_data_and_writes_nothing(project, tmp_path, monkeypatch):
    bad = tmp_path / "bad"
    bad.mkdir()
    loans = pd.read_parquet(project / "data/world/loans.parquet")
    loans.assign(principal=-1.0).to_parquet(bad / "loans.parquet")
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["validate", "--params", _params(tmp_path, data={"dir": str(bad)})])
    assert result.exit_code == EXIT_INVALID
    assert "loans" in result.output and "principal" in result.output
    assert not (tmp_path / "data").exists() and not (tmp_path / "reports").exists()


def _features(project: Path, *args: str):
    base = ["features", "--params", str(project / "params.yaml"), "--data"]
    return runner.invoke(app, [*base, *args])


def test_one_date_features_refuse_a_bad_out_before_any_work(project, tmp_path, monkeypatch):
    """The --out checks come first: with a data directory that does not exist, the answer is
    still about --out (nothing was read or built)."""
    monkeypatch.chdir(project)
    nowhere = str(tmp_path / "nowhere")
    bad = _features(project, nowhere, "--as-of", "2021-06-30", "--out", str(tmp_path / "x.json"))
    assert bad.exit_code == EXIT_INVALID and "unsupported extension '.json'" in bad.output
    (tmp_path / "old.csv").write_text("old")
    exists = _features(
        project, nowhere, "--as-of", "2021-06-30", "--out", str(tmp_path / "old.csv")
    )
    assert exists.exit_code == EXIT_EXISTS and "refusing to overwrite" in exists.output
    assert "Traceback" not in bad.output + exists.output


def test_one_date_features_before_any_data_exit_2(project, tmp_path, monkeypatch):
    monkeypatch.chdir(project)
    out = tmp_path / "early.parquet"
    result = _features(project, "data/world", "--as-of", "2019-01-31", "--out", str(out))
    assert result.exit_code == EXIT_INVALID, result.output
    assert "no customer is known at 2019-01-31" in result.output
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_validate_any_directory_with_a_report(project, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    params = _params(tmp_path)
    report = tmp_path / "out" / "report.json"
    args = ["validate", "--params", params, "--data", str(project / "data/world")]
    result = runner.invoke(app, [*args, "--report", str(report)])
    assert result.exit_code == 0, result.output
    written = yaml.safe_load(report.read_text())
    assert written["tables"]["loans"]["rows_out"] > 0 and written["data_end"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out", "params.yaml"]  # no tables

    empty = tmp_path / "empty"
    empty.mkdir()
    pd.read_parquet(project / "data/world/loans.parquet").head(0).to_csv(
        empty / "loans.csv", index=False
    )
    result = runner.invoke(app, ["validate", "--params", params, "--data", str(empty)])
    assert result.exit_code == EXIT_INVALID and "required table has rows" in result.output
    assert "Traceback" not in result.output


def test_an_interrupt_exits_non_zero_with_one_line_and_no_file(project, tmp_path, monkeypatch):
    from pipelines import slices as stage  # `features --as-of` builds the rows slice by slice

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.chdir(project)
    monkeypatch.setattr(stage, "build_feature_table", interrupted)
    out = tmp_path / "one.parquet"
    result = _features(project, "data/world", "--as-of", "2021-06-30", "--out", str(out))
    assert result.exit_code == 130
    assert "interrupted by SIGINT: nothing was written" in result.output
    assert list(tmp_path.iterdir()) == []


def test_the_cli_starts_without_the_model_libraries():
    """Every DVC stage and `tierwise` call starts the CLI: it imports scikit-learn, SciPy's
    statistics, LightGBM and MLflow only in the commands that use them (about 1.4 s of the
    2.8 s start measured when it did not)."""
    heavy = ("sklearn", "scipy.stats", "lightgbm", "mlflow")
    code = f"import sys, pipelines.cli; print([m for m in {heavy!r} if m in sys.modules])"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).resolve().parents[2])  # fmt: skip
    assert done.stdout.strip() == "[]", done.stdout + done.stderr
