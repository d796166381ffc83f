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

Cost, without changing a number (beyond float rounding; tested against the plain algorithm,
LightGBM's ``pred_contrib`` of every class's trees on K rows per customer, within 1e-9):
- φ_j comes from class j's trees alone: class 0's trees run for every row, class 1 + c's only
  for the rows whose cause is c, not all 1 + C classes for every row;
- one walk per tree and customer for all K months at once (``linear_shap.tree_shap`` with the
  month): a leaf's polynomial G is multilinear in the features' p's and the K rows differ only in
  the month's p, so their mean is one walk with the month's p the share of the months 1..K that
  follow the path's month edges (a split ``k <= threshold`` sends the integers up to
  ``floor(threshold)`` left). Every other feature's value is exact; the month's own is not
  needed: it is folded into ``base_value``, which is the mean log-odds (the walk sums the
  leaves' values × the product of the p's) less the features' values;
- each walk is Linear TreeSHAP: O(nodes × depth) instead of LightGBM's O(leaves × depth²).
On the registered survival champion (545 trees of 31 leaves, paths up to 20 splits) a customer
costs 109 tree walks for class 0 plus 109 for its cause's class, against 12 × 545 = 6,540 for the
plain algorithm (docs/survival.md, "Reasons per cause").
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numba
import numpy as np
import pandas as pd

from models.explain.frame import group_contributions
from models.explain.linear_shap import ShapForest, tree_shap, workspace
from models.explain.reasons import BASE_VALUE, feature_templates, reason_codes

CAUSE_REASON_PREFIX = "cause_"  # cause_reason_1, cause_reason_1_group, cause_reason_1_contribution


@dataclass(frozen=True)
class _CauseForest:
    """The booster's flat forest and each class's trees."""

    forest: ShapForest
    class_trees: np.ndarray  # (classes, trees per class) tree indices


# booster -> {iterations: _CauseForest}; an entry goes with its booster
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cause_forest(booster: lgb.Booster, num_iteration: int) -> _CauseForest:
    """The booster's ``_CauseForest``, built once per booster and iteration count (a scoring
    job calls it once per slice of customers)."""
    cached = _FORESTS.setdefault(booster, {})
    if num_iteration not in cached:
        cached[num_iteration] = _build_forest(booster, num_iteration)
    return cached[num_iteration]


def _build_forest(booster: lgb.Booster, num_iteration: int) -> _CauseForest:
    forest = ShapForest.from_booster(booster, num_iteration)
    classes, n_trees = booster.num_model_per_iteration(), len(forest.trees.roots)
    class_trees = np.arange(n_trees).reshape(-1, classes).T.copy()
    return _CauseForest(forest, class_trees)


@numba.njit(parallel=True, cache=True)
def _against(X, cause, class_trees, months, feature, threshold, default_left, missing, left,
             right, value, count, roots, points, weights, n_points, depth, out):  # fmt: skip
    """Per row of ``X`` (the features without the month), the mean over the months 1..K of
    φ_cause − φ_0 into ``out``: one column per feature, then (the month's column in the
    booster) the mean of raw_cause − raw_0."""
    n, m = X.shape
    for i in numba.prange(n):
        work = workspace(depth.max(), points.shape[1], m + 1)
        for sign, j in ((-1.0, 0), (1.0, cause[i])):
            for t in class_trees[j]:
                q = n_points[t]
                tree_shap(X[i], roots[t], feature, threshold, default_left, missing, left, right,
                          value, count, points[t, :q], weights[t, :q], sign, out[i], work, m,
                          months)  # fmt: skip


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
    if booster.num_feature() != n_features + 1:
        raise ValueError("X must hold the booster's features without the month (its last)")
    num_iteration = num_iteration or booster.best_iteration or booster.current_iteration()
    cf = _cause_forest(booster, num_iteration)
    shap, f = cf.forest, cf.forest.trees
    out = np.zeros((len(X), n_features + 1))
    cause = np.asarray(cause_index, dtype=np.int64) + 1
    _against(np.ascontiguousarray(X.to_numpy(dtype=np.float64)), cause, cf.class_trees, months,
             f.feature, f.threshold, f.default_left, f.missing, f.left, f.right, f.value, f.count,
             f.roots, shap.points, shap.weights, shap.n_points, f.depth, out)  # fmt: skip
    # the month's share and the expected value: the mean log-odds less the features' shares
    out[:, n_features] -= out[:, :n_features].sum(axis=1)
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
