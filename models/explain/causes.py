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
- the months are the integers 1..K (never missing), so a split ``k <= threshold`` on the month
  only asks on which side of ``floor(threshold)`` k lies: a tree's month splits cut 1..K into
  cells of months it cannot tell apart, each giving the tree the same values. The tree's mean
  over the K months is then the sum over its cells of (cell size / K) × its values at any month
  of the cell: one walk per cell, not K. A tree with no month split has one cell.
- each walk is Linear TreeSHAP (``models.explain.linear_shap``): the values of LightGBM's
  algorithm in O(nodes × depth) instead of O(leaves × depth²); with no rows stacked per cell,
  about 5× less CPU than ``pred_contrib`` per cell on the registered survival champion (545
  trees of 31 leaves, paths up to 20 splits; docs/survival.md, "Reasons per cause").
On that champion a customer costs 315 tree walks for class 0 plus 124-416 for its cause's class,
against 12 × 545 = 6,540 for the plain algorithm.
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
    """The booster's trees for one K: the flat forest, each class's trees, and each tree's month
    cells (a month of each, as float64, and the cell's share of the K months; 0 after them)."""

    forest: ShapForest
    class_trees: np.ndarray  # (classes, trees per class) tree indices
    cell_months: np.ndarray  # (trees, most cells)
    cell_shares: np.ndarray  # (trees, most cells)


# booster -> {(K, iterations): _CauseForest}; an entry goes with its booster
_FORESTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _cause_forest(booster: lgb.Booster, months: int, num_iteration: int) -> _CauseForest:
    """The booster's ``_CauseForest`` for K = ``months``, built once per booster, K and
    iteration count (a scoring job calls it once per slice of customers)."""
    cached = _FORESTS.setdefault(booster, {})
    if (months, num_iteration) not in cached:
        cached[months, num_iteration] = _build_forest(booster, months, num_iteration)
    return cached[months, num_iteration]


def _build_forest(booster: lgb.Booster, months: int, num_iteration: int) -> _CauseForest:
    forest = ShapForest.from_booster(booster, num_iteration)
    trees, classes = forest.trees, booster.num_model_per_iteration()
    month = booster.num_feature() - 1  # the person-period rows' last column
    n_trees = len(trees.roots)
    cells = []
    for t in range(n_trees):
        nodes = trees.tree_nodes(t)
        on_month = trees.feature[nodes] == month
        cuts = {int(np.floor(x)) for x in trees.threshold[nodes][on_month]}
        cells.append(np.array([*sorted(c for c in cuts if 1 <= c < months), months], float))
    width = max(len(c) for c in cells)
    cell_months, cell_shares = np.zeros((n_trees, width)), np.zeros((n_trees, width))
    for t, ends_t in enumerate(cells):
        cell_months[t, : len(ends_t)] = ends_t
        cell_shares[t, : len(ends_t)] = np.diff(ends_t, prepend=0.0) / months
    class_trees = np.arange(n_trees).reshape(-1, classes).T.copy()
    return _CauseForest(forest, class_trees, cell_months, cell_shares)


@numba.njit(parallel=True, cache=True)
def _against(X, cause, class_trees, cell_months, cell_shares, feature, threshold, default_left,
             missing, left, right, value, count, roots, expected, points, weights, n_points, depth,
             out):  # fmt: skip
    """Per row of ``X`` (its last column the month, overwritten), the mean over the months of
    φ_cause − φ_0 into ``out`` (features with the month, then the expected value)."""
    n, m = X.shape
    for i in numba.prange(n):
        work = workspace(depth.max(), points.shape[1], m)
        for sign, j in ((-1.0, 0), (1.0, cause[i])):
            for t in class_trees[j]:
                for c in range(cell_months.shape[1]):
                    share = cell_shares[t, c]
                    if share == 0.0:
                        break
                    X[i, m - 1] = cell_months[t, c]
                    tree_shap(X[i], roots[t], feature, threshold, default_left, missing, left,
                              right, value, count, points[t, : n_points[t]],
                              weights[t, : n_points[t]], sign * share, out[i], work)  # fmt: skip
                out[i, m] += sign * expected[t]


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
    cf = _cause_forest(booster, months, num_iteration)
    shap, f = cf.forest, cf.forest.trees
    values = np.empty((len(X), n_features + 1))
    values[:, :-1] = X.to_numpy(dtype=np.float64)
    out = np.zeros((len(X), n_features + 2))
    cause = np.asarray(cause_index, dtype=np.int64) + 1
    _against(values, cause, cf.class_trees, cf.cell_months, cf.cell_shares, f.feature,
             f.threshold, f.default_left, f.missing, f.left, f.right, f.value, f.count, f.roots,
             shap.expected, shap.points, shap.weights, shap.n_points, f.depth, out)  # fmt: skip
    out[:, n_features] += out[:, n_features + 1]  # month + base
    return pd.DataFrame(out[:, :-1], index=X.index, columns=[*X.columns, BASE_VALUE])


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
