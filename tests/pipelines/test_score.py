"""`tierwise score` end to end on a small world: train -> evaluate registers both champions -> the
CLI scores a contract directory as of a date. The file equals what a fresh process gets from the
registry, does not depend on the chunking or on the run, fails without leaving files behind, and
the Spark engine (local[2]) gives the same rows, also on a book whose raw tables are larger than
the Spark driver's memory."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from features.build import build_feature_table
from features.contract import CUSTOMER_ID
from features.synthetic import generate_world
from models.columns import NEXT_TIER_COLUMNS
from models.serving import score as serving_score
from models.serving.score import churn_output_columns, score_columns
from pipelines import evaluate, features, generate, train, validate
from pipelines import score as score_stage
from pipelines.cli import EXIT_EXISTS, EXIT_INVALID, app
from pipelines.config import Config, load_config
from pipelines.io import load_raw_tables, read_contract

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
AS_OF = "2022-12-31"
FAST = {"n_estimators": 150, "learning_rate": 0.1, "early_stopping_rounds": 20,
        "min_child_samples": 20}  # fmt: skip
FRESH_PROCESS = """
import sys
import mlflow
import pandas as pd
rows = pd.read_parquet(sys.argv[1])
churn = mlflow.pyfunc.load_model("models:/tierwise-churn@champion").predict(rows)
tier = mlflow.pyfunc.load_model("models:/tierwise-tier@champion").predict(rows)
pd.concat([churn, tier], axis=1).to_parquet(sys.argv[2])
"""


def _write_params(root: Path, name: str, **changes: dict) -> Path:
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


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Config:
    """A trained and registered small world; MLflow's store in the project root."""
    root = tmp_path_factory.mktemp("score")
    cfg = load_config(_write_params(root, "params.yaml"))
    _write_params(root, "chunked.yaml", features={"chunk_customers": 150})
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{root / 'mlruns.db'}")
    try:
        for stage in (generate, validate, features, train, evaluate):
            stage.run(cfg)
        yield cfg
    finally:
        mp.undo()


@pytest.fixture
def cli(project: Config, monkeypatch):
    """Run `tierwise score` in the project root; returns (exit code, output)."""
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{project.root / 'mlruns.db'}")
    monkeypatch.chdir(project.root)

    def invoke(*args: str, params: str = "params.yaml"):
        base = ["score", "--data", "data/world", "--as-of", AS_OF, "-p", params]
        result = CliRunner().invoke(app, [*base, *args])
        return result.exit_code, result.output

    return invoke


def _read(path: Path) -> pd.DataFrame:
    return pd.read_parquet(path)


def _read_csv(path: Path, like: pd.DataFrame) -> pd.DataFrame:
    frame = pd.read_csv(path, keep_default_na=False, na_values=[""], float_precision="round_trip")
    text = [c for c in like.columns if like[c].dtype == object]
    frame = frame.assign(**{c: frame[c].map(str, na_action="ignore") for c in text})
    frame = frame.astype(like.dtypes.to_dict())
    return frame.assign(**{c: frame[c].where(frame[c].notna(), None) for c in text})


def test_scores_equal_the_champions_in_a_fresh_process(project, cli, tmp_path):
    out = tmp_path / "scores.parquet"
    code, output = cli("--out", str(out), "--explain", "all")  # the pyfunc's default
    assert code == 0, output
    scores = _read(out)
    assert list(scores.columns) == score_columns(3)
    tables = read_contract(project.data_dir)[0]
    rows = build_feature_table(tables, pd.DatetimeIndex([AS_OF]), project.defs, project.features)
    assert scores[CUSTOMER_ID].tolist() == sorted(rows[CUSTOMER_ID])  # every known customer
    assert scores["churn_model_name"].eq("tierwise-churn").all()
    assert (
        scores["churn_model_version"].eq("1").all() and scores["tier_model_version"].eq("1").all()
    )
    assert set(scores["risk_band"]) == {None, "low", "medium", "high"}  # nulls, never ""
    gone = scores["lifecycle_state"].eq("churned").to_numpy()  # no tier transition
    assert gone.any() and scores.loc[gone, list(NEXT_TIER_COLUMNS)].isna().all().all()
    assert np.allclose(scores.loc[~gone, list(NEXT_TIER_COLUMNS)].sum(axis=1), 1.0)

    # a consumer with only the project installed: a new interpreter, isolated, elsewhere
    rows_file, answers = tmp_path / "rows.parquet", tmp_path / "answers.parquet"
    rows.sort_values(CUSTOMER_ID, ignore_index=True).to_parquet(rows_file)
    env = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "OMP_WAIT_POLICY": "PASSIVE",
           "MLFLOW_TRACKING_URI": os.environ["MLFLOW_TRACKING_URI"]}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-I", "-c", FRESH_PROCESS, str(rows_file), str(answers)],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    consumer = _read(answers)
    columns = [*churn_output_columns(3), *NEXT_TIER_COLUMNS]
    scores = scores.assign(  # the tier pyfunc answers for churned customers too
        **{c: np.where(gone, consumer[c], scores[c]) for c in NEXT_TIER_COLUMNS}
    )
    # every column exact but the reasons' contributions, which TreeSHAP sums over the rows of
    # one call: the score's slice and the consumer's frame may differ in the last bit
    # (docs/scoring.md, "Memory")
    exact = [c for c in columns if not c.endswith("_contribution")]
    pd.testing.assert_frame_equal(
        consumer[exact], scores[exact], check_exact=True, check_frame_type=False
    )
    near = [c for c in columns if c.endswith("_contribution")]
    pd.testing.assert_frame_equal(
        consumer[near], scores[near], check_exact=False, rtol=1e-12, atol=1e-15,
        check_frame_type=False,
    )  # fmt: skip


