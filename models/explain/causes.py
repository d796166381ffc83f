"""Reasons per churn cause: TreeSHAP of the survival model's most likely cause (docs/survival.md).

The survival model is one LightGBM multiclass booster on person-period rows (features at t and the
month k; class 0: still a customer at the end of month k, class 1 + c: churned by cause c in month
k). For a customer, the log-odds of cause c's hazard against staying in month k is
raw_c(x, k) − raw_0(x, k). TreeSHAP is linear in the model's output, so the contributions to its
mean over the months 1..K are the means over the customer's K person-period rows of
φ_c − φ_0: exact and additive (they sum to the mean log-odds; the month feature's share, the same
for every customer up to the interactions, is folded into ``base_value``). The reasons are the
feature groups pushing that log-odds up most, worded as the churn reasons are
(``reason_codes``), in log-odds units (the incidence is not a per-row function of one score, so no
probability link is applied).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.explain.frame import group_contributions
from models.explain.reasons import BASE_VALUE, feature_templates, reason_codes

CAUSE_REASON_PREFIX = "cause_"  # cause_reason_1, cause_reason_1_group, cause_reason_1_contribution
_BATCH_ROWS = 20_000  # (customer, snapshot) rows per pred_contrib call: K x this person-periods


def cause_contributions(
    booster: lgb.Booster,
    X: pd.DataFrame,
    months: int,
    cause_index: np.ndarray,
    num_iteration: int | None = None,
) -> pd.DataFrame:
    """Per row of ``X`` (the features at t, in the booster's order without the month), the
    contributions to the mean over months 1..K of the log-odds of cause ``cause_index`` (0-based
    in CAUSES) against staying; one column per feature, then ``base_value``. On X's index."""
    n_features = X.shape[1]
    out = np.zeros((len(X), n_features + 1))
    values = X.to_numpy(dtype=np.float64)
    num_iteration = num_iteration or booster.best_iteration or booster.current_iteration()
    for start in range(0, len(X), _BATCH_ROWS):
        block = values[start : start + _BATCH_ROWS]
        n = len(block)
        stacked = np.empty((n * months, n_features + 1))
        stacked[:, :-1] = np.tile(block, (months, 1))
        stacked[:, -1] = np.repeat(np.arange(1, months + 1, dtype=np.float64), n)
        raw = booster.predict(stacked, pred_contrib=True, num_iteration=num_iteration)
        raw = np.asarray(raw).reshape(months, n, booster.num_model_per_iteration(), -1).mean(0)
        cause = cause_index[start : start + n] + 1
        against = raw[np.arange(n), cause] - raw[:, 0]  # (n, features + month + base)
        out[start : start + n, :-1] = against[:, :n_features]
        out[start : start + n, -1] = against[:, n_features:].sum(axis=1)  # month + base
    return pd.DataFrame(out, index=X.index, columns=[*X.columns, BASE_VALUE])


def cause_reasons(
    booster: lgb.Booster,
    rows: pd.DataFrame,
    features: Sequence[str],
    feature_groups: Mapping[str, str],
    months: int,
    cause_index: np.ndarray,
    k: int,
    *,
    currency: str = "",
) -> pd.DataFrame:
    """cause_reason_j, cause_reason_j_group, cause_reason_j_contribution (log-odds) for j = 1..k:
    why each row's most likely cause (``cause_index``) is likely, on ``rows``' index."""
    X = rows[list(features)].astype(np.float64)
    contribs = cause_contributions(booster, X, months, np.asarray(cause_index, dtype=np.int64))
    groups = group_contributions(contribs, feature_groups)
    reasons = reason_codes(
        contribs, groups, X, feature_groups, k,
        link=None, templates=feature_templates(list(features), currency=currency),
    )  # fmt: skip
    return reasons.add_prefix(CAUSE_REASON_PREFIX)
