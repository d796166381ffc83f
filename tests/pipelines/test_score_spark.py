"""`tierwise score --engine spark` (local[2]) against the pandas engine on the same small
project (tests/pipelines/scoring_project.py): the same rows and monitor, also on a book whose raw
tables are larger than the Spark driver's memory. A file of its own so that pytest-xdist runs it
beside test_score.py."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from features.contract import CUSTOMER_ID
from features.synthetic import generate_world
from pipelines.cli import EXIT_EXISTS
from pipelines.config import Config
from pipelines.io import load_raw_tables
from tests.pipelines.scoring_project import AS_OF, read_scores, score_cli, trained_project

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Iterator[Config]:
    yield from trained_project(tmp_path_factory)


@pytest.fixture
def cli(project: Config, monkeypatch):
    return score_cli(project, monkeypatch)


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
    expected = read_scores(local)
    got = read_scores(spark)
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


BIG_BOOK = 70_000  # customers: CSV tables of about 600 MiB as pandas reads them
# about the least a Spark driver starts with; 35,000 customers (330 MiB) in a 256 MiB driver with
# Spark's reserve lifted passed alone but ran out of memory in a full `make test` (docs/spark.md)
DRIVER_MEMORY_MIB = 512


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
    # no reasons: the small project above compares them; this test is about the driver memory
    code, output = cli("--data", str(data), "--out", str(local), "--explain", "none")
    assert code == 0, output
    done = subprocess.run(  # a JVM of its own: the driver memory is fixed when it starts
        [str(Path(sys.executable).parent / "tierwise"), "score", "--data", str(data),
         "--as-of", AS_OF, "-p", "params.yaml", "--out", str(spark), "--engine", "spark",
         "--master", "local[2]", "--conf", f"spark.driver.memory={DRIVER_MEMORY_MIB}m",
         "--explain", "none"],
        cwd=project.root, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    heap = int(re.search(r"driver JVM heap (\d+) MiB", done.stderr + done.stdout)[1])
    assert heap <= DRIVER_MEMORY_MIB < raw_bytes / 2**20
    _engines_agree(read_scores(local), read_scores(spark))


# a JVM that runs out of memory reports it in the failed call, or stops the context (the call
# then fails on the stopped scheduler) or exits: the last made sure of by the JVM's own option
OUT_OF_MEMORY = {
    "reported": ([], "cannot score Spark ran out of memory (java.lang.OutOfMemoryError"),
    "jvm_exits": (["--conf", "spark.driver.extraJavaOptions=-XX:+ExitOnOutOfMemoryError"],
                  "cannot score Spark stopped mid-job ("),
}  # fmt: skip


@pytest.mark.usefixtures("spark")
@pytest.mark.parametrize("how", OUT_OF_MEMORY)
def test_spark_out_of_memory_is_a_clear_error_and_no_file(project, tmp_path, how):
    """A driver too small for the book (64 MiB; Spark's 450 MiB floor lifted by its testing
    setting) fails with exit 2 and what to raise, not a traceback nor an unreadable-file error
    (the OOM surfaces while the tables are read), and writes nothing; also when the JVM dies of
    it, which leaves no cause in the failed call."""
    if shutil.which("java") is None:
        pytest.skip("Spark needs Java 17+ on PATH")
    extra, said = OUT_OF_MEMORY[how]
    out = tmp_path / "spark.parquet"
    done = subprocess.run(  # a JVM of its own: the driver memory is fixed when it starts
        [str(Path(sys.executable).parent / "tierwise"), "score", "--data", "data/world",
         "--as-of", AS_OF, "-p", "params.yaml", "--out", str(out), "--engine", "spark",
         "--master", "local[2]", "--conf", "spark.driver.memory=64m",
         "--conf", "spark.testing.reservedMemory=0", *extra, "--explain", "none"],
        cwd=project.root, capture_output=True, text=True, timeout=600, check=False,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output[-3000:]
    assert said in output, output
    assert "spark.driver.memory" in output.split("cannot score", 1)[1]
    assert "Traceback" not in output and "invalid input data" not in output
    assert list(tmp_path.iterdir()) == []
