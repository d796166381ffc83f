"""The plan from a campaign history and a book, pure: fit, predict, cost, value, select.

``history``: labelled campaign rows with their features (``data.build_uplift_rows``); ``book``:
the feature rows of the customers to plan for (one as_of). Used by `tierwise plan` and by the
uplift stage's plan for the report (docs/uplift.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from features.contract import AS_OF, CUSTOMER_ID
from features.labels import CHURNED
from features.registry import TIER, value_feature
from models.spec import KpiSpec, UpliftSpec
from models.uplift.data import IS_TREATED
from models.uplift.learner import NONE, UpliftTLearner
from models.uplift.plan import (
    GEOMETRIC,
    ValueBasis,
    compute_net_values,
    estimate_costs,
    plan_actions,
    profit_curve,
)


def build_plan(
    history: pd.DataFrame,
    book: pd.DataFrame,
    features: Sequence[str],
    strategy_ids: Sequence[str],
    spec: UpliftSpec,
    kpis: KpiSpec,
    horizon_days: int,
    budget: float,
    basis: ValueBasis = GEOMETRIC,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The plan (customer_id, as_of, tier, churn_probability and the plan's columns, one row
    per book row) and the incremental-profit curve; saved value on ``basis`` (its curve: one
    row per book row)."""
    tried = [s for s in strategy_ids if s in set(history["strategy_id"])]
    model = UpliftTLearner(spec.lightgbm_params(), tried, spec.seed, spec.min_arm_rows)
    model.fit(history[list(features)], history["strategy_id"], history[IS_TREATED],
              history[CHURNED])  # fmt: skip
    fitted = model.fitted_strategies
    uplift = model.predict_uplift(book[list(features)])[fitted]
    churn = model.predict_churn(book[list(features)])
    return plan_from_predictions(uplift, churn[NONE], book, history, kpis, horizon_days, budget,
                                 basis)  # fmt: skip


def plan_from_predictions(
    uplift: pd.DataFrame,
    p_none: pd.Series,
    book: pd.DataFrame,
    history: pd.DataFrame,
    kpis: KpiSpec,
    horizon_days: int,
    budget: float,
    basis: ValueBasis = GEOMETRIC,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``build_plan`` from a model's answers (``uplift``: one column per strategy; ``p_none``:
    churn untreated) for the ``book``; ``history``'s treated rows give the costs."""
    fitted = list(uplift.columns)
    cost = estimate_costs(book, history, fitted)
    days = kpis.value_window_days
    yearly = book[value_feature(days)].fillna(0.0) * 365.0 / days
    net = compute_net_values(uplift, p_none, yearly, cost, kpis, horizon_days, basis)
    plan = plan_actions(uplift, net, cost, budget)
    keys = book[[CUSTOMER_ID, AS_OF, TIER]].assign(churn_probability=p_none.to_numpy())
    return pd.concat([keys, plan], axis=1), profit_curve(uplift, net, cost)
