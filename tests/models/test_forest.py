"""MonthForest: each tree walked once per row equals LightGBM on the K person-period rows."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.survival.forest import MonthForest

K = 12


def person_periods(n: int, features: int, nan_share: float, zero_share: float, seed: int):
    """Rows x months with a month-dependent multiclass outcome; NaNs and exact zeros sprinkled."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, features))
    X[rng.random(X.shape) < zero_share] = 0.0
    X[rng.random(X.shape) < nan_share] = np.nan
    month = rng.integers(1, K + 1, n).astype(float)
    signal = np.nan_to_num(X[:, 0]) + 0.3 * (month - 6) * (np.nan_to_num(X[:, 1]) > 0)
    y = np.digitize(signal + rng.normal(scale=0.7, size=n), [-1.0, 0.5, 1.5])
    return np.column_stack([X, month]), y


def stacked_raw(booster: lgb.Booster, X: np.ndarray) -> np.ndarray:
    """LightGBM's own answer: the K person-period rows of every row, (n, K, classes)."""
    stacked = np.tile(X, (K, 1))
    stacked[:, -1] = np.repeat(np.arange(1, K + 1, dtype=float), len(X))
    raw = booster.predict(stacked, raw_score=True, num_iteration=booster.best_iteration or None)
    return raw.reshape(K, len(X), -1).transpose(1, 0, 2)


def fit(X, y, rounds: int, **params) -> lgb.Booster:
    base = {"objective": "multiclass", "num_class": 4, "verbose": -1, "num_threads": 1,
            "min_data_in_leaf": 5, "seed": 0}  # fmt: skip
    return lgb.train(base | params, lgb.Dataset(X, y), rounds)


@pytest.mark.parametrize(
    "params",
    [
        {"num_leaves": 31},
        {"num_leaves": 15, "zero_as_missing": True},  # missing type Zero
        {"num_leaves": 7, "use_missing": False},  # missing type None: NaN goes as 0
        {"num_leaves": 63, "max_depth": 12, "learning_rate": 0.3},
    ],
)
def test_equals_lightgbm_on_stacked_rows(params):
    X, y = person_periods(4000, 6, nan_share=0.2, zero_share=0.1, seed=1)
    booster = fit(X, y, 40, **params)
    rows = X[:500].copy()
    rows[:, -1] = np.nan  # the month column of the input is ignored
    got = MonthForest.from_booster(booster, X.shape[1] - 1).raw_scores(rows, K)
    np.testing.assert_allclose(got, stacked_raw(booster, rows), rtol=0, atol=1e-12)


def test_the_month_is_resolved_not_read():
    """A model of the month alone: the rows' answers differ by month only, as LightGBM's do."""
    X, y = person_periods(3000, 2, nan_share=0.0, zero_share=0.0, seed=2)
    y = (X[:, -1] > 6).astype(int) + (X[:, -1] > 9)
    booster = fit(X[:, -1:], y, 20, num_class=3)
    got = MonthForest.from_booster(booster, 0).raw_scores(np.zeros((3, 1)), K)
    np.testing.assert_allclose(got, stacked_raw(booster, np.zeros((3, 1))), atol=1e-12)
    assert not np.allclose(got[:, 0], got[:, -1])


def test_best_iteration_is_respected():
    X, y = person_periods(3000, 4, nan_share=0.1, zero_share=0.0, seed=3)
    booster = fit(X, y, 30, num_leaves=15)
    got = MonthForest.from_booster(booster, X.shape[1] - 1, iterations=10).raw_scores(X[:50], K)
    stacked = np.tile(X[:50], (K, 1))
    stacked[:, -1] = np.repeat(np.arange(1, K + 1, dtype=float), 50)
    want = booster.predict(stacked, raw_score=True, num_iteration=10)
    np.testing.assert_allclose(got, want.reshape(K, 50, -1).transpose(1, 0, 2), atol=1e-12)


def test_categorical_splits_are_refused():
    X, y = person_periods(2000, 3, nan_share=0.0, zero_share=0.0, seed=4)
    frame = pd.DataFrame(X[:, :-1], columns=["a", "b", "c"])
    frame["a"] = pd.Categorical(np.where(frame["a"] > 0, "hi", "lo"))
    frame["surv_month"] = X[:, -1]
    booster = fit(frame, y, 10, num_leaves=7, min_data_per_group=5, cat_smooth=1)
    with pytest.raises(ValueError, match="not supported"):
        MonthForest.from_booster(booster, 3)


@settings(max_examples=15, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    leaves=st.integers(2, 40),
    rounds=st.integers(1, 25),
    nan_share=st.floats(0.0, 0.5),
    zero_as_missing=st.booleans(),
)
def test_random_boosters_agree(seed, leaves, rounds, nan_share, zero_as_missing):
    X, y = person_periods(1500, 5, nan_share=nan_share, zero_share=0.2, seed=seed)
    booster = fit(X, y, rounds, num_leaves=leaves, zero_as_missing=zero_as_missing)
    got = MonthForest.from_booster(booster, X.shape[1] - 1).raw_scores(X[:200], K)
    np.testing.assert_allclose(got, stacked_raw(booster, X[:200]), rtol=0, atol=1e-12)


def test_a_booster_is_flattened_once_per_month_feature_and_iterations():
    """``MonthForest.of`` (what scoring calls once per slice) builds the forest once per booster
    and iteration count, gives the same answers as ``from_booster``, and lets the booster go."""
    import gc
    import weakref

    X, y = person_periods(2000, 4, nan_share=0.1, zero_share=0.0, seed=4)
    booster = fit(X, y, 20, num_leaves=15)
    month = X.shape[1] - 1
    forest = MonthForest.of(booster, month)
    assert MonthForest.of(booster, month) is forest
    assert MonthForest.of(booster, month, iterations=10) is not forest
    np.testing.assert_array_equal(
        forest.raw_scores(X[:50], K), MonthForest.from_booster(booster, month).raw_scores(X[:50], K)
    )
    gone = weakref.ref(forest)
    del booster, forest
    gc.collect()
    assert gone() is None  # the cache holds no booster alive, nor its forest after it
