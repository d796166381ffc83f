"""`mlflow models serve --env-manager local` of the registered churn model, called with a real
HTTP client: every answer is JSON per RFC 8259 (nulls, never NaN), dormant, churned and prospect
rows included, and a bad request gets a one-line 4xx message, never a stack trace."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.registry import LIFECYCLE_STATE, STATE_COLUMNS
from models.columns import CHURN_PROBABILITY, RISK_BAND
from models.serving import registry
from models.serving.outputs import NullFrame, request_problem
from models.serving.pyfunc import RegisteredTierModel
from models.serving.score import churn_output_columns

pytestmark = pytest.mark.slow


def _strict(text: str):
    """json.loads that refuses NaN, Infinity and -Infinity (not JSON, RFC 8259 section 6)."""

    def refuse(constant: str):
        raise ValueError(f"not JSON: bare {constant}")

    return json.loads(text, parse_constant=refuse)


def test_null_frame_gives_nulls_to_json_and_stays_a_float_frame():
    frame = NullFrame({"p": [0.25, np.nan], "band": ["low", None]})
    assert frame["p"].dtype == float and np.isnan(frame["p"].iloc[1])
    records = frame.to_dict(orient="records")
    assert records == [{"p": 0.25, "band": "low"}, {"p": None, "band": None}]
    assert _strict(json.dumps(records)) == records


def test_request_problems_are_one_line():
    spec = {"kind": "churn", "features": ["a", "b"]}
    rows = pd.DataFrame({"a": [1.0], "b": [2.0]})
    assert request_problem(spec, rows, {"explain": "at_risk"}) is None
    assert "explain must be one of" in request_problem(spec, rows, {"explain": "bogus"})
    assert request_problem(spec, rows[["a"]], None) == ("input lacks 1 model feature column(s): b")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server(tmp_path_factory, trained, scoring_model, score_rows):
    """The champion registered as the evaluate stage registers it, served on a free port."""
    root = tmp_path_factory.mktemp("serve")
    uri = f"sqlite:///{root / 'mlruns.db'}"
    mp = pytest.MonkeyPatch()
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    example = score_rows.head(5).reset_index(drop=True)
    entries = [
        # required=(): as pipelines/evaluate.py registers them (the model checks its columns)
        registry.ModelEntry(kind, model, example[model.input_columns()], (), True, "test")
        for kind, model in (
            ("churn", scoring_model), ("tier", RegisteredTierModel(trained.models.tier))
        )
    ]  # fmt: skip
    registry.log_run(root, registry.RunRecord("tierwise-serve", {}, {}, {}), entries)
    mp.undo()
    port = _free_port()
    mlflow = Path(sys.executable).parent / "mlflow"
    path = f"{mlflow.parent}{os.pathsep}{os.environ['PATH']}"  # the server runs the venv's uvicorn
    log = (root / "serve.log").open("w")
    process = subprocess.Popen(
        [str(mlflow), "models", "serve", "-m", "models:/tierwise-churn@champion",
         "--env-manager", "local", "--host", "127.0.0.1", "-p", str(port), "-w", "1"],
        cwd=root, env={**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": path}, stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 240
        while True:
            try:
                with urllib.request.urlopen(f"{base}/ping", timeout=5) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(
                    f"mlflow models serve did not start:\n{(root / 'serve.log').read_text()}"
                )
            time.sleep(1)
        yield base
    finally:
        process.terminate()
        process.wait(timeout=30)
        log.close()


def _post(base: str, rows: pd.DataFrame, params: dict | None = None) -> tuple[int, str]:
    split = json.loads(rows.to_json(orient="split", index=False))  # NaN inputs as null
    body = {"dataframe_split": split} | ({"params": params} if params else {})
    request = urllib.request.Request(
        f"{base}/invocations",
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as answer:
            return answer.status, answer.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def _request_rows(score_rows: pd.DataFrame, scoring_model) -> pd.DataFrame:
    """Every kind of customer: active, dormant, churned and prospects (states and features)."""
    columns = [*STATE_COLUMNS, *scoring_model.features]
    picked = score_rows.groupby(LIFECYCLE_STATE, group_keys=False).head(4)
    return picked.loc[:, columns].reset_index(drop=True)


def test_served_answers_are_json_with_nulls(server, scoring_model, score_rows):
    rows = _request_rows(score_rows, scoring_model)
    assert {"dormant", "churned", "potential", "active"} <= set(rows[LIFECYCLE_STATE])
    for params in (None, {"explain": "watch"}, {"explain": "none"}):
        status, text = _post(server, rows, params)
        assert status == 200, text
        answer = _strict(text)["predictions"]  # bare NaN would raise here
        assert len(answer) == len(rows) and list(answer[0]) == churn_output_columns(3)
        expected = scoring_model.predict_frame(rows, **(params or {}))
        for got, (_, want) in zip(answer, expected.iterrows(), strict=True):
            if pd.isna(want[CHURN_PROBABILITY]):  # dormant, churned, prospects
                assert got[CHURN_PROBABILITY] is None and got[RISK_BAND] is None
            else:
                assert got[CHURN_PROBABILITY] == pytest.approx(want[CHURN_PROBABILITY])
            assert got["strategy_1"] == want["strategy_1"]
            assert got["strategy_1_name"] and got["strategy_1_source"]
        assert "" not in {v for row in answer for v in row.values()}


@pytest.mark.parametrize(
    "case", ["bogus explain", "missing column"], ids=["bad-param", "missing-column"]
)
def test_bad_requests_get_one_line_4xx(server, scoring_model, score_rows, case):
    rows = _request_rows(score_rows, scoring_model)
    if case == "bogus explain":
        status, text = _post(server, rows, {"explain": "bogus"})
        expected = "params explain must be one of all, at_risk, watch, none; got 'bogus'"
    else:
        dropped = scoring_model.features[0]
        status, text = _post(server, rows.drop(columns=[dropped]))
        expected = f"input lacks 1 model feature column(s): {dropped}"
    assert 400 <= status < 500, text
    answer = _strict(text)
    assert answer["message"] == expected
    assert "stack_trace" not in answer and "Traceback" not in text and len(text) < 400
