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
every class's trees on K rows per customer, within 1e-9). TreeSHAP of a sum of trees is the sum
of the trees' values, and LightGBM's (path-dependent) TreeSHAP uses a row only to pick the child
it goes to at each split (the rest is the trees' own covers). Hence:
- φ_j comes from class j's trees alone: class 0's trees run for every row, class 1 + c's only
  for the rows whose cause is c, not all 1 + C classes for every row;
- the months are the integers 1..K (never missing), so a split ``k <= threshold`` on the month
  only asks on which side of ``floor(threshold)`` k lies: a tree's month splits cut 1..K into
  cells of months it cannot tell apart, each giving the tree the same values. The tree's mean
  over the K months is then the sum over its cells of (cell size / K) × its values at any month
  of the cell: one row per cell, not K. A tree with no month split has one cell (one row per
  customer; the month gets 0).
So each class's trees are grouped by the cells they cut 1..K into (``_MonthPart``: a booster of
the group's trees, LightGBM's model text with ``num_class=1``, the same tree lines), built once
per booster, K and iteration count (``_parts``, cached while the booster lives), and each group
runs on one row per customer and cell. On the registered champion (545 trees) a customer costs
315 tree-rows for class 0 plus 124-416 for its cause's class, against 12 × 545 = 6,540
(docs/survival.md, "Reasons per cause").
"""

from __future__ import annotations

import math
import re
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd

from models.explain.frame import group_contributions
from models.explain.reasons import BASE_VALUE, feature_templates, reason_codes

CAUSE_REASON_PREFIX = "cause_"  # cause_reason_1, cause_reason_1_group, cause_reason_1_contribution
_BATCH_ROWS = 20_000  # (customer, snapshot) rows per block: at most K x this TreeSHAP rows a call


@dataclass(frozen=True)
class _MonthPart:
    """Trees of one class that cut the months 1..K into the same cells: a booster of them, a
    month of each cell (float64) and the cell's share of the K months."""

    booster: lgb.Booster
    months: np.ndarray
    shares: np.ndarray


# booster -> {(K, iterations): per class, its _MonthParts}; an entry goes with its booster
_PARTS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _parts(booster: lgb.Booster, months: int, num_iteration: int) -> list[list[_MonthPart]]:
    """Per class, its trees' ``_MonthPart``s (the month: the booster's last feature); built once
    per booster, K and iteration count."""
    cached = _PARTS.setdefault(booster, {})
    if (months, num_iteration) not in cached:
        cached[months, num_iteration] = _build_parts(booster, months, num_iteration)
    return cached[months, num_iteration]


def _build_parts(booster: lgb.Booster, months: int, num_iteration: int) -> list[list[_MonthPart]]:
    text = booster.model_to_string(num_iteration=num_iteration)
    header, trees = text.split("\nTree=", 1)
    trees = re.split(r"(?m)^Tree=", trees.split("\nend of trees", 1)[0])  # "i\n<tree>\n\n"
    header = re.sub(r"(?m)^(num_class|num_tree_per_iteration)=\d+$", r"\1=1", header)
    header = re.sub(r"(?m)^(tree_sizes|objective)=.*\n", "", header)  # no objective: raw scores
    classes, month = booster.num_model_per_iteration(), booster.num_feature() - 1
    parts = []
    for j in range(classes):
        groups: dict[tuple[int, ...], list[str]] = {}
        for tree in trees[j::classes]:
            groups.setdefault(_month_cuts(tree, month, months), []).append(tree)
        parts.append([_month_part(header, group, cuts, months) for cuts, group in groups.items()])
    return parts


def _month_cuts(tree: str, month: int, months: int) -> tuple[int, ...]:
    """The cuts c (1 <= c < K) of a tree's month splits (months m <= c go left; m integer, so
    ``m <= threshold`` iff ``m <= floor(threshold)``), ascending."""
    lines = dict(line.split("=", 1) for line in tree.splitlines()[1:] if "=" in line)
    if "split_feature" not in lines:  # a single leaf
        return ()
    feature = np.array(lines["split_feature"].split(), dtype=np.int64)
    decision = np.array(lines["decision_type"].split(), dtype=np.int64)[feature == month]
    if (decision & 1).any():
        raise ValueError("cause_contributions: a categorical split on the month")
    threshold = np.array(lines["threshold"].split(), dtype=np.float64)[feature == month]
    cuts = {math.floor(t) for t in threshold}
    return tuple(sorted(c for c in cuts if 1 <= c < months))


def _month_part(header: str, trees: list[str], cuts: tuple[int, ...], months: int) -> _MonthPart:
    """A one-class booster of ``trees`` (LightGBM's model text without tree_sizes); a month of
    each cell (its last) and the cell's share of the months."""
    body = "".join(f"Tree={i}\n{tree.split(chr(10), 1)[1]}\n" for i, tree in enumerate(trees))
    booster = lgb.Booster(model_str=f"{header.rstrip()}\n\n{body}end of trees\n")
    ends = np.array([*cuts, months], dtype=np.float64)
    return _MonthPart(booster, ends, np.diff(ends, prepend=0.0) / months)


def _mean_contributions(parts: list[_MonthPart], block: np.ndarray) -> np.ndarray:
    """One class's TreeSHAP (features, month, base) of ``block``'s rows, mean over months 1..K."""
    n = len(block)
    total = np.zeros((n, block.shape[1] + 2))
    for part in parts:
        cells = len(part.months)
        stacked = np.empty((n * cells, block.shape[1] + 1))
        stacked[:, :-1] = np.tile(block, (cells, 1))
        stacked[:, -1] = np.repeat(part.months, n)
        raw = np.asarray(part.booster.predict(stacked, pred_contrib=True))
        total += np.tensordot(part.shares, raw.reshape(cells, n, -1), axes=1)
    return total


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
    out = np.zeros((len(X), n_features + 2))
    values = X.to_numpy(dtype=np.float64)
    num_iteration = num_iteration or booster.best_iteration or booster.current_iteration()
    parts = _parts(booster, months, num_iteration)
    cause = np.asarray(cause_index, dtype=np.int64) + 1
    for start in range(0, len(X), _BATCH_ROWS):
        block, classes = values[start : start + _BATCH_ROWS], cause[start : start + _BATCH_ROWS]
        against = -_mean_contributions(parts[0], block)
        for c in np.unique(classes):
            rows = np.flatnonzero(classes == c)
            against[rows] += _mean_contributions(parts[c], block[rows])
        out[start : start + len(block)] = against
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
