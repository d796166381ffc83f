"""Linear TreeSHAP (models/explain/linear_shap.py) gives LightGBM's ``pred_contrib`` and
``shap.TreeExplainer``'s values: deep trees, features repeated on a path, missing values of every
missing type, a tree that is a single leaf, multiclass boosters one class at a time."""

from __future__ import annotations

import lightgbm as lgb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.explain.frame import feature_contributions
from models.explain.linear_shap import ShapForest, contributions, shap_forest


def _data(seed: int, n: int = 1500, nan_share: float = 0.15, zero_share: float = 0.1):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    X[rng.random(X.shape) < zero_share] = 0.0
    X[:, :3][rng.random((n, 3)) < nan_share] = np.nan
    signal = np.nan_to_num(X[:, 0]) * np.nan_to_num(X[:, 1]) + np.sin(3 * np.nan_to_num(X[:, 2]))
    return X, signal + 0.3 * X[:, 3] + rng.normal(scale=0.3, size=n)


def _booster(X, y, rounds: int = 40, **params) -> lgb.Booster:
    base = {"objective": "regression", "num_leaves": 31, "min_child_samples": 5, "verbose": -1,
            "learning_rate": 0.2, "seed": 1}  # fmt: skip
    return lgb.train({**base, **params}, lgb.Dataset(X, y), num_boost_round=rounds)


def _assert_equal(booster: lgb.Booster, X: np.ndarray, classes: int = 1) -> None:
    forest = ShapForest.from_booster(booster)
    expected = np.asarray(booster.predict(X, pred_contrib=True)).reshape(len(X), classes, -1)
    for j in range(classes):
        got = contributions(forest, X, np.arange(j, booster.num_trees(), classes))
        np.testing.assert_allclose(got, expected[:, j], rtol=0, atol=1e-9)


def test_deep_trees_with_missing_values_equal_pred_contrib():
    X, y = _data(0)
    booster = _booster(X, y, num_leaves=63, max_depth=-1)
    forest = ShapForest.from_booster(booster)
    assert forest.trees.depth.max() >= 12  # paths deep enough to need many points
    _assert_equal(booster, X[:400])


@pytest.mark.parametrize("missing", ["nan", "zero", "none"])
def test_every_missing_type_equals_pred_contrib(missing):
    X, y = _data(1)
    params = {"use_missing": missing != "none", "zero_as_missing": missing == "zero"}
    _assert_equal(_booster(X, y, **params), X[:300])


def test_a_multiclass_booster_equals_pred_contrib_class_by_class():
    X, y = _data(2)
    labels = np.digitize(y, np.quantile(y, [0.3, 0.7]))
    booster = _booster(X, labels, objective="multiclass", num_class=3, rounds=25)
    _assert_equal(booster, X[:300], classes=3)


def test_single_leaf_trees_give_only_the_expected_value():
    X = np.random.default_rng(3).normal(size=(200, 3))
    booster = _booster(X, np.ones(200), rounds=3)  # a constant target: every tree is one leaf
    got = contributions(ShapForest.from_booster(booster), X[:20])
    np.testing.assert_allclose(got, np.asarray(booster.predict(X[:20], pred_contrib=True)))
    assert (got[:, :-1] == 0).all()


def test_the_values_equal_shap_tree_explainer():
    shap = pytest.importorskip("shap")
    X, y = _data(4, nan_share=0.0)
    booster = _booster(X, y)
    expected = shap.TreeExplainer(booster, feature_perturbation="tree_path_dependent")
    values = expected.shap_values(X[:200])
    got = contributions(ShapForest.from_booster(booster), X[:200])
    np.testing.assert_allclose(got[:, :-1], values, rtol=0, atol=1e-9)
    np.testing.assert_allclose(got[:, -1], expected.expected_value, rtol=0, atol=1e-9)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 10_000), leaves=st.sampled_from([2, 3, 7, 15, 40]),
       features=st.integers(1, 6))  # fmt: skip
def test_any_small_booster_equals_pred_contrib(seed, leaves, features):
    X, y = _data(seed, n=300)
    X = X[:, :features]
    booster = _booster(X, y, num_leaves=leaves, rounds=8)
    _assert_equal(booster, X[:60])


def test_a_booster_with_a_categorical_split_is_explained_by_lightgbm_itself():
    rng = np.random.default_rng(5)
    X = np.column_stack([rng.integers(0, 6, 800).astype(float), rng.normal(size=800)])
    y = np.isin(X[:, 0], [1, 4]) * 2.0 + X[:, 1] + rng.normal(scale=0.2, size=800)
    booster = lgb.train({"objective": "regression", "verbose": -1, "min_child_samples": 5},
                        lgb.Dataset(X, y, categorical_feature=[0]), num_boost_round=10)  # fmt: skip
    assert shap_forest(booster, 10) is None
    got = feature_contributions(booster, X[:50])
    np.testing.assert_array_equal(got.to_numpy(), booster.predict(X[:50], pred_contrib=True))


def test_the_forest_is_built_once_per_booster_and_iterations():
    X, y = _data(6, n=300)
    booster = _booster(X, y, rounds=10)
    assert shap_forest(booster, 10) is shap_forest(booster, 10)
    assert shap_forest(booster, 5) is not shap_forest(booster, 10)
    assert len(shap_forest(booster, 5).trees.roots) == 5
