"""The two registered models as MLflow pyfunc ``PythonModel``s around the fitted models.

Input: rows of the feature table (the model's feature columns must be there; ``customer_id``,
``as_of`` and the state columns may be). Output: a DataFrame on the input's index.

- ``RegisteredChurnModel``: ``churn_probability`` (LightGBM raw score -> calibrator). With
  ``outputs`` (``ChurnOutputs``) it is the registered model of docs/scoring.md: the probability
  for customers active at t only (NaN for the others), then ``risk_band``, reason_1..k (TreeSHAP,
  ``models.explain.frame.explain_frame``) and strategy_1..k from the strategy catalog it carries.
  The ``explain`` predict param (all | at_risk | none) says which rows get exact reasons; the
  others keep the strategies of their state.
- ``RegisteredTierModel``: ``p_next_potential``, ``p_next_ordinary``, ``p_next_core``,
  ``p_next_vip``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import LIFECYCLE_STATE, STATE_COLUMNS
from models.columns import CHURN_PROBABILITY, RISK_BAND
from models.explain.frame import (
    customer_states,
    explain_frame,
    explanation_columns,
    feature_contributions,
)
from models.spec import EXPLAIN_POLICIES, ScoreSpec
from models.strategies.catalog import Catalog
from models.training.boosters import BoosterModel, ChurnModel, TierModel

# Optional input columns the registered models accept next to their features (later outputs,
# such as strategies, read the states).
CONTEXT_COLUMNS = (CUSTOMER_ID, AS_OF, *STATE_COLUMNS)
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


def input_columns(model: BoosterModel) -> list[str]:
    """The columns of a model's input signature: context columns, then the features."""
    return [*CONTEXT_COLUMNS, *model.features]


def churn_outputs_frame(
    model: ChurnModel, frame: pd.DataFrame, outputs: ChurnOutputs | None, explain: str = "all"
) -> pd.DataFrame:
    """The registered churn model's answer for feature rows (docs/scoring.md)."""
    out = model.predict_frame(frame)
    if outputs is None:
        return out
    o, rows = outputs, frame.reset_index(drop=True)
    states = customer_states(rows)
    active = states[LIFECYCLE_STATE].isin(CHURN_POPULATION).to_numpy()
    probability = np.where(active, out[CHURN_PROBABILITY].to_numpy(), np.nan)
    band = risk_band(probability, o.risk_bands)
    mask = explained_rows(band, active, explain, o.at_risk_bands)
    # TreeSHAP for the chosen rows only; the others get no reasons and their state's strategies
    contributions = feature_contributions(
        model.booster, model.matrix(rows[mask]), num_iteration=model.num_iteration
    )
    explained = explain_frame(
        None, rows, model.features, model.groups, o.catalog, o.k, rows=mask,
        contributions=contributions, link=model.calibrator.predict,
    )  # fmt: skip
    head = pd.DataFrame({CHURN_PROBABILITY: probability, RISK_BAND: band})
    reasons = explained[explanation_columns(o.k)]
    return pd.concat([head, reasons], axis=1).set_axis(frame.index)


class RegisteredChurnModel(mlflow.pyfunc.PythonModel):
    """The churn model as registered: probability, then risk band, reasons and strategies."""

    def __init__(self, model: ChurnModel, outputs: ChurnOutputs | None = None) -> None:
        self.model = model
        self.outputs = outputs

    @property
    def features(self) -> list[str]:
        return self.model.features

    def input_columns(self) -> list[str]:
        return input_columns(self.model)

    def predict_params(self) -> dict[str, str]:
        """The predict params (name -> default) that the registry logs as the params schema."""
        return {} if self.outputs is None else {"explain": "all"}

    def predict_frame(self, frame: pd.DataFrame, explain: str = "all") -> pd.DataFrame:
        return churn_outputs_frame(self.model, frame, self.outputs, explain)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_frame(model_input, **(params or {}))


class RegisteredTierModel(mlflow.pyfunc.PythonModel):
    """The tier model as registered: the probability of each tier at t+H."""

    def __init__(self, model: TierModel) -> None:
        self.model = model

    @property
    def features(self) -> list[str]:
        return self.model.features

    def input_columns(self) -> list[str]:
        return input_columns(self.model)

    def predict_params(self) -> dict[str, str]:
        return {}

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return self.model.predict_frame(frame)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_frame(model_input)
