"""The code of every registered tierwise model (MLflow "models from code").

MLflow stores a copy of this file with each version and runs it on load; the version's files
hold the rest as data (models/serving/artifacts.py): ``booster.txt`` (LightGBM's model text) and
``model.json``. ``load_context`` rebuilds the model from those two files, so loading unpickles
nothing and needs no tierwise class under any import path.

From the installed tierwise package this file imports only these functions, a contract with
every stored copy (docs/scoring.md, "How a version is stored"):

- ``models.serving.outputs``: ``FORMAT_VERSION``, ``calibrate``, ``churn_frame``, ``tier_frame``
  (which use ``models.explain.frame``'s TreeSHAP and reason functions), ``request_problem``;
- ``models.strategies.catalog.parse_catalog`` (the strategy catalog stored as data);
- ``models.serving.task.check_task`` (a version's task, in its ``model_config``, refuses a
  request for another task: predict params ``horizon_days`` / ``active_window_days``).
"""

from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd
from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import INVALID_PARAMETER_VALUE

from models.serving.outputs import (
    FORMAT_VERSION,
    calibrate,
    churn_frame,
    request_problem,
    tier_frame,
)
from models.serving.task import TaskMismatchError, check_task
from models.strategies.catalog import parse_catalog


class RequestError(MlflowException):
    """A request the model cannot answer: one line for the client, HTTP 400 from
    ``mlflow models serve``. MLflow's scoring server prefixes the message of any MlflowException
    raised in ``predict`` with a dump of the whole input frame (``e.message = ...``); this
    exception keeps the line it was made with, and carries no stack trace."""

    @property
    def message(self) -> str:
        return self._line

    @message.setter
    def message(self, value: str) -> None:
        if not hasattr(self, "_line"):  # the first assignment (__init__) only
            self._line = value

    @classmethod
    def of(cls, line: str) -> RequestError:
        return cls(line, error_code=INVALID_PARAMETER_VALUE)


class TierwiseModel(mlflow.pyfunc.PythonModel):
    """tierwise-churn or tierwise-tier, as ``model.json``'s ``kind`` says."""

    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text(encoding="utf-8"))
        if spec.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"model format {spec.get('format_version')!r}; the installed tierwise reads "
                f"format {FORMAT_VERSION}: register the model again"
            )
        self.spec = spec
        # the monitoring reference (docs/monitoring.md); None for versions registered before it
        profile = context.artifacts.get("profile")
        self.profile = json.loads(Path(profile).read_text(encoding="utf-8")) if profile else None
        self.task = (getattr(context, "model_config", None) or {}).get("task")
        self.booster = lgb.Booster(model_str=Path(context.artifacts["booster"]).read_text())
        if spec["kind"] == "churn":
            outputs = spec.get("outputs")
            # checked against the feature groups of its day when registered (not today's)
            self.catalog = None if outputs is None else parse_catalog(outputs["catalog"])
            self.link = partial(calibrate, spec["calibrator"])
        elif spec["kind"] != "tier":
            raise ValueError(f"unknown model kind {spec['kind']!r}")

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        problem = request_problem(self.spec, model_input, params)
        if problem is None:
            try:
                check_task(getattr(self, "task", None), params)
            except TaskMismatchError as err:
                problem = str(err)
        if problem is not None:
            raise RequestError.of(problem)
        if self.spec["kind"] == "tier":
            return tier_frame(model_input, self.booster, self.spec)
        explain = (params or {}).get("explain", "all")
        return churn_frame(model_input, self.booster, self.spec, self.link, self.catalog, explain)


mlflow.models.set_model(TierwiseModel())
