"""The two registered models as MLflow pyfunc ``PythonModel``s.

Input: rows of the feature table (the model's feature columns must be there; ``customer_id``,
``as_of`` and the state columns may be). Output: a DataFrame on the input's index.

- ``ChurnModel``: ``churn_probability`` (LightGBM raw score -> calibrator). With ``outputs``
  (``ChurnOutputs``, set by ``with_outputs`` before registration) it is the registered model of
  docs/scoring.md: the probability for customers active at t only (NaN for the others), then
  ``risk_band``, reason_1..k (TreeSHAP, ``models.explain.explain_frame``) and strategy_1..k from
  the strategy catalog it carries. The ``explain`` predict param (all | at_risk | none) says which
  rows get exact reasons; the others keep the strategies of their state.
- ``TierModel``: ``p_next_potential``, ``p_next_ordinary``, ``p_next_core``, ``p_next_vip``.

The classes hold plain fitted objects (a LightGBM ``Booster``, a ``ScoreCalibrator``, the feature
list with groups), so pipelines use them without MLflow and the registry logs the same objects.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import lightgbm as lgb
import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import LIFECYCLE_STATE, STATE_COLUMNS
from features.spec import TIERS
from models.estimators import ScoreCalibrator
from models.explain import (
    customer_states,
    explain_frame,
    explanation_columns,
    feature_contributions,
)
from models.spec import EXPLAIN_POLICIES, ScoreSpec
from models.strategies import Catalog

CHURN_PROBABILITY = "churn_probability"
NEXT_TIER_COLUMNS = tuple(f"p_next_{tier}" for tier in TIERS)
# Optional input columns the registered models accept next to their features (later outputs,
# such as strategies, read the states).
CONTEXT_COLUMNS = (CUSTOMER_ID, AS_OF, *STATE_COLUMNS)
RISK_BAND = "risk_band"
# Lifecycle states of the customers active at t: the churn model's population (docs/models.md,
# "Rows"; new_days <= active_window_days makes every new customer active).
CHURN_POPULATION = ("new", "active")


@dataclass(frozen=True)
class ChurnOutputs:
    """What the registered churn model gives beyond the probability (docs/scoring.md)."""

    risk_bands: tuple[tuple[str, float], ...]  # (band, lowest probability in it), ascending
    at_risk_bands: tuple[str, ...]  # the bands that explain="at_risk" explains
    catalog: Catalog  # shipped inside the model: a version's strategies never drift
    k: int = 3  # reasons and strategies per customer

    @classmethod
    def from_spec(cls, spec: ScoreSpec, catalog: Catalog, k: int) -> ChurnOutputs:
        return cls(tuple(spec.risk_bands.items()), tuple(spec.at_risk_bands), catalog, k)


def risk_band(probability: np.ndarray, bands: Sequence[tuple[str, float]]) -> np.ndarray:
    """The band of each probability (at or above its lower bound); "" where it is NaN."""
    p = np.asarray(probability, dtype=float)
    names = np.array([name for name, _ in bands] + [""], dtype=object)
    index = np.searchsorted([bound for _, bound in bands], p, side="right") - 1
    return names[np.where(np.isnan(p), len(bands), np.maximum(index, 0))]


def explained_rows(band: np.ndarray, active: np.ndarray, explain: str, at_risk: Sequence[str]):
    """Which rows get TreeSHAP reasons: every active customer, the at-risk bands, or none."""
    if explain not in EXPLAIN_POLICIES:
        raise ValueError(f"explain must be one of {EXPLAIN_POLICIES}, got {explain!r}")
    if explain == "none":
        return np.zeros(len(band), dtype=bool)
    return active & np.isin(band, list(at_risk)) if explain == "at_risk" else active.copy()


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
        return self.predict_frame(model_input, **(params or {}))

    def predict_params(self) -> dict[str, str]:
        """The predict params (name -> default) that the registry logs as the params schema."""
        return {}

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:  # pragma: no cover - abstract
        raise NotImplementedError


class ChurnModel(_BoosterModel):
    """Calibrated probability that an active customer churns within the horizon."""

    outputs: ChurnOutputs | None = None  # a class default: models pickled before it still load

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

    def with_outputs(self, outputs: ChurnOutputs | None) -> ChurnModel:
        """A copy that gives ``outputs`` (risk band, reasons, strategies); this one is unchanged."""
        model = copy.copy(self)
        model.outputs = outputs
        return model

    def predict_params(self) -> dict[str, str]:
        return {} if self.outputs is None else {"explain": "all"}

    def predict_frame(self, frame: pd.DataFrame, explain: str = "all") -> pd.DataFrame:
        out = pd.DataFrame({CHURN_PROBABILITY: self.probability(frame)}, index=frame.index)
        return self._extra_outputs(frame, out, explain)

    def _extra_outputs(self, frame: pd.DataFrame, out: pd.DataFrame, explain: str) -> pd.DataFrame:
        """Risk band, reasons and strategies after the probability (none without ``outputs``)."""
        if self.outputs is None:
            return out
        o, rows = self.outputs, frame.reset_index(drop=True)
        states = customer_states(rows)
        active = states[LIFECYCLE_STATE].isin(CHURN_POPULATION).to_numpy()
        probability = np.where(active, out[CHURN_PROBABILITY].to_numpy(), np.nan)
        band = risk_band(probability, o.risk_bands)
        mask = explained_rows(band, active, explain, o.at_risk_bands)
        # TreeSHAP for the chosen rows only; the others get no reasons and their state's strategies
        explained = explain_frame(
            None, rows, self.features, self.groups, o.catalog, o.k, rows=mask,
            contributions=self._contributions(rows[mask]), link=self.calibrator.predict,
        )  # fmt: skip
        head = pd.DataFrame({CHURN_PROBABILITY: probability, RISK_BAND: band})
        reasons = explained[explanation_columns(o.k)]
        return pd.concat([head, reasons], axis=1).set_axis(frame.index)

    def _contributions(self, rows: pd.DataFrame) -> pd.DataFrame:
        """TreeSHAP log-odds contributions of ``rows`` (with a ``base_value`` column)."""
        return feature_contributions(
            self.booster, self.matrix(rows), num_iteration=self.num_iteration
        )


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
