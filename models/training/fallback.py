"""Graceful degradation of the tier model: when the fit slice cannot support a multiclass
LightGBM model, the next-tier probabilities come from the Markov baseline instead.

The data support a tier model when the fit slice holds at least ``MIN_TIER_CLASSES`` next-tier
classes and every tier that occurs anywhere in the labelled rows (as a tier at t or at t+H)
occurs among the fit slice's next tiers: a booster gives probability 0 to a class it never saw,
which a tier of the data would then get at every row (log loss infinite).

The fallback keeps every output and consumer unchanged: ``markov_tier_model`` writes the Markov
matrix into a LightGBM booster of one tree per tier, split on ``rel_tier_rank`` (the current tier)
with leaf values log P(next | current), so its softmax is exactly the matrix row. The registered
version (same name, same columns) then serves, explains and stores like any tier model, and its
``to_dict()`` carries ``baseline: markov`` so the stored version says what it is.
"""

from __future__ import annotations

from collections.abc import Mapping

import lightgbm as lgb
import numpy as np
import pandas as pd

from features.labels import NEXT_TIER
from features.registry import TIER
from features.spec import TIERS
from models.training.boosters import TierModel
from models.training.estimators import MarkovBaseline

MIN_TIER_CLASSES = 3
TIER_RANK = "rel_tier_rank"  # the current tier as its code (features/build.py)
MARKOV = "markov"
_ROWS_PER_TIER = 40
_TINY = 1e-300  # log of a zero transition (Markov alpha = 0): as close to 0 as a float gets


def tier_fallback_reason(fit: pd.DataFrame, labelled: pd.DataFrame) -> str:
    """Why the fit slice cannot train the tier model ('' when it can).

    ``fit``: the tier model's fit rows; ``labelled``: every labelled row of the table.
    """
    classes = set(fit[NEXT_TIER].dropna())
    if len(classes) < MIN_TIER_CLASSES:
        found = ", ".join(t for t in TIERS if t in classes) or "none"
        return (
            f"the fit slice has {len(classes)} next-tier class(es) ({found}); the tier model "
            f"needs at least {MIN_TIER_CLASSES}"
        )
    seen = set(labelled[TIER].dropna()) | set(labelled[NEXT_TIER].dropna())
    absent = [t for t in TIERS if t in seen and t not in classes]
    if absent:
        return (
            f"tier(s) {', '.join(absent)} occur in the data but never as a next tier in the fit "
            "slice"
        )
    return ""


def _training_frame(names: list[str]) -> tuple[pd.DataFrame, np.ndarray]:
    """Rows of each current tier whose class shares differ between tiers for every class, so
    each class's first tree splits ``rel_tier_rank`` into one leaf per tier."""
    k = len(TIERS)
    tiers, labels = [], []
    for current in range(k):
        counts = 1 + k * current + np.arange(k)  # share of class j in tier c: monotone in c
        repeat = np.repeat(np.arange(k), counts * (_ROWS_PER_TIER // counts.sum() + 1))
        tiers.append(np.full(len(repeat), current))
        labels.append(repeat)
    rank = np.concatenate(tiers).astype(float)
    X = pd.DataFrame(0.0, index=np.arange(len(rank)), columns=names)
    X[TIER_RANK] = rank
    return X, np.concatenate(labels)


def markov_booster(matrix: np.ndarray, names: list[str]) -> lgb.Booster:
    """A multiclass booster over the feature columns ``names`` whose probabilities at a row are
    ``matrix[rel_tier_rank]`` (rows: current tier, columns: next tier, both in TIERS order)."""
    if TIER_RANK not in names:
        raise ValueError(f"the Markov tier model reads {TIER_RANK}, which is not a feature")
    X, y = _training_frame(names)
    params = {
        "objective": "multiclass", "num_class": len(TIERS), "num_leaves": len(TIERS),
        "learning_rate": 1.0, "min_data_in_leaf": 1, "min_sum_hessian_in_leaf": 0.0,
        "min_data_in_bin": 1, "verbose": -1, "num_threads": 1, "deterministic": True,
        "force_col_wise": True,
    }  # fmt: skip
    booster = lgb.train(params, lgb.Dataset(X, y), num_boost_round=1)
    probe = X.drop_duplicates(TIER_RANK).sort_values(TIER_RANK)
    leaves = booster.predict(probe, pred_leaf=True).reshape(len(TIERS), len(TIERS))
    if any(len(set(column)) < len(TIERS) for column in leaves.T):
        raise RuntimeError("the Markov booster did not split every tier into its own leaf")
    logs = np.log(np.maximum(np.asarray(matrix, dtype=float), _TINY))
    for current in range(len(TIERS)):
        for cls in range(len(TIERS)):
            booster.set_leaf_output(cls, int(leaves[current, cls]), float(logs[current, cls]))
    return lgb.Booster(model_str=booster.model_to_string())


def markov_tier_model(markov: MarkovBaseline, features: Mapping[str, str]) -> TierModel:
    """The fitted Markov baseline as a TierModel over the same features (see the module doc)."""
    names = list(features)
    booster = markov_booster(markov.matrix_, names)
    return TierModel(booster, range(len(TIERS)), names, features, baseline=MARKOV)
