"""Why each customer of a snapshot is at risk, and what to do about it (the explain stage's core).

For the active customers of a snapshot: calibrated churn probability, value at risk, the
feature groups pushing churn risk up (reason codes), up to k catalog strategies, and the same
reasons for the tier model's downgrade probability. ``global_views`` gives the book-wide views:
mean |SHAP| per feature and group, and strategy coverage. Pure: frames and fitted models in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy.special import expit

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import ACTIVE
from features.registry import STATE_COLUMNS, TIER
from features.spec import TIERS
from models.columns import CHURN_PROBABILITY
from models.explain.frame import downgrade_contributions, explain_frame, feature_contributions
from models.explain.reasons import feature_templates, reason_column_names
from models.explain.views import feature_importance, group_importance, strategy_coverage
from models.records import checked
from models.strategies.catalog import Catalog
from models.training.boosters import ChurnModel, TierModel

VALUE_AT_RISK = "value_at_risk"
P_DOWNGRADE = "p_downgrade"
DOWNGRADE_PREFIX = "downgrade_"


@dataclass(frozen=True)
class Explained:
    explanations: pd.DataFrame  # one row per explained customer
    contributions: pd.DataFrame  # churn model, log-odds per feature (+ base_value)
    matrix: pd.DataFrame  # the churn model's feature values, same rows


@dataclass(frozen=True)
class ExplainSummary:
    """reports/explain/summary.json: the customers explained (active at the snapshot), those at
    risk (churn probability >= ``explain.at_risk_threshold``) and their value at risk."""

    explained_customers: int
    at_risk_customers: int
    value_at_risk: float

    def to_json(self) -> dict[str, Any]:
        return {
            "explained_customers": self.explained_customers,
            "at_risk_customers": self.at_risk_customers,
            "value_at_risk": self.value_at_risk,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ExplainSummary:
        keys = ("explained_customers", "at_risk_customers", "value_at_risk")
        d = checked(data, keys, "explain summary")
        return cls(
            int(d["explained_customers"]), int(d["at_risk_customers"]), float(d["value_at_risk"])
        )


@dataclass(frozen=True)
class GlobalViews:
    feature_importance: pd.DataFrame
    group_importance: pd.DataFrame
    strategy_coverage: pd.DataFrame
    headline: ExplainSummary


def explanation_rows(table: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Active customers at ``as_of``: the churn model's population."""
    rows = table[(table[AS_OF] == as_of) & table[ACTIVE].astype(bool)]
    return rows.reset_index(drop=True)


def p_downgrade(tier_model: TierModel, rows: pd.DataFrame) -> np.ndarray:
    """Probability that the next tier is below the current one."""
    proba = tier_model.probabilities(rows)
    current = pd.Categorical(rows[TIER], categories=TIERS).codes
    below = np.arange(len(TIERS))[None, :] < current[:, None]
    return (proba * below).sum(axis=1)


def _downgrade_reasons(tier_model: TierModel, rows, catalog: Catalog, k: int) -> pd.DataFrame:
    contribs = downgrade_contributions(
        tier_model.booster,
        tier_model.matrix(rows),
        rows[TIER],
        tier_model.class_codes,
        num_iteration=tier_model.num_iteration,
    )
    reasons = explain_frame(
        None,
        rows,
        tier_model.features,
        tier_model.groups,
        catalog,
        k,
        contributions=contribs,
        link=expit,
    )[reason_column_names(k)]
    return reasons.add_prefix(DOWNGRADE_PREFIX)


def explain_customers(
    rows: pd.DataFrame,
    churn: ChurnModel,
    tier_model: TierModel,
    catalog: Catalog,
    k: int,
    value_column: str,
    *,
    min_contribution: float = 0.0,
    currency: str = "",
) -> Explained:
    """Reasons, strategies, value at risk (probability x ``value_column``) and downgrade reasons.
    Reasons below ``min_contribution`` are not shown; amounts carry ``currency`` (params
    explain)."""
    X = churn.matrix(rows)
    contribs = feature_contributions(churn.booster, X, num_iteration=churn.num_iteration)
    reasons = explain_frame(
        None,
        rows,
        churn.features,
        churn.groups,
        catalog,
        k,
        contributions=contribs,
        link=churn.calibrator.predict,
        templates=feature_templates(churn.features, currency=currency),
        min_contribution=min_contribution,
    )
    probability = churn.probability(rows)
    head = rows[[CUSTOMER_ID, AS_OF, *STATE_COLUMNS]].assign(
        **{
            CHURN_PROBABILITY: probability,
            VALUE_AT_RISK: probability * rows[value_column].fillna(0.0),
            P_DOWNGRADE: p_downgrade(tier_model, rows),
        }
    )
    body = reasons.drop(columns=[c for c in (CUSTOMER_ID, AS_OF) if c in reasons.columns])
    downgrade = _downgrade_reasons(tier_model, rows, catalog, k)
    return Explained(pd.concat([head, body, downgrade], axis=1), contribs, X)


def global_views(
    ex: Explained, churn: ChurnModel, catalog: Catalog, at_risk_threshold: float
) -> GlobalViews:
    """Feature and group importance, strategy coverage and headline figures of ``ex``."""
    coverage = strategy_coverage(
        ex.explanations,
        CHURN_PROBABILITY,
        VALUE_AT_RISK,
        threshold=at_risk_threshold,
        catalog=catalog,
    )
    at_risk = ex.explanations[CHURN_PROBABILITY] >= at_risk_threshold
    headline = ExplainSummary(
        explained_customers=len(ex.explanations),
        at_risk_customers=int(at_risk.sum()),
        value_at_risk=round(float(ex.explanations.loc[at_risk, VALUE_AT_RISK].sum()), 2),
    )
    return GlobalViews(
        feature_importance(ex.contributions, churn.groups),
        group_importance(ex.contributions, churn.groups),
        coverage,
        headline,
    )
