"""Batch scoring: the registered churn and tier models applied to feature rows at one date.

Grain: one row per customer known at ``as_of`` (the feature table's rows at that date). Pure: the
models come in as objects with a pyfunc-style ``predict(frame, params=None)`` (an MLflow
``PyFuncModel``), the feature rows as a DataFrame; a new DataFrame goes out. The same columns come
out of both engines (pipelines/score.py, models/serving/spark.py); docs/scoring.md lists them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.registry import LIFECYCLE_STATE, LOYALTY_LEVEL, TIER
from models.columns import CHURN_PROBABILITY, NEXT_TIER_COLUMNS, RISK_BAND
from models.explain.causes import CAUSE_REASON_PREFIX
from models.explain.reasons import reason_column_names
from models.strategies.catalog import strategy_columns, strategy_detail_columns
from models.survival.strategies import CAUSE_PLAN_COLUMNS
from models.survival.train import SCORE_COLUMNS as SURVIVAL_COLUMNS

ID_COLUMNS = (CUSTOMER_ID, AS_OF, TIER, LIFECYCLE_STATE, LOYALTY_LEVEL)
CHURN_MODEL_NAME, CHURN_MODEL_VERSION = "churn_model_name", "churn_model_version"
TIER_MODEL_NAME, TIER_MODEL_VERSION = "tier_model_name", "tier_model_version"
LINEAGE_COLUMNS = (CHURN_MODEL_NAME, CHURN_MODEL_VERSION, TIER_MODEL_NAME, TIER_MODEL_VERSION)
# Lifecycle states whose customers get no tier transition in a score file (docs/definitions.md,
# "A churned customer's tier"): gone customers keep the tier of their history, and the tier
# model's near-certain "stays ordinary" for them is not a forecast anyone can act on.
NO_TRANSITION_STATES = ("churned",)


_STRATEGY_ID = re.compile(r"strategy_\d+")


class IncompatibleModelError(ValueError):
    """A model whose output lacks the columns a score needs (e.g. registered before issue 5)."""


class Predictor(Protocol):
    def predict(self, data: pd.DataFrame, params: dict[str, Any] | None = None) -> Any: ...


@dataclass(frozen=True)
class Lineage:
    """The registry name and version of each model ("" for a model outside the registry)."""

    churn_name: str
    churn_version: str
    tier_name: str
    tier_version: str

    def columns(self) -> dict[str, str]:
        values = (self.churn_name, self.churn_version, self.tier_name, self.tier_version)
        return dict(zip(LINEAGE_COLUMNS, values, strict=True))


def churn_output_columns(k: int) -> list[str]:
    """What the registered churn model returns, in order."""
    return [CHURN_PROBABILITY, RISK_BAND, *reason_column_names(k), *strategy_columns(k),
            *strategy_detail_columns(k)]  # fmt: skip


def score_columns(k: int) -> list[str]:
    """The columns of a score file, in order (docs/scoring.md)."""
    return [*ID_COLUMNS, *churn_output_columns(k), *NEXT_TIER_COLUMNS, *LINEAGE_COLUMNS]


def strategy_count(churn_out: pd.DataFrame | list[str]) -> int:
    """k: the number of strategy_j columns a churn model's output has."""
    names = churn_out.columns if isinstance(churn_out, pd.DataFrame) else churn_out
    return sum(1 for c in names if _STRATEGY_ID.fullmatch(str(c)))


def check_outputs(churn_columns: list[str], tier_columns: list[str], lineage: Lineage) -> int:
    """k, after checking that both models give what a score needs (fails with the model named)."""
    k = strategy_count(churn_columns)
    needs = {
        f"{lineage.churn_name} {lineage.churn_version}".strip(): (
            churn_columns, churn_output_columns(k) if k else [CHURN_PROBABILITY, RISK_BAND],
        ),
        f"{lineage.tier_name} {lineage.tier_version}".strip(): (
            tier_columns, list(NEXT_TIER_COLUMNS),
        ),
    }  # fmt: skip
    for model, (got, wanted) in needs.items():
        missing = [c for c in wanted if c not in got]
        if missing:
            raise IncompatibleModelError(
                f"model {model} does not output {', '.join(missing[:4])}: it was registered "
                "before batch scoring; register it again (tierwise train, tierwise evaluate)"
            )
    return k


def assemble_scores(
    features: pd.DataFrame, churn_out: pd.DataFrame, tier_out: pd.DataFrame, lineage: Lineage
) -> pd.DataFrame:
    """Ids and states from the feature rows, then both models' outputs and the lineage."""
    k = check_outputs(list(churn_out.columns), list(tier_out.columns), lineage)
    ids = features.loc[:, list(ID_COLUMNS)].reset_index(drop=True)
    churn = churn_out.loc[:, churn_output_columns(k)].reset_index(drop=True)
    tier = tier_out.loc[:, list(NEXT_TIER_COLUMNS)].reset_index(drop=True)
    tier.loc[ids[LIFECYCLE_STATE].isin(NO_TRANSITION_STATES).to_numpy()] = np.nan
    out = pd.concat([ids, churn, tier], axis=1).assign(**lineage.columns())
    return out[score_columns(k)]


def score_features(
    features: pd.DataFrame, churn: Predictor, tier: Predictor, lineage: Lineage, explain: str
) -> pd.DataFrame:
    """Both models on feature rows of one date: one score row per feature row, in their order.

    ``explain`` (all | at_risk | none) is the churn model's predict param: which customers get
    exact TreeSHAP reasons (docs/scoring.md, "Which customers get reasons").
    """
    churn_out = churn.predict(features, params={"explain": explain})
    return assemble_scores(features, churn_out, tier.predict(features), lineage)


def _signature_inputs(model: Predictor, frame: pd.DataFrame) -> pd.DataFrame:
    """``frame``'s columns that ``model``'s logged input signature names (all of them for a model
    without one): MLflow warns of every other column on each call, once per slice."""
    metadata = getattr(model, "metadata", None)
    schema = metadata.get_input_schema() if metadata is not None else None
    if schema is None:
        return frame
    names = set(schema.input_names())
    return frame.loc[:, [c for c in frame.columns if c in names]]


def add_survival(
    scores: pd.DataFrame, features: pd.DataFrame, survival: Predictor | None, explain: str = "none"
) -> pd.DataFrame:
    """The survival model's columns (SURVIVAL_COLUMNS, docs/survival.md, and the cause's play
    when the version outputs it) after the score's, when a survival model is given; the score
    unchanged otherwise."""
    if survival is None:
        return scores
    # the survival model's population is the churn model's: customers active at t (the rows with
    # a churn probability); the others (prospects, dormant, churned) get no survival answer, and
    # no cause reasons are computed for them
    active = scores[CHURN_PROBABILITY].notna().to_numpy()
    out = survival.predict(
        _signature_inputs(survival, features[active]), params={"explain": explain}
    )
    missing = [c for c in SURVIVAL_COLUMNS if c not in out.columns]
    if missing:
        raise IncompatibleModelError(f"the survival model does not output {', '.join(missing)}")
    plays = [c for c in CAUSE_PLAN_COLUMNS if c in out.columns]  # versions before them lack them
    plays += [c for c in out.columns if c.startswith(f"{CAUSE_REASON_PREFIX}reason_")]
    extra = out.loc[:, [*SURVIVAL_COLUMNS, *plays]].set_axis(np.flatnonzero(active))
    extra = extra.reindex(np.arange(len(scores)))
    return pd.concat([scores.reset_index(drop=True), extra], axis=1)
