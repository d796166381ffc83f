"""The code of the registered tierwise-uplift model (MLflow "models from code").

MLflow stores a copy of this file with each version and runs it on load; ``arm_<name>.txt`` and
``model.json`` (models/serving/uplift.py) hold the model as data. From the installed tierwise
package it imports only ``FORMAT_VERSION`` and ``models.serving.uplift``'s frame function.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import lightgbm as lgb
import mlflow
import pandas as pd

from models.serving.outputs import FORMAT_VERSION
from models.serving.uplift import arm_artifact, uplift_frame


class TierwiseUpliftModel(mlflow.pyfunc.PythonModel):
    def load_context(self, context: Any) -> None:
        spec = json.loads(Path(context.artifacts["spec"]).read_text(encoding="utf-8"))
        if spec.get("format_version") != FORMAT_VERSION or spec.get("kind") != "uplift":
            raise ValueError(
                f"model format {spec.get('format_version')!r} of kind {spec.get('kind')!r}: "
                f"the installed tierwise reads uplift models of format {FORMAT_VERSION}"
            )
        self.spec = spec
        self.boosters = {
            arm: lgb.Booster(model_str=Path(context.artifacts[arm_artifact(arm)]).read_text())
            for arm in spec["arms"]
        }

    def predict(
        self, context: Any, model_input: pd.DataFrame, params: dict | None = None
    ) -> pd.DataFrame:
        return uplift_frame(model_input, self.boosters, self.spec)


mlflow.models.set_model(TierwiseUpliftModel())
