"""The two registered models, in process: what the evaluate stage registers, and how.

Input: rows of the feature table (the model's feature columns must be there; ``customer_id``,
``as_of`` and the state columns may be). Output: a DataFrame on the input's index; both the
in-process objects and the stored versions compute it with models/serving/outputs.py.

- ``RegisteredChurnModel``: ``churn_probability`` (LightGBM raw score -> calibrator). With
  ``outputs`` (``ChurnOutputs``) it is the registered model of docs/scoring.md: the probability
  for customers active at t only (NaN for the others), then ``risk_band``, reason_1..k (TreeSHAP,
  ``models.explain.frame.explain_frame``) and strategy_1..k from the strategy catalog it carries.
  The ``explain`` predict param (all | at_risk | none) says which rows get exact reasons; the
  others keep the strategies of their state.
- ``RegisteredTierModel``: ``p_next_potential``, ``p_next_ordinary``, ``p_next_core``,
  ``p_next_vip``.

These objects are not what MLflow stores: ``write_artifacts`` turns each into LightGBM's model
text and a JSON document, which models/serving/model_code.py loads (no pickle; docs/scoring.md,
"How a version is stored"). A version pickled by tierwise 0.1 (``models.pyfunc.ChurnModel``) no
longer loads: the evaluate stage reports it as a broken champion (docs/models.md, "Promotion").
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import STATE_COLUMNS
from models.serving import artifacts
from models.serving.outputs import churn_frame, explained_rows, risk_band, tier_frame
from models.spec import ExplainSpec, ScoreSpec
from models.strategies.catalog import Catalog
from models.training.boosters import BoosterModel, ChurnModel, TierModel

__all__ = ["CHURN_POPULATION", "ChurnOutputs", "RegisteredChurnModel", "RegisteredTierModel",
           "explained_rows", "input_columns", "risk_band"]  # fmt: skip

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
    catalog: Catalog  # stored inside the model as data: a version's strategies never drift
    k: int = 3  # reasons and strategies per customer
    watch_bands: tuple[str, ...] = ()  # the bands explain="watch" explains beyond at_risk_bands
    min_contribution: float = 0.0  # reasons below this (probability points) are not shown
    currency: str = ""  # before every amount in the reasons

    @classmethod
    def from_spec(
        cls, spec: ScoreSpec, catalog: Catalog, k: int, explain: ExplainSpec | None = None
    ) -> ChurnOutputs:
        shown = {} if explain is None else {
            "min_contribution": explain.min_contribution, "currency": explain.currency,
        }  # fmt: skip
        bands = tuple(spec.risk_bands.items())
        return cls(bands, tuple(spec.at_risk_bands), catalog, k, tuple(spec.watch_bands), **shown)

    def to_dict(self) -> dict[str, Any]:
        return {
            "risk_bands": [[name, float(bound)] for name, bound in self.risk_bands],
            "at_risk_bands": list(self.at_risk_bands),
            "watch_bands": list(self.watch_bands),
            "min_contribution": float(self.min_contribution),
            "currency": self.currency,
            "k": int(self.k),
            "population": list(CHURN_POPULATION),
            "catalog": artifacts.catalog_data(self.catalog),
        }


def input_columns(model: BoosterModel) -> list[str]:
    """The columns of a model's input signature: context columns, then the features."""
    return [*CONTEXT_COLUMNS, *model.features]


class _Registered:
    """What the registry needs of a model to log: features, input columns, artifacts."""

    kind: str
    model: BoosterModel

    @property
    def features(self) -> list[str]:
        return self.model.features

    def input_columns(self) -> list[str]:
        return input_columns(self.model)

    def spec(self) -> dict[str, Any]:
        """The JSON document of the version (models/serving/artifacts.py)."""
        return artifacts.spec_document(self.kind, self.model.to_dict(), None)

    def write_artifacts(self, folder: Path) -> dict[str, str]:
        return artifacts.write_artifacts(self.model.model_text(), self.spec(), folder)

    @cached_property
    def _spec(self) -> dict[str, Any]:
        """``spec()`` once: what a stored version reads, as the in-process model uses it."""
        return self.spec()


class RegisteredChurnModel(_Registered):
    """The churn model as registered: probability, then risk band, reasons and strategies."""

    kind = "churn"

    def __init__(
        self, model: ChurnModel, outputs: ChurnOutputs | None = None, profile: dict | None = None
    ) -> None:
        self.model = model
        self.outputs = outputs
        self.profile = profile  # the monitoring reference stored with the version, if any

    def spec(self) -> dict[str, Any]:
        outputs = None if self.outputs is None else self.outputs.to_dict()
        return artifacts.spec_document(self.kind, self.model.to_dict(), outputs)

    def write_artifacts(self, folder: Path) -> dict[str, str]:
        files = super().write_artifacts(folder)
        if self.profile is not None:
            files |= artifacts.write_profile(self.profile, folder)
        return files

    def predict_params(self) -> dict[str, str]:
        """The predict params (name -> default) that the registry logs as the params schema."""
        return {} if self.outputs is None else {"explain": "all"}

    def predict_frame(self, frame: pd.DataFrame, explain: str = "all") -> pd.DataFrame:
        catalog = None if self.outputs is None else self.outputs.catalog
        link = self.model.calibrator.predict
        return churn_frame(frame, self.model.booster, self._spec, link, catalog, explain)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_frame(model_input, **(params or {}))


class RegisteredTierModel(_Registered):
    """The tier model as registered: the probability of each tier at t+H."""

    kind = "tier"

    def __init__(self, model: TierModel) -> None:
        self.model = model

    def predict_params(self) -> dict[str, str]:
        return {}

    def predict_frame(self, frame: pd.DataFrame) -> pd.DataFrame:
        return tier_frame(frame, self.model.booster, self._spec)

    def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
        return self.predict_frame(model_input)