def test_same_scores_whatever_the_chunks_run_or_format(cli, tmp_path):
    one, again = tmp_path / "one.parquet", tmp_path / "again.parquet"
    chunked, csv, csv_again = tmp_path / "chunked.parquet", tmp_path / "s.csv", tmp_path / "t.csv"
    for out, params in ((one, "params.yaml"), (again, "params.yaml"), (chunked, "chunked.yaml"),
                        (csv, "chunked.yaml"), (csv_again, "chunked.yaml")):  # fmt: skip
        code, output = cli("--out", str(out), params=params)
        assert code == 0, output
    assert one.read_bytes() == again.read_bytes()  # deterministic
    single = tmp_path / "single.parquet"  # the 3 slices in this process instead of two workers
    code, said = cli("--out", str(single), "--workers", "1", params="chunked.yaml")
    assert code == 0 and "slices in this process" in " ".join(said.split())
    assert single.read_bytes() == chunked.read_bytes()
    assert "3/3 chunks" in output  # 400 customers in slices of 150: a progress bar over chunks
    assert "slices in 2 worker processes" in " ".join(output.split())
    scores = _read(one)
    # Other chunks: the same rows; the displayed reason contributions may differ in the last bit
    # (BLAS sums the group contributions of a larger matrix in another order).
    pd.testing.assert_frame_equal(_read(chunked), scores, check_exact=False, rtol=1e-12, atol=0)
    assert csv.read_bytes() == csv_again.read_bytes()
    pd.testing.assert_frame_equal(_read_csv(csv, scores), _read(chunked), check_exact=True)


def test_explain_at_risk_gives_reasons_to_the_high_band_only(cli, tmp_path):
    full, at_risk = tmp_path / "all.parquet", tmp_path / "at_risk.parquet"
    assert cli("--out", str(full), "--explain", "all")[0] == 0
    assert cli("--out", str(at_risk), "--explain", "at_risk")[0] == 0
    full, at_risk = _read(full), _read(at_risk)
    high = at_risk["risk_band"].eq("high").to_numpy()
    assert high.any() and at_risk.loc[high, "reason_1"].notna().all()
    assert at_risk.loc[~high, ["reason_1", "reason_2", "reason_3"]].isna().all().all()
    pd.testing.assert_frame_equal(at_risk[high], full[high])
    # the others keep their scores and get the strategies of their state alone
    same = [c for c in full.columns if not c.startswith(("reason_", "strategy_"))]
    pd.testing.assert_frame_equal(at_risk[same], full[same])
    assert at_risk["strategy_1"].notna().all()


def test_exit_codes_leave_no_file_behind(project, cli, tmp_path):
    out = tmp_path / "scores.parquet"
    out.write_bytes(b"previous")
    assert cli("--out", str(out))[0] == EXIT_EXISTS
    assert out.read_bytes() == b"previous"

    bad = tmp_path / "bad_world"
    shutil.copytree(project.root / "data/world", bad)
    loans = pd.read_parquet(bad / "loans.parquet")
    loans.assign(principal=-loans["principal"]).to_parquet(bad / "loans.parquet")
    new = tmp_path / "new.parquet"
    cases = {
        "contract violation": ["--data", str(bad)],
        "no such directory": ["--data", str(tmp_path / "nowhere")],
        "unknown version": ["--churn-model", "models:/tierwise-churn/7"],
        "unknown alias": ["--tier-model", "models:/tierwise-tier@retired"],
        "nobody known yet": ["--as-of", "1990-01-31"],
        "not a date": ["--as-of", "last friday"],
        "csv on spark": ["--engine", "spark", "--out", str(tmp_path / "s.csv")],
        "unknown format": ["--out", str(tmp_path / "scores.xlsx")],
    }
    for case, args in cases.items():
        code, output = cli("--out", str(new), *args)
        assert code == EXIT_INVALID, f"{case}: {output}"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad_world", "scores.parquet"]


