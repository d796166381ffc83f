"""The two registered models as MLflow pyfunc ``PythonModel``s.

Input: rows of the feature table (the model's feature columns must be there; ``customer_id``,
``as_of`` and the state columns may be). Output: a DataFrame on the input's index.

- ``ChurnModel``: ``churn_probability`` (LightGBM raw score -> calibrator). Later outputs (risk
  band, reason codes, strategies) are added as further columns by ``predict_frame``'s
  ``_extra_outputs`` step; the probability column stays first.
- ``TierModel``: ``p_next_potential``, ``p_next_ordinary``, ``p_next_core``, ``p_next_vip``.

The classes hold plain fitted objects (a LightGBM ``Booster``, a ``ScoreCalibrator``, the feature
list with groups), so pipelines use them without MLflow and the registry logs the same objects.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import STATE_COLUMNS
from features.spec import TIERS
from models.estimators import ScoreCalibrator

CHURN_PROBABILITY = "churn_probability"
NEXT_TIER_COLUMNS = tuple(f"p_next_{tier}" for tier in TIERS)
# Optional input columns the registered models accept next to their features (later outputs,
# such as strategies, read the states).
CONTEXT_COLUMNS = (CUSTOMER_ID, AS_OF, *STATE_COLUMNS)


class _BoosterModel(mlflow.pyfunc.PythonModel):
    """A LightGBM booster with the feature columns (and their groups) it was trained on."""

    def __init__(
        self, booster: lgb.Booster, features: Sequence[str], groups: Mapping[str, str]
    ) -> None:
        self.booster = booster
        self.features = list(features)
        self.groups = {name: groups[name] for name in self.features}
        self.num_iteration = booster.best_iteration or booster.current_iteration()

    def input_columns(self) -> list[str]:
        """The columns of the model's input signature: context columns, then the features."""
        return [*CONTEXT_COLUMNS, *self.features]

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns, in training order, as float64 (missing columns fail loudly)."""
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise KeyError(f"input lacks model feature column(s): {', '.join(missing[:5])}")
        return frame[self.features].astype("float64")

    def _booster_predict(self, frame: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return self.booster.predict(self.matrix(frame), num_iteration=self.num_iteration, **kwargs)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_frame(model_input)

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError


class ChurnModel(_BoosterModel):
    """Calibrated probability that an active customer churns within the horizon."""

    def __init__(
        self,
        booster: lgb.Booster,
        calibrator: ScoreCalibrator,
        features: Sequence[str],
        groups: Mapping[str, str],
    ) -> None:
        super().__init__(booster, features, groups)
        self.calibrator = calibrator

    def raw_score(self, frame: pd.DataFrame) -> np.ndarray:
        """LightGBM log-odds before calibration (the scale SHAP contributions add up to)."""
        return self._booster_predict(frame, raw_score=True)

    def probability(self, frame: pd.DataFrame) -> np.ndarray:
        return self.calibrator.predict(self.raw_score(frame))

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        out = pd.DataFrame({CHURN_PROBABILITY: self.probability(frame)}, index=frame.index)
        return self._extra_outputs(frame, out)

    def _extra_outputs(self, frame: pd.DataFrame, out: pd.DataFrame) -> pd.DataFrame:
        """Hook for further output columns (risk band, reasons, strategies); none yet."""
        return out


class TierModel(_BoosterModel):
    """Probabilities of each tier at t+H (columns in TIERS order)."""

    def __init__(
        self,
        booster: lgb.Booster,
        class_codes: Sequence[int],
        features: Sequence[str],
        groups: Mapping[str, str],
    ) -> None:
        super().__init__(booster, features, groups)
        self.class_codes = [int(c) for c in class_codes]

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 4) next-tier probabilities; a tier absent from training gets 0."""
        raw = np.asarray(self._booster_predict(frame)).reshape(len(frame), -1)
        full = np.zeros((len(frame), len(TIERS)))
        full[:, self.class_codes] = raw
        return full

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        proba = self.probabilities(frame)
        return pd.DataFrame(proba, columns=list(NEXT_TIER_COLUMNS), index=frame.index)
