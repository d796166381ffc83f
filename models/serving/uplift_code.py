"""The code of the registered tierwise-uplift model (MLflow "models from code").

MLflow stores a copy of this file with each version and runs it on load; ``arm_<name>.txt`` and
``model.json`` (models/serving/uplift.py) hold the model as data. From the installed tierwise
package it imports only ``read_model_spec`` and ``models.serving.uplift``'s frame function.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd

from models.serving.outputs import read_model_spec
from models.serving.uplift import arm_artifact, uplift_frame


class TierwiseUpliftModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        self.spec = read_model_spec(context.artifacts["spec"], "uplift")
        self.boosters = {
            arm: lgb.Booster(model_str=Path(context.artifacts[arm_artifact(arm)]).read_text())
            for arm in self.spec["arms"]
        }

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return uplift_frame(model_input, self.boosters, self.spec)


mlflow.models.set_model(TierwiseUpliftModel())