def test_a_failure_midway_leaves_the_previous_file_and_no_debris(cli, tmp_path, monkeypatch):
    out = tmp_path / "scores.parquet"
    assert cli("--out", str(out), params="chunked.yaml")[0] == 0
    before = out.read_bytes()
    real, calls = serving_score.score_features, []

    def fails_on_the_second_chunk(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("disk on fire")
        return real(*args, **kwargs)

    monkeypatch.setattr(serving_score, "score_features", fails_on_the_second_chunk)
    # in this process (the patch does not reach worker processes)
    code, _ = cli("--out", str(out), "--overwrite", "--workers", "1", params="chunked.yaml")
    assert code == 1 and len(calls) == 2
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


@pytest.mark.usefixtures("spark")  # the session's SparkSession (tests/conftest.py): no new JVM
def test_spark_engine_gives_the_pandas_rows(cli, tmp_path):
    pytest.importorskip("pyspark")
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ on PATH")
    local, spark = tmp_path / "pandas.parquet", tmp_path / "spark.parquet"
    assert cli("--out", str(local), "--monitor")[0] == 0
    code, output = cli("--out", str(spark), "--engine", "spark", "--master", "local[2]",
                       "--monitor")  # fmt: skip
    assert code == 0, output
    assert spark.is_dir()  # Spark writes a Parquet directory of part files
    expected = _read(local)
    got = _read(spark)
    assert list(got.columns) == list(expected.columns)
    got = got.astype(expected.dtypes.to_dict())  # Spark reads timestamps back in microseconds
    assert got[CUSTOMER_ID].tolist() == expected[CUSTOMER_ID].tolist()  # in customer_id order
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)
    assert not got.isin(["None", ""]).any().any()  # missing values are nulls in both engines
    assert cli("--out", str(spark), "--engine", "spark")[0] == EXIT_EXISTS
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "pandas.monitor.json",
        "pandas.parquet",
        "spark.monitor.json",
        "spark.parquet",
    ]
    # the monitor counted on the executors: the same drift and estimates as the pandas book
    on_pandas, on_spark = (json.loads((tmp_path / f"{n}.monitor.json").read_text())
                           for n in ("pandas", "spark"))  # fmt: skip
    for key in ("rows", "drift_share", "features", "score", "risk_bands", "states", "estimated"):
        assert on_spark[key] == on_pandas[key], key
    assert "monitor ok" in output or "monitor warn" in output or "monitor retrain" in output


def test_requests_are_checked_before_any_work(tmp_path):
    def request(**changes) -> score_stage.ScoreRequest:
        base = {"data_dir": tmp_path, "as_of": pd.Timestamp(AS_OF), "out": tmp_path / "s.csv"}
        return score_stage.ScoreRequest(**(base | changes))

    score_stage.check_request(request())
    score_stage.check_request(request(out="hdfs://namenode:8020/scores.parquet", engine="spark"))
    for bad in ({"out": "hdfs://namenode/scores.parquet"}, {"out": tmp_path / "s.json"},
                {"engine": "dask"}, {"explain": "most"}):  # fmt: skip
        with pytest.raises(score_stage.ScoreError):
            score_stage.check_request(request(**bad))


def test_a_model_of_another_task_is_refused_unless_overridden(project, cli, tmp_path):
    """Params with a 90-day horizon against 180-day champions: exit 2 naming both values, before
    any data is read; --ignore-task scores anyway. The stored version refuses a request for
    another task through pyfunc too."""
    import mlflow

    _write_params(project.root, "h90.yaml", labels={"horizon_days": 90})
    out = tmp_path / "scores.parquet"
    code, output = cli("--out", str(out), params="h90.yaml")
    said = " ".join(output.split())
    assert code == EXIT_INVALID, said
    assert "label.horizon_days is 180 for the model but 90 in params" in said
    assert "@champion-h90-a365-l1-" in said and not out.exists()
    code, output = cli("--out", str(out), "--ignore-task", "--explain", "none", params="h90.yaml")
    assert code == 0 and out.exists(), output

    tables = read_contract(project.data_dir)[0]
    rows = build_feature_table(tables, pd.DatetimeIndex([AS_OF]), project.defs, project.features)
    for kind in ("churn", "tier"):
        model = mlflow.pyfunc.load_model(f"models:/tierwise-{kind}@champion")
        assert len(model.predict(rows.head(3), params={"horizon_days": "180"})) == 3
        with pytest.raises(Exception, match="label.horizon_days=180 .* horizon_days=90"):
            model.predict(rows.head(3), params={"horizon_days": "90"})


