"""The code of the registered tierwise-survival model (MLflow "models from code").

MLflow stores a copy of this file with each version and runs it on load; ``booster.txt`` and
``model.json`` (models/serving/survival.py) hold the model as data. From the installed tierwise
package it imports only ``models.serving.outputs.FORMAT_VERSION`` and
``models.serving.survival.survival_frame``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd

from models.serving.outputs import FORMAT_VERSION
from models.serving.survival import survival_frame


class TierwiseSurvivalModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text(encoding="utf-8"))
        if spec.get("format_version") != FORMAT_VERSION or spec.get("kind") != "survival":
            raise ValueError(
                f"model format {spec.get('format_version')!r} of kind {spec.get('kind')!r}: "
                f"the installed tierwise reads survival models of format {FORMAT_VERSION}"
            )
        self.spec = spec
        self.booster = lgb.Booster(model_str=Path(context.artifacts["booster"]).read_text())

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        explain = str((params or {}).get("explain") or "none")
        return survival_frame(model_input, self.booster, self.spec, explain)


mlflow.models.set_model(TierwiseSurvivalModel())
