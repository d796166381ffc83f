"""`tierwise score` end to end on a small world: train -> evaluate registers both champions -> the
CLI scores a contract directory as of a date. The file equals what a fresh process gets from the
registry, does not depend on the chunking or on the run, fails without leaving files behind, and
the Spark engine gives the same rows (test_score_spark.py)."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.build import build_feature_table
from features.contract import CUSTOMER_ID
from models.columns import NEXT_TIER_COLUMNS
from models.serving import score as serving_score
from models.serving.score import churn_output_columns, score_columns
from pipelines import score as score_stage
from pipelines.cli import EXIT_EXISTS, EXIT_INVALID
from pipelines.config import Config
from pipelines.io import read_contract
from tests.pipelines.scoring_project import (
    AS_OF,
    read_scores,
    score_cli,
    trained_project,
    write_params,
)

pytestmark = pytest.mark.slow
FRESH_PROCESS = """
import sys
import mlflow
import pandas as pd
rows = pd.read_parquet(sys.argv[1])
churn = mlflow.pyfunc.load_model("models:/tierwise-churn@champion").predict(rows)
tier = mlflow.pyfunc.load_model("models:/tierwise-tier@champion").predict(rows)
pd.concat([churn, tier], axis=1).to_parquet(sys.argv[2])
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Config]:
    yield from trained_project(tmp_path_factory)


@pytest.fixture
def cli(project: Config, monkeypatch):
    return score_cli(project, monkeypatch)


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
    scores = read_scores(out)
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
    consumer = read_scores(answers)
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
    scores = read_scores(one)
    # Other chunks: the same rows; the displayed reason contributions may differ in the last bit
    # (BLAS sums the group contributions of a larger matrix in another order).
    pd.testing.assert_frame_equal(
        read_scores(chunked), scores, check_exact=False, rtol=1e-12, atol=0
    )
    assert csv.read_bytes() == csv_again.read_bytes()
    pd.testing.assert_frame_equal(_read_csv(csv, scores), read_scores(chunked), check_exact=True)


def test_explain_at_risk_gives_reasons_to_the_high_band_only(cli, tmp_path):
    full, at_risk = tmp_path / "all.parquet", tmp_path / "at_risk.parquet"
    assert cli("--out", str(full), "--explain", "all")[0] == 0
    assert cli("--out", str(at_risk), "--explain", "at_risk")[0] == 0
    full, at_risk = read_scores(full), read_scores(at_risk)
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

    write_params(project.root, "h90.yaml", labels={"horizon_days": 90})
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
    write_params(project.root, "slices.yaml", features={"chunk_customers": 25})
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


def test_the_workers_run_this_code_whatever_packages_the_working_directory_holds(project, tmp_path):
    """`tierwise score` in a directory with packages of tierwise's names (another checkout, a
    project's own models/): its worker processes import tierwise's code, not those packages."""
    here = tmp_path / "elsewhere"
    marker = tmp_path / "imported.txt"
    for package in ("pipelines", "models", "features"):
        (here / package).mkdir(parents=True)
        (here / package / "__init__.py").write_text(
            f"open({str(marker)!r}, 'a').write({package!r} + '\\n')\n", encoding="utf-8"
        )
    out = tmp_path / "scores.parquet"
    args = ["tierwise", "score", "--data", str(project.root / "data/world"), "--as-of", AS_OF,
            "--out", str(out), "--explain", "none", "--workers", "2",
            "-p", str(project.root / "chunked.yaml")]  # fmt: skip
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "MLFLOW_TRACKING_URI": f"sqlite:///{project.root / 'mlruns.db'}"}  # fmt: skip
    done = subprocess.run(args, cwd=here, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "slices in 2 worker processes" in " ".join(done.stderr.split())
    assert not marker.exists(), marker.read_text()
    assert len(read_scores(out)) > 0