def _temp_files(folder: Path) -> list[Path]:
    return [p for p in folder.iterdir() if p.name.startswith(".scores.parquet.")]


def _start_score(project: Config, out: Path) -> subprocess.Popen:
    """A real `tierwise score` process, slowed by small slices and reasons for everyone."""
    _write_params(project.root, "slices.yaml", features={"chunk_customers": 25})
    args = ["tierwise", "score", "--data", "data/world", "--as-of", AS_OF, "--out", str(out),
            "--explain", "all", "-p", "slices.yaml"]  # fmt: skip
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    env = {
        **os.environ,
        "PATH": path,
        "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'mlruns.db'}",
    }
    return subprocess.Popen(args, cwd=project.root, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)  # fmt: skip


def _when_writing(process: subprocess.Popen, folder: Path, timeout: float = 240) -> Path:
    """Wait until the process has written part of its temporary file; that file."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = [p for p in _temp_files(folder) if p.stat().st_size > 0]
        if found:
            return found[0]
        assert process.poll() is None, f"finished before it was killed: {process.communicate()}"
        time.sleep(0.05)
    process.kill()
    raise AssertionError("no temporary file appeared")


def test_sigterm_mid_stream_leaves_nothing_and_a_killed_run_is_cleaned_next_time(
    project, cli, tmp_path
):
    out = tmp_path / "scores.parquet"
    process = _start_score(project, out)
    _when_writing(process, tmp_path)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, stderr
    said = " ".join(stderr.split())
    assert "interrupted by SIGTERM: nothing was written" in said and "Traceback" not in said
    assert list(tmp_path.iterdir()) == []

    killed = _start_score(project, out)  # SIGKILL cannot be caught: it leaves its temp file
    leftover = _when_writing(killed, tmp_path)
    assert leftover.name.startswith(f".scores.parquet.tierwise-{killed.pid}-")  # its owner
    killed.kill()
    killed.communicate(timeout=60)
    assert leftover.exists()
    code, output = cli("--out", str(out), "--explain", "none")  # the next run, in process
    assert code == 0, output
    assert not leftover.exists() and "left by an interrupted run" in " ".join(output.split())
    assert [p.name for p in tmp_path.iterdir()] == ["scores.parquet"]


BIG_BOOK = 70_000  # customers: CSV tables of about 600 MiB as pandas reads them
DRIVER_MEMORY_MIB = 512  # about the least a Spark driver starts with


def _engines_agree(expected: pd.DataFrame, got: pd.DataFrame) -> None:
    got = got.astype(expected.dtypes.to_dict())  # Spark reads timestamps back in microseconds
    assert got[CUSTOMER_ID].tolist() == expected[CUSTOMER_ID].tolist()  # in customer_id order
    pd.testing.assert_frame_equal(got, expected, check_exact=False, rtol=1e-9)


@pytest.mark.usefixtures("spark")
def test_spark_scores_a_book_larger_than_the_driver_memory(project, cli, tmp_path):
    """The raw tables never reach the driver: a driver JVM of 512 MiB scores a book whose raw
    tables take more than that in pandas, equal to the pandas engine row for row."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ on PATH")
    world = generate_world(replace(project.generate, customers=BIG_BOOK, years=3, seed=9))
    data = tmp_path / "big"
    data.mkdir()
    for name, frame in world.present().items():
        frame.to_csv(data / f"{name}.csv", index=False)
    del world
    raw_bytes = sum(f.memory_usage(deep=True).sum() for f in load_raw_tables(data).values())
    assert raw_bytes > DRIVER_MEMORY_MIB * 2**20
    local, spark = tmp_path / "pandas.parquet", tmp_path / "spark.parquet"
    code, output = cli("--data", str(data), "--out", str(local))
    assert code == 0, output
    done = subprocess.run(  # a JVM of its own: the driver memory is fixed when it starts
        [str(Path(sys.executable).parent / "tierwise"), "score", "--data", str(data),
         "--as-of", AS_OF, "-p", "params.yaml", "--out", str(spark), "--engine", "spark",
         "--master", "local[2]", "--conf", f"spark.driver.memory={DRIVER_MEMORY_MIB}m"],
        cwd=project.root, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    heap = int(re.search(r"driver JVM heap (\d+) MiB", done.stderr + done.stdout)[1])
    assert heap <= DRIVER_MEMORY_MIB < raw_bytes / 2**20
    _engines_agree(_read(local), _read(spark))
