"""The fitted churn and tier models as plain objects: a LightGBM ``Booster`` with the feature
columns (and their groups) it was trained on, plus the churn model's calibrator.

Pipelines and evaluation use these in process; models/serving/ turns them into the registered
MLflow models. Input: rows of the feature table (the model's feature columns must be there).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.spec import TIERS
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS
from models.training.estimators import ScoreCalibrator


class BoosterModel:
    """A LightGBM booster with the feature columns (and their groups) it was trained on."""

    def __init__(
        self, booster: lgb.Booster, features: Sequence[str], groups: Mapping[str, str]
    ) -> None:
        self.booster = booster
        self.features = list(features)
        self.groups = {name: groups[name] for name in self.features}
        self.num_iteration = booster.best_iteration or booster.current_iteration()

    def matrix(self, frame: pd.DataFrame) -> pd.DataFrame:
        """The feature columns, in training order, as float64 (missing columns fail loudly)."""
        missing = [name for name in self.features if name not in frame.columns]
        if missing:
            raise KeyError(f"input lacks model feature column(s): {', '.join(missing[:5])}")
        return frame[self.features].astype("float64")

    def _booster_predict(self, frame: pd.DataFrame, **kwargs: Any) -> np.ndarray:
        return self.booster.predict(self.matrix(frame), num_iteration=self.num_iteration, **kwargs)

    def model_text(self) -> str:
        """LightGBM's text format of the trees used (``lgb.Booster(model_str=...)`` reloads it)."""
        return self.booster.model_to_string(num_iteration=self.num_iteration)

    def to_dict(self) -> dict:
        """Everything but the trees, as plain data (JSON-ready)."""
        return {
            "features": list(self.features),
            "groups": dict(self.groups),
            "num_iteration": int(self.num_iteration),
        }


class ChurnModel(BoosterModel):
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
        return pd.DataFrame({CHURN_PROBABILITY: self.probability(frame)}, index=frame.index)

    def to_dict(self) -> dict:
        return {**super().to_dict(), "calibrator": self.calibrator.to_dict()}


class TierModel(BoosterModel):
    """Probabilities of each tier at t+H (columns in TIERS order).

    ``baseline`` is "" for a trained LightGBM model and "markov" when the booster encodes the
    Markov baseline (models/training/fallback.py: the data could not train a tier model).
    """

    def __init__(
        self,
        booster: lgb.Booster,
        class_codes: Sequence[int],
        features: Sequence[str],
        groups: Mapping[str, str],
        baseline: str = "",
    ) -> None:
        super().__init__(booster, features, groups)
        self.class_codes = [int(c) for c in class_codes]
        self.baseline = baseline

    def probabilities(self, frame: pd.DataFrame) -> np.ndarray:
        """(n, 4) next-tier probabilities; a tier absent from training gets 0."""
        raw = np.asarray(self._booster_predict(frame)).reshape(len(frame), -1)
        full = np.zeros((len(frame), len(TIERS)))
        full[:, self.class_codes] = raw
        return full

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        proba = self.probabilities(frame)
        return pd.DataFrame(proba, columns=list(NEXT_TIER_COLUMNS), index=frame.index)

    def to_dict(self) -> dict:
        extra = {"baseline": self.baseline} if getattr(self, "baseline", "") else {}
        return {**super().to_dict(), "class_codes": list(self.class_codes), **extra}
