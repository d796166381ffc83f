"""The code of the registered tierwise-survival model (MLflow "models from code").

MLflow stores a copy of this file with each version and runs it on load; ``booster.txt`` and
``model.json`` (models/serving/survival.py) hold the model as data. From the installed tierwise
package it imports only ``models.serving.outputs.read_model_spec`` and
``models.serving.survival.survival_frame``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd

from models.serving.outputs import read_model_spec
from models.serving.survival import survival_frame


class TierwiseSurvivalModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.spec = read_model_spec(context.artifacts["spec"], "survival")
        self.booster = lgb.Booster(model_str=Path(context.artifacts["booster"]).read_text())

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        explain = str((params or {}).get("explain") or "none")
        return survival_frame(model_input, self.booster, self.spec, explain)


mlflow.models.set_model(TierwiseSurvivalModel())
